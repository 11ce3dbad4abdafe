"""Vocal level per speech window: how loud the speaker is in it, and against their own usual level.

A raised voice is a sign of arousal that does not depend on the language, and the model does not hear it:
its input is normalised to each window's level, so that a quiet and a loud recording of the same
voice score alike. These two numbers give it back to the analyst, measured, not modelled:

* ``level_db``: the window's *active level*, the power mean of the 10 ms frames' RMS level
  (``rms_db`` of :mod:`ser_lib.features`) over the frames the speech rule marks active (above
  the window's noise floor), dBFS. Pauses inside the window do not lower it (the active speech
  level of ITU-T P.56, with the job's own frame decisions instead of P.56's threshold).
* ``level_rel_db``: ``level_db`` minus the median ``level_db`` of the channel's speech windows,
  dB: positive where the speaker is louder than their usual in this recording. One channel is
  one speaker, line and handset, so their gain cancels; what is left is vocal effort and
  distance to the microphone (a mono recording of both parties mixes two voices' levels in
  one median: the louder party reads as raised). Measured on acted corpora (models/runs/2026-12-07-relative-level),
  it separates high-arousal from low-arousal speech windows with ROC AUC 0.94 on Turkish,
  where the model is weakest, 0.78-0.79 on Italian and English.
"""
from __future__ import annotations

import numpy as np

from .speech import RMS_DB_COLUMN


def active_level_db(window_feats: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Each window's active level: power mean of its active frames' ``rms_db``.

    Args:
        window_feats: ``(n_windows, n_frames, n_features)`` frame features
            (:func:`ser_lib.features.window_features`; column :data:`ser_lib.speech.RMS_DB_COLUMN`
            is the frame's RMS level, dBFS).
        active: ``bool (n_windows, n_frames)`` frame decisions
            (:func:`ser_lib.speech.speech_decisions`).

    Returns:
        float32 ``(n_windows,)`` dBFS; NaN for a window without an active frame.

    Raises:
        ValueError: shapes that do not match.
    """
    if window_feats.shape[:2] != np.shape(active):
        raise ValueError(f"frame decisions {np.shape(active)} do not match the windows {window_feats.shape[:2]}")
    power = np.where(active, 10.0 ** (window_feats[:, :, RMS_DB_COLUMN].astype(np.float64) / 10.0), 0.0)
    n = np.asarray(active).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.where(n > 0, 10.0 * np.log10(power.sum(axis=1) / np.maximum(n, 1)), np.nan)
    return level.astype(np.float32)


def relative_level_db(level_db: np.ndarray, speech: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A channel's window levels for the ``segments`` table.

    Args:
        level_db: float ``(n,)`` :func:`active_level_db` of the channel's windows in time order.
        speech: ``bool (n,)`` speech flags.

    Returns:
        ``(level_db, level_rel_db)`` float32 ``(n,)``: the level where the window is speech
        (NaN elsewhere), and that minus the median over the channel's speech windows (NaN
        where not speech; all NaN for a channel without speech).
    """
    level = np.where(np.asarray(speech, bool), np.asarray(level_db, np.float64), np.nan)
    finite = np.isfinite(level)
    median = np.median(level[finite]) if finite.any() else np.nan
    return level.astype(np.float32), (level - median).astype(np.float32)
