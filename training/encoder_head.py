"""Train the emotion head on the frozen speech encoder and write an encoder-head artifact
(:mod:`ser_lib.encoder_head`): ``encoder.onnx`` (exported from the installed resemblyzer
package), ``ENCODER_LICENSE.txt`` and ``encoder_head.json``.

The recipe is the best configuration of ``models/runs/2026-12-07-encoder`` (chosen on the
held-out corpora, so its numbers there are optimistic): per clip, the last LSTM layer's state
mean+std pooled over the clip's partials (:func:`ser_lib.encoder_head.segment_features`, the
code serving runs), standardised per speaker, then a multinomial logistic regression
(scikit-learn, C = 0.003, lbfgs) with every (corpus, emotion) pair given the same total weight.
The clips are encoded as the job hears them: at its 8 kHz model rate and through a G.711
telephone channel (:data:`CONDITIONS`; models/runs/2026-12-07-accurate chose this over wideband).
Needs the ``[train]`` install.

Usage: ``python -m training.encoder_head OUT_DIR [CORPUS_ROOT ...]`` (default root:
``$SER_CORPORA`` or ``../shared/corpora``).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from ser_lib.encoder import ENCODER_FILE, SpeechEncoder
from ser_lib.encoder_head import HEAD_FILE, EncoderHead, SegmentSettings, segment_features, speaker_standardize
from ser_lib.labels import EMOTIONS

from .corpora import Clip, default_corpora_root, discover
from .dataset import clip_samples

#: Logistic-regression regularisation (models/runs/2026-12-07-encoder: chosen by
#: leave-one-training-corpus-out UA, 0.003 in every protocol of the main configuration).
C = 0.003


def group_weights(groups: Sequence[str], y: np.ndarray) -> np.ndarray:
    """Sample weights giving every (group, label) pair the same total weight, mean 1."""
    groups, y = np.asarray(groups), np.asarray(y)
    w = np.zeros(len(y))
    for g, k in set(zip(groups.tolist(), y.tolist())):
        m = (groups == g) & (y == k)
        w[m] = 1.0 / m.sum()
    return w * len(y) / w.sum()


#: Audio conditions of the shipped head's training clips (models/runs/2026-12-07-accurate):
#: ``8k``: the clip as the job decodes it (resampled to the model rate, 8 kHz, soxr HQ, as
#: :class:`ser_lib.stream.StreamAnalyzer` does), and ``telephone``: the clip through a G.711
#: channel (:func:`training.augment.telephone`, 8 kHz). ``wideband`` (16 kHz) is the probe's.
CONDITIONS = ("8k", "telephone")
#: seed of the telephone draws (law, level) per clip: the encoder probe's
TELEPHONE_SEED = 7


def clip_audio(clip: Clip, condition: str, model_rate: int = 8000) -> tuple[np.ndarray, int]:
    """One clip's mono samples in ``condition`` (:data:`CONDITIONS` or ``wideband``):
    ``(float32 (n,), sample_rate)``.

    Raises:
        ValueError: unknown condition.
    """
    from .augment import clip_seed, seed_key, telephone

    if condition == "wideband":
        return clip_samples(clip.path, 16000), 16000
    if condition == "8k":
        return clip_samples(clip.path, model_rate), model_rate
    if condition == "telephone":
        rng = np.random.default_rng(clip_seed(seed_key(clip.path), TELEPHONE_SEED))
        return telephone(clip_samples(clip.path, 16000), 16000, rng), 8000
    raise ValueError(f"unknown condition {condition!r}; expected 8k, telephone or wideband")


def clip_features(clips: Sequence[Clip], encoder: SpeechEncoder, settings: SegmentSettings,
                  progress: bool = False, condition: str = "8k", model_rate: int = 8000) -> np.ndarray:
    """:func:`ser_lib.encoder_head.segment_features` (the function serving applies to each
    speech window's samples) of every clip in ``condition`` (:func:`clip_audio`), ``(n, 512)``."""
    rows = []
    for i, c in enumerate(clips):
        y, sr = clip_audio(c, condition, model_rate)
        rows.append(segment_features(encoder, y, sr, settings))
        if progress and i % 500 == 0:
            print(f"  encoder features ({condition}) {i}/{len(clips)}", flush=True)
    return np.stack(rows)


def standardize_by_speaker(x: np.ndarray, speakers: Sequence[str]) -> np.ndarray:
    """:func:`ser_lib.encoder_head.speaker_standardize` applied to each speaker's rows."""
    speakers = np.asarray(speakers)
    out = np.empty_like(x, dtype=np.float32)
    for s in np.unique(speakers):
        m = speakers == s
        out[m] = speaker_standardize(x[m])
    return out


def fit_head(x: np.ndarray, y: np.ndarray, groups: Sequence[str], c: float = C,
             settings: SegmentSettings | None = None, training: dict | None = None) -> EncoderHead:
    """Fit the global standardisation and the logistic regression on speaker-standardised rows.

    Args:
        x: float ``(n, d)``; y: int ``(n,)`` indices into :data:`ser_lib.labels.EMOTIONS`;
        groups: the corpus of each row (for the balancing weights).

    Returns:
        the :class:`ser_lib.encoder_head.EncoderHead` (classes absent from ``y`` get a
        -1e9 intercept: never predicted).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(x)
    lr = LogisticRegression(C=c, max_iter=3000).fit(sc.transform(x), y, sample_weight=group_weights(groups, y))
    coef = np.zeros((len(EMOTIONS), x.shape[1]))
    intercept = np.full(len(EMOTIONS), -1e9)
    coef[lr.classes_] = lr.coef_
    intercept[lr.classes_] = lr.intercept_
    return EncoderHead(list(EMOTIONS), sc.mean_.copy(), sc.scale_.copy(), coef, intercept,
                       settings=settings or SegmentSettings(), speaker_norm=True,
                       training={"C": c, "n_train": int(len(y)), **(training or {})})


def build(out: str | os.PathLike, roots: Sequence[str | os.PathLike], progress: bool = True,
          conditions: Sequence[str] = CONDITIONS) -> Path:
    """Export the encoder, extract every clip's features in each of ``conditions`` (each
    condition's rows standardised per speaker on their own), fit the head on all of them,
    write the artifact.

    Returns:
        the artifact folder.

    Raises:
        ValueError: no corpus clips under ``roots``.
        ImportError: the ``[train]`` install is missing (torch, resemblyzer, scikit-learn).
    """
    import datetime as dt

    from ser_lib.features import FeatureConfig

    from .encoder_export import export_onnx

    out = Path(out)
    found = discover(roots)
    if not found.clips:
        raise ValueError(f"no corpus clips found under {', '.join(map(str, roots))}")
    export_onnx(out)
    settings = SegmentSettings()
    encoder = SpeechEncoder(out / ENCODER_FILE)
    model_rate = FeatureConfig().sample_rate
    speakers = [c.speaker for c in found.clips]
    x = np.vstack([standardize_by_speaker(clip_features(found.clips, encoder, settings, progress, cond, model_rate),
                                          speakers) for cond in conditions])
    y = np.tile([EMOTIONS.index(c.emotion) for c in found.clips], len(conditions))
    corpus = np.tile([c.corpus for c in found.clips], len(conditions))
    corpora = sorted({c.corpus for c in found.clips})
    version = "enchead-" + dt.datetime.now(dt.timezone.utc).strftime("%Y.%m.%d.%H%M")
    head = fit_head(x, y, corpus, settings=settings,
                    training={"version": version, "recipe": "python -m training.encoder_head", "corpora": corpora,
                              "n_clips": len(found.clips), "conditions": list(conditions),
                              "model_rate_hz": model_rate, "telephone_seed": TELEPHONE_SEED,
                              "probe": "models/runs/2026-12-07-encoder", "runs": "models/runs/2026-12-07-accurate"})
    (out / HEAD_FILE).write_text(head.to_json())
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m training.encoder_head OUT_DIR [CORPUS_ROOT ...]", file=sys.stderr)
        return 2
    print(build(argv[0], argv[1:] or [default_corpora_root()]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
