"""Nightly operation: bad inputs accounted for, archives, incremental runs, reprocess,
idempotent reruns and recovery from a driver killed with SIGKILL."""
from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tests.conftest import write_call

pytestmark = pytest.mark.spark
REPO = Path(__file__).resolve().parents[1]
NIGHT1 = dt.datetime(2026, 11, 22, 2, 0, tzinfo=dt.timezone.utc)
NIGHT2 = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.timezone.utc)


def _wav_bytes(fmt: bytes, data: bytes) -> bytes:
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _good(sr=8000, dur=3.0, seed=0) -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(seed)
    from ser_lib.synth import speech_like
    sf.write(buf, speech_like(dur, sr, rng), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _read(out: Path, table: str) -> pd.DataFrame:
    from jobs.report import read_table
    return read_table(str(out), table)


def _canon(df: pd.DataFrame, keys) -> pd.DataFrame:
    """Rows in a fixed order with comparable values (lists/arrays/maps as JSON)."""
    df = df.copy()
    for c in df.columns:
        if df[c].dtype == object:
            df[c] = df[c].map(lambda v: json.dumps(v.tolist() if isinstance(v, np.ndarray) else v, default=str, sort_keys=True)
                              if isinstance(v, (list, dict, np.ndarray)) else v)
    return df.sort_values(keys).reset_index(drop=True)[sorted(df.columns)]


def _tables(out: Path) -> dict[str, pd.DataFrame]:
    keys = {"calls": ["call_id"], "segments": ["call_id", "channel", "segment_index"],
            "manifest": ["source_path", "member", "run_id"], "errors": ["source_path", "member", "run_id"]}
    out_ = {}
    for t, k in keys.items():
        df = _read(out, t)
        out_[t] = _canon(df.assign(member=df["member"].fillna("")) if "member" in df else df, k) if len(df) else df
    return out_


def _assert_same_output(a: Path, b: Path):
    """``b`` holds exactly ``a``'s rows; runs that ``b`` has beyond ``a``'s (a rerun after a
    crash that committed) may only add manifest rows of inputs they skipped."""
    ta, tb = _tables(a), _tables(b)
    for t in ("manifest", "errors"):
        if len(tb[t]) and len(ta[t]):
            extra = tb[t][~tb[t]["run_id"].isin(set(ta[t]["run_id"]))]
            assert extra["status"].eq("skipped").all() or t == "errors", extra
            tb[t] = tb[t][tb[t]["run_id"].isin(set(ta[t]["run_id"]))].reset_index(drop=True)
    for t in ta:
        assert len(ta[t]) == len(tb[t]), t
        if len(ta[t]):
            pd.testing.assert_frame_equal(ta[t], tb[t], check_exact=True, obj=t)
    assert not (b / "_staging").exists() or not any((b / "_staging").iterdir())


# ---------------------------------------------------------------- bad inputs
@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory) -> tuple[Path, dict]:
    """At least 15 kinds of bad input next to good recordings; expected (status, reason) by input."""
    d = tmp_path_factory.mktemp("bad")
    exp = {}
    write_call(d / "good" / "mono.wav", 16000, [[("speech", 4), ("silence", 2)]], seed=1)
    write_call(d / "good" / "stereo.wav", 8000, [[("speech", 4), ("silence", 3)], [("silence", 3), ("speech", 4)]],
               subtype="ULAW", seed=2)
    write_call(d / "good" / "call.flac", 22050, [[("speech", 3.3)]], seed=3)
    exp.update({"good/mono.wav": ("ok", None), "good/stereo.wav": ("ok", None), "good/call.flac": ("ok", None)})
    (d / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 20)
    exp["corrupt.wav"] = ("failed", "corrupt")
    full = _good(dur=4.0)
    (d / "truncated.wav").write_bytes(full[: len(full) // 2])              # header promises more than is there
    exp["truncated.wav"] = ("ok", None)
    (d / "empty.wav").write_bytes(b"")
    exp["empty.wav"] = ("failed", "empty")
    (d / "text.mp3").write_text("this is a meeting note, not audio\n" * 50)
    exp["text.mp3"] = ("failed", ("corrupt", "unsupported"))               # libsndfile's wording varies
    pcm_fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    (d / "header_only.wav").write_bytes(_wav_bytes(pcm_fmt, b""))
    exp["header_only.wav"] = ("failed", "no_samples")
    write_call(d / "short.wav", 8000, [[("speech", 0.6)]], seed=4)
    exp["short.wav"] = ("ok", None)
    write_call(d / "silence.wav", 8000, [[("silence", 5)]], seed=5)
    exp["silence.wav"] = ("ok", None)
    y = np.zeros(16000, np.float32)
    y[100] = np.nan
    sf.write(d / "nan.wav", y, 8000, subtype="FLOAT")
    exp["nan.wav"] = ("failed", "non_finite")
    y[100] = np.inf
    sf.write(d / "inf.wav", y, 8000, subtype="FLOAT")
    exp["inf.wav"] = ("failed", "non_finite")
    ext_fmt = struct.pack("<HHIIHHHHI", 0xFFFE, 1, 8000, 16000, 2, 16, 22, 16, 4) + bytes(range(16))
    (d / "codec.wav").write_bytes(_wav_bytes(ext_fmt, b"\0" * 1600))     # WAVE_FORMAT_EXTENSIBLE, unknown codec
    exp["codec.wav"] = ("failed", "unsupported")
    sf.write(d / "rate96k.wav", np.zeros(96000, np.float32), 96000)
    exp["rate96k.wav"] = ("failed", "sample_rate")
    os.symlink(d / "does-not-exist.wav", d / "dangling.wav")               # listed, cannot be opened
    exp["dangling.wav"] = ("failed", "unreadable")
    locked = write_call(d / "locked.wav", 8000, [[("speech", 2.5)]], seed=6)
    locked.chmod(0)                                                        # root can still read it
    exp["locked.wav"] = (("ok", None) if os.geteuid() == 0 else ("failed", "unreadable"))
    (d / "notes.txt").write_text("not a recording")
    exp["notes.txt"] = ("skipped", "not_audio")
    (d / "._resource.wav").write_bytes(b"\0" * 100)                        # macOS resource fork
    exp["._resource.wav"] = ("skipped", "hidden")
    (d / "broken.zip").write_bytes(b"PK\x03\x04 definitely not a zip" * 10)
    exp["broken.zip"] = ("failed", "corrupt")
    (d / "broken.tgz").write_bytes(b"\x1f\x8b\x08\x00garbage" * 10)
    exp["broken.tgz"] = ("failed", "corrupt")
    with zipfile.ZipFile(d / "batch.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("calls/a.wav", _good(seed=7))
        zf.writestr("../../escape.wav", _good(seed=8))                     # a name, never a path
        zf.writestr("readme.txt", "hello")
        zf.writestr("garbage.wav", b"\x00\x01" * 500)
        zf.writestr("bomb.wav", b"\0" * (3 << 20))                         # ratio ~1000 > max_ratio
    exp.update({"batch.zip": ("ok", None), "batch.zip!calls/a.wav": ("ok", None),
                "batch.zip!../../escape.wav": ("ok", None), "batch.zip!readme.txt": ("skipped", "not_audio"),
                "batch.zip!garbage.wav": ("failed", ("corrupt", "unsupported")), "batch.zip!bomb.wav": ("failed", "compression_ratio")})
    buf = io.BytesIO()
    with tarfile.open(d / "many.tar.gz", "w:gz") as tf:
        for i in range(6):
            data = _good(dur=2.5, seed=20 + i)
            ti = tarfile.TarInfo(f"day/{i}.wav")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    for i in range(5):
        exp[f"many.tar.gz!day/{i}.wav"] = ("ok", None)
    exp["many.tar.gz"] = ("failed", "too_many_members")                    # max_members = 5 below
    conf = d.parent / "bad-conf.yaml"
    conf.write_text("archives:\n  max_members: 5\n  max_member_bytes: 8000000\n  max_ratio: 50\n"
                    "spark:\n  settings:\n    spark.ui.enabled: false\n")
    return d, exp, conf


@pytest.fixture(scope="module")
def bad_run(spark, bad_dir, tiny_artifact, tmp_path_factory):
    from jobs.analyze_calls import run
    d, exp, conf = bad_dir
    out = tmp_path_factory.mktemp("bad-out")
    summary = run(str(d), str(out), str(conf), model_path=str(tiny_artifact), spark=spark, now=NIGHT1)
    return summary, out


def test_every_bad_input_is_accounted_for(bad_dir, bad_run):
    d, exp, _ = bad_dir
    summary, out = bad_run
    m = _read(out, "manifest")
    key = [os.path.relpath(p, d) + (f"!{mem}" if isinstance(mem, str) else "")
           for p, mem in zip(m["source_path"], m["member"])]
    m.index = key
    assert set(m.index) == set(exp), "every input (files, archives, members) has exactly one manifest row"
    got = {k: (r.status, None if r.error is None else r.error.split(":")[0]) for k, r in m.iterrows()}
    # a tuple of reasons: libsndfile may call the same garbage either; the status is exact
    wrong = {k: g for k, g in got.items() if g[0] != exp[k][0]
             or (g[1] not in exp[k][1] if isinstance(exp[k][1], tuple) else g[1] != exp[k][1])}
    assert wrong == {}, {k: (g, exp[k]) for k, g in wrong.items()}
    # the errors table is the failed rows; calls hold a failed row per failed recording
    errors = _read(out, "errors")
    assert len(errors) == (m["status"] == "failed").sum() == summary["failed"]
    calls = _read(out, "calls")
    rec = m[m["call_id"].notna() & m["status"].isin(["ok", "failed"])]
    assert sorted(calls["call_id"]) == sorted(rec["call_id"]) and calls["call_id"].is_unique
    # good recordings are processed normally
    segs = _read(out, "segments")
    ok = calls[calls["status"] == "ok"]
    assert (ok["n_segments"] > 0).all() and set(segs["call_id"]) == set(ok["call_id"])
    by = ok.set_index(ok["source_path"].map(lambda p: os.path.relpath(p, d)) + ok["member"].map(
        lambda x: f"!{x}" if isinstance(x, str) else ""))
    assert by.loc["good/stereo.wav", "n_channels"] == 2 and by.loc["good/stereo.wav", "speech_s"] > 0
    assert by.loc["short.wav", "n_segments"] == 1 and by.loc["silence.wav", "speech_s"] == 0
    assert by.loc["truncated.wav", "duration_s"] == pytest.approx(2.0, abs=0.05)
    assert summary["processed"] == len(ok) and summary["ignored"] == 3
    assert summary["files"] == summary["processed"] + summary["failed"] + summary["skipped"]
    assert json.loads((out / "_runs" / f"{summary['run_id']}.json").read_text())["summary"]["failed"] == summary["failed"]


def test_exit_codes(tmp_path, tiny_artifact, bad_dir):
    """ser analyze: 2 for a configuration error (checked before Spark starts)."""
    from click.testing import CliRunner

    from jobs.cli import cli
    bad_conf = tmp_path / "c.yaml"
    bad_conf.write_text("archives:\n  max_ratio: 0.5\n")
    res = CliRunner().invoke(cli, ["analyze", str(bad_dir[0]), str(tmp_path / "o"), "--conf", str(bad_conf),
                                   "--model", str(tiny_artifact)])
    assert res.exit_code == 2 and "max_ratio" in res.output
    res = CliRunner().invoke(cli, ["analyze", str(tmp_path / "nowhere"), str(tmp_path / "o"), "--model",
                                   str(tiny_artifact)])
    assert res.exit_code == 2


def test_report_prints_and_renders(bad_run, tmp_path):
    from click.testing import CliRunner

    from jobs.cli import cli
    summary, out = bad_run
    res = CliRunner().invoke(cli, ["report", str(out)])
    assert res.exit_code == 0 and "stereo.wav" in res.output and "failed:" in res.output
    calls = _read(out, "calls")
    cid = calls.loc[calls["source_path"].str.endswith("stereo.wav"), "call_id"].iloc[0]
    png = tmp_path / "t.png"
    res = CliRunner().invoke(cli, ["report", str(out), "--call", cid, "--png", str(png)])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "customer" in res.output and "non-speech" in res.output


# ---------------------------------------------------------------- incremental, reprocess, rerun
def _second_model(tiny_artifact: Path, tmp_path: Path) -> Path:
    new = tmp_path / "tiny-v2"
    shutil.copytree(tiny_artifact, new)
    meta = json.loads((new / "artifact.json").read_text())
    meta["version"] = "tiny-test-2"
    (new / "artifact.json").write_text(json.dumps(meta))
    return new


def test_incremental_runs_reprocess_and_rerun(spark, tiny_artifact, tmp_path):
    from jobs.analyze_calls import run
    d, out = tmp_path / "in", tmp_path / "out"
    for i in range(3):
        write_call(d / f"c{i}.wav", 8000, [[("speech", 3 + i)]], seed=i)
    with zipfile.ZipFile(d / "z.zip", "w") as zf:
        zf.writestr("m.wav", _good(seed=9))
    kw = dict(model_path=str(tiny_artifact), spark=spark)
    s1 = run(str(d), str(out), now=NIGHT1, **kw)
    assert (s1["processed"], s1["skipped"], s1["failed"]) == (4, 0, 0)
    first = _tables(out)

    # the same night again: a new run that finds nothing to do; no row of a table changes
    again = run(str(d), str(out), now=NIGHT1, **kw)
    assert again["run_id"] == s1["run_id"] + "-2" and (again["processed"], again["skipped"]) == (0, 4)
    second = _tables(out)
    for t in ("calls", "segments"):
        pd.testing.assert_frame_equal(first[t], second[t], check_exact=True, obj=t)
    assert len(second["manifest"]) == 2 * len(first["manifest"]), "the rerun accounted for every input"

    # next night: one new file, one touched (same bytes), one changed; the rest unchanged
    write_call(d / "new.wav", 8000, [[("speech", 2.5)]], seed=11)
    os.utime(d / "c0.wav", (1e9, 1e9))
    write_call(d / "c1.wav", 8000, [[("speech", 6)]], seed=12)
    s2 = run(str(d), str(out), now=NIGHT2, **kw)
    assert (s2["processed"], s2["skipped"], s2["failed"]) == (2, 3, 0)
    m = _read(out, "manifest")
    n2 = m[m["run_id"] == s2["run_id"]]
    n2 = n2.set_index(n2["source_path"].map(os.path.basename) + n2["member"].fillna(""))
    assert n2.loc["c0.wav", "status"] == "skipped" and n2.loc["c0.wav", "output_run_id"] == s1["run_id"]
    assert n2.loc["c1.wav", "status"] == "ok" and n2.loc["new.wav", "status"] == "ok"
    assert n2.loc["z.zipm.wav", "status"] == "skipped" and n2.loc["z.zip", "status"] == "skipped"
    calls, segs = _read(out, "calls"), _read(out, "segments")
    assert calls["call_id"].is_unique and len(calls) == 5, "a changed call's old rows are superseded"
    assert not segs.duplicated(["call_id", "channel", "segment_index"]).any()
    c1 = calls[calls["source_path"].str.endswith("c1.wav")].iloc[0]
    assert c1["run_id"] == s2["run_id"] and c1["duration_s"] == pytest.approx(6.0)

    # model upgrade: reprocess everything analysed on night 1 (a run-date range), no double counting
    v2 = _second_model(tiny_artifact, tmp_path)
    s3 = run(str(d), str(out), model_path=str(v2), spark=spark, now=NIGHT2 + dt.timedelta(days=1),
             reprocess=["2026-11-22..2026-11-22"])
    assert (s3["processed"], s3["skipped"]) == (3, 2) and s3["model_version"] == "tiny-test-2"
    calls, segs = _read(out, "calls"), _read(out, "segments")
    assert calls["call_id"].is_unique and len(calls) == 5
    assert not segs.duplicated(["call_id", "channel", "segment_index"]).any()
    assert set(segs["call_id"]) == set(calls["call_id"])
    assert sorted(calls["model_version"]) == ["tiny-test-1"] * 2 + ["tiny-test-2"] * 3
    assert not (out / "calls" / "run_date=2026-11-22").exists() or not any(
        (out / "calls" / "run_date=2026-11-22").rglob("*.parquet")), "night 1 fully superseded"


def test_reruns_and_backfills_never_lose_a_recording(spark, tiny_artifact, tmp_path):
    """The sequence that used to lose x.wav: a later night, then a reprocess of an earlier
    night, a rerun of it, and the next night. Every run keeps both recordings' rows."""
    from jobs.analyze_calls import parse_run_date, run
    from ser_lib.process import call_id
    d, out = tmp_path / "in", tmp_path / "out"
    kw = dict(model_path=str(tiny_artifact), spark=spark)
    write_call(d / "a.wav", 8000, [[("speech", 3)]], seed=1)
    run(str(d), str(out), now=parse_run_date("2026-12-01"), **kw)
    write_call(d / "x.wav", 8000, [[("speech", 4)]], seed=2)
    steps = [("2026-12-02", None, (1, 1)), ("2026-12-01", ["all"], (2, 0)), ("2026-12-01", None, (0, 2)),
             ("2026-12-03", None, (0, 2))]
    ids = {call_id(str(d / n)) for n in ("a.wav", "x.wav")}
    for date, reprocess, (processed, skipped) in steps:
        s = run(str(d), str(out), now=parse_run_date(date), reprocess=reprocess, **kw)
        assert (s["processed"], s["skipped"]) == (processed, skipped), (date, reprocess, s)
        calls, segs = _read(out, "calls"), _read(out, "segments")
        assert calls["call_id"].is_unique and set(calls["call_id"]) == ids, (date, reprocess)
        assert set(segs["call_id"]) == ids and not segs.duplicated(["call_id", "channel", "segment_index"]).any()
        one_run = segs.merge(calls[["call_id", "run_id"]], on="call_id", suffixes=("", "_call"))
        assert (one_run["run_id"] == one_run["run_id_call"]).all(), "a call's segments come from its calls row's run"


# ---------------------------------------------------------------- kill -9 and rerun
def _subprocess_run(d: Path, out: Path, artifact: Path, run_id: str, crash: str | None):
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    env.pop("SER_CRASH_AFTER", None)
    if crash:
        env["SER_CRASH_AFTER"] = crash
    return subprocess.run([sys.executable, "-m", "jobs.analyze_calls", "--input", str(d), "--output", str(out),
                           "--model", str(artifact), "--master", "local[2]", "--run-id", run_id,
                           "--run-date", "2026-11-22"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_kill_9_then_rerun_equals_uninterrupted_run(spark, tiny_artifact, tmp_path):
    """A driver killed with SIGKILL after the commit record (committed, not applied), or crashed
    after staging or half-way through the renames, then started again, ends with exactly the
    uninterrupted run's output (all rows and values, run_id included)."""
    from jobs import commit
    from jobs.analyze_calls import run
    d = tmp_path / "in"
    for i in range(2):
        write_call(d / f"k{i}.wav", 8000, [[("speech", 3)], [("silence", 1), ("speech", 2)]], seed=i)
    (d / "bad.wav").write_bytes(b"nope")
    with zipfile.ZipFile(d / "z.zip", "w") as zf:
        zf.writestr("m.wav", _good(seed=5))
    now = dt.datetime(2026, 11, 22, 12, tzinfo=dt.timezone.utc)
    ref = tmp_path / "ref"
    run(str(d), str(ref), model_path=str(tiny_artifact), spark=spark, now=now, run_id="nightly-1")

    # a real kill -9 (SIGKILL via the SER_CRASH_AFTER test hook) right after the commit record
    out = tmp_path / "out-committed"
    res = _subprocess_run(d, out, tiny_artifact, "nightly-1", "committed")
    assert res.returncode == -9, res.stderr[-2000:]
    assert len(list((out / "_staging").iterdir())) == 1 and (out / "_runs" / "nightly-1.json").exists()
    s = run(str(d), str(out), model_path=str(tiny_artifact), spark=spark, now=now)
    assert s["recovered_runs"] == ["nightly-1"] and s["processed"] == 0 and s["failed"] == 0
    assert s["still_failed"] == 1, "the bad file failed in the killed run and is not retried"
    _assert_same_output(ref, out)

    # in-process crashes (the same file states a kill leaves): after staging, before the
    # commit record (nothing visible, staging discarded), and between two renames of the apply
    for step in ("staged", "moved"):
        out = tmp_path / f"out-{step}"

        def boom(at, step=step):
            if at == step:
                raise KeyboardInterrupt(f"simulated kill after {step}")
        commit.CRASH_HOOK = boom
        try:
            with pytest.raises(KeyboardInterrupt):
                run(str(d), str(out), model_path=str(tiny_artifact), spark=spark, now=now, run_id="nightly-1")
        finally:
            commit.CRASH_HOOK = None
        if step == "staged":
            assert not (out / "calls").exists() and not (out / "_runs").exists()
        s = run(str(d), str(out), model_path=str(tiny_artifact), spark=spark, now=now,
                run_id="nightly-1" if step == "staged" else None)
        assert s["recovered_runs"] == ([] if step == "staged" else ["nightly-1"])
        _assert_same_output(ref, out)
