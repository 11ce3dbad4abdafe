"""Any sequence of ordinary operations and runs keeps the store's promises.

A hypothesis state machine (``RuleBasedStateMachine``): rules change the input directory
(add, change, touch, delete, rename a recording, move one into an archive, make one
corrupt), run the job with a run date in the past, the same day or the future (also with
``--reprocess all`` / ``failed``), crash a run at each point of the commit protocol, and
try a second run while one holds the lock. After every run that committed, the output
is checked against a plain Python model of what must be there (see :meth:`StoreMachine.check`).

The store logic is the job's own (:func:`jobs.runner.run_locked`); the analyser is the fake
of :mod:`tests.store_fakes` (no Spark, no model), so thousands of runs take seconds.
``SER_STORE_EXAMPLES`` sets the number of sequences (default 60; the CI runs the default).
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from jobs import commit, manifest
from jobs.commit import LockBusy, Store
from jobs.runner import RunSpec, run_locked
from ser_lib.process import call_id
from tests.store_fakes import FakeEngine, fake_segments, read_table, sha, zip_bytes

NAMES = ["a.wav", "b.wav", "c.wav", "sub/d.wav"]
CONTENTS = [b"x" * 10, b"y" * 11, b"zz" * 6, b"BAD" + b"q" * 7, b"BAD" + b"r" * 9]
ARCHIVE = "box.zip"
DAY0 = dt.date(2026, 12, 1)
STEPS = ("staged", "committed", "moved", "applied")
EXTS = ("wav",)


class Crash(BaseException):
    """A simulated kill -9 at a commit-protocol step (BaseException: nothing catches it)."""


class StoreMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="ser-store-"))
        self.inp, self.out = self.tmp / "in", self.tmp / "out"
        self.inp.mkdir()
        self.files: dict[str, bytes] = {}      # plain recordings in IN
        self.members: dict[str, bytes] = {}    # members of IN/box.zip
        self.clock = 1_700_000_000            # mtimes: every change gets a new one
        self.day = 0                           # the "today" of the nightly schedule
        self.seen: dict[str, tuple[bytes, str, str | None]] = {}  # call_id -> (content, path, member) last analysed
        self.last_run: str | None = None
        self.last_inputs: list | None = None
        self.stat_at_run: dict[str, tuple] = {}  # path -> (size, mtime) when a committed run last listed it

    def teardown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---------------------------------------------------------------- the input directory
    def _write(self, rel: str, data: bytes) -> None:
        p = self.inp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        self.clock += 10
        os.utime(p, (self.clock, self.clock))

    def _write_archive(self) -> None:
        if self.members:
            self._write(ARCHIVE, zip_bytes(self.members))
        elif (self.inp / ARCHIVE).exists():
            (self.inp / ARCHIVE).unlink()

    @rule(name=st.sampled_from(NAMES), content=st.sampled_from(CONTENTS))
    def add_or_change(self, name, content):
        self.files[name] = content
        self._write(name, content)

    @precondition(lambda self: self.files)
    @rule(data=st.data())
    def touch(self, data):
        name = data.draw(st.sampled_from(sorted(self.files)))
        self.clock += 10
        os.utime(self.inp / name, (self.clock, self.clock))

    @precondition(lambda self: self.files)
    @rule(data=st.data())
    def delete(self, data):
        name = data.draw(st.sampled_from(sorted(self.files)))
        del self.files[name]
        (self.inp / name).unlink()

    @precondition(lambda self: self.files)
    @rule(data=st.data(), to=st.sampled_from(NAMES))
    def rename(self, data, to):
        name = data.draw(st.sampled_from(sorted(self.files)))
        if to == name:
            return
        self.files[to] = self.files.pop(name)
        (self.inp / to).parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.inp / name, self.inp / to)

    @precondition(lambda self: self.files)
    @rule(data=st.data())
    def corrupt(self, data):
        name = data.draw(st.sampled_from(sorted(self.files)))
        self.files[name] = b"BAD" + self.files[name]
        self._write(name, self.files[name])

    @precondition(lambda self: self.files)
    @rule(data=st.data())
    def put_in_archive(self, data):
        name = data.draw(st.sampled_from(sorted(self.files)))
        self.members[name.replace("/", "_")] = self.files.pop(name)
        (self.inp / name).unlink()
        self._write_archive()

    @precondition(lambda self: self.members)
    @rule(data=st.data(), content=st.sampled_from(CONTENTS))
    def change_member(self, data, content):
        name = data.draw(st.sampled_from(sorted(self.members)))
        self.members[name] = content
        self._write_archive()

    @precondition(lambda self: self.members)
    @rule(data=st.data())
    def drop_member(self, data):
        del self.members[data.draw(st.sampled_from(sorted(self.members)))]
        self._write_archive()

    # ---------------------------------------------------------------- runs
    def _run(self, delta: int, reprocess, crash: str | None = None, wait_s: float = 0.0):
        run_date = (DAY0 + dt.timedelta(days=self.day + delta)).isoformat()
        spec = RunSpec(str(self.inp), None, run_date, "fake-1", EXTS, True, reprocess)
        inputs = manifest.list_inputs(str(self.inp))

        armed = []  # the crash is this run's, not one in the recovery of an earlier run

        def boom(step):
            if armed and step == crash:
                raise Crash(step)

        def engine(rid):
            armed.append(rid)
            return FakeEngine(), None
        commit.CRASH_HOOK = boom if crash else None
        try:
            summary = run_locked(str(self.out), inputs, spec, engine, wait_s)
        finally:
            commit.CRASH_HOOK = None
        return summary, inputs

    def _stat(self, rel: str) -> tuple:
        st_ = (self.inp / rel).stat()
        return st_.st_size, st_.st_mtime_ns

    def _expected_failures(self, reprocess) -> tuple[int, int]:
        """(failures this run meets, failures it carries unchanged): a failed recording is
        retried when its file (or archive) changed since a committed run listed it, or on
        ``--reprocess all`` / ``failed``."""
        new = old = 0
        items = [(n, d) for n, d in self.files.items()] + [(ARCHIVE, d) for d in self.members.values()]
        for rel, data in items:
            if not data.startswith(b"BAD"):
                continue
            retried = reprocess is not None or self.stat_at_run.get(rel) != self._stat(rel)
            new, old = (new + 1, old) if retried else (new, old + 1)
        return new, old

    def _analysed(self):
        """What a committed run over today's IN has seen: every present recording's content."""
        for rel in list(self.files) + ([ARCHIVE] if self.members else []):
            self.stat_at_run[rel] = self._stat(rel)
        for name, data in self.files.items():
            p = str(self.inp / name)
            self.seen[call_id(p)] = (data, p, None)
        for name, data in self.members.items():
            p = str(self.inp / ARCHIVE)
            self.seen[call_id(p, name)] = (data, p, name)

    @rule(delta=st.sampled_from([-2, -1, 0, 0, 1]), reprocess=st.sampled_from([None, None, ["all"], ["failed"]]))
    def run(self, delta, reprocess):
        expected = self._expected_failures(reprocess)
        summary, inputs = self._run(delta, reprocess)
        assert (summary["failed"], summary["still_failed"]) == expected, (
            f"failed/still_failed {summary['failed']}/{summary['still_failed']}, expected {expected}")
        self.day += 1
        self._analysed()
        self.last_run, self.last_inputs = summary["run_id"], inputs
        self.check(summary)

    @rule(step=st.sampled_from(STEPS), delta=st.sampled_from([-1, 0, 1]))
    def crashed_run(self, step, delta):
        with pytest.raises(Crash):
            self._run(delta, None, crash=step)
        if step != "staged":  # the commit record was written: the run happened
            self._analysed()

    @rule()
    def run_while_locked(self):
        holder = Store(str(self.out))
        holder.lock()
        try:
            before = sorted(p.relative_to(self.out) for p in self.out.rglob("*") if p.name != "_lock")
            with pytest.raises(LockBusy):
                self._run(0, None)
            after = sorted(p.relative_to(self.out) for p in self.out.rglob("*") if p.name != "_lock")
            assert before == after, "a refused run changed the output"
        finally:
            holder.unlock()

    # ---------------------------------------------------------------- the invariant
    def check(self, summary: dict) -> None:
        """The store after a committed run, against the model."""
        calls = read_table(self.out, "calls")
        segments = read_table(self.out, "segments")
        episodes = read_table(self.out, "episodes")
        turns = read_table(self.out, "turns")
        by_call = Counter(r["call_id"] for r in calls)
        assert not [c for c, n in by_call.items() if n > 1], "a call has rows in more than one run"
        assert set(by_call) == set(self.seen), (
            f"calls rows {sorted(set(by_call) ^ set(self.seen))} missing or not expected")
        row = {r["call_id"]: r for r in calls}
        segs = Counter((r["call_id"], r["run_id"]) for r in segments)
        assert len(segments) == len({(r["call_id"], r["segment_index"]) for r in segments}), "duplicated segments"
        for cid, (data, path, member) in self.seen.items():
            r = row[cid]
            assert (r["source_path"], r["member"]) == (path, member)
            assert r["content_sha256"] == sha(data), f"{path}!{member}: rows of older content"
            bad = data.startswith(b"BAD")
            assert r["status"] == ("failed" if bad else "ok"), f"{path}!{member}"
            n = 0 if bad else fake_segments(data)
            assert segs[(cid, r["run_id"])] == n, f"{path}!{member}: {segs[(cid, r['run_id'])]} segments, not {n}"
            assert sum(v for (c, _), v in segs.items() if c == cid) == n, f"{path}!{member}: segments of two runs"
            eps = [e for e in episodes if e["call_id"] == cid]
            assert all(e["run_id"] == r["run_id"] for e in eps) and len(eps) == (1 if n >= 2 else 0)
            tn = [t for t in turns if t["call_id"] == cid]
            assert all(t["run_id"] == r["run_id"] for t in tn), f"{path}!{member}: turns of an older run"
            assert sorted(t["turn_index"] for t in tn) == list(range(max(n - 1, 0))), f"{path}!{member}: turns"
        # manifest: this run accounted for every input it listed, once
        m = [x for x in read_table(self.out, "manifest") if x["run_id"] == summary["run_id"]]
        listed = {(i.path, None) for i in self.last_inputs}
        listed |= {(str(self.inp / ARCHIVE), n) for n in self.members}
        keys = Counter((x["source_path"], x["member"]) for x in m)
        assert set(keys) == listed and all(v == 1 for v in keys.values()), "the manifest does not account for every input once"
        # every skip decision points at the run whose partitions hold the rows
        state = manifest.read_state(Store(str(self.out)))
        for rec in state.to_dict("records"):
            cid = rec.get("call_id")
            if isinstance(cid, str) and cid in self.seen and rec["status"] in ("ok", "failed", "skipped"):
                if isinstance(rec.get("output_run_id"), str):
                    assert rec["output_run_id"] == row[cid]["run_id"], (
                        f"{rec['source_path']}!{rec['member']}: the manifest points at run {rec['output_run_id']}, "
                        f"its rows are in {row[cid]['run_id']}")

    @invariant()
    def no_staging_left_after_a_run(self):
        if self.last_run is not None and not (self.out / "_runs").exists():
            raise AssertionError("runs committed but no commit records")


StoreMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("SER_STORE_EXAMPLES", "60")), stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_any_sequence_of_runs_keeps_every_result = StoreMachine.TestCase


def test_an_output_root_written_before_the_state_index_is_indexed_from_its_manifests(tmp_path):
    """An OUT without ``_state/`` and ``_commit/`` (an older version's) plans from its
    manifests, and its next run writes the index: the same latest records, nothing lost."""
    import pandas as pd

    from jobs import state as st
    inp, out = tmp_path / "in", tmp_path / "out"
    (inp / "sub").mkdir(parents=True)
    for i, rel in enumerate(["a.wav", "sub/b.wav", "BAD.wav"]):
        (inp / rel).write_bytes((b"BAD" if rel.startswith("BAD") else b"ok") + bytes([i]) * (5 + i))

    def run(day, reprocess=None):
        spec = RunSpec(str(inp), None, f"2026-12-0{day}", "fake-1", EXTS, True, reprocess)
        return run_locked(str(out), manifest.list_inputs(str(inp)), spec, lambda rid: (FakeEngine(), None))

    run(1)
    (inp / "a.wav").write_bytes(b"changed")
    run(2)
    store = Store(str(out))
    cols = ["source_path", "member", "status", "output_run_id", "seq"]
    indexed = st.read(store).sort_values("source_path")[cols].reset_index(drop=True)
    shutil.rmtree(out / "_state")
    shutil.rmtree(out / "_commit")
    legacy = st.read(store).sort_values("source_path")[cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(indexed, legacy, check_dtype=False)
    s = run(3)
    assert (s["processed"], s["skipped"], s["still_failed"]) == (0, 2, 1)
    assert (out / "_state").exists() and (out / "_commit" / "head.json").exists()
    again = st.read(store)
    assert set(again["source_path"]) == set(legacy["source_path"]) and again["seq"].eq(3).all()
    calls = read_table(out, "calls")
    assert sorted(r["source_path"].rsplit("/", 1)[1] for r in calls) == ["BAD.wav", "a.wav", "b.wav"]
