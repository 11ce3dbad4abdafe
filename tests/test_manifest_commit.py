"""The manifest's incremental rules, the run's manifest records, supersede planning and the
commit protocol, without Spark or Java (jobs.manifest, jobs.commit)."""
from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from jobs import commit as cm
from jobs import manifest
from ser_lib.process import call_id

T0 = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.timezone.utc)
EXTS = ("wav", "flac")


def _input(path, size=100, modified=T0, **kw):
    return manifest.Input(path, size, modified, kw.pop("regular", True), kw.pop("hidden", False), **kw)


def _state(*recs) -> pd.DataFrame:
    """A read_state()-like frame of committed records."""
    df = pd.DataFrame([{c: r.get(c) for c in manifest.COLUMNS} for r in recs], columns=manifest.COLUMNS)
    df["seq"] = 1
    df["key_member"] = df["member"].fillna("")
    return df


def _ok(path, member=None, run="r1", sha="aa", size=100, modified=T0, status="ok", error=None):
    return dict(source_path=path, member=member, kind="member" if member else "file",
                call_id=call_id(path, member), size_bytes=size, modified=pd.Timestamp(modified), status=status,
                error=error, content_sha256=sha, duration_s=3.0, output_run_id=run, output_run_date="2026-11-01",
                model_version="m1")


def test_an_unchanged_file_is_skipped_on_the_driver_and_a_touched_one_is_read_with_its_baseline():
    state = _state(_ok("/in/a.wav"), _ok("/in/b.wav"))
    inputs = [_input("/in/a.wav"), _input("/in/b.wav", modified=T0 + dt.timedelta(seconds=1))]
    rows, tasks = manifest.plan(inputs, state, EXTS, True)
    assert [(r["source_path"], r["status"], r["output_run_id"]) for r in rows] == [("/in/a.wav", "skipped", "r1")]
    assert rows[0]["call_id"] == call_id("/in/a.wav") and rows[0]["content_sha256"] == "aa"
    assert [t["source_path"] for t in tasks] == ["/in/b.wav"]
    assert json.loads(tasks[0]["prior"]) == {"sha": "aa", "out_run": "r1", "out_date": "2026-11-01",
                                             "model": "m1", "duration_s": 3.0}


def test_reprocess_specs_read_the_inputs_they_match_without_a_baseline():
    state = _state(_ok("/in/a.wav"), _ok("/in/f.wav", status="failed", error="corrupt: x", sha=None),
                   _ok("/in/g.wav"))
    inputs = [_input(p) for p in ("/in/a.wav", "/in/f.wav", "/in/g.wav")]
    rows, tasks = manifest.plan(inputs, state, EXTS, True, reprocess=["/in/a*"])
    assert [r["source_path"] for r in rows] == ["/in/f.wav", "/in/g.wav"]
    assert {t["source_path"]: json.loads(t["prior"]) for t in tasks} == {"/in/a.wav": None}
    rows, tasks = manifest.plan(inputs, state, EXTS, True, reprocess=["failed"])
    assert [t["source_path"] for t in tasks] == ["/in/f.wav"] and json.loads(tasks[0]["prior"]) is None
    rows, tasks = manifest.plan(inputs, state, EXTS, True, reprocess=["all"])
    assert not rows and len(tasks) == 3


def test_an_unchanged_file_that_failed_is_not_retried_until_it_changes_or_is_asked_for():
    failed = _ok("/in/f.wav", status="failed", error="corrupt: x", run="r1")
    rows, tasks = manifest.plan([_input("/in/f.wav")], _state(failed), EXTS, True)
    assert not tasks and len(rows) == 1
    (r,) = rows
    assert (r["status"], r["error"], r["output_run_id"]) == ("skipped", "corrupt: x", "r1")
    assert manifest.known_failure(r), "its record stays a known failure the next night"
    rows, tasks = manifest.plan([_input("/in/f.wav")], _state(r), EXTS, True)
    assert not tasks and rows[0]["output_run_id"] == "r1"
    changed = _input("/in/f.wav", modified=T0 + dt.timedelta(seconds=1))
    rows, tasks = manifest.plan([changed], _state(failed), EXTS, True)
    assert not rows and [t["source_path"] for t in tasks] == ["/in/f.wav"]
    # an unexpected error (a bug) is retried by every run: the input is not at fault
    bug = _ok("/in/f.wav", status="failed", error="internal: KeyError: x", run="r1")
    rows, tasks = manifest.plan([_input("/in/f.wav")], _state(bug), EXTS, True)
    assert not rows and len(tasks) == 1
    # a special file that failed on the driver is carried the same way
    pipe = _ok("/in/p.wav", status="failed", error="unreadable: x", sha=None, size=0)
    rows, tasks = manifest.plan([_input("/in/p.wav", size=0, regular=False)], _state(pipe), EXTS, True)
    assert not tasks and rows[0]["status"] == "skipped" and rows[0]["error"] == "unreadable: x"


def test_inputs_that_are_not_recordings_are_recorded_not_read():
    inputs = [_input("/in/.x.wav", hidden=True), _input("/in/notes.txt"), _input("/in/pipe.wav", regular=False),
              _input("/in/b.wav", duplicate_of="/in/a.wav")]
    rows, tasks = manifest.plan(inputs, _state(), EXTS, True)
    assert not tasks
    got = {r["source_path"]: (r["status"], r["error"].split(":")[0], r["call_id"]) for r in rows}
    assert got == {"/in/.x.wav": ("skipped", "hidden", None), "/in/notes.txt": ("skipped", "not_audio", None),
                   "/in/pipe.wav": ("failed", "unreadable", call_id("/in/pipe.wav")),
                   "/in/b.wav": ("skipped", "duplicate", None)}


def test_an_unchanged_archive_is_skipped_with_the_members_its_latest_reading_recorded():
    arch = dict(_ok("/in/x.zip"), kind="archive", call_id=None, content_sha256=None)
    good, bad = _ok("/in/x.zip", "a.wav", sha="s1"), _ok("/in/x.zip", "b.wav", status="failed", error="corrupt: y")
    rows, tasks = manifest.plan([_input("/in/x.zip")], _state(arch, good), EXTS, True)
    assert not tasks and [(r["kind"], r["member"], r["status"]) for r in rows] == [
        ("archive", None, "skipped"), ("member", "a.wav", "skipped")]
    # a member that failed stays failed, unread, while the archive is unchanged
    rows, tasks = manifest.plan([_input("/in/x.zip")], _state(arch, good, bad), EXTS, True)
    assert not tasks and [(r["member"], r["status"], r["error"]) for r in rows] == [
        (None, "skipped", None), ("a.wav", "skipped", None), ("b.wav", "skipped", "corrupt: y")]
    rows, tasks = manifest.plan([_input("/in/x.zip")], _state(arch, good, bad), EXTS, True, reprocess=["failed"])
    assert not rows and len(tasks) == 1 and tasks[0]["task_kind"] == "archive"
    assert json.loads(tasks[0]["prior"]) == {"a.wav": {"sha": "s1", "out_run": "r1", "out_date": "2026-11-01",
                                                       "model": "m1", "duration_s": 3.0}}
    # a member an older content of the archive held is not the archive's now
    st = _state(arch, good, bad)
    st.loc[st["member"] == "b.wav", "seq"] = 0
    rows, tasks = manifest.plan([_input("/in/x.zip")], st, EXTS, True)
    assert [r["member"] for r in rows] == [None, "a.wav"]
    rows, tasks = manifest.plan([_input("/in/x.zip")], _state(arch, good), EXTS, archives=False)
    assert not tasks and rows[0]["error"].startswith("not_audio")


def test_run_records_stamp_analysed_inputs_with_the_run_and_keep_skipped_ones_where_they_are():
    us = int(pd.Timestamp(T0).value // 1000)
    driver = [{**{c: None for c in manifest.COLUMNS}, "source_path": "/in/z.txt", "status": "skipped",
               "error": "not_audio: x"}]
    rows = [{"source_path": "/in/b.wav", "member": None, "kind": "file", "status": "ok", "duration_s": 2.5,
             "modified_us": us, "source_modified_us": us, "call_id": "c1", "error": None},
            {"source_path": "/in/a.zip", "member": "m.wav", "kind": "member", "status": "skipped",
             "duration_s": np.nan, "modified_us": None, "source_modified_us": us, "output_run_id": "r0",
             "output_run_date": "2026-10-01", "output_model_version": "m0", "error": None},
            {"source_path": "/in/a.zip", "member": None, "kind": "archive", "status": "failed",
             "error": "corrupt: z", "modified_us": float("nan")}]
    recs = manifest.run_records(driver, rows, "r1", "2026-11-02", "m1")
    assert [(r["source_path"], r["member"]) for r in recs] == [("/in/a.zip", None), ("/in/a.zip", "m.wav"),
                                                               ("/in/b.wav", None), ("/in/z.txt", None)]
    arch, member, ok, txt = recs
    assert (ok["output_run_id"], ok["output_run_date"], ok["model_version"]) == ("r1", "2026-11-02", "m1")
    assert ok["modified"] == T0 and ok["source_modified"] == T0
    assert (arch["output_run_id"], arch["model_version"], arch["modified"]) == ("r1", "m1", None)
    assert (member["output_run_id"], member["model_version"]) == ("r0", "m0")
    assert member["duration_s"] is None and member["modified"] is None
    assert txt["output_run_id"] is None and set(txt) == set(manifest.COLUMNS)
    table = manifest.to_arrow(recs)
    assert table.schema == manifest.SCHEMA and table.num_rows == 4


def test_supersede_targets_name_other_runs_holding_calls_analysed_again():
    state = _state(_ok("/in/a.wav", run="r0"), _ok("/in/b.wav", run="r1"), _ok("/in/x.zip", "m.wav", run="r0"),
                   _ok("/in/c.wav", run="r9"))
    facts = [{"source_path": p, "member": m, "call_id": call_id(p, m)}
             for p, m in (("/in/a.wav", None), ("/in/b.wav", None), ("/in/x.zip", "m.wav"), ("/in/new.wav", None))]
    assert manifest.supersede_targets(facts, state, "r1") == {
        ("r0", "2026-11-01"): {call_id("/in/a.wav"), call_id("/in/x.zip", "m.wav")}}
    assert manifest.supersede_targets(facts, _state(), "r1") == {}


def _stage(store, staging, table, run_date, rows):
    d = staging.table(table, run_date)
    manifest.write(store, d, pa.table({"v": rows}))
    return {"src": d, "dst": cm.table_dir(table, run_date, staging.run_id)}


def _values(store, table, run_date, run_id):
    return manifest.pq.read_table(store.p(f"{cm.table_dir(table, run_date, run_id)}/part-00000.parquet"))["v"].to_pylist()


def test_commit_moves_staged_tables_into_place_and_a_second_attempt_replaces_them(tmp_path):
    store = cm.Store(str(tmp_path / "OUT"))
    first = cm.Staging("r1", "a")
    cm.commit(store, first, "2026-11-01", [_stage(store, first, "calls", "2026-11-01", [1, 2])], {"n": 1})
    assert _values(store, "calls", "2026-11-01", "r1") == [1, 2]
    again = cm.Staging("r1", "b")
    cm.commit(store, again, "2026-11-01", [_stage(store, again, "calls", "2026-11-01", [3]),
                                            {"src": None, "dst": cm.table_dir("errors", "2026-11-01", "r1")}], {})
    assert _values(store, "calls", "2026-11-01", "r1") == [3]
    (rec,) = cm.records(store)
    assert rec["state"] == "applied" and rec["attempt"] == "b" and rec["seq"] == 2
    assert store.listdir("_staging") == [] and store.listdir("_trash") == []


@pytest.mark.parametrize("crash_after, rolled", [("staged", []), ("committed", ["r2"]), ("moved", ["r2"])])
def test_recover_rolls_committed_runs_forward_and_drops_uncommitted_staging(tmp_path, monkeypatch, crash_after,
                                                                           rolled):
    store = cm.Store(str(tmp_path / "OUT"))
    old = cm.Staging("r1", "a")
    cm.commit(store, old, "2026-11-01", [_stage(store, old, "calls", "2026-11-01", [1])], {})
    new = cm.Staging("r2", "a")
    actions = [_stage(store, new, "calls", "2026-11-02", [2]),
               {**_stage(store, new, "calls", "2026-11-01", [9]), "dst": cm.table_dir("calls", "2026-11-01", "r1")}]

    class Killed(Exception):
        pass

    def hook(step):
        if step == crash_after:
            raise Killed(step)
    monkeypatch.setattr(cm, "CRASH_HOOK", hook)
    with pytest.raises(Killed):
        cm.crash_point("staged")
        cm.commit(store, new, "2026-11-02", actions, {})
    monkeypatch.setattr(cm, "CRASH_HOOK", None)
    assert cm.recover(store) == rolled
    assert store.listdir("_staging") == [] and store.listdir("_trash") == []
    if rolled:  # the commit record is the commit point: every move of the run happened
        assert _values(store, "calls", "2026-11-02", "r2") == [2]
        assert _values(store, "calls", "2026-11-01", "r1") == [9]
        assert [r["state"] for r in cm.records(store)] == ["applied", "applied"]
    else:       # no record: the run never happened, the older partition stands
        assert not store.exists(cm.table_dir("calls", "2026-11-02", "r2"))
        assert _values(store, "calls", "2026-11-01", "r1") == [1]
        assert [r["run_id"] for r in cm.records(store)] == ["r1"]
