"""Train the emotion head on the frozen speech encoder and write an encoder-head artifact
(:mod:`ser_lib.encoder_head`): ``encoder.onnx`` (exported from the installed resemblyzer
package), ``ENCODER_LICENSE.txt`` and ``encoder_head.json``.

The recipe is the best configuration of ``models/runs/2026-12-07-encoder`` (chosen on the
held-out corpora, so its numbers there are optimistic): per clip, the last LSTM layer's state
mean+std pooled over the clip's partials (:func:`ser_lib.encoder_head.segment_features`, the
code serving runs), standardised per speaker, then a multinomial logistic regression
(scikit-learn, C = 0.003, lbfgs) with every (corpus, emotion) pair given the same total weight.
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


def clip_features(clips: Sequence[Clip], encoder: SpeechEncoder, settings: SegmentSettings,
                  progress: bool = False) -> np.ndarray:
    """:func:`ser_lib.encoder_head.segment_features` of every clip (decoded at 16 kHz), ``(n, 512)``."""
    rows = []
    for i, c in enumerate(clips):
        rows.append(segment_features(encoder, clip_samples(c.path, 16000), 16000, settings))
        if progress and i % 500 == 0:
            print(f"  encoder features {i}/{len(clips)}", flush=True)
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


def build(out: str | os.PathLike, roots: Sequence[str | os.PathLike], progress: bool = True) -> Path:
    """Export the encoder, extract every clip's features, fit the head, write the artifact.

    Returns:
        the artifact folder.

    Raises:
        ValueError: no corpus clips under ``roots``.
        ImportError: the ``[train]`` install is missing (torch, resemblyzer, scikit-learn).
    """
    from .encoder_export import export_onnx

    out = Path(out)
    found = discover(roots)
    if not found.clips:
        raise ValueError(f"no corpus clips found under {', '.join(map(str, roots))}")
    export_onnx(out)
    settings = SegmentSettings()
    x = clip_features(found.clips, SpeechEncoder(out / ENCODER_FILE), settings, progress)
    speakers = [c.speaker for c in found.clips]
    y = np.array([EMOTIONS.index(c.emotion) for c in found.clips])
    corpora = sorted({c.corpus for c in found.clips})
    head = fit_head(standardize_by_speaker(x, speakers), y, [c.corpus for c in found.clips], settings=settings,
                    training={"recipe": "training/encoder_head.py", "corpora": corpora,
                              "probe": "models/runs/2026-12-07-encoder"})
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
