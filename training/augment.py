"""Training-only waveform augmentation and the telephone channel simulation.

Augmentation is applied *after* the split, to training clips only (never to val or
test): :func:`augment` draws, per call, a chain of

* additive white Gaussian noise at 10-30 dB SNR (``audiomentations.AddGaussianSNR``),
* time stretch by a rate in 0.85-1.15, length kept (``audiomentations.TimeStretch``),
* pitch shift by -2..+2 semitones (``audiomentations.PitchShift``),
* time shift by up to +-0.3 s, zero-filled, no roll-over (``audiomentations.Shift``),
* a level change of -12..+6 dB, peak-limited to 0.99 (``audiomentations.Gain``): the
  features hold absolute levels (``rms_db``, log-mel dB) and the speech detector is a
  level threshold, while recording and line levels vary from call to call,
* a telephone channel (:func:`telephone`): 300-3400 Hz band-pass, 8 kHz, 8-bit
  G.711 mu-law or A-law companding and quantisation.

Each step fires with its own probability (:class:`AugmentConfig`). The result is a
deterministic function of ``(y, sr, config, seed)``.

:func:`telephone` is also what evaluation uses to build the telephone-degraded test
set, seeded per clip (:func:`clip_seed` of :func:`seed_key`) so the degraded set is the same
every run, wherever the corpora are mounted.
"""
from __future__ import annotations

import hashlib
import os
import random
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import librosa
import numpy as np
import scipy.signal

from ser_lib.audio import resample

#: Sample rate of the telephone channel, Hz (ITU-T G.711 narrowband).
TELEPHONE_SR = 8000
#: Telephone pass band, Hz (ITU-T G.712 channel: 300-3400 Hz).
TELEPHONE_BAND = (300.0, 3400.0)
#: A-law compression parameter (ITU-T G.711, 1988, section 3 / table 1a).
A_LAW_A = 87.6
#: mu-law compression parameter (ITU-T G.711, North America / Japan).
MU_LAW_MU = 255


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of the training augmentation chain.

    Attributes:
        p_noise: probability of additive Gaussian noise.
        snr_db: (min, max) signal-to-noise ratio of that noise, dB.
        p_stretch: probability of a time stretch.
        stretch: (min, max) stretch rate (>1 faster); the clip keeps its length.
        p_pitch: probability of a pitch shift.
        semitones: (min, max) pitch shift, semitones.
        p_shift: probability of a time shift.
        shift_s: largest time shift either way, seconds (zero-filled).
        p_gain: probability of a level change ...
        gain_db: (min, max) gain, dB (the result is peak-limited to 0.99).
        p_telephone: probability of the telephone channel (:func:`telephone`).
        p_requantize: probability of rounding the result to ``requantize_bits``-bit PCM
            (last step: the fixed quantisation noise of a recording made at that level).
        requantize_bits: bit depth of that rounding.
    """

    p_noise: float = 0.5
    snr_db: tuple[float, float] = (10.0, 30.0)
    p_stretch: float = 0.4
    stretch: tuple[float, float] = (0.85, 1.15)
    p_pitch: float = 0.4
    semitones: tuple[float, float] = (-2.0, 2.0)
    p_shift: float = 0.5
    shift_s: float = 0.3
    p_gain: float = 0.5
    gain_db: tuple[float, float] = (-12.0, 6.0)
    p_telephone: float = 0.5
    p_requantize: float = 0.0
    requantize_bits: int = 16

    @classmethod
    def from_dict(cls, d: dict | None) -> "AugmentConfig":
        """Build from a (YAML) dict; lists become tuples. Raises TypeError on unknown keys."""
        d = dict(d or {})
        for k in ("snr_db", "stretch", "semitones", "gain_db"):
            if k in d:
                d[k] = tuple(float(v) for v in d[k])
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


def clip_seed(key: str, seed: int = 0) -> int:
    """A stable 63-bit seed from a string (e.g. a clip path) and an integer seed.

    Python's ``hash()`` is salted per process, so it cannot be used here; this is
    the first 8 bytes of ``sha256(f"{seed}:{key}")``.
    """
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def seed_key(path: str | os.PathLike) -> str:
    """The part of a clip's path that seeds its random draws: enclosing folder and file
    name without extension (``"Actor_03/03-01-05-01-01-01-03"``).

    Keying on the full path made the draws (augmented training copies, the telephone
    test set) depend on where the corpora are mounted and how the root was spelled;
    folder + stem identifies a clip in every corpus layout and is the same for the
    official WAV and our FLAC copies.
    """
    p = Path(path)
    return f"{p.parent.name}/{p.stem}"


@contextmanager
def _seeded_globals(seed: int):
    """audiomentations draws from the global ``random`` and ``numpy.random`` states;
    seed both for the duration of a call and restore them after, so augmentation is
    reproducible without disturbing anybody else's random streams."""
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


@lru_cache(maxsize=4)
def _waveform_chain(cfg: AugmentConfig, sr: int):
    # Imported lazily: audiomentations pulls in numba-compiled code that the job never needs.
    import audiomentations as A

    return A.Compose([
        A.TimeStretch(min_rate=cfg.stretch[0], max_rate=cfg.stretch[1], leave_length_unchanged=True, p=cfg.p_stretch),
        A.PitchShift(min_semitones=cfg.semitones[0], max_semitones=cfg.semitones[1], p=cfg.p_pitch),
        A.Shift(min_shift=-cfg.shift_s, max_shift=cfg.shift_s, shift_unit="seconds", rollover=False,
                fade_duration=0.005, p=cfg.p_shift),
        A.AddGaussianSNR(min_snr_db=cfg.snr_db[0], max_snr_db=cfg.snr_db[1], p=cfg.p_noise),
        A.Gain(min_gain_db=cfg.gain_db[0], max_gain_db=cfg.gain_db[1], p=cfg.p_gain),
    ])


def augment(y: np.ndarray, sr: int, cfg: AugmentConfig, seed: int) -> np.ndarray:
    """Apply one random draw of the augmentation chain.

    Args:
        y: ``np.ndarray[shape=(n,), dtype=float32]``, one channel in [-1, 1].
        sr: sample rate of ``y``, Hz.
        cfg: probabilities and ranges.
        seed: the draw; equal inputs and seeds give equal outputs.

    Returns:
        ``np.ndarray[shape=(n,), dtype=float32]`` at ``sr``: same length, finite. When
        the telephone step fires, the signal goes through the 8 kHz channel and is
        resampled back to ``sr`` (a no-op at the model's 8 kHz).

    Raises:
        ValueError: ``y`` is not 1-D.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"expected one channel, shape (n,), got {y.shape}")
    n = len(y)
    if n == 0:
        return y.copy()
    with _seeded_globals(seed):
        out = _waveform_chain(cfg, sr)(samples=y.copy(), sample_rate=sr)
    rng = np.random.default_rng(seed)
    if rng.random() < cfg.p_telephone:
        out = resample(telephone(out, sr, rng), TELEPHONE_SR, sr)
    out = np.asarray(out, dtype=np.float32)
    # Stretch/resampling round trips may be off by a sample; the length is a contract.
    out = out[:n] if len(out) >= n else np.pad(out, (0, n - len(out)))
    np.nan_to_num(out, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
    peak = float(np.max(np.abs(out)))
    if peak > 0.99:  # a limiter, not hard clipping: clipping distortion is not what calls sound like
        out *= 0.99 / peak
    if rng.random() < cfg.p_requantize:
        q = float(2 ** (cfg.requantize_bits - 1))
        out = (np.round(out * q) / q).astype(np.float32)
    return out


@lru_cache(maxsize=1)
def _band_pass() -> np.ndarray:
    # Elliptic band-pass (order 5 -> 10 poles, 0.5 dB ripple, 50 dB stop band): a
    # Butterworth of similar order is only ~7 dB down at 250 Hz, while channel filters
    # meeting the G.712 mask fall off steeply outside 300-3400 Hz. Second-order
    # sections, run forward only (causal), like a real line.
    return scipy.signal.ellip(5, 0.5, 50.0, TELEPHONE_BAND, btype="bandpass", fs=TELEPHONE_SR, output="sos")


def a_law_compress(x: np.ndarray, a: float = A_LAW_A) -> np.ndarray:
    """A-law compression of ITU-T G.711 (1988), continuous form.

    ``F(x) = sgn(x) * A|x| / (1 + ln A)`` for ``|x| < 1/A`` and
    ``F(x) = sgn(x) * (1 + ln(A|x|)) / (1 + ln A)`` for ``1/A <= |x| <= 1``, with A = 87.6.

    Args:
        x: samples in [-1, 1] (clipped).

    Returns:
        compressed samples in [-1, 1], float64.
    """
    x = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    ax = np.abs(x)
    denom = 1.0 + np.log(a)
    small = ax < 1.0 / a
    out = np.where(small, a * ax / denom, (1.0 + np.log(np.maximum(a * ax, 1.0))) / denom)
    return np.sign(x) * out


def a_law_expand(c: np.ndarray, a: float = A_LAW_A) -> np.ndarray:
    """Inverse of :func:`a_law_compress` (ITU-T G.711): ``|x| = |c|(1 + ln A)/A`` for
    ``|c| < 1/(1 + ln A)``, else ``exp(|c|(1 + ln A) - 1)/A``."""
    c = np.clip(np.asarray(c, dtype=np.float64), -1.0, 1.0)
    ac = np.abs(c)
    denom = 1.0 + np.log(a)
    out = np.where(ac < 1.0 / denom, ac * denom / a, np.exp(ac * denom - 1.0) / a)
    return np.sign(c) * out


def _quantize_8bit(c: np.ndarray) -> np.ndarray:
    """Uniform 8-bit mid-rise quantiser on [-1, 1] (256 levels), as G.711 codes the
    compressed value in 8 bits."""
    q = np.clip(np.floor((c + 1.0) * 128.0), 0, 255)
    return (q + 0.5) / 128.0 - 1.0


def companding(x: np.ndarray, law: str) -> np.ndarray:
    """8-bit G.711 companding round trip (encode + decode) of samples in [-1, 1].

    Args:
        x: samples (clipped to [-1, 1]).
        law: ``"mu"`` (``librosa.mu_compress``/``mu_expand`` with mu = 255, quantised)
            or ``"a"`` (:func:`a_law_compress` + 8-bit quantiser + :func:`a_law_expand`).

    Returns:
        ``np.ndarray[dtype=float32]``, same shape.

    Raises:
        ValueError: unknown ``law``.
    """
    x = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    if law == "mu":
        codes = librosa.mu_compress(x, mu=MU_LAW_MU, quantize=True)  # ints in [-128, 127]
        return librosa.mu_expand(codes, mu=MU_LAW_MU, quantize=True).astype(np.float32)
    if law == "a":
        return a_law_expand(_quantize_8bit(a_law_compress(x))).astype(np.float32)
    raise ValueError(f"law must be 'mu' or 'a', got {law!r}")


def telephone(y: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Simulate a narrowband G.711 telephone channel.

    Steps: resample to 8 kHz (soxr HQ), band-pass 300-3400 Hz (elliptic, causal; -20 dB
    at 250 Hz, <= -50 dB below 200 Hz and above 3700 Hz),
    a random line level (-6..0 dB, then peak-limited to 0.99 so the codec never
    clips), and 8-bit mu-law or A-law companding (chosen at random, 50/50).

    Args:
        y: ``np.ndarray[shape=(n,), dtype=float32]``, one channel.
        sr: sample rate of ``y``, Hz.
        rng: the random draw (law and level); seed it per clip (:func:`clip_seed`)
            for a deterministic degraded set.

    Returns:
        ``np.ndarray[shape=(round(n * 8000 / sr),), dtype=float32]`` at
        :data:`TELEPHONE_SR` (8 kHz).
    """
    y8 = resample(np.asarray(y, dtype=np.float32), sr, TELEPHONE_SR).astype(np.float64)
    band = scipy.signal.sosfilt(_band_pass(), y8)
    law = "mu" if rng.random() < 0.5 else "a"
    gain = 10.0 ** (rng.uniform(-6.0, 0.0) / 20.0)
    band = band * gain
    peak = np.max(np.abs(band)) if len(band) else 0.0
    if peak > 0.99:
        band *= 0.99 / peak
    return companding(band, law)
