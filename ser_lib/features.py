"""Frame-level acoustic features and their windows: the one code path for training and serving.

Per frame (``n_fft`` samples, Hann window of ``win_length`` samples, ``hop_length``
hop, no centring) the feature vector is, in this order:

====================  ====  =====================================================
feature               dims  computed by
====================  ====  =====================================================
zero-crossing rate    1     ``librosa.feature.zero_crossing_rate``
RMS energy (dBFS)     1     ``librosa.feature.rms`` then ``20 log10``
MFCC                  20    ``librosa.feature.mfcc`` on the log-mel below (as a DCT matrix)
chroma                12    ``librosa.feature.chroma_stft`` (tuning fixed at 0)
log-mel power (dB)    40    ``librosa.feature.melspectrogram`` + ``power_to_db(ref=1)``
voicing, F0           2     normalised autocorrelation peak and its lag (``pitch=True``,
                            the default; see :func:`_pitch_block`)
====================  ====  =====================================================

One magnitude STFT per channel feeds mel, MFCC and chroma. Every feature is a
function of its own frame only (absolute dB reference, no ``top_db`` clipping, fixed
chroma tuning), which is what makes a window's features exactly the slice of the
channel's frames that the window covers: the job computes frames once per channel
and slices overlapping windows out of them, training computes them per clip, and
the two agree to the bit (``tests/test_features.py``).

**Level.** These frame features are absolute (dBFS); a call's level depends on the
handset, the line and the recorder's gain, not on the caller. The model therefore
never sees them as they are: :func:`level_normalize` expresses each window's
level-carrying features (``rms_db``, log-mel, MFCC) relative to the window's own
speech level, which makes the model input invariant to the recording's gain. The
job and training both call it through :func:`model_input`.

The model works at 8 kHz with a 60-3800 Hz mel band: call-center audio is
narrowband (G.711, 300-3400 Hz), so wideband inputs are band-limited the same way
and the model sees one band in training and production.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache

import librosa
import numpy as np

from .errors import ConfigError
from .windows import WindowGrid

#: Bump when anything below changes the numbers a model was trained on.
FEATURE_VERSION = 2  # 2: level-normalised model input (level_normalize)
# Floor before log (``power_to_db``'s ``amin``): 1e-20, -200 dB, not librosa's default 1e-10
# (-100 dB). With -100 dB the absolute floor bound the quiet bands of recordings whose speech
# sits below about -60 dBFS, so level_normalize's result changed with the gain there (a call
# 30 dB quieter changed 28 % of its windows' emotions in float); at -200 dB no recording's
# bands reach it. No training window changes: on 600 random clips of every corpus, the model
# input is bit-identical under both floors (their bands under -100 dB all sit more than
# level_floor_db below the window's reference, where level_normalize floors them anyway).
_AMIN = 1e-20
#: The columns ``pitch=True`` appends, in order (frame features: voicing and absolute F0;
#: :func:`level_normalize` turns the F0 column into ``f0_st`` and ``f0_rel``).
PITCH_FEATURES = ("voicing", "f0_st", "f0_rel")


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that determines the feature tensor a model consumes.

    Attributes:
        sample_rate: model sample rate, Hz; inputs are resampled to it.
        n_fft: frame length and FFT size, samples (256 = 32 ms at 8 kHz).
        win_length: Hann window length, samples (200 = 25 ms at 8 kHz).
        hop_length: frame hop, samples (80 = 10 ms at 8 kHz).
        n_mfcc, n_mels, n_chroma: feature dimensions.
        fmin, fmax: mel band edges, Hz.
        window_s: analysis window length, seconds (the model's input length).
        level_percentile: percentile of a window's frame ``rms_db`` taken as its speech
            level, the reference of :func:`level_normalize`.
        level_floor_db: floor of the level-normalised ``rms_db`` and log-mel values, dB
            relative to that reference (see :func:`level_normalize`).
        pitch: append voicing and F0 per frame (:func:`_pitch_block`); the model input
            then has three more columns: ``voicing``, ``f0_st`` and ``f0_rel`` (see
            :func:`level_normalize`). False reproduces the 74-feature layout exactly.
        f0_min, f0_max: F0 search range, Hz (Praat's default floor is 75 Hz; 400 Hz
            covers raised adult voices).
        voicing_threshold: a frame is voiced when its normalised autocorrelation peak
            reaches this (Praat's default voicing threshold, 0.45) and its level is
            within ``voiced_range_db`` of the window's speech level.
        voiced_range_db: see ``voicing_threshold``, dB.
        version: :data:`FEATURE_VERSION` of the code that produced the config.
    """

    sample_rate: int = 8000
    n_fft: int = 256
    win_length: int = 200
    hop_length: int = 80
    n_mfcc: int = 20
    n_mels: int = 40
    n_chroma: int = 12
    fmin: float = 60.0
    fmax: float = 3800.0
    window_s: float = 2.0
    level_percentile: float = 95.0
    level_floor_db: float = -40.0
    pitch: bool = True
    f0_min: float = 75.0
    f0_max: float = 400.0
    voicing_threshold: float = 0.45
    voiced_range_db: float = -30.0
    version: int = field(default=FEATURE_VERSION)

    def __post_init__(self):
        if not (0 < self.win_length <= self.n_fft and 0 < self.hop_length):
            raise ConfigError("need 0 < win_length <= n_fft and hop_length > 0")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ConfigError(f"mel band {self.fmin}-{self.fmax} Hz is not inside 0-{self.sample_rate / 2} Hz")
        if not 0 < self.level_percentile <= 100 or self.level_floor_db >= 0:
            raise ConfigError("need 0 < level_percentile <= 100 and level_floor_db < 0")
        if self.pitch and not (0 < self.f0_min < self.f0_max and self.sample_rate / self.f0_min < self.n_fft / 2
                               and self.sample_rate / self.f0_max >= 2):
            raise ConfigError(f"F0 range {self.f0_min}-{self.f0_max} Hz needs lags of 2..{self.n_fft // 2} samples "
                              f"at {self.sample_rate} Hz (at least two periods per {self.n_fft}-sample frame)")

    @property
    def n_features(self) -> int:
        """Feature dimensions per frame."""
        return 2 + self.n_mfcc + self.n_chroma + self.n_mels + (len(PITCH_FEATURES) if self.pitch else 0)

    @property
    def window_samples(self) -> int:
        """Window length in samples."""
        return round(self.window_s * self.sample_rate)

    @property
    def frames_per_window(self) -> int:
        """Frames in one window (no centring): ``1 + (window - n_fft) // hop_length``."""
        return 1 + (self.window_samples - self.n_fft) // self.hop_length

    def feature_names(self) -> list[str]:
        """Names of the ``n_features`` columns, in order."""
        return (["zcr", "rms_db"] + [f"mfcc_{i}" for i in range(self.n_mfcc)]
                + [f"chroma_{i}" for i in range(self.n_chroma)] + [f"mel_{i}" for i in range(self.n_mels)]
                + (list(PITCH_FEATURES) if self.pitch else []))

    def grid(self, hop_s: float) -> WindowGrid:
        """The window grid for this config and a serving/training hop, seconds."""
        return WindowGrid.from_seconds(self.window_s, hop_s, self.sample_rate, self.hop_length)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureConfig":
        """Inverse of :meth:`to_dict`. Raises ConfigError on unknown keys. A dict without
        ``pitch`` (written before the pitch columns existed) is the 74-column layout."""
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown feature config keys: {sorted(unknown)}")
        return cls(**{"pitch": False, **d})


@lru_cache(maxsize=8)
def _filters(cfg: FeatureConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mel = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax)
    chroma = librosa.filters.chroma(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_chroma=cfg.n_chroma, tuning=0.0)
    # librosa.feature.mfcc = orthonormal DCT-II of the log-mel (scipy.fft.dct type 2, norm="ortho").
    dct = librosa.feature.mfcc(S=np.eye(cfg.n_mels, dtype=np.float64), n_mfcc=cfg.n_mfcc)
    return mel, chroma, dct


@lru_cache(maxsize=8)
def _kernels(cfg: FeatureConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(fft_window, mel_fb.T, chroma_fb.T, dct.T)``: what :func:`_frames_block` multiplies
    with. ``fft_window`` is ``librosa.stft``'s: a float64 Hann window of ``win_length``
    centred in ``n_fft``. The filter banks are *transposed views* of the librosa matrices
    (not contiguous copies): BLAS then runs the very products ``fb @ x`` of the
    feature-major code, transposed, and rounds them the same way.""" 
    window, mel, chroma, dct = _cached_filters(cfg)
    return window, mel.T, chroma.T, dct.T


def _kernel_cache_dir():
    """Where filter banks are kept between processes: ``$SER_CACHE_DIR`` or ``~/.cache/ser-calls``."""
    import os
    from pathlib import Path
    return Path(os.environ.get("SER_CACHE_DIR") or Path.home() / ".cache" / "ser-calls")


def _cached_filters(cfg: FeatureConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(fft_window, mel_fb, chroma_fb, dct)``, from a small on-disk cache when possible.

    Building them the first time in a process costs ~2.5 s (librosa's filter module
    imports scipy.signal and JIT-compiles with numba) -- in every fresh Spark Python
    worker. The arrays are stored as computed (``.npy``, exact float64), keyed by the
    configuration and the librosa/numpy versions; any cache problem falls back to
    computing them.
    """
    import hashlib
    import json
    key = hashlib.sha1(json.dumps([cfg.to_dict(), FEATURE_VERSION, librosa.__version__, np.__version__],
                                  sort_keys=True).encode()).hexdigest()[:16]
    try:
        path = _kernel_cache_dir() / f"filters-{key}.npz"
        with np.load(path, allow_pickle=False) as z:
            return z["window"], z["mel"], z["chroma"], z["dct"]
    except Exception:  # missing, unreadable or partial: compute
        pass
    mel, chroma, dct = _filters(cfg)
    window = librosa.util.pad_center(librosa.filters.get_window("hann", cfg.win_length, fftbins=True), size=cfg.n_fft)
    try:
        import os
        import tempfile
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, window=window, mel=mel, chroma=chroma, dct=dct)
        os.replace(tmp, path)  # atomic: concurrent workers never read a partial file
    except Exception:
        pass
    return window, mel, chroma, dct


_ZC_THRESHOLD = np.float32(1e-10)   # librosa.zero_crossings' default threshold, as its float32 kernel sees it
_RMS_FLOOR = np.sqrt(_AMIN)         # a float64 scalar, as before: rms_db is computed in float64
_TINY = np.finfo(np.float64).tiny   # librosa.util.normalize's threshold for float64 input


@lru_cache(maxsize=8)
def _pitch_kernels(cfg: FeatureConfig) -> tuple[np.ndarray, np.ndarray, int, int, np.ndarray]:
    """``(window, window_acf, lo, hi, octave_cost)`` for :func:`_pitch_block`: a periodic
    Hann window of ``n_fft`` samples (float32, as the FFTs run), its own normalised autocorrelation at lags
    ``lo - 1 .. hi + 1`` (samples), the lag range of ``f0_max .. f0_min`` and Praat's octave
    cost per lag, ``0.01 * log2(f0_min * lag / sample_rate)`` (Boersma 1993)."""
    n = cfg.n_fft
    window = librosa.filters.get_window("hann", n, fftbins=True).astype(np.float64)
    spec = np.fft.rfft(window, n=2 * n)
    acf = np.fft.irfft(spec.real ** 2 + spec.imag ** 2, n=2 * n)
    lo = int(np.floor(cfg.sample_rate / cfg.f0_max))
    hi = int(np.ceil(cfg.sample_rate / cfg.f0_min))
    lags = np.arange(lo, hi + 1, dtype=np.float64)
    return (window.astype(np.float32), acf[lo - 1:hi + 2] / acf[0], lo, hi,
            0.01 * np.log2(cfg.f0_min * lags / cfg.sample_rate))


def _pitch_block(frames: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Voicing strength and F0 of each frame: ``float64 (n, 2)`` (the FFTs run in float32),
    columns ``voicing`` (0-1) and F0 in semitones re 100 Hz, ``12 log2(F0 / 100)``.

    The autocorrelation method of Boersma (1993, "Accurate short-term analysis of the
    fundamental frequency and the harmonics-to-noise ratio of a sampled sound", Proc.
    Inst. Phonetic Sciences 17), which Praat implements: the frame times a Hann window,
    its autocorrelation through the power spectrum (zero-padded to ``2 n_fft``, so no lag
    wraps), divided by the window's own autocorrelation; the lag of the highest peak in
    ``f0_max .. f0_min`` after Praat's octave cost (0.01 per octave, favouring the shorter
    lag), refined by a parabola through its neighbours. Voicing is that peak's height
    (1 = periodic). A frame of digital silence gets 0 and 0. Every row depends on its own
    frame only, like the other frame features. The F0 band is found from harmonics too,
    so G.711's 300 Hz high-pass does not remove it.
    """
    import scipy.fft  # librosa's dependency; unlike numpy.fft it transforms float32 natively (2x faster)

    window, w_acf, lo, hi, cost = _pitch_kernels(cfg)
    n2 = 2 * cfg.n_fft
    spec = scipy.fft.rfft(frames * window, n=n2, axis=-1)
    acf = scipy.fft.irfft(spec.real ** 2 + spec.imag ** 2, n=n2, axis=-1)[:, :hi + 2].astype(np.float64)
    r0 = acf[:, 0]
    sound = r0 > _AMIN * cfg.n_fft
    r = acf[:, lo - 1:hi + 2] / (np.where(sound, r0, 1.0)[:, None] * w_acf)
    k = np.argmax(r[:, 1:-1] - cost, axis=1) + 1
    rows = np.arange(len(r))
    a, b, c = r[rows, k - 1], r[rows, k], r[rows, k + 1]
    den = a - 2.0 * b + c
    delta = np.clip(np.where(den < 0, 0.5 * (a - c) / np.where(den < 0, den, -1.0), 0.0), -0.5, 0.5)
    lag = (lo - 1 + k) + delta
    out = np.zeros((len(r), 2))
    out[:, 0] = np.where(sound, np.clip(b, 0.0, 1.0), 0.0)
    out[:, 1] = np.where(sound, 12.0 * np.log2(cfg.sample_rate / lag / 100.0), 0.0)
    return out


def _frames_block(y: np.ndarray, cfg: FeatureConfig, sub_frames: int = 512,
                  power_weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Features of every full frame of ``y`` (float32, (n_frames, n_features)), and with
    ``power_weights`` each frame's power spectrum times them (float64 (n_frames,), else None).

    Numerically this is, to the bit, the librosa pipeline it replaces (``librosa.stft``
    then ``melspectrogram``/``power_to_db``/``mfcc``/``chroma_stft``/``zero_crossing_rate``/
    ``rms``, checked against it on hours of call audio), computed frame-major and in
    sub-blocks of ``sub_frames`` frames that stay in cache, with no per-feature
    transposes and no ``(n_fft, n_frames)`` temporaries:

    * STFT: each frame times the float64 window, ``numpy.fft.rfft`` in float64 on
      contiguous rows, cast to complex64, magnitude -- exactly ``librosa.stft``'s
      arithmetic (it runs the same float64 FFT down the columns of a frame view).
    * mel / chroma / MFCC: the same float64 filter-bank products (see the comment below),
      frame-major; ``power_to_db(ref=1)`` and the chroma inf-norm written out.
    * ZCR: sign changes counted once per sample (a cumulative count, differences per
      frame) instead of per overlapping frame; the counts are integers, so equal.
    * RMS: the mean of squares of each frame, as ``librosa.feature.rms``.
    """
    n_fft, hop = cfg.n_fft, cfg.hop_length
    n = 1 + (len(y) - n_fft) // hop
    frames = np.lib.stride_tricks.as_strided(y, shape=(n, n_fft), strides=(y.strides[0] * hop, y.strides[0]),
                                             writeable=False)
    window, mel_t, chroma_t, dct_t = _kernels(cfg)
    m0 = 2 + cfg.n_mfcc          # first chroma column
    c0 = m0 + cfg.n_chroma       # first log-mel column
    out = np.empty((n, cfg.n_features), dtype=np.float32)
    weighted = None if power_weights is None else np.empty(n, dtype=np.float64)

    # zero-crossing rate: librosa.zero_crossings(frame, threshold=1e-10, pad=False) counts sign
    # changes (|x| <= threshold counts as +0) between consecutive samples inside a frame;
    # frame f holds the n_fft - 1 pairs from sample f * hop on; the rate is count / n_fft.
    # Pairs are counted once per hop-long block: a frame is q whole blocks plus the first r
    # pairs of the next (n_fft - 1 = q * hop + r). Integer counts, so the same numbers.
    neg = y < -_ZC_THRESHOLD
    q, r = divmod(n_fft - 1, hop)
    blocks = np.zeros(((n + q) * hop,), dtype=bool)
    m = min(len(y) - 1, len(blocks))
    np.not_equal(neg[1:m + 1], neg[:m], out=blocks[:m])
    blocks = blocks.reshape(n + q, hop)
    per_block = np.count_nonzero(blocks, axis=1)
    count = np.count_nonzero(blocks[q:, :r], axis=1) if r else np.zeros(n, dtype=per_block.dtype)
    for j in range(q):
        count += per_block[j:j + n]
    out[:, 0] = count / n_fft

    # rms: librosa.feature.rms = sqrt(mean(frame ** 2)); the squares are per sample, so they
    # are computed once, and each frame's mean reduces its own contiguous row as before
    squares = np.square(y)
    sq_frames = np.lib.stride_tricks.as_strided(squares, shape=(n, n_fft), strides=(squares.strides[0] * hop,
                                                squares.strides[0]), writeable=False)
    stft = np.empty((min(sub_frames, n), n_fft // 2 + 1), dtype=np.complex64)
    for b0 in range(0, n, sub_frames):
        b1 = min(b0 + sub_frames, n)
        rms = np.sqrt(np.mean(sq_frames[b0:b1], axis=-1))
        out[b0:b1, 1] = 20.0 * np.log10(np.maximum(rms, _RMS_FLOOR))
        # float64 FFT written straight into complex64, as librosa.stft's out-of-place cast
        spec = np.fft.rfft(frames[b0:b1] * window, axis=-1, out=stft[:b1 - b0])
        spec = np.abs(spec)
        power = (spec * spec).astype(np.float64)
        if weighted is not None:  # e.g. the K-weighted energy of ser_lib.talk.LoudnessMeter (Parseval)
            weighted[b0:b1] = power @ power_weights
        # melspectrogram(S=power), chroma_stft(S=power, tuning=0) and mfcc(S=log_mel) are these
        # filter-bank products. They run in float64 and are cast to float32 after: float32
        # BLAS rounds a product differently for different frame counts, float64's
        # differences vanish in the cast, so a window's features are the same bits whether
        # computed with its whole channel (job) or alone (training).
        log_mel = 10.0 * np.log10(np.maximum(_AMIN, power @ mel_t))   # power_to_db(ref=1.0, top_db=None)
        chroma = power @ chroma_t
        peak = chroma.max(axis=-1, keepdims=True)                      # util.normalize(norm=inf); chroma >= 0
        peak[peak < _TINY] = 1.0
        out[b0:b1, 2:m0] = log_mel @ dct_t
        out[b0:b1, m0:c0] = chroma / peak
        out[b0:b1, c0:c0 + cfg.n_mels] = log_mel
        if cfg.pitch:
            p0 = c0 + cfg.n_mels
            out[b0:b1, p0:p0 + 2] = _pitch_block(frames[b0:b1], cfg)
            out[b0:b1, p0 + 2] = 0.0  # f0_rel: a window quantity, filled by level_normalize
    return out, weighted


def frame_features(y: np.ndarray, cfg: FeatureConfig, block_frames: int = 8192,
                   power_weights: np.ndarray | None = None) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Per-frame features of one channel.

    Args:
        y: ``np.ndarray[shape=(n,), dtype=float32]`` at ``cfg.sample_rate``; ``n >= cfg.n_fft``.
        cfg: feature configuration.
        block_frames: frames computed per block, bounding memory for long channels
            (features are per frame, so blocking does not change the result).
        power_weights: ``float64 (n_fft // 2 + 1,)``: if given, also return each frame's
            power spectrum (``|rfft(frame * window)|**2``, the one the features use) times
            these weights, e.g. :func:`ser_lib.talk.kweighted_power_weights` (the loudness
            meter reads the STFT the features compute anyway instead of filtering the signal).

    Returns:
        ``np.ndarray[shape=(1 + (n - n_fft) // hop_length, cfg.n_features), dtype=float32]``;
        with ``power_weights``, ``(features, weighted float64 (n_frames,))``.

    Raises:
        ValueError: if ``y`` is not 1-D or shorter than one frame.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"expected one channel, shape (n,), got {y.shape}")
    if len(y) < cfg.n_fft:
        raise ValueError(f"need at least n_fft={cfg.n_fft} samples, got {len(y)}")
    n_frames = 1 + (len(y) - cfg.n_fft) // cfg.hop_length
    blocks, weighted = [], []
    for f0 in range(0, n_frames, block_frames):
        f1 = min(f0 + block_frames, n_frames)
        seg = y[f0 * cfg.hop_length:(f1 - 1) * cfg.hop_length + cfg.n_fft]
        feats, w = _frames_block(seg, cfg, power_weights=power_weights)
        blocks.append(feats)
        weighted.append(w)
    out = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
    if power_weights is None:
        return out
    return out, (weighted[0] if len(weighted) == 1 else np.concatenate(weighted))


def pad_to_window(y: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Right-pad a channel shorter than one window with zeros (see :mod:`ser_lib.windows`)."""
    short = cfg.window_samples - len(y)
    return np.pad(y, (0, short)) if short > 0 else y


def window_features(y: np.ndarray, cfg: FeatureConfig, hop_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Features of every analysis window of one channel.

    The channel's frames are computed once; each window is the slice of
    ``cfg.frames_per_window`` frames starting at its start sample / ``hop_length``.

    Args:
        y: ``np.ndarray[shape=(n,), dtype=float32]`` at ``cfg.sample_rate``.
        cfg: feature configuration (window length, frames).
        hop_s: hop between window starts, seconds (a multiple of the frame hop).

    Returns:
        ``(features, starts)``: ``features`` is
        ``np.ndarray[shape=(n_windows, cfg.frames_per_window, cfg.n_features), dtype=float32]``
        (a new array; overlapping windows repeat their shared frames), ``starts`` the
        window starts in samples, as :meth:`WindowGrid.starts` of the *unpadded* length.
    """
    starts = cfg.grid(hop_s).starts(len(y))
    frames = frame_features(pad_to_window(np.asarray(y, dtype=np.float32), cfg), cfg)
    return window_slices(frames, starts // cfg.hop_length, cfg.frames_per_window), starts


def window_slices(frames: np.ndarray, first: np.ndarray, n: int) -> np.ndarray:
    """``frames[first[i]:first[i] + n]`` for every ``i``, as one new C-contiguous array.

    Args:
        frames: ``np.ndarray[shape=(n_frames, n_features)]``, C-contiguous.
        first: first frame of each window, ``first[i] + n <= n_frames``.
        n: frames per window.

    Returns:
        ``np.ndarray[shape=(len(first), n, n_features)]``: each window is one contiguous
        copy of ``n`` frame rows (no transposed gather).
    """
    frames = np.ascontiguousarray(frames)
    first = np.asarray(first, dtype=np.int64)
    if len(first) and (first.min() < 0 or first.max() + n > len(frames)):
        raise IndexError(f"window of {n} frames from {first.max()} is outside {len(frames)} frames")
    view = np.lib.stride_tricks.as_strided(frames, shape=(max(len(frames) - n + 1, 0), n, frames.shape[1]),
                                           strides=(frames.strides[0],) + frames.strides, writeable=False)
    return view[first]


def row_percentile(a: np.ndarray, q: float) -> np.ndarray:
    """``np.percentile(a, q, axis=-1)`` (linear interpolation, NumPy's default method),
    computed with ``np.partition`` instead of a full sort: ~5x faster on 197-frame rows.

    Args:
        a: ``np.ndarray[shape=(..., n)]``, ``n >= 1``, no NaN.
        q: percentile in ``[0, 100]``.

    Returns:
        ``np.ndarray[shape=(...)]`` of ``a``'s dtype.
    """
    n = a.shape[-1]
    pos = q / 100.0 * (n - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, n - 1)
    part = np.partition(a, [lo, hi] if hi != lo else lo, axis=-1)
    return part[..., lo] + (part[..., hi] - part[..., lo]) * a.dtype.type(pos - lo)


def level_normalize(windows: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Express a window's level-carrying features relative to its own speech level.

    A gain of ``g`` dB adds ``g`` to ``rms_db`` and to every log-mel band and
    ``g * sum(dct[:, k])`` to MFCC ``k`` (only c0: the other DCT-II basis vectors sum
    to zero); ZCR and the max-normalised chroma do not change. So, with the window's
    reference level ``ref`` = the ``cfg.level_percentile``-th percentile of its frames'
    ``rms_db`` (its loud, i.e. speech, frames), this returns

    * ``rms_db - ref`` and ``log_mel - ref``, both floored at ``cfg.level_floor_db``;
    * the MFCC recomputed from that floored relative log-mel (same DCT matrix as
      :func:`frame_features`, so MFCC stay the cepstrum of the bands the model sees);
    * ZCR and chroma unchanged;
    * with ``cfg.pitch``: a frame is *voiced* when its ``voicing`` reaches
      ``cfg.voicing_threshold`` and its relative ``rms_db`` is at least
      ``cfg.voiced_range_db``; ``f0_rel`` = a voiced frame's F0 minus the median F0 of the
      window's voiced frames, semitones (0 for unvoiced frames): the contour and range
      of the pitch, free of the speaker's register; ``f0_st`` keeps a voiced frame's F0
      and gives unvoiced frames that median (0, i.e. 100 Hz, in a window without a voiced
      frame). ``voicing`` is unchanged. None of these depends on the gain.

    The result is independent of the recording's gain as long as no band the model sees
    sits on the absolute log floor (-200 dB, ``_AMIN``), i.e. for any real recording;
    what does change with the gain of a 16-bit file is its quantisation noise (-101 dBFS,
    fixed), which at low levels rises into the 40 dB the model sees. Digital silence and
    the zero padding of short recordings read as the relative floor whatever the level.

    Args:
        windows: ``np.ndarray[shape=(n, frames, n_features), dtype=float32]`` from
            :func:`window_features` / the job's stream (absolute features).
        cfg: feature configuration.

    Returns:
        a new ``float32`` array of the same shape.
    """
    x = np.array(windows, dtype=np.float32, copy=True)
    if not len(x):
        return x
    m0 = 2 + cfg.n_mfcc
    c0 = m0 + cfg.n_chroma
    ref = row_percentile(x[:, :, 1], cfg.level_percentile)[:, None, None]
    floor = np.float32(cfg.level_floor_db)
    np.maximum(x[:, :, 1:2] - ref, floor, out=x[:, :, 1:2])
    mel = x[:, :, c0:c0 + cfg.n_mels]
    np.maximum(mel - ref, floor, out=mel)
    dct_t = _kernels(cfg)[3].astype(np.float32)
    n, f, _ = x.shape
    x[:, :, 2:m0] = (mel.reshape(n * f, -1) @ dct_t).reshape(n, f, -1)
    if cfg.pitch:
        _pitch_normalize(x, c0 + cfg.n_mels, cfg)
    return x


def _pitch_normalize(x: np.ndarray, p0: int, cfg: FeatureConfig) -> None:
    """The pitch step of :func:`level_normalize`, in place on ``x`` (whose ``rms_db``
    column is already relative); ``p0`` is the ``voicing`` column."""
    voiced = (x[:, :, p0] >= np.float32(cfg.voicing_threshold)) & (x[:, :, 1] >= np.float32(cfg.voiced_range_db))
    f0 = x[:, :, p0 + 1]
    k = voiced.sum(axis=1)
    # median of the voiced frames' F0 per window: unvoiced frames sort last as +inf
    ranked = np.sort(np.where(voiced, f0, np.float32(np.inf)), axis=1)
    lo = np.take_along_axis(ranked, np.maximum(k - 1, 0)[:, None] // 2, axis=1)[:, 0]
    hi = np.take_along_axis(ranked, (k // 2)[:, None], axis=1)[:, 0]
    med = np.where(k > 0, (lo + hi) * np.float32(0.5), np.float32(0.0)).astype(np.float32)[:, None]
    x[:, :, p0 + 2] = np.where(voiced, f0 - med, np.float32(0.0))
    x[:, :, p0 + 1] = np.where(voiced, f0, med)


def model_input(windows: np.ndarray, cfg: FeatureConfig, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """The model's input for absolute window features: :func:`level_normalize`, then
    per-feature standardisation ``(x - mean) / std`` with the training set's statistics.
    The one path from features to model, shared by the job (:class:`ser_lib.runtime.Predictor`)
    and training.

    Args:
        windows: ``np.ndarray[shape=(n, frames, n_features)]`` absolute features.
        mean, std: ``(n_features,)`` float32, statistics of level-normalised training windows.

    Returns:
        ``np.ndarray[shape=(n, frames, n_features), dtype=float32]``.
    """
    x = level_normalize(windows, cfg)
    np.subtract(x, np.asarray(mean, np.float32), out=x)
    np.multiply(x, (1.0 / np.asarray(std, np.float32)).astype(np.float32), out=x)
    return x
