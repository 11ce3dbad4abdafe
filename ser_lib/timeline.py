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


def clock(s) -> str:
    """Seconds as ``m:ss`` (``h:mm:ss`` from an hour on), rounded to the second; ``-`` for None/NaN."""
    if s is None or (isinstance(s, float) and s != s):
        return "-"
    s = int(round(float(s)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def channel_figures(timeline, duration_s, negative: frozenset | set | tuple = (), labels=()) -> list[dict]:
    """The headline figures of a call, **per channel**, from its (smoothed) timeline: the one
    definition the web page, ``ser predict`` and ``ser report`` show.

    Whole-call sums mislead on a stereo call: speech summed over channels can exceed the
    call's duration (both talk at once), and the emotion with the most speech over both
    channels can be one that neither channel has most of. So each figure is of one channel.

    Args:
        timeline: the call's ``timeline`` entries (``channel, start_s, end_s, emotion``;
            ``emotion`` None for no speech), any iterable of mappings.
        duration_s: the recording's duration, seconds.
        negative: labels counted as negative (:data:`ser_lib.labels.NEGATIVE_EMOTIONS`).
        labels: the model's labels, to break ties of ``dominant`` as ``channel_dominant_emotion``
            does (the earlier label wins).

    Returns:
        one dict per channel, first-seen order: ``channel``; ``speech_s`` (seconds of
        speech on that channel); ``speech_share`` (``speech_s / duration_s``, 0..1; None
        without a duration); ``dominant`` (the emotion with the most of the channel's
        speech time, None without speech; ties broken as :func:`summarize_call`);
        ``dominant_share`` (its share of the channel's speech time); ``negative_share``
        (share of the channel's speech time with a ``negative`` emotion; None without speech).
    """
    per: dict[str, Counter] = {}
    for e in timeline if timeline is not None else []:
        cnt = per.setdefault(e["channel"], Counter())
        emo = none_if_missing(e["emotion"])
        if emo is not None:
            cnt[emo] += float(e["end_s"]) - float(e["start_s"])
    duration_s = none_if_missing(duration_s)
    out = []
    for ch, cnt in per.items():
        speech = float(sum(cnt.values()))
        labels = list(labels)
        dom = max(cnt.items(), key=lambda kv: (kv[1], -labels.index(kv[0]) if kv[0] in labels else 0))[0] \
            if cnt else None
        out.append({"channel": ch, "speech_s": speech,
                    "speech_share": speech / float(duration_s) if duration_s else None,
                    "dominant": dom, "dominant_share": cnt[dom] / speech if dom else None,
                    "negative_share": sum(v for k, v in cnt.items() if k in negative) / speech if speech else None})
    return out


def channel_lines(timeline, duration_s, negative=(), labels=()) -> list[str]:
    """:func:`channel_figures` as one printable line per channel (``ser predict``, ``ser report --call``)::

        agent: speech 1:40 (55 % of the call), mostly neutral (62 % of its speech), negative 4 %
    """
    out = []
    for f in channel_figures(timeline, duration_s, negative, labels):
        if not f["speech_s"]:
            out.append(f"  {f['channel']}: no speech")
            continue
        share = f" ({f['speech_share'] * 100:.0f} % of the call)" if f["speech_share"] is not None else ""
        out.append(f"  {f['channel']}: speech {clock(f['speech_s'])}{share}, mostly {f['dominant']} "
                   f"({f['dominant_share'] * 100:.0f} % of its speech), negative {f['negative_share'] * 100:.0f} %")
    return out
