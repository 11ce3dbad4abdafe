"""Arousal and valence per window: a documented mapping of the model's emotion probabilities.

The seven categories sit on Russell's circumplex of affect (Russell 1980, *J. Pers. Soc.
Psychol.* 39(6): 1161-1178): angry, fear, happy and surprise are high-arousal; neutral and
sad are low-arousal; angry, disgust, fear and sad are negative (unpleasant). The product
reports two probabilities from that grouping, no trained head:

* ``arousal`` = the summed probability of :data:`HIGH_AROUSAL` (angry + fear + happy +
  surprise): the probability that the window is a high-arousal emotion. Disgust counts as
  not high-arousal (its arousal is mixed; the model card's arousal AUC leaves disgust clips
  out, so this choice does not move that number).
* ``valence`` = 1 - the summed probability of :data:`NEGATIVE` (angry + disgust + fear +
  sad, :data:`ser_lib.labels.NEGATIVE_EMOTIONS`): the probability that the window is *not*
  a negative emotion (neutral counts as not negative, so a calm neutral window has valence
  near 1, not 0.5).

Both lie in [0, 1]. They are the very scores the model card's transfer AUCs rank
(:func:`training.cv.transfer_aucs`: arousal AUC over high- against low-arousal clips,
negative AUC over ``1 - valence``), so the card's AUCs describe these columns. On corpora
and languages the model never trained on, these two groupings hold far better than the
seven labels (model card, "What holds best").
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .labels import EMOTIONS, NEGATIVE_EMOTIONS

#: High-arousal emotions (Russell's circumplex): their summed probability is ``arousal``.
HIGH_AROUSAL: tuple[str, ...] = ("angry", "fear", "happy", "surprise")
#: Low-arousal emotions: the other side of the card's arousal AUC (disgust is on neither).
LOW_AROUSAL: tuple[str, ...] = ("neutral", "sad")
#: Negative emotions: ``valence`` is 1 - their summed probability.
NEGATIVE: tuple[str, ...] = tuple(e for e in EMOTIONS if e in NEGATIVE_EMOTIONS)


def group_columns(labels: Sequence[str], group: Sequence[str]) -> list[int]:
    """Column indices of ``labels`` that belong to ``group`` (labels outside the product's
    set, e.g. a model with fewer classes, simply contribute nothing)."""
    return [j for j, lab in enumerate(labels) if lab in group]


def _group_sum(probs: np.ndarray, labels: Sequence[str], group: Sequence[str]) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(labels):
        raise ValueError(f"probs must be (n, {len(labels)}) for labels {list(labels)}; got shape {p.shape}")
    cols = group_columns(labels, group)
    if not cols:  # the model has none of the group: the dimension is not defined
        return np.full(len(p), np.nan)
    return p[:, cols].sum(axis=1)


def arousal(probs: np.ndarray, labels: Sequence[str] = EMOTIONS) -> np.ndarray:
    """Per-row arousal: the summed probability of :data:`HIGH_AROUSAL`.

    Args:
        probs: ``float (n, len(labels))`` emotion probabilities (rows sum to 1); NaN rows
            (windows that are not speech) stay NaN.
        labels: the columns' labels (the model's ``labels``).

    Returns:
        ``float64 (n,)`` in [0, 1] (clipped against rounding), NaN where the row is NaN or
        ``labels`` holds none of the group.

    Raises:
        ValueError: ``probs`` is not 2-D with one column per label.
    """
    return np.clip(_group_sum(probs, labels, HIGH_AROUSAL), 0.0, 1.0)


def valence(probs: np.ndarray, labels: Sequence[str] = EMOTIONS) -> np.ndarray:
    """Per-row valence: 1 - the summed probability of :data:`NEGATIVE`.

    Args / Returns / Raises: as :func:`arousal`.
    """
    return np.clip(1.0 - _group_sum(probs, labels, NEGATIVE), 0.0, 1.0)
