"""Audio decoding and resampling.

Decoding is soundfile's (libsndfile): WAV (PCM 8/16/24/32-bit, float, mu-law,
A-law), FLAC, OGG Vorbis/Opus and MP3 (libsndfile >= 1.1). Resampling is soxr's
HQ mode (the same resampler librosa uses by default, ``res_type="soxr_hq"``).
"""
from __future__ import annotations

import dataclasses
import io
import os
import re
from dataclasses import dataclass
from typing import BinaryIO, Iterator, Union

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
        declared_samples: samples per channel the file's header promises
            (:func:`declared_frames`); more than ``n_samples`` when the file is truncated.
            None when unknown.
    """

    sample_rate: int
    n_channels: int
    n_samples: int
    format: str
    subtype: str
    declared_samples: int | None = None

    @property
    def duration_s(self) -> float:
        """Duration in seconds."""
        return self.n_samples / self.sample_rate

    @property
    def warnings(self) -> str | None:
        """What is odd about a recording that was still analysed, ``reason: details``
        (``truncated: header 66.4 s, decoded 25.0 s``), or None.

        Truncated: the header promises more than :data:`TRUNCATION_SLACK_S` seconds (for
        MP3, whose length may be estimated from the bitrate, three MPEG frames) more than
        the file holds. What is there is analysed.
        """
        if self.declared_samples is None:
            return None
        slack = max(TRUNCATION_SLACK_S * self.sample_rate, 3 * 1152 if self.format == "MP3" else 0)
        if self.declared_samples - self.n_samples <= slack:
            return None
        return (f"truncated: header {self.declared_samples / self.sample_rate:.1f} s, "
                f"decoded {self.duration_s:.1f} s")


#: Seconds a recording may fall short of its header before it is called truncated
#: (shorter gaps are padding and rounding, not missing speech).
TRUNCATION_SLACK_S = 0.1

# libsndfile clamps a WAV/AIFF data chunk that runs past the end of the file to what is
# there and logs the size the header declared: "data : 1062400 (should be 400000)".
_CLAMPED_CHUNK = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_PLACEHOLDER_SIZES = (0, 0x7FFFFFFF, 0xFFFFFFFF)  # "length unknown", written by streaming recorders


def declared_frames(f: sf.SoundFile) -> int:
    """Frames (samples per channel) that an open file's header promises.

    ``f.frames`` for most formats; for WAV and AIFF, whose data chunk libsndfile clamps
    to the bytes actually in the file, the frames of the chunk size the header declared
    (read from libsndfile's log). A placeholder size of a streamed file (0 or 0xFFFFFFFF)
    declares nothing: ``f.frames`` then.
    """
    m = _CLAMPED_CHUNK.search(f.extra_info or "")
    if not m or not f.frames:
        return f.frames
    declared, actual = int(m.group(1)), int(m.group(2))
    if declared in _PLACEHOLDER_SIZES or declared <= actual:
        return f.frames
    bytes_per_frame = max(1, round(actual / f.frames))
    return f.frames + (declared - actual) // bytes_per_frame


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


def _decode_error(err: Exception) -> AudioError:
    """The :class:`AudioError` for a libsndfile failure: ``unsupported`` when it names a
    format or encoding it lacks, ``corrupt`` otherwise."""
    # file objects print as "<_io.BytesIO object at 0x7f..>": keep error texts reproducible
    text = re.sub(r"<[^<>]* at 0x[0-9a-fA-F]+>", "<in-memory bytes>", str(err))
    low = text.lower()
    reason = "unsupported" if any(w in low for w in ("unsupported", "unimplemented", "not recognised")) else "corrupt"
    return AudioError(reason, f"cannot decode: {text}")


class _ForwardSoundFile(sf.SoundFile):
    """A :class:`soundfile.SoundFile` that python-soundfile treats as not seekable, so a
    read is only a read.

    After every read of a seekable file python-soundfile seeks to where the read ended;
    for MP3, libsndfile's seek restarts the decoder without its bit reservoir, so reading
    in blocks decodes differently from one whole read after each block boundary. The
    reader only reads forward and never needs the seek.
    """

    def seekable(self) -> bool:
        return False


class AudioReader:
    """A recording decoded block by block: the package's one decoder (whole-file reading,
    :func:`read_audio`, drains it; :class:`ser_lib.stream.StreamAnalyzer` streams it).

    Usage::

        with AudioReader(source) as reader:      # opens the file and checks its header
            for samples, last in reader.blocks(n):
                ...
        reader.info                              # n_samples: the samples actually decoded

    Args:
        source: a path, the file's bytes, or a seekable binary file object.

    Attributes:
        info: the header's facts; once :meth:`blocks` is exhausted, ``n_samples`` is the
            number of samples decoded (fewer than the header promises for a truncated
            file: what is there is kept, ``info.declared_samples`` keeps the header's).

    Raises:
        AudioError: on opening ``empty``, ``unreadable``, ``corrupt``/``unsupported``
        (libsndfile cannot decode it) or ``sample_rate`` (outside 8-48 kHz); see
        :meth:`blocks` for the rest.
    """

    def __init__(self, source: Source):
        handle = _open(source)
        try:
            self._file = _ForwardSoundFile(handle)
        except (sf.LibsndfileError, RuntimeError, TypeError) as err:
            raise _decode_error(err) from err
        except OSError as err:
            raise AudioError("unreadable", f"cannot read: {err}") from err
        f = self._file
        self.info = AudioInfo(f.samplerate, f.channels, f.frames, f.format, f.subtype, declared_frames(f))
        if not MIN_SAMPLE_RATE <= f.samplerate <= MAX_SAMPLE_RATE:
            f.close()
            raise AudioError("sample_rate", f"sample rate {f.samplerate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz")

    def __enter__(self) -> "AudioReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def blocks(self, n_samples: int) -> Iterator[tuple[np.ndarray, bool]]:
        """Decode the recording from the start, ``n_samples`` samples per channel at a time.

        Yields:
            ``(samples, last)``: ``samples`` is ``np.ndarray[shape=(m, n_channels), dtype=float32]``
            in [-1, 1], ``m == n_samples`` except in the last block (``last`` True, ``m``
            possibly 0).

        Raises:
            AudioError: ``corrupt``/``unsupported`` (a block cannot be decoded),
            ``non_finite`` (NaN/inf samples in a float file) or, after the last block,
            ``no_samples`` (valid header, no audio).
        """
        n_samples = max(1, int(n_samples))
        total = 0
        while True:
            try:
                data = self._file.read(n_samples, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as err:
                raise _decode_error(err) from err
            if len(data) and not np.isfinite(data).all():
                raise AudioError("non_finite", "the recording contains NaN or infinite samples")
            total += len(data)
            last = len(data) < n_samples
            if last:
                self.info = dataclasses.replace(self.info, n_samples=total)
            yield data, last
            if last:
                break
        if total == 0:
            raise AudioError("no_samples", "the file has a valid header but no audio samples")


#: Samples per channel :func:`read_audio` decodes at a time (about a minute at 8 kHz).
READ_BLOCK = 1 << 19


def read_audio(source: Source) -> tuple[np.ndarray, AudioInfo]:
    """Decode a whole recording (drains an :class:`AudioReader`).

    Args:
        source: a path, the file's bytes, or a seekable binary file object.

    Returns:
        ``(samples, info)``: ``samples`` is ``np.ndarray[shape=(n_channels, n_samples), dtype=float32]``
        in [-1, 1] at the native sample rate ``info.sample_rate`` (Hz); ``info.n_samples``
        is what was decoded (see :class:`AudioReader`).

    Raises:
        AudioError: ``empty``, ``unreadable``, ``corrupt``/``unsupported`` (libsndfile
        cannot decode it), ``no_samples`` (valid header, no audio), ``sample_rate``
        (outside 8-48 kHz) or ``non_finite`` (NaN/inf samples in a float file).
    """
    with AudioReader(source) as reader:
        data = np.concatenate([block for block, _ in reader.blocks(READ_BLOCK)])
    return np.ascontiguousarray(data.T), reader.info


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
