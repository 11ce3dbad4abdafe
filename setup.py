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
SHIPPED_ENCODER_FILES = ("encoder_head.json", "encoder.onnx", "ENCODER_LICENSE.txt", "encoder-int8.onnx", "README.md")


def ship(build_lib: str, src: Path, files: tuple, n_required: int, package_dir: str, what: str) -> None:
    """Copy ``files`` of ``src`` into ``ser_lib/<package_dir>`` of the build; the first
    ``n_required`` must exist (else the build stops), the others are copied when present."""
    missing = [f for f in files[:n_required] if not (src / f).is_file()]
    if missing:
        raise SystemExit(f"cannot build: {src} lacks {', '.join(missing)} ({what})")
    target = Path(build_lib) / "ser_lib" / package_dir
    target.mkdir(parents=True, exist_ok=True)
    for name in files:
        if (src / name).is_file():
            shutil.copy2(src / name, target / name)


class BuildPyWithModel(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # editable: ser_lib.artifact falls back to models/ser-cnn in the checkout
        ship(self.build_lib, MODEL_DIR, SHIPPED_MODEL_FILES, 2, "default_model", "the shipped model")
        ship(self.build_lib, ENCODER_DIR, SHIPPED_ENCODER_FILES, 3, "accurate_model", "the accurate model")


setup(cmdclass={"build_py": BuildPyWithModel})
