"""Build hooks; the metadata lives in setup.cfg.

``build_py`` copies the shipped model artifact (:data:`SHIPPED_MODEL_FILES` of
``models/ser-cnn``) into the built ``ser_lib`` package as ``ser_lib/default_model/``, so a
non-editable install (``pip install .``, a wheel) predicts with no ``--model``
(:data:`ser_lib.artifact.DEFAULT_ARTIFACT`). Training-only files (``cv/`` fold models,
ensemble ``members/``, figures) stay out of the wheel. Editable installs read
``models/ser-cnn`` in the checkout instead.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
MODEL_DIR = HERE / "models" / "ser-cnn"
#: what serving needs (artifact.json, the LiteRT model), the Keras model (the runtime
#: without ai-edge-litert, ser evaluate) and the model card
SHIPPED_MODEL_FILES = ("artifact.json", "model.tflite", "model.keras", "README.md")


class BuildPyWithModel(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # editable: ser_lib.artifact falls back to models/ser-cnn in the checkout
        missing = [f for f in SHIPPED_MODEL_FILES[:2] if not (MODEL_DIR / f).is_file()]
        if missing:
            raise SystemExit(f"cannot build: {MODEL_DIR} lacks {', '.join(missing)} (the shipped model)")
        target = Path(self.build_lib) / "ser_lib" / "default_model"
        target.mkdir(parents=True, exist_ok=True)
        for name in SHIPPED_MODEL_FILES:
            if (MODEL_DIR / name).is_file():
                shutil.copy2(MODEL_DIR / name, target / name)


setup(cmdclass={"build_py": BuildPyWithModel})
