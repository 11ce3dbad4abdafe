"""Vocal level per speech window (ser_lib/vocal_level.py): the active level and the level
against the channel's own median, on constructed frames and through ``ser predict``'s scoring."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from ser_lib.speech import RMS_DB_COLUMN
from ser_lib.synth import silence, speech_like
from ser_lib.vocal_level import active_level_db, relative_level_db


def test_active_level_is_the_power_mean_of_the_active_frames():
    feats = np.zeros((3, 4, RMS_DB_COLUMN + 2), np.float32)
    feats[:, :, RMS_DB_COLUMN] = [[-20, -30, -80, -20], [-40, -40, -40, -40], [-10, -10, -10, -10]]
    active = np.array([[1, 1, 0, 1], [1, 1, 1, 1], [0, 0, 0, 0]], bool)
    got = active_level_db(feats, active)
    want0 = 10 * np.log10((2 * 10 ** -2 + 10 ** -3) / 3)  # the pause (-80 dB) does not count
    assert got.dtype == np.float32
    np.testing.assert_allclose(got[:2], [want0, -40], atol=1e-4)
    assert np.isnan(got[2])
    with pytest.raises(ValueError, match="do not match"):
        active_level_db(feats, active[:, :3])


def test_relative_level_is_against_the_channels_median_speech_window():
    level = np.array([-30, -24, np.nan, -36, -20, -30], np.float32)
    speech = np.array([1, 1, 1, 1, 0, 1], bool)
    lvl, rel = relative_level_db(level, speech)
    # speech windows with a level: -30, -24, -36, -30 -> median -30; window 4 is not speech
    np.testing.assert_allclose(lvl[[0, 1, 3, 5]], [-30, -24, -36, -30])
    np.testing.assert_allclose(rel[[0, 1, 3, 5]], [0, 6, -6, 0])
    assert np.isnan(lvl[[2, 4]]).all() and np.isnan(rel[[2, 4]]).all()
    lvl, rel = relative_level_db(level, np.zeros(6, bool))
    assert np.isnan(lvl).all() and np.isnan(rel).all()


def _raised_voice(path, gain_db: float = 0.0) -> None:
    """One speaker at -30 dBFS, then 12 dB louder, then back, with pauses: 8 kHz mono."""
    rng = np.random.default_rng(21)
    parts = [speech_like(8.0, 8000, rng, level_db=-30), silence(1.0, 8000, rng, -75),
             speech_like(8.0, 8000, rng, level_db=-18), silence(1.0, 8000, rng, -75),
             speech_like(8.0, 8000, rng, level_db=-30)]
    y = np.concatenate(parts) * 10 ** (gain_db / 20)
    sf.write(path, y.astype(np.float32), 8000, subtype="FLOAT")


def test_a_raised_voice_reads_about_its_gain_above_the_channel_and_any_file_gain_cancels(tmp_path):
    from ser_lib.one_recording import predict_file

    res = {}
    for gain in (0.0, -15.0):
        _raised_voice(tmp_path / f"call{gain}.wav", gain)
        segs = [s for s in predict_file(str(tmp_path / f"call{gain}.wav"))["segments"] if s["is_speech"]]
        res[gain] = segs
    segs = res[0.0]
    mid = [s for s in segs if s["start_s"] >= 9.5 and s["end_s"] <= 17.5]   # inside the loud part
    calm = [s for s in segs if s["end_s"] <= 8.0 or s["start_s"] >= 18.5]
    assert mid and calm
    assert np.median([s["level_rel_db"] for s in mid]) == pytest.approx(12.0, abs=2.0)
    assert np.median([s["level_rel_db"] for s in calm]) == pytest.approx(0.0, abs=2.0)
    assert np.median([s["level_db"] for s in calm]) == pytest.approx(-30.0, abs=4.0)
    quiet = {s["segment_index"]: s for s in res[-15.0]}
    same = [(s, quiet[s["segment_index"]]) for s in segs if s["segment_index"] in quiet]
    assert len(same) >= 0.9 * len(segs)
    np.testing.assert_allclose([b["level_rel_db"] for _, b in same], [a["level_rel_db"] for a, _ in same], atol=0.5)
    np.testing.assert_allclose([b["level_db"] - a["level_db"] for a, b in same], -15.0, atol=0.5)


def test_raised_voice_shares_per_channel_and_quarter():
    from ser_lib.measures import RAISED_DB, raised_voice_measures

    start = np.arange(10.0)
    lvl = np.array([0, 0, 7, 8, np.nan, 0, -3, 6, 5.9, 0])  # 3 of the 9 known windows at >= 6 dB
    quarters = [{"channel": "a", "quarter": k + 1, "start_s": 2.5 * k, "end_s": 2.5 * (k + 1)} for k in range(4)]
    quarters.append({"channel": "b", "quarter": 1, "start_s": 0.0, "end_s": 2.5})
    out = raised_voice_measures({"a": (start, start + 1, lvl), "b": (np.zeros(0), np.zeros(0), np.zeros(0))}, quarters)
    assert RAISED_DB == 6.0
    assert out["channel_raised_share"] == {"a": pytest.approx(3 / 9), "b": None}
    # quarter 1 (0-2.5 s): windows 0, 1 whole and half of window 2 (raised): 0.5 of 2.5 s
    assert quarters[0]["raised_share"] == pytest.approx(0.5 / 2.5)
    assert quarters[1]["raised_share"] == pytest.approx(1.0)  # 2.5-5 s: half of 2 and all of 3, raised; 4 unknown
    assert quarters[4]["raised_share"] is None


def test_ser_predict_reports_the_raised_voice_of_its_windows(tmp_path):
    from ser_lib.one_recording import predict_file

    _raised_voice(tmp_path / "call.wav")
    res = predict_file(str(tmp_path / "call.wav"))
    speech = [s for s in res["segments"] if s["is_speech"] and s["level_rel_db"] is not None]
    want = np.mean([s["level_rel_db"] >= 6.0 for s in speech])
    assert res["channel_raised_share"]["mono"] == pytest.approx(want)
    assert 0.2 < want < 0.45  # the loud 8 s of 26 s of speech (windows straddling its edges vary)
    q = {e["quarter"]: e["raised_share"] for e in res["quarters"]}
    assert q[1] == pytest.approx(0.0, abs=0.05) and q[4] == pytest.approx(0.0, abs=0.05)
    assert q[2] > 0.3 and q[3] > 0.3


def test_readme_raised_voice_query(spark, tmp_path):
    """docs/queries.md's raised-voice query (Spark SQL and DuckDB) on a job's output: the
    recording with a voice raised 12 dB for 8 of its 26 s, not the one at an even level."""
    import datetime as dt

    import duckdb
    import pandas as pd

    from jobs.analyze_calls import run
    from tests.conftest import readme_sql_blocks

    d, out = tmp_path / "in", tmp_path / "out"
    d.mkdir()
    _raised_voice(d / "raised.wav")
    rng = np.random.default_rng(5)
    sf.write(d / "even.wav", speech_like(26.0, 8000, rng, level_db=-26), 8000, subtype="FLOAT")
    run(str(d), str(out), spark=spark, now=dt.datetime(2026, 12, 7, 2, 0, tzinfo=dt.timezone.utc))
    calls = pd.read_parquet(out / "calls")
    share = {p.rsplit("/", 1)[-1]: dict(m)["mono"] for p, m in zip(calls["source_path"], calls["channel_raised_share"])}
    assert share["raised.wav"] >= 0.2 > share["even.wav"]
    want = [(calls.loc[calls["source_path"].str.endswith("raised.wav"), "call_id"].iloc[0], "mono")]
    blocks = readme_sql_blocks()
    spark_sql = [s for s in blocks["spark"] if "channel_raised_share" in s or "TEMPORARY VIEW calls" in s]
    res = [spark.sql(s.replace("out/demo/results", str(out))).toPandas() for s in spark_sql][-1]
    assert list(zip(res["call_id"], res["channel"])) == want
    assert res["raised_share"].iloc[0] == pytest.approx(share["raised.wav"])
    con = duckdb.connect()
    duck_sql = [s for s in blocks["duckdb"] if "channel_raised_share" in s or s.startswith("CREATE VIEW calls")]
    res = [con.sql(s.replace("out/demo/results", str(out))) for s in duck_sql][-1].df()
    assert list(zip(res["call_id"], res["channel"])) == want
