"""Build hooks; the metadata lives in setup.cfg.

``build_py`` copies the shipped model artifact (:data:`SHIPPED_MODEL_FILES` of
``models/ser-cnn``) into the built ``ser_lib`` package as ``ser_lib/default_model/``, so a
non-editable install (``pip install .``, a wheel) predicts with no ``--model``
(:data:`ser_lib.artifact.DEFAULT_ARTIFACT`). Training-only files (``cv/`` fold models,
ensemble ``members/``, figures) stay out of the wheel. Editable installs read
``models/ser-cnn`` in the checkout instead.

It also copies the accurate model's encoder-head artifact (``models/ser-accurate``: the
ONNX speech encoder, its licence notice and the head) as ``ser_lib/accurate_model/``
(:data:`ser_lib.models.DEFAULT_ENCODER`), so ``model.variant: accurate`` works from a wheel.
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
ENCODER_DIR = HERE / "models" / "ser-accurate"
#: the accurate variant's encoder-head artifact (ser_lib/encoder_head.py) and its card
SHIPPED_ENCODER_FILES = ("encoder_head.json", "encoder.onnx", "ENCODER_LICENSE.txt", "README.md")


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
        missing = [f for f in SHIPPED_ENCODER_FILES[:3] if not (ENCODER_DIR / f).is_file()]
        if missing:
            raise SystemExit(f"cannot build: {ENCODER_DIR} lacks {', '.join(missing)} (the accurate model)")
        target = Path(self.build_lib) / "ser_lib" / "accurate_model"
        target.mkdir(parents=True, exist_ok=True)
        for name in SHIPPED_ENCODER_FILES:
            if (ENCODER_DIR / name).is_file():
                shutil.copy2(ENCODER_DIR / name, target / name)


setup(cmdclass={"build_py": BuildPyWithModel})
