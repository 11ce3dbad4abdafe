"""One recording analysed without Spark: ``ser predict`` and the web upload page.

The same steps as the job's (:mod:`ser_lib.process`): the window-length check, the model's
batch size, :func:`ser_lib.scoring.score_recording`, the segment-row builder
:func:`ser_lib.process.segment_columns` and the call summary, so a file gets the same
segments, emotions and timeline from either.
"""
from __future__ import annotations

from ser_lib.audio import Source
from ser_lib.config import JobConfig
from ser_lib.process import check_model, segment_columns, segment_records
from ser_lib.models import load_scorer, read_bundle
from ser_lib.scoring import score_recording, summarize


def load_predictor(cfg: JobConfig, model_path: str | None = None, variant: str | None = None):
    """The model for ``cfg``: ``variant`` (else ``model.variant``: ``default`` or
    ``accurate``, :mod:`ser_lib.models`) over the CNN artifact ``model_path``, else
    ``model.path``, else the shipped one, checked against ``cfg``'s windows
    (:func:`ser_lib.process.check_model`), scoring ``model.batch_size`` windows per call.

    Returns:
        a :class:`ser_lib.runtime.Predictor`, or for ``accurate`` a
        :class:`ser_lib.models.AccuratePredictor`.

    Raises:
        ArtifactError, ConfigError: unreadable or incompatible model, unknown variant.
    """
    bundle = read_bundle(variant or cfg.model_variant, model_path or cfg.model_path, cfg.encoder_path)
    check_model(cfg, bundle.meta)
    return load_scorer(bundle, cfg.batch_size)


def predict_file(path: str, conf_path: str | None = None, model_path: str | None = None,
                 variant: str | None = None) -> dict:
    """Summary and timeline of one recording, streamed chunk by chunk like the job does
    (memory bounded by ``chunk_s`` of ``conf/job.yaml``, not by the call's length).

    Args:
        variant: ``default`` or ``accurate`` (None: ``model.variant`` of the configuration).

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
    return predict_source(path, cfg, load_predictor(cfg, model_path, variant))


def predict_source(source: Source, cfg: JobConfig, predictor) -> dict:
    """:func:`predict_file` with a loaded configuration and model (``ser serve`` keeps one
    of each for all uploads; :func:`load_predictor` loads one). ``source``: path, bytes or
    binary file object.

    Returns / Raises: as :func:`predict_file` (AudioError for a file it cannot decode).
    """
    labels = predictor.labels
    rec = score_recording(source, predictor, predictor.meta.feature_config, cfg.hop_s, cfg.speech,
                          cfg.channel_names, cfg.chunk_s, smoothing=cfg.timeline, talk=cfg.talk)
    rows = [r for ch in rec.channels for r in segment_records(segment_columns(ch, labels))]
    summary = summarize(rec, labels, cfg.episodes, cfg.talk)
    summary.update(duration_s=rec.duration_s, n_channels=rec.info.n_channels, sample_rate=rec.info.sample_rate,
                   model_version=predictor.meta.version, warnings=rec.info.warnings, segments=rows)
    return summary
