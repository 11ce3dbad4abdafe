"""Audio decoding and resampling.

Decoding is soundfile's (libsndfile): WAV (PCM 8/16/24/32-bit, float, mu-law,
A-law), FLAC, OGG Vorbis/Opus and MP3 (libsndfile >= 1.1). Resampling is soxr's
HQ mode (the same resampler librosa uses by default, ``res_type="soxr_hq"``).
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import BinaryIO, Union

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError

Source = Union[str, os.PathLike, bytes, BinaryIO]

#: Input sample rates we accept, Hz. Below 8 kHz speech loses its formants; above
#: 48 kHz is not call audio and usually means a mis-labelled file.
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 48000


@dataclass(frozen=True)
class AudioInfo:
    """Header facts of a recording.

    Attributes:
        sample_rate: native sample rate, Hz.
        n_channels: number of channels.
        n_samples: samples per channel (frames in libsndfile's terms).
        format: container, e.g. ``WAV``, ``FLAC``.
        subtype: encoding, e.g. ``PCM_16``, ``ULAW``.
    """

    sample_rate: int
    n_channels: int
    n_samples: int
    format: str
    subtype: str

    @property
    def duration_s(self) -> float:
        """Duration in seconds."""
        return self.n_samples / self.sample_rate


def _open(source: Source):
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise AudioError("empty", "file is empty (0 bytes)")
        return io.BytesIO(source)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            if os.path.getsize(path) == 0:
                raise AudioError("empty", "file is empty (0 bytes)")
        except OSError as err:
            raise AudioError("unreadable", f"cannot read {path}: {err.strerror or err}") from err
        if not os.access(path, os.R_OK):
            raise AudioError("unreadable", f"cannot read {path}: permission denied")
    return source


def read_audio(source: Source) -> tuple[np.ndarray, AudioInfo]:
    """Decode a whole recording.

    Args:
        source: a path, the file's bytes, or a seekable binary file object.

    Returns:
        ``(samples, info)``: ``samples`` is ``np.ndarray[shape=(n_channels, n_samples), dtype=float32]``
        in [-1, 1] at the native sample rate ``info.sample_rate`` (Hz).

    Raises:
        AudioError: ``empty``, ``unreadable``, ``corrupt``/``unsupported`` (libsndfile
        cannot decode it), ``no_samples`` (valid header, no audio), ``sample_rate``
        (outside 8-48 kHz) or ``non_finite`` (NaN/inf samples in a float file).
    """
    handle = _open(source)
    try:
        with sf.SoundFile(handle) as f:
            info = AudioInfo(f.samplerate, f.channels, f.frames, f.format, f.subtype)
            data = f.read(dtype="float32", always_2d=True)
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        text = str(err)
        reason = "unsupported" if "nsupported" in text or "not recognised" in text.lower() else "corrupt"
        raise AudioError(reason, f"cannot decode: {text}") from err
    except OSError as err:
        raise AudioError("unreadable", f"cannot read: {err}") from err
    if not MIN_SAMPLE_RATE <= info.sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError("sample_rate", f"sample rate {info.sample_rate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz")
    if data.shape[0] == 0:
        raise AudioError("no_samples", "the file has a valid header but no audio samples")
    if not np.isfinite(data).all():
        raise AudioError("non_finite", "the recording contains NaN or infinite samples")
    # A truncated file decodes to fewer samples than its header promises; keep what is there.
    info = AudioInfo(info.sample_rate, info.n_channels, data.shape[0], info.format, info.subtype)
    return np.ascontiguousarray(data.T), info


def resample(samples: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample along the last axis with soxr HQ.

    Args:
        samples: ``np.ndarray[shape=(..., n), dtype=float32]``.
        orig_sr, target_sr: sample rates, Hz.

    Returns:
        ``np.ndarray[shape=(..., round(n * target_sr / orig_sr)), dtype=float32]``;
        the input itself when the rates are equal.
    """
    if orig_sr == target_sr:
        return samples
    if samples.ndim == 1:
        return soxr.resample(samples, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)
    # soxr wants (n, channels)
    out = soxr.resample(samples.T, orig_sr, target_sr, quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def load(source: Source, sample_rate: int) -> tuple[np.ndarray, AudioInfo]:
    """Decode a recording and resample every channel to ``sample_rate`` Hz.

    Returns:
        ``(samples, info)`` with ``samples`` of shape ``(n_channels, n)``, float32,
        and ``info`` describing the *original* file.

    Raises:
        AudioError: see :func:`read_audio`.
    """
    samples, info = read_audio(source)
    return resample(samples, info.sample_rate, sample_rate), info
