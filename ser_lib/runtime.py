"""The model runtime: load a model artifact (LiteRT or Keras) and run it on window features."""
from __future__ import annotations

import os
import threading

import numpy as np

from .artifact import ArtifactBytes, ArtifactMeta, load_model_bytes, read_bytes
from .errors import ArtifactError, ConfigError
from .features import FeatureConfig, model_input

#: Threads for one model call, set by :func:`limit_threads` (None: the runtime's default).
_THREADS: int | None = None
#: ``SER_RUNTIME``: ``auto`` (LiteRT when the artifact has ``model.tflite`` and
#: ``ai-edge-litert`` is installed, else Keras), ``litert`` or ``keras``.
RUNTIMES = ("auto", "litert", "keras")


def limit_threads(n: int) -> None:
    """Cap BLAS/OpenMP and TensorFlow threads at ``n`` (a Spark task's cores).

    Must run before TensorFlow is first imported in the process to take full
    effect; afterwards only TensorFlow's runtime setters are tried.
    """
    global _THREADS
    n = max(1, int(n))
    _THREADS = n
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ[var] = str(n)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import sys
    if "tensorflow" in sys.modules:
        import tensorflow as tf
        try:
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass  # the runtime is already initialised; the env vars cover new processes


class Predictor:
    """A loaded model plus its normalisation, ready to score windows.

    The model runs on LiteRT (``ai-edge-litert``, no TensorFlow import: loads in
    well under a second) when the artifact has ``model.tflite`` and the package is
    installed, else on Keras/TensorFlow; both give the same probabilities (within 1e-6).

    Thread-safe: a LiteRT interpreter is not (``set_tensor``/``invoke``/``get_tensor`` of
    two threads interleave, and a resize for one batch size frees the other's tensors), so
    each thread that calls :meth:`predict` gets its own interpreter over the same model
    bytes, made on its first call (``ser serve`` scores uploads on several server threads).
    The Keras path runs one traced ``tf.function``, which TensorFlow allows from any thread.

    Args:
        artifact: bytes of an artifact (see :func:`ser_lib.artifact.read_bytes`).
        expected: the feature configuration the caller computes; a mismatch raises.
        batch_size: windows per model call.
        runtime: ``"auto"``, ``"litert"`` or ``"keras"``; None reads ``SER_RUNTIME``
            (default ``auto``). :attr:`runtime` tells which one was loaded.

    Raises:
        ArtifactError: incompatible or unloadable artifact; ``runtime="litert"`` for an
            artifact without ``model.tflite`` or without ``ai-edge-litert`` installed.
        ConfigError: unknown ``runtime``.
    """

    def __init__(self, artifact: ArtifactBytes, expected: FeatureConfig | None = None, batch_size: int = 512,
                 runtime: str | None = None):
        self.meta = ArtifactMeta.from_json(artifact.meta_json)
        self.meta.check_compatible(expected)
        self._model_bytes, self._model = artifact.model_bytes, None
        fc = self.meta.feature_config
        self.runtime = _pick_runtime(runtime, artifact.runtime_bytes is not None)
        self._runtime_bytes, self._local = artifact.runtime_bytes, threading.local()
        if self.runtime == "litert":
            self._local.call, input_shape = litert_call(artifact.runtime_bytes)
            self._call = None
        else:
            input_shape = self.model.input_shape
            self._call = compiled_call(self.model)
        if tuple(input_shape[1:]) != (fc.frames_per_window, fc.n_features):
            raise ArtifactError(f"model input {tuple(input_shape)} does not match its feature config")
        self.batch_size = batch_size

    @property
    def model(self):
        """The artifact's ``keras.Model`` (loaded, with TensorFlow, on first use)."""
        if self._model is None:
            self._model = load_model_bytes(self._model_bytes)
        return self._model

    @classmethod
    def from_path(cls, path, expected: FeatureConfig | None = None, runtime: str | None = None) -> "Predictor":
        return cls(read_bytes(path), expected, runtime=runtime)

    @property
    def labels(self) -> list[str]:
        return self.meta.labels

    def predict(self, window_feats: np.ndarray) -> np.ndarray:
        """Emotion probabilities of windows.

        The windows' absolute features go through :func:`ser_lib.features.model_input`
        (level normalisation, then the training statistics), the model, and the
        artifact's temperature scaling (:func:`calibrate`), so a window's highest
        probability is a calibrated confidence.

        Args:
            window_feats: ``np.ndarray[shape=(n, frames_per_window, n_features)]``
                absolute features (:func:`ser_lib.features.window_features`).

        Returns:
            ``np.ndarray[shape=(n, len(labels)), dtype=float32]``, rows sum to 1.
        """
        n = len(window_feats)
        out = np.empty((n, len(self.labels)), dtype=np.float32)
        fc = self.meta.feature_config
        for i in range(0, n, self.batch_size):
            m = min(self.batch_size, n - i)
            x = model_input(window_feats[i:i + m], fc, self.meta.norm_mean, self.meta.norm_std)
            out[i:i + m] = calibrate(self._thread_call()(x), self.meta.temperature)
        return out

    def _thread_call(self):
        """The model call of the current thread (LiteRT: its own interpreter)."""
        if self._call is not None:
            return self._call
        call = getattr(self._local, "call", None)
        if call is None:
            call, _ = litert_call(self._runtime_bytes)
            self._local.call = call
        return call


def calibrate(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature scaling of softmax outputs (Guo et al. 2017, "On Calibration of Modern
    Neural Networks", ICML): ``softmax(log(p) / T)``. ``T = 1`` returns ``probs`` as they are.

    Args:
        probs: ``np.ndarray[shape=(n, n_labels)]`` softmax probabilities.
        temperature: ``T > 0`` fitted on validation windows (> 1 softens over-confident outputs).

    Returns:
        ``np.ndarray[shape=(n, n_labels), dtype=float32]``, rows sum to 1.
    """
    if temperature == 1.0 or not len(probs):
        return np.asarray(probs, dtype=np.float32)
    logp = np.log(np.maximum(np.asarray(probs, np.float64), 1e-12)) / temperature
    logp -= logp.max(axis=1, keepdims=True)
    e = np.exp(logp)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _pick_runtime(runtime: str | None, has_runtime_file: bool) -> str:
    """``"litert"`` or ``"keras"`` for the requested ``runtime`` (see :class:`Predictor`)."""
    runtime = (runtime or os.environ.get("SER_RUNTIME") or "auto").lower()
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r} (SER_RUNTIME)")
    if runtime == "keras":
        return "keras"
    if not has_runtime_file:
        if runtime == "litert":
            raise ArtifactError("runtime litert asked for, but the artifact has no model.tflite "
                                "(add it with: ser export-runtime MODEL_DIR)")
        return "keras"
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError as err:
        if runtime == "litert":
            raise ArtifactError(f"runtime litert asked for, but ai-edge-litert is not installed: {err}") from err
        return "keras"
    return "litert"


def litert_call(model_bytes: bytes):
    """``(call, input_shape)``: ``call(x)`` runs the LiteRT flatbuffer on
    ``np.ndarray[shape=(n, frames, features), dtype=float32]`` and returns the
    ``(n, n_labels)`` float32 outputs (a new array). The batch dimension is dynamic:
    the input tensor is resized when ``n`` changes (then reused for equal sizes).

    Raises:
        ArtifactError: the bytes are not a model LiteRT can load.
    """
    from ai_edge_litert.interpreter import Interpreter

    from .artifact import native_stderr_silenced
    try:
        with native_stderr_silenced():  # "INFO: Created TensorFlow Lite XNNPACK delegate" on fd 2
            it = Interpreter(model_content=model_bytes, num_threads=_THREADS)
            it.allocate_tensors()
    except (ValueError, RuntimeError) as err:
        raise ArtifactError(f"cannot load model.tflite with LiteRT: {err}") from err
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    allocated = [int(inp["shape"][0])]

    def call(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if len(x) != allocated[0]:
            it.resize_tensor_input(inp["index"], x.shape, strict=True)
            with native_stderr_silenced():
                it.allocate_tensors()
            allocated[0] = len(x)
        it.set_tensor(inp["index"], x)
        it.invoke()
        return it.get_tensor(out["index"]).copy()

    call.interpreter, call.model_bytes = it, model_bytes  # the interpreter reads the buffer in place
    return call, tuple(int(d) for d in inp["shape_signature"])


def compiled_call(model):
    """``x -> model(x, training=False)`` as a NumPy array, run as one compiled graph.

    Keras' eager ``model(x)`` dispatches every layer op by op from Python: at the
    30-60 windows a streamed chunk of speech gives, that costs 4-5x the arithmetic.
    With the TensorFlow backend the forward pass is traced once into a ``tf.function``
    with a batch-polymorphic signature (no retracing per batch size, no padding); the
    graph runs the same kernels, so the probabilities are the same. Other backends use
    ``model.predict_on_batch``.
    """
    import keras
    if keras.backend.backend() != "tensorflow":
        return lambda x: np.asarray(model.predict_on_batch(x))
    import tensorflow as tf
    spec = tf.TensorSpec((None,) + tuple(model.input_shape[1:]), tf.float32)
    fn = tf.function(lambda t: model(t, training=False), input_signature=[spec], autograph=False)
    graph = fn.get_concrete_function()  # trace now: part of loading, not of the first batch
    return lambda x: graph(tf.constant(x)).numpy()
