"""Per-call emotion timelines and summaries from per-segment predictions.

Windows overlap when ``hop_s < window_s``, so a timeline does not use raw window
bounds. Each window of a channel owns a **cell**: from the midpoint between its
centre and the previous window's centre to the midpoint with the next one (the
first cell starts at the first window's start, the last ends at the last window's
end). Cells tile the channel without gaps or overlap; with ``hop_s == window_s``
they are exactly the windows. Adjacent cells with the same emotion (non-speech
being ``None``) merge into one timeline entry whose confidence is the
duration-weighted mean. Speech time, emotion shares and dominant emotions are
measured in cell seconds.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from .nulls import none_if_missing


def cells(start_s: np.ndarray, end_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping cells of one channel's windows (sorted by start).

    Args:
        start_s, end_s: ``(n,)`` window bounds, seconds.

    Returns:
        ``(cell_start, cell_end)``, ``(n,)`` float64 seconds, contiguous.
    """
    start_s = np.asarray(start_s, dtype=np.float64)
    end_s = np.asarray(end_s, dtype=np.float64)
    centre = (start_s + end_s) / 2
    mid = (centre[1:] + centre[:-1]) / 2
    return np.concatenate([start_s[:1], mid]), np.concatenate([mid, end_s[-1:]])


def channel_timeline(seg: pd.DataFrame) -> list[dict]:
    """Merged timeline of one channel.

    Args:
        seg: that channel's segments with columns ``channel, start_s, end_s, emotion,
            confidence`` (``emotion`` None/NaN for non-speech).

    Returns:
        list of ``{channel, start_s, end_s, emotion, confidence}`` dicts in time order.
    """
    seg = seg.sort_values("start_s")
    c0, c1 = cells(seg["start_s"].to_numpy(), seg["end_s"].to_numpy())
    out: list[dict] = []
    for a, b, emo, conf, ch in zip(c0, c1, seg["emotion"], seg["confidence"], seg["channel"]):
        emo, conf = none_if_missing(emo), none_if_missing(conf)
        if out and out[-1]["emotion"] == emo:
            last = out[-1]
            if emo is not None:
                d0, d1 = last["end_s"] - last["start_s"], b - a
                last["confidence"] = (last["confidence"] * d0 + conf * d1) / (d0 + d1)
            last["end_s"] = float(b)
        else:
            out.append({"channel": ch, "start_s": float(a), "end_s": float(b), "emotion": emo,
                        "confidence": None if emo is None else float(conf)})
    return out


def summarize_call(seg: pd.DataFrame, labels: list[str]) -> dict:
    """Summary of one call from all its segments.

    Args:
        seg: segments of one call (all channels), columns ``channel, start_s, end_s,
            is_speech, emotion, confidence``.
        labels: the model's emotion labels (for ``share_<emotion>``).

    Returns:
        dict with ``n_segments``, ``speech_s`` (speech seconds summed over channels),
        ``channel_speech_s`` (per channel), ``dominant_emotion`` (most speech seconds;
        None without speech), ``channel_dominant_emotion`` (per channel),
        ``share_<emotion>`` (fraction of speech seconds, 0 without speech) and
        ``timeline`` (see :func:`channel_timeline`, channels in first-seen order).
    """
    timeline: list[dict] = []
    per_channel: dict[str, Counter] = {}
    for ch, g in seg.groupby("channel", sort=False):
        tl = channel_timeline(g)
        timeline.extend(tl)
        cnt = per_channel.setdefault(ch, Counter())
        for e in tl:
            if e["emotion"] is not None:
                cnt[e["emotion"]] += e["end_s"] - e["start_s"]
    total = sum(per_channel.values(), Counter())
    speech_s = float(sum(total.values()))

    def dominant(c: Counter):
        return max(c.items(), key=lambda kv: (kv[1], -labels.index(kv[0]) if kv[0] in labels else 0))[0] if c else None

    out = {
        "n_segments": int(len(seg)),
        "speech_s": speech_s,
        "channel_speech_s": {ch: float(sum(c.values())) for ch, c in per_channel.items()},
        "dominant_emotion": dominant(total),
        "channel_dominant_emotion": {ch: dominant(c) for ch, c in per_channel.items()},
        "timeline": timeline,
    }
    for lab in labels:
        out[f"share_{lab}"] = float(total[lab] / speech_s) if speech_s > 0 else 0.0
    return out
