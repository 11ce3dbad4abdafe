"""Arousal and valence (issue 30, outputs that transfer): the mapping of window probabilities
(:mod:`ser_lib.dimensions`), the model card's AUCs scoring with that very mapping, the call
measures (mean, peak, quarters) on constructed channels, and the job's columns end to end
(Spark job, ``ser predict``, the docs' arousal query in Spark SQL and DuckDB)."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ser_lib.dimensions import HIGH_AROUSAL, NEGATIVE, arousal, valence
from ser_lib.labels import EMOTIONS
from ser_lib.measures import PEAK_QUANTILE, arousal_measures, quarter_shares
from tests.test_episodes import zcr_artifact  # noqa: F401  (the fixture: bright speech -> angry)

LAB = list(EMOTIONS)


def _onehot(e: str) -> np.ndarray:
    return np.eye(len(LAB))[LAB.index(e)]


# ---------------------------------------------------------------- the mapping
@pytest.mark.parametrize("emotion, want_arousal, want_valence", [
    ("angry", 1, 0), ("fear", 1, 0), ("happy", 1, 1), ("surprise", 1, 1),
    ("neutral", 0, 1), ("sad", 0, 0), ("disgust", 0, 0)])
def test_a_certain_window_maps_to_its_circumplex_corner(emotion, want_arousal, want_valence):
    assert arousal(_onehot(emotion)[None]) == pytest.approx([want_arousal])
    assert valence(_onehot(emotion)[None]) == pytest.approx([want_valence])


def test_arousal_and_valence_sum_their_groups_and_keep_nan_rows():
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(len(LAB)), size=50)
    probs[7] = np.nan  # not speech
    a, v = arousal(probs), valence(probs)
    hi = [LAB.index(e) for e in ("angry", "fear", "happy", "surprise")]
    neg = [LAB.index(e) for e in ("angry", "disgust", "fear", "sad")]
    ok = ~np.isnan(probs).any(1)
    np.testing.assert_allclose(a[ok], probs[ok][:, hi].sum(1))
    np.testing.assert_allclose(v[ok], 1 - probs[ok][:, neg].sum(1))
    assert np.isnan(a[7]) and np.isnan(v[7]) and np.isfinite(a[ok]).all()
    assert ((a[ok] >= 0) & (a[ok] <= 1) & (v[ok] >= 0) & (v[ok] <= 1)).all()
    # the even spread: 4 of 7 emotions are high-arousal, 4 of 7 negative
    even = np.full((1, len(LAB)), 1 / len(LAB))
    assert arousal(even)[0] == pytest.approx(4 / 7) and valence(even)[0] == pytest.approx(3 / 7)
    # columns are found by label, not position
    order = rng.permutation(len(LAB))
    np.testing.assert_allclose(arousal(probs[:, order], [LAB[j] for j in order]), a)
    np.testing.assert_allclose(valence(probs[:, order], [LAB[j] for j in order]), v)
    assert set(HIGH_AROUSAL) == {"angry", "fear", "happy", "surprise"}
    assert set(NEGATIVE) == {"angry", "disgust", "fear", "sad"}


def test_a_model_without_the_groups_or_a_bad_shape():
    assert np.isnan(arousal(np.array([[0.5, 0.5]]), ["calm", "loud"])).all()
    with pytest.raises(ValueError, match="probs must be"):
        arousal(np.ones((2, 3)))


def test_the_card_auc_scores_with_the_served_columns(monkeypatch):
    """transfer_aucs ranks clips by ser_lib.dimensions' functions: swap them and its AUCs follow."""
    from training import cv
    from tests.test_recipe import _windowset

    rng = np.random.default_rng(1)
    labels = [LAB.index(e) for e in ("angry", "happy", "sad", "neutral", "disgust", "fear", "sad", "surprise") * 3]
    ws = _windowset(["emovo"] * len(labels), labels)
    probs = rng.dirichlet(np.ones(len(LAB)), size=len(labels))
    base = cv.transfer_aucs(ws, probs)
    monkeypatch.setattr(cv, "arousal", lambda p, *a: 1 - arousal(p, *a))
    monkeypatch.setattr(cv, "valence", lambda p, *a: 1 - valence(p, *a))
    flipped = cv.transfer_aucs(ws, probs)
    assert flipped["arousal"] == pytest.approx(1 - base["arousal"])
    assert flipped["negative"] == pytest.approx(1 - base["negative"])
    assert flipped["anger"] == pytest.approx(base["anger"])


# ---------------------------------------------------------------- call measures
def test_arousal_measures_mean_peak_quarters_and_nulls():
    # customer: 10 one-second speech windows over 0-10 s (arousal 0.0 .. 0.9), then 30 s without speech;
    # the agent: two windows in the last quarter; "other": no speech at all
    start = np.arange(10.0)
    wins = {"customer": (start, start + 1, start / 10),
            "agent": (np.array([30.0, 35.0]), np.array([32.0, 37.0]), np.array([0.2, 0.6])),
            "other": (np.zeros(0), np.zeros(0), np.zeros(0))}
    tl = [{"channel": ch, "start_s": 0.0, "end_s": 40.0, "emotion": None} for ch in wins]
    quarters = quarter_shares(tl, 40.0, LAB)
    m = arousal_measures(wins, quarters)
    assert m["channel_arousal_mean"] == pytest.approx({"customer": 0.45, "agent": 0.4, "other": None})
    # numpy's linear quantile of 0.0 .. 0.9 at 0.9: 0.81
    assert PEAK_QUANTILE == 0.9
    assert m["channel_arousal_peak"]["customer"] == pytest.approx(0.81)
    assert m["channel_arousal_peak"]["agent"] == pytest.approx(0.56) and m["channel_arousal_peak"]["other"] is None
    every = np.r_[start / 10, 0.2, 0.6]
    assert m["arousal_mean"] == pytest.approx(every.mean())
    assert m["arousal_peak"] == pytest.approx(np.quantile(every, 0.9))
    q = {(e["channel"], e["quarter"]): e["arousal"] for e in quarters}
    assert q[("customer", 1)] == pytest.approx(0.45)  # 0-10 s: all ten windows, equal weight
    assert q[("customer", 2)] is None and q[("customer", 4)] is None
    assert q[("agent", 4)] == pytest.approx(0.4) and q[("agent", 1)] is None
    assert all(q[("other", k)] is None for k in range(1, 5))
    # a window across a quarter boundary counts by its seconds on each side
    wins = {"c": (np.array([8.0, 9.0]), np.array([10.0, 12.0]), np.array([0.0, 1.0]))}
    quarters = quarter_shares([{"channel": "c", "start_s": 0.0, "end_s": 40.0, "emotion": None}], 40.0, LAB)
    arousal_measures(wins, quarters)
    assert quarters[0]["arousal"] == pytest.approx(1 / 3)  # 8-10 s at 0, 9-10 s at 1
    assert quarters[1]["arousal"] == pytest.approx(1.0)
    assert arousal_measures({}, [])["arousal_mean"] is None


def _channel(name: str, probs: np.ndarray, speech: np.ndarray):
    from ser_lib.scoring import ScoredChannel

    n = len(probs)
    probs = np.where(speech[:, None], probs, np.nan).astype(np.float32)
    best = np.nanargmax(np.where(speech[:, None], probs, 0), axis=1)
    labels = np.asarray(LAB, dtype=object)
    return ScoredChannel(name, np.arange(n, dtype=float), np.arange(n, dtype=float) + 2, speech, probs,
                         np.where(speech, labels[best], None),
                         np.where(speech, probs[np.arange(n), best], np.nan).astype(np.float32),
                         np.where(speech, best, -1), np.where(speech, labels[best], None),
                         np.zeros(n * 100, bool), None)


def test_summary_and_segment_columns_carry_the_arousal():
    """summarize() (the job and ser predict) and segment_columns() on constructed channels."""
    from ser_lib.audio import AudioInfo
    from ser_lib.process import segment_columns, segment_records
    from ser_lib.scoring import ScoredRecording, summarize

    n = 40
    # the customer: calm neutral for the first half, angry for the second; the agent never speaks
    cust = np.array([_onehot("neutral") * 0.9 + _onehot("sad") * 0.1 if i < 20 else
                     _onehot("angry") * 0.8 + _onehot("neutral") * 0.2 for i in range(n)])
    speech = np.ones(n, bool)
    speech[5] = False
    chans = [_channel("agent", cust, np.zeros(n, bool)), _channel("customer", cust, speech)]
    rec = ScoredRecording(AudioInfo(8000, 2, 8000 * (n + 1), "WAV", "PCM_16"), n + 1.0, chans)
    out = summarize(rec, LAB)
    want = np.where(np.arange(n) < 20, 0.0, 0.8)[speech]
    assert out["channel_arousal_mean"]["customer"] == pytest.approx(want.mean(), abs=1e-6)
    assert out["channel_arousal_mean"]["agent"] is None and out["channel_arousal_peak"]["agent"] is None
    assert out["channel_arousal_peak"]["customer"] == pytest.approx(0.8, abs=1e-6)
    assert out["arousal_mean"] == pytest.approx(want.mean(), abs=1e-6)
    q = {(e["channel"], e["quarter"]): e["arousal"] for e in out["quarters"]}
    assert q[("customer", 1)] == pytest.approx(0.0, abs=1e-6) and q[("customer", 4)] == pytest.approx(0.8, abs=1e-6)
    assert q[("agent", 2)] is None
    cols = segment_columns(chans[1], LAB)
    assert cols["arousal"].dtype == np.float32 and np.isnan(cols["arousal"][5]) and np.isnan(cols["valence"][5])
    np.testing.assert_allclose(cols["arousal"][speech], np.where(np.arange(n) < 20, 0.0, 0.8)[speech], atol=1e-6)
    np.testing.assert_allclose(cols["valence"][speech], np.where(np.arange(n) < 20, 0.9, 0.2)[speech], atol=1e-6)
    rows = segment_records(cols)
    assert rows[5]["arousal"] is None and rows[5]["valence"] is None
    assert rows[30]["arousal"] == pytest.approx(0.8) and rows[30]["valence"] == pytest.approx(0.2)


# ---------------------------------------------------------------- the job end to end
N = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def arousal_run(spark, zcr_artifact, tmp_path_factory):
    """Three stereo calls, agent calm throughout; the customer: calm then bright (rise.wav),
    bright then calm (fall.wav), silent (quiet.wav). The zcr model calls bright speech angry."""
    from jobs.analyze_calls import run
    from tests.test_episodes import write_emotional_call
    d, out = tmp_path_factory.mktemp("in"), tmp_path_factory.mktemp("out")
    write_emotional_call(d / "rise.wav", 8000, [[("calm", 24)], [("calm", 8), ("silence", 8), ("bright", 8)]], seed=11)
    write_emotional_call(d / "fall.wav", 8000, [[("calm", 24)], [("bright", 8), ("silence", 8), ("calm", 8)]], seed=12)
    write_emotional_call(d / "quiet.wav", 8000, [[("calm", 24)], [("silence", 24)]], seed=13)
    run(str(d), str(out), model_path=str(zcr_artifact), spark=spark, now=N)
    calls = pd.read_parquet(out / "calls")
    calls.index = calls["source_path"].map(lambda p: Path(p).name)
    return d, out, pd.read_parquet(out / "segments"), calls


def test_the_job_writes_arousal_per_window_and_per_call(arousal_run):
    import pyarrow.parquet as pq
    _, out, segs, calls = arousal_run
    names = pq.read_schema(next((out / "segments").rglob("*.parquet"))).names
    assert names[names.index("emotion_smoothed") + 1:][:4] == ["arousal", "valence", "level_db", "level_rel_db"]
    sp = segs[segs["is_speech"]]
    # ser_lib.vocal_level: null off speech; per channel, the relative level is against its median
    assert segs.loc[~segs["is_speech"], ["level_db", "level_rel_db"]].isna().all().all()
    assert sp["level_db"].notna().all() and (sp["level_db"] < 0).all()
    by_id = calls.set_index("call_id")
    for (cid, ch), g in sp.groupby(["call_id", "channel"]):
        np.testing.assert_allclose(g["level_rel_db"], g["level_db"] - np.median(g["level_db"]), atol=1e-4)
        # calls.channel_raised_share: the share of those windows at least 6 dB over the median
        assert dict(by_id.loc[cid, "channel_raised_share"])[ch] == pytest.approx((g["level_rel_db"] >= 6).mean())
    p = sp[[f"p_{e}" for e in LAB]].to_numpy(float)
    np.testing.assert_allclose(sp["arousal"], arousal(p), atol=1e-6)
    np.testing.assert_allclose(sp["valence"], valence(p), atol=1e-6)
    assert segs.loc[~segs["is_speech"], ["arousal", "valence"]].isna().all().all()
    rise, quiet = calls.loc["rise.wav"], calls.loc["quiet.wav"]
    q = {(e["channel"], e["quarter"]): e["arousal"] for e in rise["quarters"]}
    assert q[("customer", 1)] < 0.2 and q[("customer", 4)] > 0.8
    assert q[("agent", 1)] < 0.2 and q[("agent", 4)] < 0.2
    cust = segs[(segs["call_id"] == rise["call_id"]) & (segs["channel"] == "customer") & segs["is_speech"]]
    assert dict(rise["channel_arousal_mean"])["customer"] == pytest.approx(cust["arousal"].mean(), abs=1e-6)
    assert dict(rise["channel_arousal_peak"])["customer"] == pytest.approx(np.quantile(cust["arousal"], 0.9),
                                                                           abs=1e-6)
    m = dict(quiet["channel_arousal_mean"])
    assert m["customer"] is None and m["agent"] < 0.2 and dict(quiet["channel_arousal_peak"])["customer"] is None
    assert all(e["arousal"] is None for e in quiet["quarters"] if e["channel"] == "customer")
    assert 0 <= quiet["arousal_mean"] <= quiet["arousal_peak"] <= 1


def test_ser_predict_gives_the_jobs_arousal(arousal_run, zcr_artifact):
    from ser_lib.one_recording import predict_file
    d, _, segs, calls = arousal_run
    call = calls.loc["rise.wav"]
    res = predict_file(str(d / "rise.wav"), model_path=str(zcr_artifact))
    mine = pd.DataFrame(res["segments"]).sort_values(["channel", "segment_index"]).reset_index(drop=True)
    job = segs[segs["call_id"] == call["call_id"]].sort_values(["channel", "segment_index"]).reset_index(drop=True)
    for col in ("arousal", "valence", "level_db", "level_rel_db"):
        np.testing.assert_allclose(mine[col].astype(float), job[col].astype(float), atol=1e-5, equal_nan=True)
    for col in ("channel_arousal_mean", "channel_arousal_peak"):
        assert res[col] == pytest.approx(dict(call[col]))
    assert res["arousal_mean"] == pytest.approx(call["arousal_mean"])
    assert [q["arousal"] for q in res["quarters"]] == [pytest.approx(q["arousal"]) if q["arousal"] is not None
                                                       else None for q in call["quarters"]]


def test_readme_arousal_query(spark, arousal_run):
    """docs/queries.md's arousal-trend query (Spark SQL and DuckDB): the rising call only."""
    import duckdb

    from tests.conftest import readme_sql_blocks
    _, out, _, calls = arousal_run
    blocks = readme_sql_blocks()
    want = [calls.loc["rise.wav", "call_id"]]
    spark_sql = [s for s in blocks["spark"] if "arousal_rise" in s or "TEMPORARY VIEW calls" in s]
    res = [spark.sql(s.replace("out/demo/results", str(out))).toPandas() for s in spark_sql][-1]
    assert list(res["call_id"]) == want and res["arousal_rise"].iloc[0] > 0.6
    con = duckdb.connect()
    duck_sql = [s for s in blocks["duckdb"] if "arousal_rise" in s or s.startswith("CREATE VIEW calls")]
    res = [con.sql(s.replace("out/demo/results", str(out))) for s in duck_sql][-1].df()
    assert list(res["call_id"]) == want and res["arousal_rise"].iloc[0] > 0.6


def test_ser_predict_and_report_print_the_arousal(arousal_run, zcr_artifact):
    from click.testing import CliRunner

    from jobs.cli import cli
    from jobs.report import arousal_lines
    d, out, _, calls = arousal_run
    call = calls.loc["rise.wav"]
    lines = arousal_lines(call)
    cust = next(ln for ln in lines if ln.startswith("  customer arousal"))
    q = {e["quarter"]: e["arousal"] for e in call["quarters"] if e["channel"] == "customer"}
    assert cust.endswith("by quarter " + " ".join(f"{q[k]:.2f}" for k in range(1, 5)))
    assert f"mean {dict(call['channel_arousal_mean'])['customer']:.2f}" in cust
    quiet = arousal_lines(calls.loc["quiet.wav"])
    assert [ln.split(" arousal")[0].strip() for ln in quiet] == ["agent"]  # a silent channel has no line
    assert arousal_lines(pd.Series({"quarters": None})) == []  # a partition from before the columns
    res = CliRunner().invoke(cli, ["report", str(out), "--call", call["call_id"], "--png", str(out / "r.png")])
    assert res.exit_code == 0 and cust in res.output, res.output
    res = CliRunner().invoke(cli, ["predict", str(d / "rise.wav"), "--model", str(zcr_artifact)])
    assert res.exit_code == 0 and "customer arousal: mean" in res.output, res.output


def test_the_arousal_query_reads_partitions_written_before_the_columns(spark, arousal_run, tmp_path):
    """Additive schema: a calls partition without the arousal columns (nor quarters[].arousal)
    beside a new one; the docs' views (mergeSchema, union_by_name) read both, old rows null."""
    import shutil

    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.conftest import readme_sql_blocks
    _, out, _, calls = arousal_run
    shutil.copytree(out / "calls", tmp_path / "calls")
    new = pq.ParquetFile(next((out / "calls").rglob("*.parquet"))).read()
    drop = {"channel_arousal_mean", "channel_arousal_peak", "arousal_mean", "arousal_peak"}
    qt = new.schema.field("quarters").type.value_type
    old_q = pa.list_(pa.struct([f for f in qt if f.name != "arousal"]))
    schema = pa.schema([pa.field(f.name, old_q) if f.name == "quarters" else f
                        for f in new.schema if f.name not in drop])
    rows = []
    for r in new.to_pylist():
        r = {k: v for k, v in r.items() if k not in drop}
        r["call_id"] = "old-" + r["call_id"]
        r["quarters"] = [{k: v for k, v in q.items() if k != "arousal"} for q in r["quarters"] or []] or None
        rows.append(r)
    old_dir = tmp_path / "calls" / "run_date=2026-11-01" / "run_id=20261101-old"
    old_dir.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), old_dir / "part-0.parquet")
    want = [calls.loc["rise.wav", "call_id"]]
    blocks = readme_sql_blocks()
    root = str(tmp_path)
    spark_sql = [s for s in blocks["spark"] if "arousal_rise" in s or "TEMPORARY VIEW calls" in s]
    res = [spark.sql(s.replace("out/demo/results", root)).toPandas() for s in spark_sql][-1]
    assert list(res["call_id"]) == want
    con = duckdb.connect()
    duck_sql = [s for s in blocks["duckdb"] if "arousal_rise" in s or s.startswith("CREATE VIEW calls")]
    assert list([con.sql(s.replace("out/demo/results", root)) for s in duck_sql][-1].df()["call_id"]) == want
    old = con.sql("SELECT channel_arousal_mean, arousal_mean FROM calls WHERE call_id LIKE 'old-%'").fetchall()
    assert len(old) == len(rows) and all(m is None and a is None for m, a in old)
