import numpy as np
import pandas as pd
import pytest

from ser_lib.labels import EMOTIONS
from ser_lib.timeline import cells, channel_timeline, summarize_call
from ser_lib.windows import WindowGrid


def test_cells_tile_the_channel_without_overlap():
    grid = WindowGrid.from_seconds(2.0, 1.0, 8000, 80)
    s, e = grid.bounds_s(int(7.3 * 8000))
    c0, c1 = cells(s, e)
    assert c0[0] == 0 and c1[-1] == pytest.approx(7.3)
    np.testing.assert_allclose(c0[1:], c1[:-1])
    assert np.all(c1 > c0)
    # with hop == window, cells are the windows
    grid = WindowGrid.from_seconds(2.0, 2.0, 8000, 80)
    s, e = grid.bounds_s(6 * 8000)
    c0, c1 = cells(s, e)
    np.testing.assert_allclose(c0, s)
    np.testing.assert_allclose(c1, e)


def _segments(channel, emotions, confs, hop=1.0, window=2.0):
    n = len(emotions)
    start = np.arange(n) * hop
    return pd.DataFrame({"channel": channel, "start_s": start, "end_s": start + window,
                         "is_speech": [e is not None for e in emotions], "emotion": emotions, "confidence": confs})


def test_adjacent_equal_emotions_merge():
    seg = _segments("agent", ["angry", "angry", None, None, "sad"], [0.8, 0.6, None, None, 0.9])
    tl = channel_timeline(seg)
    # windows start 0..4 s, centres 1..5 s: cells end at centre midpoints 1.5, 2.5, 3.5, 4.5
    assert [(e["emotion"], e["start_s"], e["end_s"]) for e in tl] == [
        ("angry", 0.0, 2.5), (None, 2.5, 4.5), ("sad", 4.5, 6.0)]
    assert tl[0]["confidence"] == pytest.approx((0.8 * 1.5 + 0.6 * 1.0) / 2.5)
    assert tl[1]["confidence"] is None


def test_summary_shares_and_dominant_per_channel():
    seg = pd.concat([
        _segments("agent", ["neutral"] * 4, [0.9] * 4, hop=2.0),
        _segments("customer", ["angry", "angry", "angry", None], [0.7] * 3 + [None], hop=2.0),
    ])
    s = summarize_call(seg, list(EMOTIONS))
    assert s["n_segments"] == 8
    assert s["speech_s"] == pytest.approx(14.0)
    assert s["channel_speech_s"] == {"agent": 8.0, "customer": 6.0}
    assert s["dominant_emotion"] == "neutral"
    assert s["channel_dominant_emotion"] == {"agent": "neutral", "customer": "angry"}
    assert s["share_angry"] == pytest.approx(6 / 14) and s["share_neutral"] == pytest.approx(8 / 14)
    assert sum(s[f"share_{e}"] for e in EMOTIONS) == pytest.approx(1.0)
    assert [e["channel"] for e in s["timeline"]] == ["agent", "customer", "customer"]


def test_silent_call_has_no_dominant_emotion():
    s = summarize_call(_segments("mono", [None, None], [None, None]), list(EMOTIONS))
    assert s["dominant_emotion"] is None and s["speech_s"] == 0
    assert all(s[f"share_{e}"] == 0 for e in EMOTIONS)


def test_headline_figures_are_per_channel_and_cannot_exceed_the_call():
    """The issue's case: both channels talk at once (speech summed over channels > duration) and
    the whole-call dominant emotion (happy) is neither channel's (agent neutral, customer sad)."""
    from ser_lib.labels import NEGATIVE_EMOTIONS
    from ser_lib.timeline import channel_figures, channel_lines
    seg = pd.concat([
        _segments("agent", ["neutral"] * 6 + ["happy"] * 5, [0.9] * 11, hop=2.0, window=2.0),
        _segments("customer", ["sad"] * 6 + ["happy"] * 5, [0.8] * 11, hop=2.0, window=2.0),
    ])
    s = summarize_call(seg, list(EMOTIONS))
    duration = 22.0
    assert s["speech_s"] > duration and s["dominant_emotion"] == "happy"  # what the old headline showed
    figs = {f["channel"]: f for f in channel_figures(s["timeline"], duration, NEGATIVE_EMOTIONS, EMOTIONS)}
    assert {c: f["dominant"] for c, f in figs.items()} == s["channel_dominant_emotion"] == {"agent": "neutral",
                                                                                           "customer": "sad"}
    assert {c: f["speech_s"] for c, f in figs.items()} == pytest.approx(s["channel_speech_s"])
    assert all(0 < f["speech_share"] <= 1 for f in figs.values())
    assert figs["agent"]["dominant_share"] == pytest.approx(12 / 22)
    assert figs["customer"]["negative_share"] == pytest.approx(12 / 22) and figs["agent"]["negative_share"] == 0
    assert channel_lines(s["timeline"], duration, NEGATIVE_EMOTIONS, EMOTIONS) == [
        "  agent: speech 0:22 (100 % of the call), mostly neutral (55 % of its speech), negative 0 %",
        "  customer: speech 0:22 (100 % of the call), mostly sad (55 % of its speech), negative 55 %"]
    silent = summarize_call(_segments("mono", [None, None], [None, None]), list(EMOTIONS))
    assert channel_lines(silent["timeline"], 3.0) == ["  mono: no speech"]
