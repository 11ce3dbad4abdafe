"""Emotion episodes of one channel: stretches of one smoothed emotion (``OUT/episodes/``).

An episode is a run of speech windows with the same smoothed emotion
(:mod:`ser_lib.smoothing`), measured on the timeline's cells (:func:`ser_lib.timeline.cells`).
Pauses (non-speech) up to ``max_gap_s`` long stay inside an episode; a longer pause ends
it. Two episodes *touch* when at most ``max_gap_s`` of non-speech lies between them.

Episodes shorter than ``min_duration_s`` are merged into a neighbour they touch (the
longer one when both do), shortest first: the short stretch takes the neighbour's
emotion. A short stretch of speech touching no other episode (an isolated "okay") stays
an episode of its own: there is nothing to merge it into, and dropping it would lose
speech.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import ConfigError


@dataclass(frozen=True)
class EpisodeConfig:
    """``episodes`` section of ``conf/job.yaml``.

    Attributes:
        min_duration_s: episodes shorter than this (s) are merged into a touching neighbour.
        max_gap_s: longest pause (s) inside one episode.
        end_speech_s: calls measures: how much of a channel's speech, counted back from its
            last word, decides whether the call *ends* negative (s).

    Raises:
        ConfigError: a negative duration, or ``end_speech_s`` not > 0.
    """

    min_duration_s: float = 3.0
    max_gap_s: float = 2.0
    end_speech_s: float = 30.0

    def __post_init__(self):
        if self.min_duration_s < 0 or self.max_gap_s < 0:
            raise ConfigError("episodes.min_duration_s and episodes.max_gap_s must be >= 0")
        if not self.end_speech_s > 0:
            raise ConfigError(f"episodes.end_speech_s must be > 0, got {self.end_speech_s}")

    @classmethod
    def from_dict(cls, d: dict) -> "EpisodeConfig":
        return cls(float(d["min_duration_s"]), float(d["max_gap_s"]), float(d["end_speech_s"]))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Run:
    label: int
    idx: list[int]          # speech windows (cells) of the run, time order
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def _join(runs: list[_Run], max_gap_s: float) -> list[_Run]:
    """Join neighbouring runs of one label that touch."""
    out: list[_Run] = []
    for r in runs:
        if out and out[-1].label == r.label and r.start_s - out[-1].end_s <= max_gap_s + 1e-9:
            out[-1] = _Run(r.label, out[-1].idx + r.idx, out[-1].start_s, r.end_s)
        else:
            out.append(r)
    return out


def channel_episodes(cell_start: np.ndarray, cell_end: np.ndarray, label_idx: np.ndarray, probs: np.ndarray,
                     labels: list[str], cfg: EpisodeConfig) -> list[dict]:
    """The episodes of one channel.

    Args:
        cell_start, cell_end: ``float64 (n,)`` the windows' cells, seconds, time order.
        label_idx: ``int (n,)`` smoothed label index per window, ``-1`` for non-speech.
        probs: ``(n, K)`` raw window probabilities (columns in ``labels`` order).
        labels: emotion labels.
        cfg: merging rules.

    Returns:
        ``[{episode_index, emotion, start_s, end_s, duration_s, mean_confidence,
        peak_confidence}]`` in time order: bounds in seconds (``duration_s = end_s -
        start_s``, pauses inside included); ``mean_confidence`` is the cell-duration
        weighted mean, ``peak_confidence`` the maximum, of the raw window probability of the
        episode's emotion over its speech windows. Empty without speech.
    """
    runs: list[_Run] = []
    prev = -1
    for i, lab in enumerate(np.asarray(label_idx)):
        lab = int(lab)
        if lab < 0:
            prev = -1
            continue
        if lab == prev:
            runs[-1].idx.append(i)
            runs[-1].end_s = float(cell_end[i])
        else:
            runs.append(_Run(lab, [i], float(cell_start[i]), float(cell_end[i])))
        prev = lab
    eps = _join(runs, cfg.max_gap_s)
    while True:
        def touches(a: int, b: int) -> bool:
            return 0 <= a and b < len(eps) and eps[b].start_s - eps[a].end_s <= cfg.max_gap_s + 1e-9
        short = [i for i, e in enumerate(eps) if e.duration_s < cfg.min_duration_s - 1e-9
                 and (touches(i - 1, i) or touches(i, i + 1))]
        if not short:
            break
        i = min(short, key=lambda j: (eps[j].duration_s, j))
        nbrs = [j for j in (i - 1, i + 1) if touches(min(i, j), max(i, j))]
        j = max(nbrs, key=lambda j: (eps[j].duration_s, -j))  # the longer; the earlier on a tie
        eps[i].label = eps[j].label
        eps = _join(eps, cfg.max_gap_s)
    out = []
    for k, e in enumerate(eps):
        idx = np.asarray(e.idx)
        p = np.asarray(probs, dtype=np.float64)[idx, e.label]
        w = np.asarray(cell_end, dtype=np.float64)[idx] - np.asarray(cell_start, dtype=np.float64)[idx]
        out.append({"episode_index": k, "emotion": labels[e.label], "start_s": e.start_s, "end_s": e.end_s,
                    "duration_s": e.duration_s, "mean_confidence": float(np.average(p, weights=w)),
                    "peak_confidence": float(p.max())})
    return out
