"""Speech-like synthetic audio for tests, demos and benchmarks when no corpus is at hand.

Not speech: a voiced source (harmonics of a gliding 100-250 Hz fundamental) through two
moving formant resonances (F1 300-800 Hz, F2 900-2100 Hz, sweeping at syllable rate),
shaped by a syllable-rate (4 Hz) amplitude envelope, plus a little noise: it has the
energy contour, harmonic structure and changing spectrum the features and the speech
detector respond to (:mod:`ser_lib.speech`), nothing more.
"""
from __future__ import annotations

import numpy as np


def speech_like(duration_s: float, sample_rate: int, rng: np.random.Generator, level_db: float = -20.0) -> np.ndarray:
    """``np.ndarray[shape=(round(duration_s*sample_rate),), dtype=float32]`` of speech-like sound
    whose RMS over voiced stretches is about ``level_db`` dBFS."""
    n = int(round(duration_s * sample_rate))
    t = np.arange(n) / sample_rate
    f0 = rng.uniform(100, 250) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    # formants move with the syllables, so the spectrum changes as in speech (a steady
    # harmonic spectrum is what a tone or hum has, and the speech detector rejects it)
    f1 = 550 + 250 * np.sin(2 * np.pi * rng.uniform(2, 4) * t + rng.uniform(0, 2 * np.pi))
    f2 = 1500 + 600 * np.sin(2 * np.pi * rng.uniform(1.5, 3.5) * t + rng.uniform(0, 2 * np.pi))
    voiced = sum((1 / k + 2 * np.exp(-((k * f0 - f1) / 150) ** 2) + np.exp(-((k * f0 - f2) / 250) ** 2))
                 * np.sin(k * phase) for k in range(1, 24) if k * f0.max() < sample_rate / 2)
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(3, 5) * t + rng.uniform(0, np.pi)), 0, None) ** 0.5
    y = voiced * envelope + 0.02 * rng.standard_normal(n)
    rms = np.sqrt(np.mean(y ** 2)) + 1e-12
    return (y / rms * 10 ** (level_db / 20)).astype(np.float32)


def silence(duration_s: float, sample_rate: int, rng: np.random.Generator, level_db: float = -70.0) -> np.ndarray:
    """Low-level noise (line noise at ``level_db`` dBFS RMS), float32."""
    n = int(round(duration_s * sample_rate))
    return (rng.standard_normal(n) * 10 ** (level_db / 20)).astype(np.float32)
