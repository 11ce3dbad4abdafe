"""One recording → scored windows per channel (no Spark): the step the job and ``ser predict`` share.

:func:`score_recording` streams a recording through :class:`ser_lib.stream.StreamAnalyzer`
(memory bounded by one chunk, whatever the call's length), runs the model on the speech
windows of each chunk and returns per-channel arrays; :func:`summarize` turns them into
the call summary and timeline. The Spark job's ``mapInArrow`` function and
``ser_lib.predict`` both build their segment rows from these arrays, so a file gets the
same segments, emotions and timeline from either.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .audio import AudioInfo, Source
from .features import FeatureConfig
from .speech import SpeechConfig
from .stream import StreamAnalyzer
from .timeline import summarize_call


@dataclass
class ScoredChannel:
    """The scored windows of one channel, in time order.

    Attributes:
        channel: channel name (e.g. ``agent``).
        start_s, end_s: ``float64 (n,)`` window bounds, seconds (``end_s`` clipped to the
            channel's duration).
        speech: ``bool (n,)`` speech flags (:func:`ser_lib.speech.is_speech`).
        probs: ``float32 (n, n_labels)`` model probabilities; NaN rows where not speech
            (the model is not run there).
        emotion: ``object (n,)`` most probable label, None where not speech.
        confidence: ``float32 (n,)`` its probability, NaN where not speech.
    """

    channel: str
    start_s: np.ndarray
    end_s: np.ndarray
    speech: np.ndarray
    probs: np.ndarray
    emotion: np.ndarray
    confidence: np.ndarray

    def __len__(self) -> int:
        return len(self.start_s)


@dataclass
class ScoredRecording:
    """A scored recording: ``info`` describes the original file (native sample rate,
    channels, format); ``duration_s`` is seconds; one :class:`ScoredChannel` per channel."""

    info: AudioInfo
    duration_s: float
    channels: list[ScoredChannel]


def score_recording(source: Source, predictor, fcfg: FeatureConfig, hop_s: float, speech_cfg: SpeechConfig,
                    channel_names, chunk_s: float, timings: dict | None = None) -> ScoredRecording:
    """Decode, window and score ``source`` chunk by chunk.

    Args:
        source: path, bytes or binary file object (:func:`ser_lib.audio.read_audio`).
        predictor: a :class:`ser_lib.inference.Predictor` (``predict`` and ``labels``).
        fcfg: the model's feature configuration; hop_s: hop between windows, seconds;
        speech_cfg: speech/non-speech rule; channel_names: ``n_channels -> names``;
        chunk_s: seconds of audio decoded at a time.
        timings: if given, ``decode_s`` and ``features_s`` (see
            :class:`~ser_lib.stream.StreamAnalyzer`) and ``model_s`` wall seconds are added to it.

    Returns:
        :class:`ScoredRecording`, channels in the file's order.

    Raises:
        AudioError: the recording cannot be decoded, is empty or has an unsupported
            sample rate (see :class:`ser_lib.audio.AudioReader`).
    """
    labels = np.asarray(predictor.labels, dtype=object)
    n_labels = len(labels)
    sa = StreamAnalyzer(source, fcfg, hop_s, speech_cfg, channel_names, chunk_s, timings)
    parts: dict[str, list] = {}
    for chunk in sa:
        for ch in chunk:
            probs = np.full((len(ch.start_s), n_labels), np.nan, dtype=np.float32)
            if ch.speech.any():
                t0 = time.perf_counter()
                probs[ch.speech] = predictor.predict(ch.features[ch.speech])
                if timings is not None:
                    timings["model_s"] = timings.get("model_s", 0.0) + time.perf_counter() - t0
            parts.setdefault(ch.channel, []).append((ch.start_s, ch.end_s, ch.speech, probs))
    channels = []
    for name, chunks in parts.items():
        start, end, speech, probs = (np.concatenate(x) for x in zip(*chunks))
        n = len(start)
        best = np.nanargmax(np.where(speech[:, None], probs, 0), axis=1)
        channels.append(ScoredChannel(
            name, start, end, speech, probs,
            emotion=np.where(speech, labels[best], None),
            confidence=np.where(speech, probs[np.arange(n), best], np.nan).astype(np.float32)))
    return ScoredRecording(sa.info, sa.duration_s, channels)


def summarize(rec: ScoredRecording, labels: list[str]) -> dict:
    """:func:`ser_lib.timeline.summarize_call` of a scored recording (``{}`` without windows)."""
    if not any(len(ch) for ch in rec.channels):
        return {}
    seg = pd.concat([pd.DataFrame({"channel": ch.channel, "start_s": ch.start_s, "end_s": ch.end_s,
                                   "is_speech": ch.speech, "emotion": ch.emotion, "confidence": ch.confidence})
                     for ch in rec.channels], ignore_index=True)
    return summarize_call(seg, labels)
