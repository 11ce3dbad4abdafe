"""An emotion head on the frozen speech encoder (:mod:`ser_lib.encoder`): the serving side.

The model of ``models/runs/2026-12-07-encoder`` (its best configuration on the held-out
corpora): for each recording (a corpus clip in training, a window of a call channel in
serving) the last LSTM layer's state of every 1.6 s partial, mean and std pooled
(:func:`segment_features`, 512 values); each *speaker's* (in serving: each call channel's)
features standardised by that speaker's own mean and std (:func:`speaker_standardize`); then
a global standardisation and a multinomial logistic regression (:class:`EncoderHead`). A
channel of a few windows (a short clip) has no statistics of its own worth standardising by:
a second head on rows with the speaker subspace projected out (:class:`ShortChannelHead`)
scores it, and the two heads are mixed by the channel's number of windows
(:meth:`EncoderHead.predict_channel`; models/runs/2026-12-07-short-channels).

An encoder-head artifact is a folder::

    encoder.onnx          the converted encoder (training/encoder_export.py)
    ENCODER_LICENSE.txt   its Apache-2.0 notice (required: loading refuses a folder without it)
    encoder_head.json     the head: labels, scaler, weights, the preprocessing settings

The probe's most accurate model is the *late fusion* of this head with the shipped CNN
(:func:`fuse`, :meth:`EncoderModel.predict_channel` with ``cnn_probs``): the weighted
geometric mean of the two models' probabilities per window, renormalised (``fusion: log``,
``cnn_weight`` on the CNN's temperature-scaled probabilities: 0.5 on its unscaled ones,
``training.encoder_head.fusion_weight``), then temperature scaled (Guo et al. 2017)
by the ``temperature`` that ``training.encoder_head`` fits on window predictions on the
corpora neither model trained on (``training.encoder_head.held_out_predictions``). Format version 1 files
(written before the temperature) load as ``fusion: linear``, ``temperature: 1``: the plain
mean of probabilities they were served with.

Serving needs numpy, librosa, soxr and onnxruntime: no PyTorch, no TensorFlow. The head is
applied with numpy (the softmax of an affine map), the same arithmetic as scikit-learn's
``LogisticRegression.predict_proba`` for a multinomial model.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .encoder import (EMBED_DIM, ENCODER_FILE, ENCODER_INT8_FILE, ENCODER_LICENSE_FILE, INT8_MIN_COSINE, SpeechEncoder,
                      int8_agreement, partial_mels, pool_stats)
from .errors import ArtifactError

HEAD_FILE = "encoder_head.json"
HEAD_FORMAT = "ser-encoder-head"
HEAD_FORMAT_VERSION = 4
#: format versions :meth:`EncoderHead.from_json` reads (1: no ``fusion`` / ``temperature``
#: keys; read as ``linear`` and 1.0; 1 and 2: no ``short`` head; 1-3: no
#: ``settings.context_windows``, read as 1, which is how they were served)
READABLE_FORMAT_VERSIONS = (1, 2, 3, 4)
#: fusion rules of :func:`fuse`
FUSIONS = ("linear", "log")


@dataclass
class SegmentSettings:
    """How a recording is turned into encoder input.

    Attributes:
        layer: LSTM layer whose last state is pooled (0-2; 2 = the last, the best in the probe).
        level_dbfs: the audio is scaled to this RMS (resemblyzer's -30 dBFS), so input gain
            does not matter.
        trim_db: leading/trailing audio quieter than the peak by this much is trimmed
            (``librosa.effects.trim``); 0 = no trimming.
        rate, min_coverage: partials per second and the last partial's minimum coverage
            (:func:`ser_lib.encoder.partial_slices`).
        context_windows: in a call channel, each speech window's row is the mean of the rows
            of this many windows centred on it, within its run of consecutive speech windows
            (:func:`pool_context`; odd, >= 1; 1 = the window alone). The head is fitted on
            whole utterances (2-5 s clips); a 2 s window with its neighbours (4 s at a 1 s
            hop) is closer to that (models/runs/2026-12-07-encoder-lite).

    Raises:
        ValueError: ``context_windows`` not an odd integer >= 1.
    """

    layer: int = 2
    level_dbfs: float = -30.0
    trim_db: float = 35.0
    rate: float = 1.3
    min_coverage: float = 0.75
    context_windows: int = 1

    def __post_init__(self):
        if not (isinstance(self.context_windows, int) and self.context_windows >= 1 and self.context_windows % 2):
            raise ValueError(f"context_windows must be an odd integer >= 1, got {self.context_windows!r}")


def prepare(wav: np.ndarray, settings: SegmentSettings) -> np.ndarray:
    """Trim and level-scale one recording (float32 ``(n,)`` in, float32 out; a recording that
    trims to under 0.1 s at 16 kHz is kept whole; silence stays silence)."""
    import librosa

    wav = np.asarray(wav, dtype=np.float32)
    if settings.trim_db > 0 and len(wav):
        t, _ = librosa.effects.trim(wav, top_db=settings.trim_db)
        wav = t if len(t) >= 1600 else wav
    rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2))) if len(wav) else 0.0
    if rms <= 0:
        return wav
    return (wav * (10 ** (settings.level_dbfs / 20) / (rms + 1e-9))).astype(np.float32)


def segment_features(encoder: SpeechEncoder, wav: np.ndarray, sample_rate: int,
                     settings: SegmentSettings) -> np.ndarray:
    """The head's input for one recording: mean and std over its partials of the chosen
    layer's state, float32 ``(512,)``.

    Args:
        wav: float ``(n,)`` mono samples at ``sample_rate`` (8 kHz telephone audio is
            resampled to the encoder's 16 kHz).
    """
    return segments_features(encoder, [wav], sample_rate, settings)[0]


def segments_features(encoder: SpeechEncoder, segments, sample_rate: int, settings: SegmentSettings) -> np.ndarray:
    """:func:`segment_features` of several recordings, their partials encoded in batches
    (the same values as one at a time, within float rounding): ``(n, 512)`` float32,
    ``(0, 512)`` for none.

    Args:
        segments: float ``(n_i,)`` mono arrays at ``sample_rate``.
    """
    mels = [partial_mels(prepare(w, settings), sample_rate, settings.rate, settings.min_coverage)[0]
            for w in segments]
    if not mels:
        return np.zeros((0, 2 * EMBED_DIM), np.float32)  # mean + std of one layer
    _, hidden = encoder.run(np.concatenate(mels))
    bounds = np.cumsum([0] + [len(m) for m in mels])
    return np.stack([pool_stats(hidden[a:b, settings.layer]) for a, b in zip(bounds[:-1], bounds[1:])])


def pool_context(rows: np.ndarray, start_s, hop_s: float, windows: int) -> np.ndarray:
    """Each row replaced by the mean of the rows of the ``windows`` windows centred on it that
    belong to its run of consecutive windows (starts ``hop_s`` apart; a larger step, where
    non-speech windows were left out, starts a new run). At a run's ends the mean is over the
    windows there are.

    Args:
        rows: float ``(n, d)``, one per window, in time order.
        start_s: ``(n,)`` window starts, seconds, increasing.
        hop_s: the windows' hop, seconds (> 0).
        windows: odd, >= 1 (1: a float32 copy of ``rows``).

    Returns:
        float32 ``(n, d)``.

    Raises:
        ValueError: lengths differ, ``windows`` not odd >= 1, or ``hop_s <= 0``.
    """
    x = np.asarray(rows, dtype=np.float32)
    start = np.asarray(start_s, dtype=np.float64)
    if x.ndim != 2 or start.shape != (len(x),):
        raise ValueError(f"pool_context needs (n, d) rows and (n,) starts, got {x.shape} and {start.shape}")
    if not (windows >= 1 and windows % 2) or not hop_s > 0:
        raise ValueError(f"need an odd window count >= 1 and a hop > 0, got {windows}, {hop_s}")
    if windows == 1 or len(x) < 2:
        return x.copy()
    run = np.concatenate([[0], np.cumsum(np.diff(start) > hop_s * 1.001)])
    n = len(x)
    total, count = x.astype(np.float64), np.ones(n)
    for d in range(1, windows // 2 + 1):  # the neighbours d windows back and ahead, where in the same run
        same = run[d:] == run[:-d]
        total[d:] += np.where(same[:, None], x[:-d], 0.0)
        total[:-d] += np.where(same[:, None], x[d:], 0.0)
        count[d:] += same
        count[:-d] += same
    return (total / count[:, None]).astype(np.float32)


def speaker_standardize(features: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Standardise the rows of one speaker (one call channel) by their own mean and std per
    column: ``(n, d)`` -> ``(n, d)`` float32. One row gives zeros (nothing to compare with).

    Raises:
        ValueError: no rows.
    """
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"speaker_standardize needs (n >= 1, d) rows, got shape {x.shape}")
    return ((x - x.mean(0)) / (x.std(0) + eps)).astype(np.float32)


@dataclass
class ShortChannelHead:
    """The head for channels too short to standardise by their own statistics: a logistic
    regression on rows from which the *speaker subspace* is projected out (nuisance attribute
    projection, Campbell et al. 2006, "SVM based speaker verification using a GMM supervector
    kernel and NAP variability compensation", ICASSP): ``x - (x @ B.T) @ B`` with ``B`` the
    orthonormal basis of the training speakers' mean rows, centred. Needs no statistics of the
    channel, so it scores a channel of one window as well as one of a thousand.

    Attributes:
        basis: ``(m, d)`` orthonormal rows (``m`` < number of training speakers).
        mean, scale: ``(d,)`` global standardisation of the projected rows.
        coef: ``(n_labels, d)``; intercept: ``(n_labels,)``.
        prior_windows: ``k`` of :meth:`EncoderHead.predict_channel`: the channel's speaker-
            standardised head gets weight ``n / (n + k)`` over its ``n`` speech windows.
    """

    basis: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    prior_windows: float = 10.0

    def project(self, features: np.ndarray) -> np.ndarray:
        """Rows with the speaker subspace removed: float ``(n, d)`` -> float64 ``(n, d)``."""
        x = np.asarray(features, dtype=np.float64)
        return x - (x @ self.basis.T) @ self.basis

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities of raw rows (not speaker-standardised): float ``(n, d)`` ->
        ``(n, n_labels)`` float32, rows summing to 1."""
        return _softmax_affine(self.project(features), self.mean, self.scale, self.coef, self.intercept)

    def to_dict(self) -> dict:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "ShortChannelHead":
        basis = np.array(d["basis"], float)
        return cls(basis if basis.size else basis.reshape(0, len(d["mean"])), np.array(d["mean"], float),
                   np.array(d["scale"], float), np.array(d["coef"], float), np.array(d["intercept"], float),
                   float(d["prior_windows"]))


def _softmax_affine(x, mean, scale, coef, intercept) -> np.ndarray:
    """``softmax(((x - mean) / scale) @ coef.T + intercept)`` row-wise, float32: what
    scikit-learn's multinomial ``LogisticRegression.predict_proba`` computes after a
    ``StandardScaler``."""
    z = (np.asarray(x, dtype=np.float64) - mean) / scale
    logits = z @ coef.T + intercept
    logits -= logits.max(1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


@dataclass
class EncoderHead:
    """The logistic-regression head (what ``encoder_head.json`` holds).

    Attributes:
        labels: output classes in order.
        mean, scale: ``(d,)`` global standardisation after the speaker standardisation.
        coef: ``(n_labels, d)``; intercept: ``(n_labels,)``.
        settings: :class:`SegmentSettings`.
        speaker_norm: whether rows are standardised per speaker / channel first.
        cnn_weight: the CNN's weight when the head is fused with the CNN's probabilities
            (:func:`fuse`).
        fusion: the fusion rule of :func:`fuse` (:data:`FUSIONS`).
        temperature: ``T > 0`` applied to the fused probabilities (:func:`fuse`).
        short: the :class:`ShortChannelHead` of :meth:`predict_channel` (``None`` in format
            1 and 2 files: a channel is then standardised by its own statistics alone).
        training: provenance (free-form JSON).
    """

    labels: list[str]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    settings: SegmentSettings = field(default_factory=SegmentSettings)
    speaker_norm: bool = True
    cnn_weight: float = 0.5
    fusion: str = "linear"
    temperature: float = 1.0
    short: ShortChannelHead | None = None
    training: dict = field(default_factory=dict)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities of already speaker-standardised rows: float ``(n, d)`` ->
        ``(n, n_labels)`` float32, rows summing to 1."""
        return _softmax_affine(features, self.mean, self.scale, self.coef, self.intercept)

    def predict_channel(self, features: np.ndarray) -> np.ndarray:
        """The head's probabilities of one channel's ``n`` speech-window rows (raw
        :func:`segments_features`), ``(n, d)`` -> ``(n, n_labels)`` float32.

        With a :attr:`short` head: the log-space mix of the speaker-standardised head
        (:meth:`predict_speaker`) and the short-channel head, weights ``w = n / (n + k)`` and
        ``1 - w`` (``k`` = ``short.prior_windows``; ``w = 0`` for ``n = 1``), renormalised. A
        channel's own mean and std are a poor estimate of its speaker's over a few windows
        of one utterance (they remove the emotion itself), and a good one over a call: the
        weight is the usual credibility weight of ``n`` observations against a prior worth
        ``k`` (Bühlmann credibility; the MAP mean of a conjugate prior).
        models/runs/2026-12-07-short-channels measured ``k`` = 3-30 alike. Without it:
        :meth:`predict_speaker`.

        Raises:
            ValueError: no rows.
        """
        x = np.asarray(features, dtype=np.float32)
        if x.ndim != 2 or len(x) == 0:
            raise ValueError(f"predict_channel needs (n >= 1, d) rows, got shape {x.shape}")
        if self.short is None:
            return self.predict_speaker(x)
        n = len(x)
        short = self.short.predict(x)
        if n < 2:
            return short
        log_short = np.log(np.maximum(short.astype(np.float64), 1e-12))
        w = n / (n + self.short.prior_windows)
        z = w * np.log(np.maximum(self.predict_speaker(x).astype(np.float64), 1e-12)) + (1 - w) * log_short
        e = np.exp(z - z.max(1, keepdims=True))
        return (e / e.sum(1, keepdims=True)).astype(np.float32)

    def predict_speaker(self, features: np.ndarray) -> np.ndarray:
        """:meth:`predict` of one speaker's (one channel's) rows after :func:`speaker_standardize`
        (when ``speaker_norm``)."""
        return self.predict(speaker_standardize(features) if self.speaker_norm else features)

    def to_json(self) -> str:
        d = {"format": HEAD_FORMAT, "format_version": HEAD_FORMAT_VERSION, "labels": list(self.labels),
             "mean": self.mean.tolist(), "scale": self.scale.tolist(), "coef": self.coef.tolist(),
             "intercept": self.intercept.tolist(), "settings": asdict(self.settings),
             "speaker_norm": self.speaker_norm, "cnn_weight": self.cnn_weight, "fusion": self.fusion,
             "temperature": self.temperature, "short": self.short.to_dict() if self.short else None,
             "training": self.training}
        return json.dumps(d) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "EncoderHead":
        """Read ``encoder_head.json``. A format version 1 file (no ``fusion`` / ``temperature``)
        reads as ``fusion="linear"``, ``temperature=1.0``: the plain mean it was served with.

        Raises:
            ArtifactError: not an encoder-head file, a format version not in
                :data:`READABLE_FORMAT_VERSIONS`, a version 2 file without ``fusion`` or
                ``temperature``, an unknown fusion rule, a temperature that is not a positive
                finite number, or inconsistent shapes.
        """
        try:
            d = json.loads(text)
            if d.get("format") != HEAD_FORMAT or d.get("format_version") not in READABLE_FORMAT_VERSIONS:
                raise ArtifactError(f"not a {HEAD_FORMAT} file of format version "
                                    f"{' or '.join(map(str, READABLE_FORMAT_VERSIONS))}")
            v1 = d["format_version"] == 1
            fusion = "linear" if v1 else str(d["fusion"])
            temperature = 1.0 if v1 else float(d["temperature"])
            head = cls(list(d["labels"]), np.array(d["mean"], float), np.array(d["scale"], float),
                       np.array(d["coef"], float), np.array(d["intercept"], float),
                       SegmentSettings(**d["settings"]), bool(d["speaker_norm"]), float(d.get("cnn_weight", 0.5)),
                       fusion, temperature, ShortChannelHead.from_dict(d["short"]) if d.get("short") else None,
                       d.get("training", {}))
        except (ValueError, KeyError, TypeError) as err:
            raise ArtifactError(f"bad {HEAD_FILE}: {err}") from None
        if head.fusion not in FUSIONS:
            raise ArtifactError(f"bad {HEAD_FILE}: fusion {head.fusion!r} is not one of {', '.join(FUSIONS)}")
        if not (np.isfinite(head.temperature) and head.temperature > 0):
            raise ArtifactError(f"bad {HEAD_FILE}: temperature must be a positive number, got {head.temperature}")
        n, dim = head.coef.shape
        if n != len(head.labels) or head.intercept.shape != (n,) or head.mean.shape != (dim,) \
                or head.scale.shape != (dim,):
            raise ArtifactError(f"bad {HEAD_FILE}: shapes do not agree")
        sh = head.short
        if sh is not None and (sh.coef.shape != (n, dim) or sh.intercept.shape != (n,) or sh.mean.shape != (dim,)
                               or sh.scale.shape != (dim,) or sh.basis.ndim != 2 or sh.basis.shape[1] != dim
                               or not sh.prior_windows > 0):
            raise ArtifactError(f"bad {HEAD_FILE}: the short-channel head's shapes do not agree")
        return head


def fuse(cnn_probs: np.ndarray, head_probs: np.ndarray, cnn_weight: float, fusion: str = "linear",
         temperature: float = 1.0) -> np.ndarray:
    """Late fusion of two models' probabilities of the same windows, then temperature scaling.

    With ``w = cnn_weight``, ``a = cnn_probs``, ``b = head_probs``:

    - ``linear``: ``p = w * a + (1 - w) * b`` (the arithmetic mean);
    - ``log``: ``p = softmax(w * log a + (1 - w) * log b)``: the weighted geometric mean,
      renormalised (a "product of experts"; probabilities floored at 1e-12 before the log);

    then ``softmax(log(p) / T)`` (:func:`ser_lib.runtime.calibrate`, Guo et al. 2017, "On
    Calibration of Modern Neural Networks", ICML): ``T = 1`` leaves ``p`` as it is, ``T > 1``
    flattens it, ``T < 1`` sharpens it; the arg-max never changes.

    Args:
        cnn_probs, head_probs: float ``(n, k)`` rows of probabilities.
        cnn_weight: in [0, 1]; fusion: one of :data:`FUSIONS`; temperature: ``T > 0``.

    Returns:
        float32 ``(n, k)``, rows summing to 1.

    Raises:
        ValueError: shapes differ, ``cnn_weight`` is outside [0, 1], an unknown ``fusion``, or
            ``temperature`` is not positive.
    """
    from .runtime import calibrate

    cnn_probs, head_probs = np.asarray(cnn_probs, np.float32), np.asarray(head_probs, np.float32)
    if cnn_probs.shape != head_probs.shape:
        raise ValueError(f"cannot fuse probabilities of shapes {cnn_probs.shape} and {head_probs.shape}")
    if not 0.0 <= cnn_weight <= 1.0:
        raise ValueError(f"cnn_weight must be in [0, 1], got {cnn_weight}")
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if fusion == "linear":
        p = (cnn_weight * cnn_probs + (1.0 - cnn_weight) * head_probs).astype(np.float32)
    else:
        z = (cnn_weight * np.log(np.maximum(cnn_probs.astype(np.float64), 1e-12))
             + (1.0 - cnn_weight) * np.log(np.maximum(head_probs.astype(np.float64), 1e-12)))
        z -= z.max(axis=1, keepdims=True) if len(z) else 0.0
        e = np.exp(z)
        p = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return calibrate(p, temperature)


#: a head without a short-channel head (format 1 and 2 files): fewer speech windows than this
#: in a channel, no speaker statistics to standardise by, so :meth:`EncoderModel.predict_channel`
#: returns the CNN's probabilities alone (one row would standardise to zeros)
MIN_CHANNEL_WINDOWS = 2


@dataclass
class EncoderHeadBytes:
    """An encoder-head artifact as plain bytes: what the Spark driver broadcasts to executors.

    Attributes:
        head_json: ``encoder_head.json``; encoder_onnx: ``encoder.onnx``; license_text:
            ``ENCODER_LICENSE.txt``; encoder_int8: ``encoder-int8.onnx`` when the artifact has it.
    """

    head_json: str
    encoder_onnx: bytes
    license_text: str
    encoder_int8: bytes | None = None

    @classmethod
    def read(cls, path: str | os.PathLike) -> "EncoderHeadBytes":
        """Read an encoder-head artifact folder.

        Raises:
            ArtifactError: the folder lacks the encoder, its licence notice or the head.
        """
        path = Path(path)
        for name in (ENCODER_FILE, ENCODER_LICENSE_FILE, HEAD_FILE):
            if not (path / name).is_file():
                raise ArtifactError(f"{path} is not an encoder-head artifact: {name} is missing")
        int8 = path / ENCODER_INT8_FILE
        return cls((path / HEAD_FILE).read_text(), (path / ENCODER_FILE).read_bytes(),
                   (path / ENCODER_LICENSE_FILE).read_text(), int8.read_bytes() if int8.is_file() else None)


class EncoderModel:
    """An encoder-head artifact loaded for serving: the ONNX encoder and the head.

    Args:
        path: the artifact folder, or its :class:`EncoderHeadBytes`.
        threads: onnxruntime threads (:class:`ser_lib.encoder.SpeechEncoder`).
        int8: run the artifact's int8 encoder (``encoder-int8.onnx``, 1.5x less encoder CPU)
            when it has one and it agrees with the float encoder on this CPU
            (:func:`ser_lib.encoder.int8_agreement` >= :data:`ser_lib.encoder.INT8_MIN_COSINE`;
            otherwise the float encoder, with a warning). Serving sets it; training keeps the
            float encoder, whose features the head was fitted on.

    Attributes:
        precision: ``"int8"`` or ``"float32"``, the encoder in use; int8_cosine: the agreement
            measured at load (``None`` when not checked).

    Raises:
        ArtifactError: the folder lacks the encoder, its licence notice or the head, or the
            head file is invalid.
    """

    def __init__(self, path: "str | os.PathLike | EncoderHeadBytes", threads: int = 1, int8: bool = False):
        data = path if isinstance(path, EncoderHeadBytes) else EncoderHeadBytes.read(path)
        self.path = None if isinstance(path, EncoderHeadBytes) else Path(path)
        self.head = EncoderHead.from_json(data.head_json)
        self.encoder = SpeechEncoder(data.encoder_onnx, threads=threads)
        self.precision, self.int8_cosine = "float32", None
        if int8 and data.encoder_int8 is not None:
            quantised = SpeechEncoder(data.encoder_int8, threads=threads)
            self.int8_cosine = int8_agreement(self.encoder, quantised, layer=self.head.settings.layer)
            if self.int8_cosine >= INT8_MIN_COSINE:
                self.encoder, self.precision = quantised, "int8"
            else:
                import logging

                logging.getLogger(__name__).warning(
                    "the int8 speech encoder disagrees with the float one on this CPU (cosine %.3f < %.2f): "
                    "running the float encoder", self.int8_cosine, INT8_MIN_COSINE)

    @property
    def labels(self) -> list[str]:
        return list(self.head.labels)

    @property
    def version(self) -> str:
        """The head's version string (``training.version`` of ``encoder_head.json``;
        ``encoder-head`` when absent)."""
        return str(self.head.training.get("version", "encoder-head"))

    def features(self, segments, sample_rate: int) -> np.ndarray:
        """:func:`segment_features` of every segment (window) of one channel, ``(n, 512)``
        float32 (``(0, 512)`` for none), encoded in batches (:func:`segments_features`)."""
        return segments_features(self.encoder, segments, sample_rate, self.head.settings)

    def predict_features(self, features: np.ndarray, cnn_probs: np.ndarray | None = None, start_s=None,
                         hop_s: float = 1.0) -> np.ndarray:
        """:meth:`predict_channel` from already computed :meth:`features` (one channel's rows).

        The rows are first pooled over ``settings.context_windows`` neighbouring windows
        (:func:`pool_context`, within runs of consecutive windows), then the head's
        probabilities are :meth:`EncoderHead.predict_channel`'s. A head without a
        short-channel head, given ``cnn_probs`` and fewer than :data:`MIN_CHANNEL_WINDOWS`
        rows, returns the CNN's probabilities alone (float32 copy).

        Args:
            features: ``(n, 512)`` rows of the channel's speech windows in time order.
            cnn_probs: as :meth:`predict_channel`.
            start_s: ``(n,)`` the windows' starts, seconds (None: one run of consecutive
                windows); hop_s: the windows' hop, seconds.

        Raises:
            ValueError: no rows, or ``cnn_probs`` / ``start_s`` of another length.
        """
        features = np.asarray(features, np.float32)
        if len(features) == 0:
            raise ValueError("predict_channel needs at least one segment")
        if cnn_probs is not None and self.head.short is None and len(features) < MIN_CHANNEL_WINDOWS:
            if np.shape(cnn_probs) != (len(features), len(self.labels)):
                raise ValueError(f"cnn_probs shape {np.shape(cnn_probs)} does not match "
                                 f"{(len(features), len(self.labels))}")
            return np.array(cnn_probs, dtype=np.float32)
        if start_s is None:
            start_s = np.arange(len(features)) * hop_s
        probs = self.head.predict_channel(pool_context(features, start_s, hop_s, self.head.settings.context_windows))
        if cnn_probs is None:
            return probs
        return fuse(cnn_probs, probs, self.head.cnn_weight, self.head.fusion, self.head.temperature)

    def predict_channel(self, segments, sample_rate: int, cnn_probs: np.ndarray | None = None, start_s=None,
                        hop_s: float = 1.0) -> np.ndarray:
        """Emotion probabilities of one channel's segments (its speech windows, in time order),
        standardised together as one speaker: ``(n, n_labels)`` float32.

        Args:
            cnn_probs: the CNN's probabilities of the same windows, ``(n, n_labels)`` in
                :attr:`labels` order (:class:`ser_lib.runtime.Predictor`); given, the result is
                their :func:`fuse` with the head's at ``head.cnn_weight``, ``head.fusion`` and
                ``head.temperature`` (a head without a short-channel head: the CNN's alone,
                as the CNN artifact calibrated them, below :data:`MIN_CHANNEL_WINDOWS`
                segments).
            start_s, hop_s: the segments' starts and hop, seconds (:meth:`predict_features`).

        Raises:
            ValueError: no segments, or ``cnn_probs`` of another shape.
        """
        if len(segments) == 0:
            raise ValueError("predict_channel needs at least one segment")
        return self.predict_features(self.features(segments, sample_rate), cnn_probs, start_s, hop_s)
