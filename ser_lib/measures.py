"""Per-channel call measures for the ``calls`` table, from a call's smoothed timeline and episodes.

* **Quarters**: the call's duration cut into four equal parts; per channel and quarter, the
  channel's speech seconds there and the share of them per emotion (as call-analytics
  products report sentiment by quarter of the call).
* **Negative episodes** (:data:`ser_lib.labels.NEGATIVE_EMOTIONS`): how many, the longest
  (s) and when the first one starts (s).
* **Ends negative**: the channel's last ``end_speech_s`` seconds of speech (counted back
  from its last speech, pauses not counted) are more than half negative.
"""
from __future__ import annotations

from collections import defaultdict

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
