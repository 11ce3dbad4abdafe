"""Per-channel call measures for the ``calls`` table, from a call's smoothed timeline and episodes.

* **Quarters**: the call's duration cut into four equal parts; per channel and quarter, the
  channel's speech seconds there and the share of them per emotion (as call-analytics
  products report sentiment by quarter of the call).
* **Negative episodes** (:data:`ser_lib.labels.NEGATIVE_EMOTIONS`): how many, the longest
  (s) and when the first one starts (s).
* **Ends negative**: the channel's last ``end_speech_s`` seconds of speech (counted back
  from its last speech, pauses not counted) are more than half negative.
* **Arousal** (:func:`arousal_measures`, from the per-window ``arousal`` of
  :mod:`ser_lib.dimensions`): mean and peak per channel and per call, and the mean per
  channel and quarter (the trend through the call).
* **Raised voice** (:func:`raised_voice_measures`, from the per-window ``level_rel_db`` of
  :mod:`ser_lib.vocal_level`): the share of a channel's speech at least :data:`RAISED_DB` over
  its own median level, per channel and per channel and quarter.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from .labels import NEGATIVE_EMOTIONS


def quarter_shares(timeline: list[dict], duration_s: float, labels: list[str]) -> list[dict]:
    """Speech time and emotion shares per channel and quarter of the call.

    Args:
        timeline: entries ``{channel, start_s, end_s, emotion}`` (emotion None = non-speech),
            seconds.
        duration_s: the call's duration, s.
        labels: emotion labels (one ``share_<label>`` key each).

    Returns:
        per channel (first-seen order) four dicts ``{channel, quarter (1-4), start_s, end_s,
        speech_s, share_<label>...}``: shares are fractions of the quarter's speech
        seconds of that channel (sum 1; all 0 when it has none).
    """
    bounds = [(q, duration_s * (q - 1) / 4, duration_s * q / 4) for q in range(1, 5)]
    per: dict[str, dict[int, dict[str, float]]] = {}
    for e in timeline:
        qs = per.setdefault(e["channel"], {q: defaultdict(float) for q, _, _ in bounds})
        if e["emotion"] is None:
            continue
        for q, a, b in bounds:
            overlap = min(b, e["end_s"]) - max(a, e["start_s"])
            if overlap > 0:
                qs[q][e["emotion"]] += overlap
    out = []
    for ch, qs in per.items():
        for q, a, b in bounds:
            speech = float(sum(qs[q].values()))
            out.append({"channel": ch, "quarter": q, "start_s": float(a), "end_s": float(b), "speech_s": speech,
                        **{f"share_{lab}": (qs[q][lab] / speech if speech > 0 else 0.0) for lab in labels}})
    return out


def channel_measures(timeline: list[dict], episodes: dict[str, list[dict]], end_speech_s: float,
                     negative=NEGATIVE_EMOTIONS) -> dict[str, dict]:
    """Negative-episode and call-ending measures per channel.

    Args:
        timeline: as :func:`quarter_shares`; its channels are the call's channels.
        episodes: channel → its episodes (:func:`ser_lib.episodes.channel_episodes`).
        end_speech_s: speech seconds at the end of a channel that decide "ends negative".
        negative: the negative emotions.

    Returns:
        maps channel → value: ``channel_negative_episodes`` (int),
        ``channel_longest_negative_s`` (s, 0 without negative episodes),
        ``channel_first_negative_s`` (start of the first negative episode, s; None without),
        ``channel_end_negative_share`` (negative share of the last ``end_speech_s`` s of
        speech; None without speech) and ``channel_ends_negative`` (that share > 0.5; None
        without speech).
    """
    channels = list(dict.fromkeys(e["channel"] for e in timeline))
    out: dict[str, dict] = {k: {} for k in ("channel_negative_episodes", "channel_longest_negative_s",
                                            "channel_first_negative_s", "channel_end_negative_share",
                                            "channel_ends_negative")}
    for ch in channels:
        neg = [e for e in episodes.get(ch, []) if e["emotion"] in negative]
        out["channel_negative_episodes"][ch] = len(neg)
        out["channel_longest_negative_s"][ch] = float(max((e["duration_s"] for e in neg), default=0.0))
        out["channel_first_negative_s"][ch] = float(min(e["start_s"] for e in neg)) if neg else None
        left, neg_s, total = end_speech_s, 0.0, 0.0
        for e in reversed([e for e in timeline if e["channel"] == ch and e["emotion"] is not None]):
            take = min(left, e["end_s"] - e["start_s"])
            total += take
            neg_s += take if e["emotion"] in negative else 0.0
            left -= take
            if left <= 0:
                break
        share = neg_s / total if total > 0 else None
        out["channel_end_negative_share"][ch] = share
        out["channel_ends_negative"][ch] = None if share is None else bool(share > 0.5)
    return out


#: The quantile of a channel's speech-window arousal reported as its peak: high enough to show
#: the most aroused stretch, robust to single windows (single windows are noisy, see the
#: model card): at least a tenth of the speech windows reach it (at ``hop_s`` 1 s, 30 s of a
#: channel's 300 s of speech), so one misfired window cannot set it.
PEAK_QUANTILE = 0.9


def arousal_measures(windows: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], quarters: list[dict],
                     peak_quantile: float = PEAK_QUANTILE) -> dict:
    """Arousal per channel, per call and per channel and quarter, from raw window arousal.

    Args:
        windows: channel -> ``(start_s, end_s, arousal)`` of its **speech** windows
            (``float (n,)`` each; seconds and :func:`ser_lib.dimensions.arousal` in [0, 1]);
            every channel of the call, an empty channel with empty arrays.
        quarters: :func:`quarter_shares` entries; ``arousal`` is added to each, in place: the
            mean arousal of the channel's speech windows in the quarter, each window weighted
            by the seconds it overlaps the quarter (as the shares weight the timeline); None
            where the channel has no speech window there.
        peak_quantile: see :data:`PEAK_QUANTILE`.

    Returns:
        ``channel_arousal_mean`` and ``channel_arousal_peak`` (maps channel -> mean and
        ``peak_quantile`` quantile (numpy's linear interpolation) of its speech windows'
        arousal; None for a channel without speech) and the call's ``arousal_mean`` and
        ``arousal_peak`` (the same over every channel's speech windows; None without speech).
    """
    mean, peak = {}, {}
    for ch, (_, _, a) in windows.items():
        a = np.asarray(a, dtype=np.float64)
        mean[ch] = float(a.mean()) if len(a) else None
        peak[ch] = float(np.quantile(a, peak_quantile)) if len(a) else None
    _quarter_means(windows, quarters, "arousal")
    every = np.concatenate([np.asarray(a, dtype=np.float64) for _, _, a in windows.values()] or [np.zeros(0)])
    return {"channel_arousal_mean": mean, "channel_arousal_peak": peak,
            "arousal_mean": float(every.mean()) if len(every) else None,
            "arousal_peak": float(np.quantile(every, peak_quantile)) if len(every) else None}


#: How far over the channel's median level a speech window counts as raised voice, dB: the step
#: from "normal" to "raised" vocal effort in ANSI S3.5-1997 (speech intelligibility index), whose
#: standard speech spectra have overall levels of 62.35, 68.34, 74.85 and 82.30 dB SPL for
#: normal, raised, loud and shouted speech.
RAISED_DB = 6.0


def raised_voice_measures(windows: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], quarters: list[dict],
                          raised_db: float = RAISED_DB) -> dict:
    """Raised voice per channel and per channel and quarter, from the speech windows' level.

    Args:
        windows: channel -> ``(start_s, end_s, level_rel_db)`` of its **speech** windows
            (``float (n,)`` each; seconds and dB, :func:`ser_lib.vocal_level.relative_level_db`;
            NaN levels are skipped); every channel of the call.
        quarters: :func:`quarter_shares` entries; ``raised_share`` is added to each, in place:
            the share of the channel's speech seconds in the quarter (windows weighted by their
            overlap with it, as :func:`arousal_measures`) whose level is at least ``raised_db``
            over the channel's median; None where the channel has no speech window there.
        raised_db: see :data:`RAISED_DB`.

    Returns:
        ``{"channel_raised_share": {channel: share in [0, 1], None without speech}}``.
    """
    share, kept = {}, {}
    for ch, (start, end, lvl) in windows.items():
        lvl = np.asarray(lvl, dtype=np.float64)
        ok = np.isfinite(lvl)
        kept[ch] = (np.asarray(start, float)[ok], np.asarray(end, float)[ok], (lvl[ok] >= raised_db).astype(float))
        share[ch] = float(kept[ch][2].mean()) if ok.any() else None
    _quarter_means(kept, quarters, "raised_share")
    return {"channel_raised_share": share}


def _quarter_means(windows: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], quarters: list[dict],
                   key: str) -> None:
    """Set ``q[key]`` of every quarter entry, in place: the mean of its channel's per-window
    values ``windows[channel] = (start_s, end_s, value)``, each window weighted by the seconds
    it overlaps the quarter; None where no window of the channel overlaps it."""
    for q in quarters:
        start, end, v = windows.get(q["channel"], (np.zeros(0), np.zeros(0), np.zeros(0)))
        w = np.clip(np.minimum(np.asarray(end, float), q["end_s"]) - np.maximum(np.asarray(start, float), q["start_s"]),
                    0.0, None)
        q[key] = float(np.dot(w, v) / w.sum()) if w.sum() > 0 else None
