"""What a run tells its operator, end to end on local Spark: truncated recordings marked in
``calls.warnings`` and counted, failed inputs named with a query for all of them, one log
line per stage, and a symlink loop that does not multiply the data."""
from __future__ import annotations

import datetime as dt
import json
import logging
import os

import duckdb
import pandas as pd
import pytest
from click.testing import CliRunner

from jobs.cli import cli
from tests.conftest import write_call

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def run_result(spark, tiny_artifact, tmp_path_factory):
    import _pytest.logging  # noqa: F401  (caplog is function-scoped: capture by hand)
    tmp = tmp_path_factory.mktemp("run")
    d = tmp / "IN"
    write_call(d / "ok.wav", 8000, [[("speech", 4.0)]], seed=1)
    trunc = write_call(d / "sub" / "cut.wav", 8000, [[("speech", 9.0)]], subtype="ULAW", seed=2)
    trunc.write_bytes(trunc.read_bytes()[:int(trunc.stat().st_size * 0.4)])
    (d / "a_empty.wav").write_bytes(b"")
    (d / "b_corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 20)
    os.symlink(d, d / "sub" / "loop")                    # IN/sub/loop -> IN
    os.symlink(d / "ok.wav", d / "sub" / "again.wav")    # a second path to ok.wav
    conf = tmp / "job.yaml"
    conf.write_text("spark:\n  tasks_per_core: 2\n")
    out = tmp / "OUT"
    records = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    logger = logging.getLogger("ser")
    logger.addHandler(handler)
    progress = logging.getLogger("ser.progress")
    progress.setLevel(logging.DEBUG)
    try:
        res = CliRunner().invoke(cli, ["analyze", str(d), str(out), "--model", str(tiny_artifact), "--conf", str(conf),
                                       "--run-date", "2026-11-22", "--show-failed", "1"])
    finally:
        logger.removeHandler(handler)
        progress.setLevel(logging.NOTSET)
    return res, [r.getMessage() for r in records], d, out


def test_a_truncated_recording_is_analysed_marked_and_counted(run_result):
    res, _, d, out = run_result
    summary = json.loads(res.stdout)
    calls = pd.read_parquet(out / "calls").set_index("source_path")
    cut = calls.loc[str(d / "sub" / "cut.wav")]
    assert cut["status"] == "ok" and cut["duration_s"] == pytest.approx(3.6, abs=0.1)
    assert cut["warnings"] == f"truncated: header 9.0 s, decoded {cut['duration_s']:.1f} s"
    assert calls["warnings"].notna().sum() == 1 and summary["warnings"] == 1
    assert summary["warned_inputs"] == [{"input": str(d / "sub" / "cut.wav"), "warnings": cut["warnings"]}]
    listed = duckdb.sql(summary["warnings_query"]).fetchall()
    assert listed == [(str(d / "sub" / "cut.wav"), None, cut["warnings"])]


def test_failed_inputs_are_named_with_a_query_for_all_of_them(run_result):
    res, _, d, out = run_result
    assert res.exit_code == 1, res.output
    summary = json.loads(res.stdout)
    assert summary["failed"] == 2 and summary["processed"] == 2    # ok.wav and cut.wav, each once
    assert summary["failed_inputs"] == [{"input": str(d / "a_empty.wav"), "error": "empty: file is empty (0 bytes)"}]
    everything = duckdb.sql(summary["failed_query"]).fetchall()
    assert [r[0] for r in everything] == [str(d / "a_empty.wav"), str(d / "b_corrupt.wav")]
    err = res.stderr.splitlines()
    at = err.index("2 input(s) failed; the first 1:")
    assert err[at + 1] == f"  {d / 'a_empty.wav'}: empty: file is empty (0 bytes)"
    assert err[at + 2] == f"  all of them (DuckDB): {summary['failed_query']}"
    stored = json.loads(next((out / "_runs").glob("*.json")).read_text())["summary"]
    assert stored["failed_inputs"] == summary["failed_inputs"]


def test_each_stage_logs_one_line(run_result):
    _, messages, d, _ = run_result
    for stage in ("listed ", "analysed ", "written "):
        assert sum(m.startswith(stage) for m in messages) == 1, (stage, messages)
    analysed = next(m for m in messages if m.startswith("analysed "))
    assert analysed.startswith("analysed 4/4 inputs")
    # the workers' live updates reached the driver: every input, and the audio of both calls
    live = next(m for m in messages if m.startswith("live progress"))
    assert live.startswith("live progress: workers reported 4/4 inputs"), live


def test_the_symlink_loop_and_the_second_link_are_recorded_not_analysed(run_result):
    _, _, d, out = run_result
    manifest = pd.read_parquet(out / "manifest")
    assert len(manifest) == 5 and manifest["source_path"].is_unique
    dup = manifest.set_index("source_path").loc[str(d / "sub" / "again.wav")]
    assert dup["status"] == "skipped" and dup["error"] == f"duplicate: same file as {d / 'ok.wav'}"
