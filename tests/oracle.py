"""Test oracle: one recording → windows, features and speech flags per channel, decoded whole.

:func:`analyze` decodes the whole recording at once: it is the plain reference that
:class:`ser_lib.stream.StreamAnalyzer` (what the job and ``ser predict`` run, through
:mod:`ser_lib.scoring`) is tested against, window for window (``tests/test_stream.py``,
``tests/test_audio.py``). Production code never calls it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from ser_lib.audio import AudioInfo, Source, load
from ser_lib.features import FeatureConfig, window_features
from ser_lib.speech import SpeechConfig, is_speech
from ser_lib.stream import ChannelWindows


@dataclass
class Recording:
    """A decoded recording cut into windows: ``info`` describes the original file
    (native sample rate, channels); ``duration_s`` is seconds."""

    info: AudioInfo
    duration_s: float
    channels: list[ChannelWindows]


def analyze(source: Source, fcfg: FeatureConfig, hop_s: float, speech_cfg: SpeechConfig,
            channel_names, timings: dict | None = None) -> Recording:
    """Decode ``source`` and cut each channel into feature windows.

    Args:
        source: path, bytes or binary file object (see :func:`ser_lib.audio.read_audio`).
        fcfg: the model's feature configuration (sample rate, window length).
        hop_s: hop between windows, seconds.
        speech_cfg: speech/non-speech rule.
        channel_names: callable ``n_channels -> tuple[str, ...]``.
        timings: if given, ``decode_s`` (decode + resample) and ``features_s`` (windows,
            features, speech flags) wall seconds are added to it.

    Raises:
        AudioError: the recording cannot be decoded (see :func:`ser_lib.audio.read_audio`).
    """
    t0 = time.perf_counter()
    samples, info = load(source, fcfg.sample_rate)
    t1 = time.perf_counter()
    names = channel_names(samples.shape[0])
    grid = fcfg.grid(hop_s)
    channels = []
    for name, y in zip(names, samples):
        feats, starts = window_features(y, fcfg, hop_s)
        start_s, end_s = grid.bounds_s(len(y), starts)
        channels.append(ChannelWindows(name, feats, start_s, end_s, is_speech(feats, speech_cfg)))
    if timings is not None:
        timings["decode_s"] = timings.get("decode_s", 0.0) + (t1 - t0)
        timings["features_s"] = timings.get("features_s", 0.0) + (time.perf_counter() - t1)
    return Recording(info, samples.shape[1] / fcfg.sample_rate, channels)
