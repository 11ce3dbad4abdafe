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
====================  ====  =====================================================

One magnitude STFT per channel feeds mel, MFCC and chroma. Every feature is a
function of its own frame only (absolute dB reference, no ``top_db`` clipping, fixed
chroma tuning), which is what makes a window's features exactly the slice of the
channel's frames that the window covers: the job computes frames once per channel
and slices overlapping windows out of them, training computes them per clip, and
the two agree to the bit (``tests/test_features.py``).

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
FEATURE_VERSION = 1
_AMIN = 1e-10  # floor before log, as librosa.power_to_db's default


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
    version: int = field(default=FEATURE_VERSION)

    def __post_init__(self):
        if not (0 < self.win_length <= self.n_fft and 0 < self.hop_length):
            raise ConfigError("need 0 < win_length <= n_fft and hop_length > 0")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ConfigError(f"mel band {self.fmin}-{self.fmax} Hz is not inside 0-{self.sample_rate / 2} Hz")

    @property
    def n_features(self) -> int:
        """Feature dimensions per frame."""
        return 2 + self.n_mfcc + self.n_chroma + self.n_mels

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
                + [f"chroma_{i}" for i in range(self.n_chroma)] + [f"mel_{i}" for i in range(self.n_mels)])

    def grid(self, hop_s: float) -> WindowGrid:
        """The window grid for this config and a serving/training hop, seconds."""
        return WindowGrid.from_seconds(self.window_s, hop_s, self.sample_rate, self.hop_length)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureConfig":
        """Inverse of :meth:`to_dict`. Raises ConfigError on unknown keys."""
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown feature config keys: {sorted(unknown)}")
        return cls(**d)


@lru_cache(maxsize=8)
def _filters(cfg: FeatureConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mel = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax)
    chroma = librosa.filters.chroma(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_chroma=cfg.n_chroma, tuning=0.0)
    # librosa.feature.mfcc = orthonormal DCT-II of the log-mel (scipy.fft.dct type 2, norm="ortho").
    dct = librosa.feature.mfcc(S=np.eye(cfg.n_mels, dtype=np.float64), n_mfcc=cfg.n_mfcc)
    return mel, chroma, dct


def _frames_block(y: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Features of every full frame of ``y`` (float32, (n_frames, n_features))."""
    kw = dict(n_fft=cfg.n_fft, hop_length=cfg.hop_length)
    spec = np.abs(librosa.stft(y, win_length=cfg.win_length, window="hann", center=False, **kw))
    power = (spec * spec).astype(np.float64)
    mel_fb, chroma_fb, dct = _filters(cfg)
    # librosa.feature.melspectrogram(S=power), chroma_stft(S=power, tuning=0) and mfcc(S=log_mel)
    # are these filter-bank products. They run in float64 and are cast to float32 after:
    # float32 BLAS rounds a product differently for different frame counts, float64's
    # differences vanish in the cast, so a window's features are the same bits whether
    # computed with its whole channel (job) or alone (training).
    log_mel = librosa.power_to_db(mel_fb @ power, ref=1.0, amin=_AMIN, top_db=None)
    mfcc = dct @ log_mel
    chroma = librosa.util.normalize(chroma_fb @ power, norm=np.inf, axis=-2)
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=cfg.n_fft, hop_length=cfg.hop_length, center=False)
    rms = librosa.feature.rms(y=y, frame_length=cfg.n_fft, hop_length=cfg.hop_length, center=False)
    rms_db = 20.0 * np.log10(np.maximum(rms, np.sqrt(_AMIN)))
    n = min(spec.shape[-1], zcr.shape[-1])
    out = np.concatenate([zcr[:, :n], rms_db[:, :n], mfcc[:, :n], chroma[:, :n], log_mel[:, :n]], axis=0)
    return np.ascontiguousarray(out.T, dtype=np.float32)


def frame_features(y: np.ndarray, cfg: FeatureConfig, block_frames: int = 8192) -> np.ndarray:
    """Per-frame features of one channel.

    Args:
        y: ``np.ndarray[shape=(n,), dtype=float32]`` at ``cfg.sample_rate``; ``n >= cfg.n_fft``.
        cfg: feature configuration.
        block_frames: frames computed per block, bounding memory for long channels
            (features are per frame, so blocking does not change the result).

    Returns:
        ``np.ndarray[shape=(1 + (n - n_fft) // hop_length, cfg.n_features), dtype=float32]``.

    Raises:
        ValueError: if ``y`` is not 1-D or shorter than one frame.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"expected one channel, shape (n,), got {y.shape}")
    if len(y) < cfg.n_fft:
        raise ValueError(f"need at least n_fft={cfg.n_fft} samples, got {len(y)}")
    n_frames = 1 + (len(y) - cfg.n_fft) // cfg.hop_length
    blocks = []
    for f0 in range(0, n_frames, block_frames):
        f1 = min(f0 + block_frames, n_frames)
        seg = y[f0 * cfg.hop_length:(f1 - 1) * cfg.hop_length + cfg.n_fft]
        blocks.append(_frames_block(seg, cfg))
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


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
    idx = starts // cfg.hop_length
    view = np.lib.stride_tricks.sliding_window_view(frames, cfg.frames_per_window, axis=0)
    # sliding_window_view puts the window axis last: (n_frames-F+1, n_features, F) -> (n_windows, F, n_features)
    return view[idx].transpose(0, 2, 1), starts
