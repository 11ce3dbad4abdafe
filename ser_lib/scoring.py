"""One recording → scored windows per channel (no Spark): the step the job and ``ser predict`` share.

:func:`score_recording` streams a recording through :class:`ser_lib.stream.StreamAnalyzer`
(memory bounded by one chunk, whatever the call's length), runs the model on the speech
windows of each chunk, smooths each channel's labels (:mod:`ser_lib.smoothing`) and returns
per-channel arrays; :func:`summarize` turns them into the call summary, timeline, call
measures and episodes. :mod:`ser_lib.process` (the Spark job's rows) and
:mod:`ser_lib.one_recording` (``ser predict``, web uploads) both build their segment rows
from these arrays with :func:`ser_lib.process.segment_columns`, so a file gets the same
segments, emotions and timeline from either.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .audio import AudioInfo, Source
from .episodes import EpisodeConfig, channel_episodes
from .features import FeatureConfig
from .measures import channel_measures, quarter_shares
from .smoothing import SmoothingConfig, smooth
from .speech import SpeechConfig
from .stream import StreamAnalyzer
from .timeline import cells, summarize_call


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
        smoothed: ``int64 (n,)`` label index after smoothing (:func:`ser_lib.smoothing.smooth`),
            -1 where not speech; emotion_smoothed: ``object (n,)`` that label, None where not speech.
    """

    channel: str
    start_s: np.ndarray
    end_s: np.ndarray
    speech: np.ndarray
    probs: np.ndarray
    emotion: np.ndarray
    confidence: np.ndarray
    smoothed: np.ndarray
    emotion_smoothed: np.ndarray

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
                    channel_names, chunk_s: float, timings: dict | None = None,
                    smoothing: SmoothingConfig | None = None) -> ScoredRecording:
    """Decode, window and score ``source`` chunk by chunk.

    Args:
        source: path, bytes or binary file object (:func:`ser_lib.audio.read_audio`).
        predictor: a :class:`ser_lib.runtime.Predictor` (``predict`` and ``labels``).
        fcfg: the model's feature configuration; hop_s: hop between windows, seconds;
        speech_cfg: speech/non-speech rule; channel_names: ``n_channels -> names``;
        chunk_s: seconds of audio decoded at a time.
        timings: if given, ``decode_s`` and ``features_s`` (see
            :class:`~ser_lib.stream.StreamAnalyzer`) and ``model_s`` wall seconds are added to it.
        smoothing: how each channel's labels are smoothed (default: ``SmoothingConfig()``,
            the ``timeline`` defaults of ``conf/job.yaml``).

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
        smoothed = smooth(probs, speech, smoothing or SmoothingConfig())
        channels.append(ScoredChannel(
            name, start, end, speech, probs,
            emotion=np.where(speech, labels[best], None),
            confidence=np.where(speech, probs[np.arange(n), best], np.nan).astype(np.float32),
            smoothed=smoothed, emotion_smoothed=np.where(smoothed >= 0, labels[np.maximum(smoothed, 0)], None)))
    return ScoredRecording(sa.info, sa.duration_s, channels)


def summarize(rec: ScoredRecording, labels: list[str], episodes: EpisodeConfig | None = None) -> dict:
    """The call summary of a scored recording, from its **smoothed** labels (``{}`` without windows).

    Args:
        rec: from :func:`score_recording`; labels: the model's labels (columns of ``probs``);
        episodes: episode and call-measure rules (default ``EpisodeConfig()``).

    Returns:
        :func:`ser_lib.timeline.summarize_call`'s dict over the smoothed labels (timeline
        entry confidence: the raw window probability of the smoothed emotion, duration
        weighted), plus ``quarters`` (:func:`ser_lib.measures.quarter_shares`), the
        :func:`ser_lib.measures.channel_measures` maps, and ``episodes``: ``[{channel,
        episode_index, emotion, start_s, end_s, duration_s, mean_confidence,
        peak_confidence}]`` (:func:`ser_lib.episodes.channel_episodes`).
    """
    if not any(len(ch) for ch in rec.channels):
        return {}
    ecfg = episodes or EpisodeConfig()
    frames, per_channel = [], {}
    for ch in rec.channels:
        n = len(ch)
        # an entry's confidence: the raw probability of the label it shows, not of the raw argmax
        conf = np.where(ch.smoothed >= 0, ch.probs[np.arange(n), np.maximum(ch.smoothed, 0)], np.nan)
        frames.append(pd.DataFrame({"channel": ch.channel, "start_s": ch.start_s, "end_s": ch.end_s,
                                    "is_speech": ch.speech, "emotion": ch.emotion_smoothed, "confidence": conf}))
        c0, c1 = cells(ch.start_s, ch.end_s)
        per_channel[ch.channel] = channel_episodes(c0, c1, ch.smoothed, ch.probs, labels, ecfg)
    out = summarize_call(pd.concat(frames, ignore_index=True), labels)
    out["quarters"] = quarter_shares(out["timeline"], rec.duration_s, labels)
    out.update(channel_measures(out["timeline"], per_channel, ecfg.end_speech_s))
    out["episodes"] = [{"channel": ch, **e} for ch, eps in per_channel.items() for e in eps]
    return out
