"""Analyse one recording without Spark (``ser predict``): the job's scoring and timeline code."""
from __future__ import annotations

from ser_lib import artifact as art
from ser_lib.audio import Source
from ser_lib.config import JobConfig
from ser_lib.inference import Predictor
from ser_lib.scoring import score_recording, summarize


def predict_file(path: str, conf_path: str | None = None, model_path: str | None = None) -> dict:
    """Summary and timeline of one recording, streamed chunk by chunk like the job does
    (memory bounded by ``chunk_s`` of ``conf/job.yaml``, not by the call's length).

    Returns:
        :func:`ser_lib.timeline.summarize_call`'s dict plus ``duration_s``, ``n_channels``,
        ``sample_rate`` (native, Hz), ``model_version``, ``warnings`` (str or None, e.g.
        ``truncated: header 66.4 s, decoded 25.0 s``) and ``segments``: one dict per
        window and channel with the job's ``segments`` columns (``channel, segment_index,
        start_s, end_s, is_speech, emotion, confidence, emotion_smoothed, p_<label>``; None
        where not speech). The timeline, shares, measures and ``episodes`` follow
        ``timeline.smoothing`` (see :func:`ser_lib.scoring.summarize`).

    Raises:
        AudioError, ArtifactError, ConfigError.
    """
    cfg = JobConfig.load(conf_path)
    predictor = Predictor.from_path(model_path or cfg.model_path or art.DEFAULT_ARTIFACT)
    return predict_source(path, cfg, predictor)


def predict_source(source: Source, cfg: JobConfig, predictor: Predictor) -> dict:
    """:func:`predict_file` with a loaded configuration and model (``ser serve`` keeps one
    of each for all uploads). ``source``: path, bytes or binary file object.

    Returns / Raises: as :func:`predict_file` (AudioError for a file it cannot decode).
    """
    labels = predictor.labels
    rec = score_recording(source, predictor, predictor.meta.feature_config, cfg.hop_s, cfg.speech,
                          cfg.channel_names, cfg.chunk_s, smoothing=cfg.timeline)
    rows = []
    for ch in rec.channels:
        for i in range(len(ch)):
            speech = bool(ch.speech[i])
            rows.append({"channel": ch.channel, "segment_index": i, "start_s": float(ch.start_s[i]),
                         "end_s": float(ch.end_s[i]), "is_speech": speech,
                         "emotion": ch.emotion[i],
                         "confidence": float(ch.confidence[i]) if speech else None,
                         "emotion_smoothed": ch.emotion_smoothed[i],
                         **{f"p_{lab}": (float(ch.probs[i, j]) if speech else None) for j, lab in enumerate(labels)}})
    summary = summarize(rec, labels, cfg.episodes)
    summary.update(duration_s=rec.duration_s, n_channels=rec.info.n_channels, sample_rate=rec.info.sample_rate,
                   model_version=predictor.meta.version, warnings=rec.info.warnings, segments=rows)
    return summary
