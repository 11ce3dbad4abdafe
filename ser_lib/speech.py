"""Speech / non-speech flag per window, from the frame energies the features already hold.

A frame is *active* when its RMS level exceeds ``threshold_db`` dBFS (RMS of the
frame relative to a full-scale square wave, i.e. ``20 log10(rms)``); a window is
speech when at least ``min_active_ratio`` of its frames are active. This is the
classic energy detector (Rabiner & Sambur 1975, Bell Syst. Tech. J. 54(2)); it
rejects silence, line noise and comfort noise below the threshold. It does **not**
tell speech from music at speech level: hold music above the threshold is flagged
speech (documented limitation; a trained VAD would fix it).

Training applies the same rule to training windows, so the model never learns
from windows the job would not score.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RMS_DB_COLUMN = 1  # position of rms_db in the feature vector (see ser_lib.features)


@dataclass(frozen=True)
class SpeechConfig:
    """Energy-detector settings.

    Attributes:
        threshold_db: frame level above which a frame is active, dBFS. -45 dBFS sits
            ~15-25 dB above typical telephone line noise and ~20 dB below
            conversational speech at normal recording levels.
        min_active_ratio: fraction of active frames for a window to count as speech.
    """

    threshold_db: float = -45.0
    min_active_ratio: float = 0.25


def is_speech(window_feats: np.ndarray, cfg: SpeechConfig = SpeechConfig()) -> np.ndarray:
    """Flag windows as speech.

    Args:
        window_feats: ``np.ndarray[shape=(n_windows, n_frames, n_features)]`` from
            :func:`ser_lib.features.window_features`.
        cfg: detector settings.

    Returns:
        ``np.ndarray[shape=(n_windows,), dtype=bool]``.
    """
    active = window_feats[:, :, RMS_DB_COLUMN] > cfg.threshold_db
    return active.mean(axis=1) >= cfg.min_active_ratio
