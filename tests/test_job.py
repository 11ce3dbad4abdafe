"""The Spark job end to end on a local[2] session over generated recordings."""
from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ser_lib.labels import EMOTIONS, NEGATIVE_EMOTIONS
from tests.conftest import readme_sql_blocks, write_call

pytestmark = pytest.mark.spark
REPO = Path(__file__).resolve().parents[1]
NOW = dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def calls_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("calls")
    write_call(d / "mono16k.wav", 16000, [[("speech", 5), ("silence", 3), ("speech", 4.37)]], seed=1)
    write_call(d / "nested" / "deeper" / "stereo_ulaw.wav", 8000,
               [[("speech", 6), ("silence", 6)], [("silence", 5), ("speech", 7)]], subtype="ULAW", seed=2)
    write_call(d / "nested" / "call.flac", 22050, [[("speech", 3.3)]], seed=3)
    write_call(d / "short.wav", 8000, [[("speech", 0.8)]], seed=4)          # shorter than one window
    write_call(d / "silent.wav", 8000, [[("silence", 5)]], seed=5)          # valid, no speech
    write_call(d / "UPPER.WAV", 11025, [[("speech", 2.5)]], seed=6)         # extension case
    # 13 s of dead air (4-17 s); the customer starts at 2 s while the agent talks until 3 s: an interruption
    write_call(d / "dead_air.wav", 8000, [[("speech", 3), ("silence", 14), ("speech", 3)],
                                          [("silence", 2), ("speech", 2), ("silence", 16)]], seed=7)
    (d / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 20)
    (d / "empty.wav").write_bytes(b"")
    (d / "notes.txt").write_text("not a recording: ignored by extension")
    return d


AUDIO = {"mono16k.wav", "stereo_ulaw.wav", "call.flac", "short.wav", "silent.wav", "UPPER.WAV", "dead_air.wav",
         "corrupt.wav", "empty.wav"}


@pytest.fixture(scope="module")
def job_output(spark, calls_dir, tiny_artifact, tmp_path_factory):
    from jobs.analyze_calls import run
    out = tmp_path_factory.mktemp("out")
    conf = tmp_path_factory.mktemp("conf") / "job.yaml"
    conf.write_text("spark:\n  tasks_per_core: 3\n")  # several tasks per Python worker: model reuse is visible
    summary = run(str(calls_dir), str(out), str(conf), model_path=str(tiny_artifact), spark=spark, now=NOW)
    segments = pd.read_parquet(out / "segments")
    calls = pd.read_parquet(out / "calls")
    return summary, segments, calls, out


def test_every_recording_is_accounted_for(job_output):
    summary, segments, calls, _ = job_output
    assert {Path(p).name for p in calls["source_path"]} == AUDIO
    assert calls["call_id"].is_unique and len(calls) == len(AUDIO)
    assert summary["files"] == len(AUDIO) and summary["failed"] == 2 and summary["processed"] == len(AUDIO) - 2
    failed = calls.set_index(calls["source_path"].map(lambda p: Path(p).name)).loc[["corrupt.wav", "empty.wav"]]
    assert (failed["status"] == "failed").all()
    assert failed.loc["empty.wav", "error"].startswith("empty:")
    assert failed.loc["corrupt.wav", "error"].split(":")[0] in ("corrupt", "unsupported")
    assert not segments["call_id"].isin(calls.loc[calls["status"] == "failed", "call_id"]).any()


def test_segments_schema_and_bounds(job_output):
    _, segments, calls, out = job_output
    schema = pq.read_schema(next((out / "segments").rglob("*.parquet")))
    expected = (["call_id", "source_path", "channel", "segment_index", "start_s", "end_s", "is_speech", "emotion",
                 "confidence", "emotion_smoothed", "arousal", "valence", "level_db", "level_rel_db"]
                + [f"p_{e}" for e in EMOTIONS] + ["model_version"])
    assert schema.names == expected
    assert str(schema.field("start_s").type) == "double" and str(schema.field("p_angry").type) == "float"
    # each run owns (and atomically commits) its directory: run_id is a partition column
    run_dirs = list((out / "segments" / "run_date=2026-11-22").iterdir())
    assert [p.name for p in run_dirs] == [f"run_id={segments['run_id'].iloc[0]}"]
    merged = segments.merge(calls[["call_id", "duration_s", "n_segments"]], on="call_id")
    assert (merged["start_s"] >= 0).all() and (merged["start_s"] < merged["end_s"]).all()
    assert (merged["end_s"] <= merged["duration_s"] + 1e-6).all(), "every segment lies inside its call"
    counts = segments.groupby("call_id").size()
    assert (counts == calls.set_index("call_id").loc[counts.index, "n_segments"]).all()
    speech = segments[segments["is_speech"]]
    probs = speech[[f"p_{e}" for e in EMOTIONS]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-4)
    assert (speech["emotion"].to_numpy() == np.asarray(EMOTIONS)[probs.argmax(axis=1)]).all()
    assert np.allclose(speech["confidence"], probs.max(axis=1))
    silent = segments[~segments["is_speech"]]
    assert silent["emotion"].isna().all() and silent["p_angry"].isna().all()
    assert (segments["model_version"] == "tiny-test-1").all()


def test_channels_and_speech_flags(job_output):
    _, segments, calls, _ = job_output
    by_name = calls.set_index(calls["source_path"].map(lambda p: Path(p).name))
    st = segments[segments["call_id"] == by_name.loc["stereo_ulaw.wav", "call_id"]]
    assert set(st["channel"]) == {"agent", "customer"}
    agent = st[st["channel"] == "agent"].sort_values("start_s")
    customer = st[st["channel"] == "customer"].sort_values("start_s")
    assert agent["is_speech"].iloc[:4].all() and not agent["is_speech"].iloc[-4:].any()
    assert not customer["is_speech"].iloc[:3].any() and customer["is_speech"].iloc[-5:].all()
    assert by_name.loc["stereo_ulaw.wav", "sample_rate"] == 8000 and by_name.loc["stereo_ulaw.wav", "n_channels"] == 2
    short = by_name.loc["short.wav"]
    assert short["n_segments"] == 1 and short["duration_s"] == pytest.approx(0.8)
    silent = by_name.loc["silent.wav"]
    assert silent["status"] == "ok" and silent["speech_s"] == 0 and silent["dominant_emotion"] is None


def test_calls_schema_and_timelines(job_output):
    _, segments, calls, out = job_output
    schema = pq.read_schema(next((out / "calls").rglob("*.parquet")))
    for col in ["call_id", "source_path", "status", "error", "duration_s", "sample_rate", "n_channels", "n_segments",
                "speech_s", "dominant_emotion", "channel_dominant_emotion", "timeline", "model_version"]:
        assert col in schema.names
    assert all(f"share_{e}" in schema.names for e in EMOTIONS)
    assert str(schema.field("timeline").type) == (
        "list<element: struct<channel: string, start_s: double, end_s: double, emotion: string, confidence: double>>")
    for call in calls[calls["status"] == "ok"].itertuples():
        tl = pd.DataFrame(list(call.timeline))
        segs = segments[segments["call_id"] == call.call_id]
        for ch, g in tl.groupby("channel"):
            assert g["start_s"].iloc[0] == 0
            assert g["end_s"].iloc[-1] == pytest.approx(segs[segs["channel"] == ch]["end_s"].max())
            np.testing.assert_allclose(g["start_s"].iloc[1:], g["end_s"].iloc[:-1])  # contiguous
            assert (g["emotion"].iloc[1:].to_numpy() != g["emotion"].iloc[:-1].to_numpy()).all()  # merged
        shares = sum(getattr(call, f"share_{e}") for e in EMOTIONS)
        assert shares == pytest.approx(1.0 if call.speech_s > 0 else 0.0)


@pytest.mark.parametrize("name", ["stereo_ulaw.wav", "mono16k.wav", "short.wav", "dead_air.wav"])
def test_ser_predict_gives_the_jobs_segments_and_summary(job_output, calls_dir, tiny_artifact, name):
    """One scoring path: ``ser predict`` (no Spark) and the job agree row for row."""
    from ser_lib.one_recording import predict_file

    _, segments, calls, _ = job_output
    call = calls[calls["source_path"].map(lambda p: Path(p).name) == name].iloc[0]
    job = (segments[segments["call_id"] == call["call_id"]].sort_values(["channel", "segment_index"])
           .reset_index(drop=True))
    path = next(calls_dir.rglob(name))
    res = predict_file(str(path), model_path=str(tiny_artifact))
    mine = pd.DataFrame(res["segments"]).sort_values(["channel", "segment_index"]).reset_index(drop=True)
    assert len(mine) == len(job) == call["n_segments"] == res["n_segments"]
    for col in ["channel", "segment_index", "is_speech"]:
        assert mine[col].tolist() == job[col].tolist(), col
    assert mine["emotion"].tolist() == [None if pd.isna(e) else e for e in job["emotion"]]
    for col in ["start_s", "end_s", "confidence"] + [f"p_{e}" for e in EMOTIONS]:
        np.testing.assert_allclose(mine[col].astype(float), job[col].astype(float), rtol=1e-5, atol=1e-6,
                                   err_msg=col)
    assert res["dominant_emotion"] == call["dominant_emotion"]
    assert res["speech_s"] == pytest.approx(call["speech_s"])
    assert res["duration_s"] == pytest.approx(call["duration_s"])
    assert [dict(t, confidence=None) for t in res["timeline"]] == [dict(t, confidence=None) for t in call["timeline"]]
    # the conversation measures and talk spurts too (same summarize path)
    for col in ["non_talk_s", "longest_non_talk_s", "overlap_s"]:
        assert (res[col] is None and pd.isna(call[col])) or res[col] == pytest.approx(call[col]), col
    for col in ["channel_talk_s", "channel_loudness_lufs"]:
        assert res[col] == pytest.approx(dict(call[col])), col
    assert res["channel_interruptions"] == (None if call["channel_interruptions"] is None
                                            else dict(call["channel_interruptions"]))
    turns = pd.read_parquet(out_of(job_output) / "turns")
    mine_turns = sorted((t["channel"], t["turn_index"], t["start_s"], t["end_s"]) for t in res["turns"])
    job_turns = sorted((r.channel, r.turn_index, r.start_s, r.end_s)
                       for r in turns[turns["call_id"] == call["call_id"]].itertuples())
    assert mine_turns == job_turns
    assert [{k: q[k] for k in ("talk_s", "non_talk_s", "overlap_s")} for q in res["quarters"]] == \
        [{k: (None if q[k] is None or pd.isna(q[k]) else pytest.approx(q[k])) for k in ("talk_s", "non_talk_s", "overlap_s")}
         for q in call["quarters"]]


def out_of(job_output) -> Path:
    return job_output[3]


def test_tables_read_back_in_spark_with_the_declared_schema(spark, job_output):
    # calls are written with pyarrow, segments by Spark: both must read back in Spark as declared
    from jobs import schemas
    _, segments, calls, out = job_output
    got = spark.read.parquet(str(out / "calls"))
    want = schemas.calls_table(list(EMOTIONS))
    assert [(f.name, f.dataType) for f in got.schema.fields if f.name not in ("run_date", "run_id")] == \
        [(f.name, f.dataType) for f in want.fields]
    assert got.count() == len(calls)
    seg = spark.read.parquet(str(out / "segments"))
    assert dict(seg.dtypes)["confidence"] == "float" and seg.count() == len(segments)
    # non-speech windows have null (not NaN) emotion probabilities, as analysts expect
    assert seg.where("NOT is_speech AND (confidence IS NOT NULL OR p_neutral IS NOT NULL)").count() == 0
    assert seg.where("is_speech AND confidence IS NULL").count() == 0


def test_model_is_loaded_once_per_worker(job_output):
    summary, _, _, _ = job_output
    # local[2] runs at most two Python workers; the 8 files went to 6 tasks (tasks_per_core 3).
    # 0 loads is right too when an earlier job of this session (e.g. tests/test_web.py run
    # first) left the same model in the reused workers: never more than once per worker.
    assert 0 <= summary["model_loads"] <= 2
    assert summary["model_batches"] > summary["model_loads"]


def test_rerun_replaces_the_partition(spark, calls_dir, tiny_artifact, job_output):
    from jobs.analyze_calls import run
    _, segments, calls, out = job_output
    run(str(calls_dir), str(out), model_path=str(tiny_artifact), spark=spark, now=NOW)
    again = pd.read_parquet(out / "segments")
    assert len(again) == len(segments) and len(pd.read_parquet(out / "calls")) == len(calls)
    cols = ["call_id", "channel", "segment_index", "emotion"]
    pd.testing.assert_frame_equal(again.sort_values(cols[:3])[cols].reset_index(drop=True),
                                  segments.sort_values(cols[:3])[cols].reset_index(drop=True))


def test_spark_submit_runs_the_same_job(tmp_path, tiny_artifact):
    """The job file runs unchanged under spark-submit (its own JVM, default local[*])."""
    submit = Path(sys.executable).with_name("spark-submit")
    if not submit.exists():
        pytest.skip("spark-submit is not installed next to this interpreter")
    d = tmp_path / "in"
    write_call(d / "a.wav", 8000, [[("speech", 3)], [("silence", 3)]], subtype="ULAW")
    write_call(d / "b.flac", 16000, [[("speech", 2.2)]])
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    res = subprocess.run([str(submit), "--master", "local[1]", str(REPO / "jobs" / "analyze_calls.py"),
                          "--input", str(d), "--output", str(tmp_path / "out"), "--model", str(tiny_artifact)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    calls = pd.read_parquet(tmp_path / "out" / "calls")
    assert sorted(Path(p).name for p in calls["source_path"]) == ["a.wav", "b.flac"]
    assert '"processed": 2' in res.stdout


def test_readme_queries(spark, job_output):
    """The README's Spark SQL and DuckDB examples run on the job's output and agree with pandas."""
    import duckdb
    summary, segments, calls, out = job_output
    blocks = readme_sql_blocks()
    assert set(blocks) == {"spark", "duckdb"}
    ok = calls[calls["status"] == "ok"]

    def ends_angry(tl):
        speech = [t for t in tl if t["channel"] == "customer" and t["emotion"] is not None]
        return bool(speech) and speech[-1]["emotion"] == "angry"

    want_dominant = sorted(zip(ok["call_id"], ok["dominant_emotion"].fillna("-")))
    want_angry = sorted(ok.loc[ok["timeline"].map(ends_angry), "call_id"])
    neg = sum(ok["speech_s"] * sum(ok[f"share_{e}"] for e in NEGATIVE_EMOTIONS))
    want_negative = neg / ok["speech_s"].sum()

    spark_results = [spark.sql(s.replace("out/demo/results", str(out))).toPandas() for s in blocks["spark"]]
    con = duckdb.connect()
    duck_results = [con.sql(s.replace("out/demo/results", str(out))) for s in blocks["duckdb"]]
    duck_results = [r.df() if r is not None else None for r in duck_results]
    for res in (spark_results[1:], duck_results[1:]):
        dominant, angry, negative = res[0], res[1], res[2]
        assert sorted(zip(dominant["call_id"], dominant["dominant_emotion"].fillna("-"))) == want_dominant
        assert sorted(angry["call_id"]) == want_angry
        assert len(negative) == 1 and negative["negative_share"].iloc[0] == pytest.approx(want_negative)
    for statements in blocks.values():  # the README counts the library's negative emotions
        negative_sql = next(s for s in statements if "negative_share" in s)
        assert set(re.findall(r"\bshare_(\w+)", negative_sql)) == NEGATIVE_EMOTIONS
    failed = duck_results[4]
    assert sorted(Path(p).name for p in failed["source_path"]) == ["corrupt.wav", "empty.wav"]


def test_readme_conversation_queries(spark, job_output):
    """The README's dead-air, interruption and before/after-silence queries (Spark SQL and
    DuckDB) agree with pandas over the turns, calls and segments tables."""
    import duckdb
    _, segments, calls, out = job_output
    turns = pd.read_parquet(out / "turns")
    name = calls.set_index("call_id")["source_path"].map(lambda p: Path(p).name)
    silences = []
    for cid, g in turns.sort_values(["start_s", "end_s"]).groupby("call_id"):
        last = -np.inf
        for r in g.itertuples():
            if np.isfinite(last) and r.start_s - last > 10:  # before the first spurt: not a silence
                silences.append((cid, last, r.start_s))
            last = max(last, r.end_s)
    assert [(name[c], round(b - a)) for c, a, b in silences] == [("dead_air.wav", 13)], silences
    ok = calls[(calls["status"] == "ok") & calls["channel_interruptions"].notna()]
    want_int = {r.call_id: dict(r.channel_interruptions)["agent"] for r in ok.itertuples()}
    by_name = {name[r.call_id]: dict(r.channel_interruptions) for r in ok.itertuples()}
    assert by_name["dead_air.wav"] == {"agent": 0, "customer": 1} and by_name["stereo_ulaw.wav"]["customer"] == 1
    want_side = {}
    for cid, a, b in silences:
        g = segments[(segments["call_id"] == cid) & segments["is_speech"]]
        mid = (g["start_s"] + g["end_s"]) / 2
        for r, m in zip(g.itertuples(), mid):
            side = "before" if a - 10 <= m <= a else "after" if b <= m <= b + 10 else None
            if side:
                key = (cid, r.channel, side, r.emotion_smoothed)
                want_side[key] = want_side.get(key, 0) + 1
    assert {(k[1], k[2]) for k in want_side} == {("agent", "before"), ("customer", "before"), ("agent", "after")}

    def check(dead, interruptions, sides):
        assert [(c, round(a, 3), round(b, 3)) for c, a, b in zip(dead["call_id"], dead["silence_start_s"],
                                                                   dead["silence_end_s"])] == \
            [(c, round(a, 3), round(b, 3)) for c, a, b in silences]
        assert dict(zip(interruptions["call_id"], interruptions["agent_interruptions"])) == want_int
        assert {(r.call_id, r.channel, r.side, r.emotion): r.windows for r in sides.itertuples()} == want_side

    blocks = readme_sql_blocks()
    markers = ("AS silence_s", "agent_interruptions", "WITH silences")
    spark_res = [spark.sql(s.replace("out/demo/results", str(out))).toPandas() for s in blocks["spark"]]
    check(*[next(r for s, r in zip(blocks["spark"], spark_res) if m in s) for m in markers])
    con = duckdb.connect()
    duck_res = [con.sql(s.replace("out/demo/results", str(out))) for s in blocks["duckdb"]]
    duck_res = [r.df() if r is not None else None for r in duck_res]
    check(*[next(r for s, r in zip(blocks["duckdb"], duck_res) if m in s) for m in markers])


def test_a_local_run_gets_the_local_jvm_options(spark):
    """LOCAL_SPARK_DEFAULTS (C1 only, serial GC) reach the driver JVM's command line (build_spark, local master)."""
    from jobs.analyze_calls import LOCAL_SPARK_DEFAULTS

    args = list(spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    for option in LOCAL_SPARK_DEFAULTS["spark.driver.extraJavaOptions"].split():
        assert option in args, (option, args)
