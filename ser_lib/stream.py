"""Streaming analysis of one recording: decode, resample and window it chunk by chunk.

:func:`tests.oracle.analyze` (the test oracle) decodes a whole recording into memory, so its peak
memory grows with the call's length (a 2-hour stereo call at 44.1 kHz is ~2.5 GB of
float32 before resampling). :class:`StreamAnalyzer` gives the *same windows* while
holding only one chunk of audio plus one window of frames per channel:

* decode ``chunk_s`` seconds at a time (:meth:`ser_lib.audio.AudioReader.blocks`, the decoder
  and error rules :func:`ser_lib.audio.read_audio` drains too),
* resample with ``soxr.ResampleStream`` (its output is bit-identical to one-shot
  ``soxr.resample`` whatever the chunking),
* compute every *complete* frame of the buffered samples
  (:func:`ser_lib.features.frame_features`: features are per frame, so a frame computed
  from a chunk is the frame computed from the whole channel), keep the
  ``n_fft - hop_length`` samples a next frame still needs,
* emit each window as soon as its samples are all seen, drop frames no window can
  need any more (the final "last partial window" of :mod:`ser_lib.windows` can start up
  to one window before the current end, so one window of frames is kept).

``tests/test_stream.py`` checks that the windows, bounds, features and speech flags
equal :func:`tests.oracle.analyze`'s for several lengths and chunk sizes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import soxr

from .audio import AudioInfo, AudioReader, Source
from .features import FeatureConfig, frame_features, window_features
from .speech import RMS_DB_COLUMN, SpeechConfig, speech_decisions, talk_windows
from .talk import LoudnessMeter


@dataclass
class ChannelWindows:
    """The windows of one channel.

    Attributes:
        channel: channel name (e.g. ``agent``).
        features: ``(n_windows, frames_per_window, n_features)`` float32.
        start_s, end_s: ``(n_windows,)`` float64 window bounds, seconds; ``end_s`` is
            clipped to the channel's duration.
        speech: ``(n_windows,)`` bool speech flags.
        active: ``(n_windows, frames_per_window)`` bool frame decisions behind the flags
            (:func:`ser_lib.speech.speech_decisions`), 10 ms apart.
        start_frame: ``(n_windows,)`` int64 index of each window's first frame.
        audio: with ``keep_audio``, each window's samples at the model rate: a list of
            ``n_windows`` float32 ``(<= window_samples,)`` arrays (shorter where the window is
            clipped at the recording's end); else None.
        talk: ``(n_windows,)`` bool: windows that may hold talk (:func:`ser_lib.speech.talk_windows`;
            None without a talk margin).
    """

    channel: str
    features: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    speech: np.ndarray
    active: np.ndarray | None = None
    start_frame: np.ndarray | None = None
    audio: list | None = None
    talk: np.ndarray | None = None


class _Channel:
    """Streaming window state of one channel (samples at the model rate)."""

    def __init__(self, cfg: FeatureConfig, hop_s: float, meter: LoudnessMeter | None = None,
                 keep_audio: bool = False):
        self.cfg = cfg
        self.meter = meter                        # fed the frames' K-weighted energies
        self.levels: list[np.ndarray] = []        # every frame's rms_db, in order (talk frames)
        self.keep_audio = keep_audio
        self.samples = np.zeros(0, np.float32)    # keep_audio: samples from index `s0` on
        self.s0 = 0
        self.audio: list = []                     # keep_audio: samples of the windows just emitted
        self.hop_s = hop_s
        self.grid = cfg.grid(hop_s)
        self.fh, self.n_fft, self.F = cfg.hop_length, cfg.n_fft, cfg.frames_per_window
        self.W, self.H = cfg.window_samples, self.grid.hop
        self.buf = np.zeros(0, np.float32)        # samples from frame index `fr_next` on
        self.fr_next = 0                          # next frame to compute (absolute index)
        self.frames = np.zeros((0, cfg.n_features), np.float32)
        self.fr0 = 0                              # absolute index of frames[0]
        self.head = np.zeros(0, np.float32)       # first window of samples (short recordings)
        self.total = 0                            # samples pushed
        self.k_next = 0                           # next regular window index
        self.last_start = -1                      # start sample of the last window emitted

    def _slice(self, starts: list[int]) -> np.ndarray:
        idx = np.asarray(starts, dtype=np.int64) // self.fh - self.fr0
        return np.stack([self.frames[i:i + self.F] for i in idx]) if len(idx) else \
            np.zeros((0, self.F, self.cfg.n_features), np.float32)

    def push(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add samples; return ``(features, starts)`` of the windows now complete."""
        self.total += len(y)
        if len(self.head) < self.W:
            self.head = np.concatenate([self.head, y[:self.W - len(self.head)]])
        self.buf = np.concatenate([self.buf, y]) if len(self.buf) else np.asarray(y, np.float32)
        if len(self.buf) >= self.n_fft:
            m = 1 + (len(self.buf) - self.n_fft) // self.fh
            seg = self.buf[:(m - 1) * self.fh + self.n_fft]
            if self.meter is None:
                new = frame_features(seg, self.cfg)
            else:  # the loudness from the same STFT frames (ser_lib.talk.LoudnessMeter)
                new, energy = frame_features(seg, self.cfg, power_weights=self.meter.weights)
                self.meter.add_frames(self.fr_next, energy)
            self.levels.append(new[:, RMS_DB_COLUMN].copy())
            self.frames = np.concatenate([self.frames, new]) if len(self.frames) else new
            self.buf = self.buf[m * self.fh:].copy()
            self.fr_next += m
        starts = []
        while self.k_next * self.H + self.W <= self.total:
            starts.append(self.k_next * self.H)
            self.k_next += 1
        feats = self._slice(starts)
        if starts:
            self.last_start = starts[-1]
        # frames a later window may need: the next regular one, or the final window that
        # ends at the recording's end (it starts at >= (total - W) rounded down to the frame grid)
        keep = min(self.k_next * self.H // self.fh, max(0, self.total - self.W) // self.fh)
        if self.keep_audio:
            self.samples = np.concatenate([self.samples, y]) if len(self.samples) else np.asarray(y, np.float32)
            self.audio = [self.samples[s - self.s0:s - self.s0 + self.W].copy() for s in starts]
            if keep * self.fh > self.s0:
                self.samples = self.samples[keep * self.fh - self.s0:].copy()
                self.s0 = keep * self.fh
        if keep > self.fr0:
            self.frames = self.frames[keep - self.fr0:].copy()
            self.fr0 = keep
        return feats, np.asarray(starts, dtype=np.int64)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """The windows only known at the end: a short recording's single padded window, or
        the last partial window of :meth:`ser_lib.windows.WindowGrid.starts`."""
        n = self.total
        if n < self.W:
            self.audio = [self.head[:n].copy()]
            return window_features(self.head[:n], self.cfg, self.hop_s)
        last = (n - self.W) // self.fh * self.fh
        if last > self.last_start:
            self.last_start = last
            self.audio = [self.samples[last - self.s0:].copy()] if self.keep_audio else []
            return self._slice([last]), np.asarray([last], dtype=np.int64)
        self.audio = []
        return self._slice([]), np.zeros(0, dtype=np.int64)


class StreamAnalyzer:
    """Iterate a recording's windows chunk by chunk (same results as :func:`tests.oracle.analyze`).

    Usage::

        sa = StreamAnalyzer(path, fcfg, hop_s, speech_cfg, channel_names)
        for chunk in sa:            # list[ChannelWindows], one per channel, possibly empty
            ...
        sa.info, sa.duration_s      # known once the iteration is done

    Args:
        source: path, bytes or seekable binary file object.
        chunk_s: seconds of audio decoded at a time (bounds memory, not results).
        timings: if given, ``decode_s`` and ``features_s`` are added to it.
        talk_margin_db: margin of the frame decisions in :attr:`ChannelWindows.active`
            (:func:`ser_lib.speech.speech_decisions`; None: the speech rule's own).
        keep_audio: also give each window's samples (:attr:`ChannelWindows.audio`, for the
            speech encoder of the accurate model); memory stays bounded by one chunk plus
            one window per channel.

    Raises (while iterating):
        AudioError: as :func:`ser_lib.audio.read_audio` (``empty``, ``unreadable``,
        ``corrupt``, ``unsupported``, ``sample_rate``, ``no_samples``, ``non_finite``).
    """

    def __init__(self, source: Source, fcfg: FeatureConfig, hop_s: float, speech_cfg: SpeechConfig,
                 channel_names, chunk_s: float = 60.0, timings: dict | None = None,
                 talk_margin_db: float | None = None, keep_audio: bool = False):
        self.source, self.fcfg, self.hop_s, self.speech_cfg = source, fcfg, hop_s, speech_cfg
        self.keep_audio = keep_audio
        self.talk_margin_db = talk_margin_db
        self.channel_names, self.chunk_s = channel_names, chunk_s
        self.timings = timings if timings is not None else {}
        self.info: AudioInfo | None = None
        self.duration_s: float | None = None
        #: per channel, ITU-R BS.1770 integrated loudness of the model-rate signal (LUFS,
        #: None when gated out: :class:`ser_lib.talk.LoudnessMeter`), known once iterated
        self.loudness_lufs: list[float | None] = []
        #: per channel, every frame's ``rms_db`` (float32, 10 ms apart: 1.4 MB per channel-hour, the
        #: one thing kept for the whole recording; :func:`ser_lib.talk.channel_talk_frames`), known once iterated
        self.frame_levels: list[np.ndarray] = []
        #: the speech rule as applied to this source (:meth:`SpeechConfig.for_subtype`: its
        #: absolute floor follows the source's resolution), known once iteration has begun
        self.source_speech_cfg: SpeechConfig | None = None

    def _emit(self, names, states, results, speech_cfg: SpeechConfig) -> list[ChannelWindows]:
        out = []
        for name, st, (feats, starts) in zip(names, states, results):
            start_s, end_s = st.grid.bounds_s(st.total, starts)
            speech, active = speech_decisions(feats, speech_cfg, self.talk_margin_db)
            talk = None if self.talk_margin_db is None else talk_windows(feats, speech, active, speech_cfg)
            out.append(ChannelWindows(name, feats, start_s, end_s, speech, active, starts // st.fh,
                                      audio=st.audio if self.keep_audio else None, talk=talk))
        return out

    def __iter__(self) -> Iterator[list[ChannelWindows]]:
        t = self.timings
        with AudioReader(self.source) as reader:
            sr_in, n_ch = reader.info.sample_rate, reader.info.n_channels
            # the absolute floor of the speech rule follows the source's resolution
            speech_cfg = self.source_speech_cfg = self.speech_cfg.for_subtype(reader.info.subtype)
            names = self.channel_names(n_ch)
            meters = [LoudnessMeter(self.fcfg) for _ in range(n_ch)]
            states = [_Channel(self.fcfg, self.hop_s, m, self.keep_audio) for m in meters]
            rs = None if sr_in == self.fcfg.sample_rate else soxr.ResampleStream(
                sr_in, self.fcfg.sample_rate, n_ch, dtype="float32", quality="HQ")
            t0 = time.perf_counter()
            for data, last in reader.blocks(self.chunk_s * sr_in):
                if rs is not None:
                    data = rs.resample_chunk(data, last=last)
                t1 = time.perf_counter()
                results = [st.push(np.ascontiguousarray(data[:, c])) for c, st in enumerate(states)]
                t["decode_s"] = t.get("decode_s", 0.0) + (t1 - t0)
                t["features_s"] = t.get("features_s", 0.0) + (time.perf_counter() - t1)
                if any(len(r[1]) for r in results):
                    yield self._emit(names, states, results, speech_cfg)
                t0 = time.perf_counter()
        t1 = time.perf_counter()
        results = [st.finish() for st in states]
        t["features_s"] = t.get("features_s", 0.0) + (time.perf_counter() - t1)
        self.info = reader.info
        self.duration_s = states[0].total / self.fcfg.sample_rate
        self.loudness_lufs = [m.lufs() for m in meters]
        self.frame_levels = [np.concatenate(st.levels) if st.levels else np.zeros(0, np.float32) for st in states]
        if any(len(r[1]) for r in results):
            yield self._emit(names, states, results, speech_cfg)

