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
from .dimensions import arousal
from .measures import arousal_measures, channel_measures, quarter_shares, raised_voice_measures
from .smoothing import SmoothingConfig, smooth
from .speech import SpeechConfig
from .stream import StreamAnalyzer
from .talk import FRAME_S, TalkConfig, channel_talk_frames, conversation_measures, talk_spurts
from .timeline import cells, summarize_call
from .vocal_level import active_level_db, relative_level_db


@dataclass
class ScoredChannel:
    """The scored windows of one channel, in time order.

    Attributes:
        channel: channel name (e.g. ``agent``).
        start_s, end_s: ``float64 (n,)`` window bounds, seconds (``end_s`` clipped to the
            channel's duration).
        speech: ``bool (n,)`` speech flags (:func:`ser_lib.speech.is_speech`).
        probs: ``float32 (n, n_labels)`` model probabilities (the accurate model's: the
            fusion of the CNN's and the encoder head's); NaN rows where not speech (the model
            is not run there).
        emotion: ``object (n,)`` most probable label, None where not speech.
        confidence: ``float32 (n,)`` its probability, NaN where not speech.
        smoothed: ``int64 (n,)`` label index after smoothing (:func:`ser_lib.smoothing.smooth`),
            -1 where not speech; emotion_smoothed: ``object (n,)`` that label, None where not speech.
        talk_frames: ``bool (ceil(duration_s / 0.01),)`` talk decision per 10 ms frame
            (:func:`ser_lib.talk.channel_talk_frames`); None when not computed.
        loudness_lufs: ITU-R BS.1770 integrated loudness, LUFS (:class:`ser_lib.talk.LoudnessMeter`);
            None when gated out (silence) or not computed.
        level_db, level_rel_db: ``float32 (n,)`` each speech window's active level, dBFS, and
            that minus the channel's median (:mod:`ser_lib.vocal_level`); NaN where not speech;
            None when not computed.
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
    talk_frames: np.ndarray | None = None
    loudness_lufs: float | None = None
    level_db: np.ndarray | None = None
    level_rel_db: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.start_s)

    def levels(self) -> tuple[np.ndarray, np.ndarray]:
        """``(level_db, level_rel_db)`` float32 ``(n,)``; all NaN when not computed."""
        return tuple(np.full(len(self), np.nan, np.float32) if x is None else np.asarray(x, np.float32)
                     for x in (self.level_db, self.level_rel_db))


@dataclass
class ScoredRecording:
    """A scored recording: ``info`` describes the original file (native sample rate,
    channels, format); ``duration_s`` is seconds; one :class:`ScoredChannel` per channel."""

    info: AudioInfo
    duration_s: float
    channels: list[ScoredChannel]


def score_recording(source: Source, predictor, fcfg: FeatureConfig, hop_s: float, speech_cfg: SpeechConfig,
                    channel_names, chunk_s: float, timings: dict | None = None,
                    smoothing: SmoothingConfig | None = None, talk: TalkConfig | None = None) -> ScoredRecording:
    """Decode, window and score ``source`` chunk by chunk.

    Args:
        source: path, bytes or binary file object (:func:`ser_lib.audio.read_audio`).
        predictor: a :class:`ser_lib.runtime.Predictor` (``predict`` and ``labels``), or the
            accurate model (:class:`ser_lib.models.AccuratePredictor`, which has an ``encoder``):
            then each channel's speech windows are also encoded (their samples at the model
            rate), and once the channel ends its ``probs`` become the fusion of the CNN's and
            the encoder head's, the head's inputs standardised over that channel's speech
            windows (:meth:`ser_lib.encoder_head.EncoderModel.predict_features`).
        fcfg: the model's feature configuration; hop_s: hop between windows, seconds;
        speech_cfg: speech/non-speech rule; channel_names: ``n_channels -> names``;
        chunk_s: seconds of audio decoded at a time.
        timings: if given, ``decode_s`` and ``features_s`` (see
            :class:`~ser_lib.stream.StreamAnalyzer`) and ``model_s`` wall seconds are added to it
            (the accurate model's encoder time is in ``model_s`` and also in ``encoder_s``).
        smoothing: how each channel's labels are smoothed (default: ``SmoothingConfig()``,
            the ``timeline`` defaults of ``conf/job.yaml``).
        talk: the talk-frame rules (default ``TalkConfig()``, :mod:`ser_lib.talk`).

    Returns:
        :class:`ScoredRecording`, channels in the file's order.

    Raises:
        AudioError: the recording cannot be decoded, is empty or has an unsupported
            sample rate (see :class:`ser_lib.audio.AudioReader`).
    """
    labels = np.asarray(predictor.labels, dtype=object)
    n_labels = len(labels)
    encoder = getattr(predictor, "encoder", None)  # the accurate model's encoder head
    sa = StreamAnalyzer(source, fcfg, hop_s, speech_cfg, channel_names, chunk_s, timings,
                        (talk or TalkConfig()).margin_db, keep_audio=encoder is not None)
    parts: dict[str, list] = {}
    acts: dict[str, list] = {}
    enc_rows: dict[str, list] = {}  # accurate model: encoder features of each channel's speech windows
    for chunk in sa:
        for ch in chunk:
            probs = np.full((len(ch.start_s), n_labels), np.nan, dtype=np.float32)
            if ch.speech.any():
                t0 = time.perf_counter()
                probs[ch.speech] = predictor.predict(ch.features[ch.speech])
                t1 = time.perf_counter()
                if encoder is not None:
                    enc_rows.setdefault(ch.channel, []).append(encoder.features(
                        [a for a, s in zip(ch.audio, ch.speech) if s], fcfg.sample_rate))
                if timings is not None:
                    t2 = time.perf_counter()
                    timings["model_s"] = timings.get("model_s", 0.0) + t2 - t0
                    if encoder is not None:
                        timings["encoder_s"] = timings.get("encoder_s", 0.0) + t2 - t1
            level = active_level_db(ch.features, ch.active)
            parts.setdefault(ch.channel, []).append((ch.start_s, ch.end_s, ch.speech, probs, level))
            act = acts.setdefault(ch.channel, [])
            if ch.talk is not None and ch.talk.any():  # the windows that may hold talk, speech or not
                act.append((ch.start_frame[ch.talk], ch.speech[ch.talk]))
    channels = []
    n_frames = int(np.ceil(round(sa.duration_s / FRAME_S, 6)))
    floor_db = sa.source_speech_cfg.floor_db
    for c, (name, chunks) in enumerate(parts.items()):
        start, end, speech, probs, level = (np.concatenate(x) for x in zip(*chunks))
        level_db, level_rel_db = relative_level_db(level, speech)
        if encoder is not None and speech.any():
            probs[speech] = encoder.predict_features(np.concatenate(enc_rows[name]), probs[speech], start[speech], hop_s)
        pieces = acts.get(name) or []
        starts = np.concatenate([p[0] for p in pieces]) if pieces else np.zeros(0, np.int64)
        is_speech = np.concatenate([p[1] for p in pieces]) if pieces else np.zeros(0, bool)
        talk_frames = channel_talk_frames(sa.frame_levels[c] if c < len(sa.frame_levels) else np.zeros(0),
                                          starts, fcfg.frames_per_window, n_frames, talk or TalkConfig(), floor_db,
                                          speech_starts=starts[is_speech])
        n = len(start)
        best = np.nanargmax(np.where(speech[:, None], probs, 0), axis=1)
        smoothed = smooth(probs, speech, smoothing or SmoothingConfig())
        channels.append(ScoredChannel(
            name, start, end, speech, probs,
            emotion=np.where(speech, labels[best], None),
            confidence=np.where(speech, probs[np.arange(n), best], np.nan).astype(np.float32),
            smoothed=smoothed, emotion_smoothed=np.where(smoothed >= 0, labels[np.maximum(smoothed, 0)], None),
            talk_frames=talk_frames, loudness_lufs=sa.loudness_lufs[c] if c < len(sa.loudness_lufs) else None,
            level_db=level_db, level_rel_db=level_rel_db))
    return ScoredRecording(sa.info, sa.duration_s, channels)


def summarize(rec: ScoredRecording, labels: list[str], episodes: EpisodeConfig | None = None,
              talk: TalkConfig | None = None) -> dict:
    """The call summary of a scored recording, from its **smoothed** labels (``{}`` without windows).

    Args:
        rec: from :func:`score_recording`; labels: the model's labels (columns of ``probs``);
        episodes: episode and call-measure rules (default ``EpisodeConfig()``);
        talk: talk-spurt rules (default ``TalkConfig()``).

    Returns:
        :func:`ser_lib.timeline.summarize_call`'s dict over the smoothed labels (timeline
        entry confidence: the raw window probability of the smoothed emotion, duration
        weighted), plus ``quarters`` (:func:`ser_lib.measures.quarter_shares`), the
        :func:`ser_lib.measures.channel_measures` maps, the arousal measures of
        :func:`ser_lib.measures.arousal_measures` (from the **raw** window probabilities'
        :func:`ser_lib.dimensions.arousal`; ``arousal`` added to each quarter), and ``episodes``: ``[{channel,
        episode_index, emotion, start_s, end_s, duration_s, mean_confidence,
        peak_confidence}]`` (:func:`ser_lib.episodes.channel_episodes`), the conversation
        measures of :func:`conversation_fields` and ``turns``: ``[{channel, turn_index,
        start_s, end_s}]`` (talk spurts, :func:`ser_lib.talk.talk_spurts`).
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
    out.update(conversation_fields(rec, out["quarters"], talk or TalkConfig()))
    out.update(arousal_measures({ch.channel: (ch.start_s[ch.speech], ch.end_s[ch.speech],
                                              arousal(ch.probs[ch.speech], labels)) for ch in rec.channels},
                                out["quarters"]))
    out.update(raised_voice_measures({ch.channel: (ch.start_s[ch.speech], ch.end_s[ch.speech],
                                                   ch.levels()[1][ch.speech]) for ch in rec.channels},
                                     out["quarters"]))
    return out


def conversation_fields(rec: ScoredRecording, quarters: list[dict], cfg: TalkConfig) -> dict:
    """The conversation columns of the ``calls`` table and the call's ``turns``.

    Args:
        rec: a scored recording whose channels carry ``talk_frames`` and ``loudness_lufs``.
        quarters: :func:`ser_lib.measures.quarter_shares` entries; ``talk_s``,
            ``non_talk_s`` and ``overlap_s`` are added to each, in place
            (:func:`ser_lib.talk.conversation_measures`).

    Returns:
        ``channel_talk_s``, ``non_talk_s``, ``longest_non_talk_s``, ``overlap_s``,
        ``channel_interruptions``, ``channel_loudness_lufs`` (channel → LUFS, None where
        gated out) and ``turns`` (see :func:`summarize`; bounds rounded to 1 ms).
    """
    spurts = {ch.channel: talk_spurts(ch.talk_frames if ch.talk_frames is not None else np.zeros(0, bool), cfg)
              for ch in rec.channels}
    m = conversation_measures(spurts, rec.duration_s, cfg)
    for q in quarters:
        q.update(m["quarter_talk"].get((q["channel"], q["quarter"]), {}))
    out = {k: m[k] for k in ("channel_talk_s", "non_talk_s", "longest_non_talk_s", "overlap_s",
                             "channel_interruptions")}
    out["channel_loudness_lufs"] = {ch.channel: ch.loudness_lufs for ch in rec.channels}
    out["turns"] = [{"channel": c, "turn_index": i, "start_s": round(float(a), 3), "end_s": round(float(b), 3)}
                    for c, sp in spurts.items() for i, (a, b) in enumerate(sp)]
    return out
