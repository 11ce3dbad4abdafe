"""Run a model artifact on window features."""
from __future__ import annotations

import os

import numpy as np

from .artifact import ArtifactBytes, ArtifactMeta, load_model_bytes, read_bytes
from .errors import ArtifactError
from .features import FeatureConfig, model_input


def limit_threads(n: int) -> None:
    """Cap BLAS/OpenMP and TensorFlow threads at ``n`` (a Spark task's cores).

    Must run before TensorFlow is first imported in the process to take full
    effect; afterwards only TensorFlow's runtime setters are tried.
    """
    n = max(1, int(n))
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

    Args:
        artifact: bytes of an artifact (see :func:`ser_lib.artifact.read_bytes`).
        expected: the feature configuration the caller computes; a mismatch raises.
        batch_size: windows per model call.

    Raises:
        ArtifactError: incompatible or unloadable artifact.
    """

    def __init__(self, artifact: ArtifactBytes, expected: FeatureConfig | None = None, batch_size: int = 512):
        self.meta = ArtifactMeta.from_json(artifact.meta_json)
        self.meta.check_compatible(expected)
        self.model = load_model_bytes(artifact.model_bytes)
        fc = self.meta.feature_config
        if tuple(self.model.input_shape[1:]) != (fc.frames_per_window, fc.n_features):
            raise ArtifactError(f"model input {self.model.input_shape} does not match its feature config")
        self.batch_size = batch_size
        self._call = _compiled_call(self.model)

    @classmethod
    def from_path(cls, path, expected: FeatureConfig | None = None) -> "Predictor":
        return cls(read_bytes(path), expected)

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
            out[i:i + m] = calibrate(self._call(x), self.meta.temperature)
        return out


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


def _compiled_call(model):
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
