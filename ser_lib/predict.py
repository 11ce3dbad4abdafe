"""Analyse one recording without Spark (``ser predict``): same windows, model and timeline code as the job."""
from __future__ import annotations

from ser_lib import artifact as art
from ser_lib.analysis import analyze
from ser_lib.config import JobConfig
from ser_lib.inference import Predictor


def predict_file(path: str, conf_path: str | None = None, model_path: str | None = None) -> dict:
    """Summary and timeline of one recording.

    Returns:
        :func:`ser_lib.timeline.summarize_call`'s dict plus ``duration_s``, ``n_channels``,
        ``sample_rate`` (native, Hz), ``model_version`` and ``segments`` (list of dicts).

    Raises:
        AudioError, ArtifactError, ConfigError.
    """
    import numpy as np
    import pandas as pd

    from ser_lib.timeline import summarize_call

    cfg = JobConfig.load(conf_path)
    predictor = Predictor.from_path(model_path or cfg.model_path or art.DEFAULT_ARTIFACT)
    fcfg = predictor.meta.feature_config
    rec = analyze(path, fcfg, cfg.hop_s, cfg.speech, cfg.channel_names)
    labels = predictor.labels
    rows = []
    for ch in rec.channels:
        probs = np.full((len(ch.speech), len(labels)), np.nan, dtype=np.float32)
        if ch.speech.any():
            probs[ch.speech] = predictor.predict(ch.features[ch.speech])
        for i in range(len(ch.speech)):
            speech = bool(ch.speech[i])
            best = int(np.argmax(probs[i])) if speech else None
            rows.append({"channel": ch.channel, "segment_index": i, "start_s": float(ch.start_s[i]),
                         "end_s": float(ch.end_s[i]), "is_speech": speech,
                         "emotion": labels[best] if speech else None,
                         "confidence": float(probs[i, best]) if speech else None,
                         **{f"p_{lab}": (float(probs[i, j]) if speech else None) for j, lab in enumerate(labels)}})
    summary = summarize_call(pd.DataFrame(rows), labels)
    summary.update(duration_s=rec.duration_s, n_channels=rec.info.n_channels, sample_rate=rec.info.sample_rate,
                   model_version=predictor.meta.version, segments=rows)
    return summary
