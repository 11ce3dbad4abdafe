"""A channel's window probabilities → its smoothed emotion per window (``timeline.smoothing``).

Window posteriors flicker: one window's argmax changes every few seconds of speech even
when the speaker's emotion does not. The timeline, the shares, the episodes and the call
measures therefore use a smoothed label per speech window; segments keep the raw ones.

Methods (the default, ``mean`` over 9 windows, was chosen by measurement: ``bench/smoothing.py``):

* ``viterbi``: a sticky hidden Markov model decoded with Viterbi. States are the emotions;
  a window keeps the previous window's emotion with probability ``self_transition`` and
  moves to each other emotion with ``(1 - self_transition) / (K - 1)``. Each speech
  window's calibrated posterior is its evidence (divided by a uniform state prior: the
  model is trained with balanced class weights), decoded by
  :func:`librosa.sequence.viterbi_discriminative`. **Non-speech windows are steps without
  evidence** (a uniform posterior), not breaks: an emotion carries over a pause, and each
  non-speech window is one more step at which it may change, so after a long pause the
  next speech is decided by its own evidence.
* ``median`` / ``mean``: the running median / mean of the log-probabilities of each
  emotion over ``filter_windows`` windows centred on each window (non-speech windows in
  that span are left out), then the argmax.
* ``none``: the raw argmax.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import ConfigError

METHODS = ("viterbi", "median", "mean", "none")

#: probabilities are floored here before logs and decoding: a calibrated 0 is "very unlikely",
#: not "impossible", so one window cannot veto an emotion the neighbours agree on
PROB_FLOOR = 1e-6


@dataclass(frozen=True)
class SmoothingConfig:
    """``timeline`` section of ``conf/job.yaml``.

    Attributes:
        smoothing: one of :data:`METHODS`.
        self_transition: viterbi: probability that the emotion of one window continues into
            the next (``hop_s`` later); in ``(0, 1)``.
        filter_windows: median / mean: windows in the running filter, odd, >= 1.

    Raises:
        ConfigError: a value outside those ranges.
    """

    smoothing: str = "mean"
    self_transition: float = 0.5
    filter_windows: int = 9

    def __post_init__(self):
        if self.smoothing not in METHODS:
            raise ConfigError(f"timeline.smoothing must be one of {', '.join(METHODS)}, got {self.smoothing!r}")
        if not 0.0 < self.self_transition < 1.0:
            raise ConfigError(f"timeline.self_transition must be in (0, 1), got {self.self_transition}")
        if self.filter_windows < 1 or self.filter_windows % 2 == 0:
            raise ConfigError(f"timeline.filter_windows must be an odd number >= 1, got {self.filter_windows}")

    @classmethod
    def from_dict(cls, d: dict) -> "SmoothingConfig":
        return cls(str(d["smoothing"]), float(d["self_transition"]), int(d["filter_windows"]))

    def to_dict(self) -> dict:
        return asdict(self)


def smooth(probs: np.ndarray, speech: np.ndarray, cfg: SmoothingConfig) -> np.ndarray:
    """Smoothed label index of each window of one channel (time order).

    Args:
        probs: ``(n, K)`` float window probabilities (rows of non-speech windows are ignored,
            NaN allowed there).
        speech: ``(n,)`` bool speech flags.
        cfg: the method and its parameters.

    Returns:
        ``int64 (n,)``: the label index (column of ``probs``) per window, ``-1`` where not speech.

    Raises:
        ValueError: ``probs`` and ``speech`` disagree in length.
    """
    probs = np.asarray(probs, dtype=np.float64)
    speech = np.asarray(speech, dtype=bool)
    if probs.ndim != 2 or len(probs) != len(speech):
        raise ValueError(f"probs {probs.shape} and speech {speech.shape} must be (n, K) and (n,)")
    out = np.full(len(speech), -1, dtype=np.int64)
    if not speech.any():
        return out
    if cfg.smoothing == "viterbi":
        path = viterbi(probs, speech, cfg.self_transition)
    elif cfg.smoothing in ("median", "mean"):
        path = running_filter(probs, speech, cfg.filter_windows, cfg.smoothing)
    else:
        path = np.argmax(np.where(speech[:, None], probs, 0.0), axis=1)
    out[speech] = path[speech]
    return out


def _floored(probs: np.ndarray, speech: np.ndarray) -> np.ndarray:
    """Speech rows floored at :data:`PROB_FLOOR` and renormalised; other rows uniform."""
    k = probs.shape[1]
    p = np.where(speech[:, None], np.maximum(np.nan_to_num(probs, nan=0.0), PROB_FLOOR), 1.0 / k)
    return p / p.sum(axis=1, keepdims=True)


def viterbi(probs: np.ndarray, speech: np.ndarray, self_transition: float) -> np.ndarray:
    """Most probable emotion sequence of a sticky HMM (see the module docstring).

    Args:
        probs: ``(n, K)`` window posteriors; speech: ``(n,)`` bool (non-speech rows carry
            no evidence); self_transition: in ``(0, 1)``.

    Returns:
        ``int64 (n,)`` state per window (defined for non-speech windows too: the state
        carried through them).
    """
    import librosa  # numba-compiled decoder; imported here so configuration stays light
    k = probs.shape[1]
    if k == 1:
        return np.zeros(len(probs), dtype=np.int64)
    trans = librosa.sequence.transition_loop(k, self_transition)
    return librosa.sequence.viterbi_discriminative(_floored(probs, speech).T, trans).astype(np.int64)


def running_filter(probs: np.ndarray, speech: np.ndarray, width: int, how: str = "median") -> np.ndarray:
    """Argmax of the running median or mean of log-probabilities over ``width`` windows.

    Args:
        probs: ``(n, K)``; speech: ``(n,)`` bool (non-speech windows in a span are left
            out); width: odd number of windows; how: ``median`` or ``mean``.

    Returns:
        ``int64 (n,)``; meaningless (0) where a window has no speech window in its span.
    """
    n, k = probs.shape
    logp = np.where(speech[:, None], np.log(_floored(probs, speech)), np.nan)
    half = width // 2
    padded = np.concatenate([np.full((half, k), np.nan), logp, np.full((half, k), np.nan)])
    spans = np.lib.stride_tricks.sliding_window_view(padded, width, axis=0)  # (n, K, width)
    filt = np.zeros((n, k))
    if speech.any():  # a speech window's span holds at least itself: no all-NaN reductions
        reduce = np.nanmedian if how == "median" else np.nanmean
        filt[speech] = reduce(spans[speech], axis=2)
    return np.argmax(filt, axis=1).astype(np.int64)
