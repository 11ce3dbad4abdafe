"""The versioned model artifact: one directory the training writes and the job loads.

Layout::

    <name>/
      artifact.json   format, version, labels, feature + speech config,
                      normalisation statistics, training metrics
      model.keras     the Keras 3 model (native format, no custom objects): training, checks
      model.tflite    the same model for the LiteRT runtime (``ai-edge-litert``): serving
                      without TensorFlow (optional; :func:`export_runtime` adds it)

``artifact.json`` is the contract: the job refuses an artifact whose feature
configuration differs from what this code computes (feature code version, or
the window/frame settings it is asked to serve with), since its model would be
fed numbers it never saw in training.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError, ConfigError
from .features import FEATURE_VERSION, FeatureConfig
from .speech import SpeechConfig

FORMAT = "ser-model-artifact"
FORMAT_VERSION = 1
META_FILE = "artifact.json"
MODEL_FILE = "model.keras"
#: The model exported for the light inference runtime (LiteRT flatbuffer, dynamic batch).
RUNTIME_FILE = "model.tflite"
#: The shipped model inside an installed package (``setup.py`` copies ``models/ser-cnn``'s
#: serving files there when it builds a wheel).
PACKAGED_ARTIFACT = Path(__file__).resolve().parent / "default_model"
#: The shipped model in a checkout (editable install, ``PYTHONPATH``); training writes it.
SOURCE_ARTIFACT = Path(__file__).resolve().parent.parent / "models" / "ser-cnn"


def shipped(packaged: Path, source: Path, marker: str) -> Path:
    """A model shipped with the code: the installed package's copy (``packaged``, written by
    ``setup.py`` into a wheel) when it holds ``marker``, else the checkout's (``source``)."""
    return packaged if (packaged / marker).is_file() else source


#: The artifact used when no other is given: the installed package's copy, else the checkout's.
DEFAULT_ARTIFACT = shipped(PACKAGED_ARTIFACT, SOURCE_ARTIFACT, "artifact.json")


@dataclass
class ArtifactMeta:
    """Everything in ``artifact.json``.

    Attributes:
        version: model version string, e.g. ``"cnn1d-2026.12.02.0909"`` (family, UTC date
            and time of training); copied into every output row.
        labels: ordered emotion labels, one per model output unit.
        feature_config: the features the model was trained on.
        speech_config: the speech/non-speech rule used when building training windows.
        norm_mean, norm_std: per-feature normalisation, ``(n_features,)`` float32;
            the model input is ``(x - norm_mean) / norm_std``.
        temperature: softmax temperature fitted on validation windows
            (:func:`ser_lib.runtime.calibrate`); 1.0 = uncalibrated.
        metrics: evaluation results of the training run (free-form, JSON).
        training: training provenance (config, corpora, split file, seed).
    """

    version: str
    labels: list[str]
    feature_config: FeatureConfig
    speech_config: SpeechConfig
    norm_mean: np.ndarray
    norm_std: np.ndarray
    temperature: float = 1.0
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT, "format_version": FORMAT_VERSION, "version": self.version,
            "labels": list(self.labels), "feature_config": self.feature_config.to_dict(),
            "speech_config": self.speech_config.to_dict(),
            "normalization": {"mean": [float(v) for v in self.norm_mean], "std": [float(v) for v in self.norm_std]},
            "calibration": {"method": "temperature scaling (Guo et al. 2017), fitted on validation windows",
                            "temperature": float(self.temperature)},
            "metrics": self.metrics, "training": self.training,
        }, indent=2)

    @classmethod
    def from_json(cls, text: str) -> "ArtifactMeta":
        """Parse and validate ``artifact.json``.

        Raises:
            ArtifactError: wrong format, unknown format version, missing keys, or
                normalisation statistics whose length is not ``n_features``.
        """
        try:
            d = json.loads(text)
        except json.JSONDecodeError as err:
            raise ArtifactError(f"{META_FILE} is not valid JSON: {err}") from err
        if d.get("format") != FORMAT or d.get("format_version") != FORMAT_VERSION:
            raise ArtifactError(f"not a {FORMAT} v{FORMAT_VERSION} artifact "
                                f"(format={d.get('format')!r}, format_version={d.get('format_version')!r})")
        try:
            meta = cls(
                version=str(d["version"]), labels=list(d["labels"]),
                feature_config=FeatureConfig.from_dict(d["feature_config"]),
                speech_config=SpeechConfig.from_dict(d["speech_config"]),
                norm_mean=np.asarray(d["normalization"]["mean"], dtype=np.float32),
                norm_std=np.asarray(d["normalization"]["std"], dtype=np.float32),
                temperature=float(d.get("calibration", {}).get("temperature", 1.0)),
                metrics=d.get("metrics", {}), training=d.get("training", {}),
            )
        except (KeyError, TypeError, ValueError, ConfigError) as err:
            raise ArtifactError(f"{META_FILE} is malformed: {err!r}") from err
        if not meta.temperature > 0:
            raise ArtifactError(f"calibration temperature must be > 0, got {meta.temperature}")
        n = meta.feature_config.n_features
        if meta.norm_mean.shape != (n,) or meta.norm_std.shape != (n,) or (meta.norm_std <= 0).any():
            raise ArtifactError(f"normalisation statistics must be {n} values with std > 0")
        if not meta.labels:
            raise ArtifactError("artifact has no labels")
        return meta

    def check_compatible(self, expected: FeatureConfig | None = None) -> None:
        """Refuse an artifact this code cannot feed correctly.

        Args:
            expected: the feature configuration the caller will compute (e.g. the
                job's configured window); ``None`` checks the code version only.

        Raises:
            ArtifactError: the artifact's feature code version is not
                :data:`ser_lib.features.FEATURE_VERSION`, or its feature configuration
                differs from ``expected`` (every differing field is named).
        """
        fc = self.feature_config
        if fc.version != FEATURE_VERSION:
            raise ArtifactError(f"model {self.version} was trained on feature code v{fc.version}, "
                                f"this code computes v{FEATURE_VERSION}; retrain or use a matching release")
        if expected is not None and expected != fc:
            diff = {k: (v, getattr(expected, k)) for k, v in fc.to_dict().items() if getattr(expected, k) != v}
            raise ArtifactError(f"model {self.version} feature configuration does not match the job's: "
                                + ", ".join(f"{k}: model {a!r} vs job {b!r}" for k, (a, b) in diff.items()))


@dataclass
class ArtifactBytes:
    """An artifact as plain bytes: what the driver broadcasts to executors
    (a Keras model object does not pickle; its file does).

    ``runtime_bytes`` is ``model.tflite`` when the artifact has one, else None."""

    meta_json: str
    model_bytes: bytes
    runtime_bytes: bytes | None = None


def read_bytes(path: str | os.PathLike = DEFAULT_ARTIFACT) -> ArtifactBytes:
    """Read an artifact directory into memory.

    Raises:
        ArtifactError: the directory or one of its two files is missing.
    """
    path = Path(path)
    meta, model = path / META_FILE, path / MODEL_FILE
    for p in (meta, model):
        if not p.is_file():
            raise ArtifactError(f"{path} is not a model artifact: {p.name} is missing")
    runtime = path / RUNTIME_FILE
    return ArtifactBytes(meta.read_text(), model.read_bytes(), runtime.read_bytes() if runtime.is_file() else None)


def load_meta(path: str | os.PathLike = DEFAULT_ARTIFACT) -> ArtifactMeta:
    """Read and validate only ``artifact.json`` (no TensorFlow import)."""
    p = Path(path) / META_FILE
    if not p.is_file():
        raise ArtifactError(f"{path} is not a model artifact: {META_FILE} is missing")
    return ArtifactMeta.from_json(p.read_text())


_SILENCE_LOCK = threading.Lock()
_silence = {"depth": 0, "saved": -1}


@contextmanager
def native_stderr_silenced():
    """Silence file descriptor 2 while TensorFlow or LiteRT loads, unless ``SER_TF_LOGS=1``.

    TensorFlow's C++ runtime writes absl lines (oneDNN notices, CUDA probing, "failed call
    to cuInit") and LiteRT its XNNPACK notice straight to fd 2, outside Python logging;
    ``TF_CPP_MIN_LOG_LEVEL`` does not stop the absl ones (checked with TF 2.20/2.21): in cron
    mail they read like errors of the job. Python exceptions still propagate; set
    ``SER_TF_LOGS=1`` to see the lines.

    Thread-safe: fd 2 belongs to the process, so overlapping calls (``ser serve`` loads an
    interpreter per server thread) share one redirection: the first to enter saves fd 2 and
    points it at ``/dev/null``, the last to leave puts it back, whatever the order they
    leave in. While any call is inside, every thread's native stderr is silenced.
    """
    if os.environ.get("SER_TF_LOGS") == "1":
        yield
        return
    with _SILENCE_LOCK:
        if _silence["depth"] == 0:
            sys.stderr.flush()
            saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, 2)
            finally:
                os.close(devnull)
            _silence["saved"] = saved
        _silence["depth"] += 1
    try:
        yield
    finally:
        with _SILENCE_LOCK:
            _silence["depth"] -= 1
            if _silence["depth"] == 0:
                sys.stderr.flush()
                os.dup2(_silence["saved"], 2)
                os.close(_silence["saved"])
                _silence["saved"] = -1


def load_model_bytes(model_bytes: bytes):
    """Deserialize a ``.keras`` file's bytes with Keras safe mode (no arbitrary code, no Lambda).

    Returns:
        a ``keras.Model``, not compiled (inference only).

    Raises:
        ArtifactError: Keras cannot load it.
    """
    with native_stderr_silenced():
        import keras  # deferred: importing TensorFlow costs seconds and is not needed for metadata

    with tempfile.TemporaryDirectory(prefix="ser-model-") as tmp, native_stderr_silenced():
        f = Path(tmp) / MODEL_FILE
        f.write_bytes(model_bytes)
        try:
            return keras.saving.load_model(f, compile=False, safe_mode=True)
        except Exception as err:  # Keras raises many types (ValueError, zipfile errors, ...)
            raise ArtifactError(f"cannot load the Keras model: {err}") from err


def save(path: str | os.PathLike, model, meta: ArtifactMeta) -> Path:
    """Write an artifact directory (created; existing files replaced).

    The model is written for inference only: a compiled model is saved through an
    uncompiled twin with the same weights, so ``model.keras`` holds no optimizer state
    (AdamW's moments would triple its size).

    Raises:
        ArtifactError: the model's output size differs from ``len(meta.labels)`` or its
            input shape from ``(frames_per_window, n_features)``.
    """
    fc = meta.feature_config
    want_in = (fc.frames_per_window, fc.n_features)
    if tuple(model.input_shape[1:]) != want_in or model.output_shape[-1] != len(meta.labels):
        raise ArtifactError(f"model shapes {model.input_shape} -> {model.output_shape} do not fit "
                            f"input {want_in} and {len(meta.labels)} labels")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model = _inference_copy(model)
    model.save(path / MODEL_FILE)
    _write_runtime(model, path / RUNTIME_FILE)
    (path / META_FILE).write_text(meta.to_json() + "\n")
    return path


def export_runtime(path: str | os.PathLike = DEFAULT_ARTIFACT) -> Path:
    """Add (or rewrite) ``model.tflite`` in an existing artifact from its ``model.keras``.

    Needs TensorFlow (the LiteRT converter); :func:`save` does the same for new artifacts.

    Returns:
        the written ``model.tflite`` path.

    Raises:
        ArtifactError: ``path`` is not an artifact, or Keras cannot load or export its model.
    """
    bundle = read_bytes(path)
    target = Path(path) / RUNTIME_FILE
    _write_runtime(load_model_bytes(bundle.model_bytes), target)
    return target


def _write_runtime(model, target: Path) -> None:
    """Export ``model`` (inference mode, batch size left dynamic) as a LiteRT flatbuffer,
    written to a temporary name first so a failed export never leaves a partial file."""
    tmp = target.with_name("tmp-" + target.name)  # Keras wants the .tflite suffix
    try:
        model.export(str(tmp), format="litert", verbose=False)
    except Exception as err:  # the converter raises many types
        tmp.unlink(missing_ok=True)
        raise ArtifactError(f"cannot export the model for LiteRT: {err}") from err
    os.replace(tmp, target)


def _inference_copy(model):
    """``model`` itself if uncompiled, else an uncompiled twin holding its weights.

    ``keras.models.clone_model`` is not enough: since Keras 3.x it re-compiles the clone
    of a compiled model, and ``Model.save`` then writes the optimizer variables too.
    """
    if not getattr(model, "compiled", False):
        return model
    twin = type(model).from_config(model.get_config())
    twin.set_weights(model.get_weights())
    return twin
