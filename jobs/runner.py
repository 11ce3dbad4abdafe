"""One run of the job over an output root, without Spark: plan, analyse, stage, commit.

:func:`execute` is the job's whole store logic (what to read, what each input's record
says, which older partitions to rewrite, the commit). The work that needs executors is
behind an :class:`Engine`: :class:`jobs.analyze_calls.SparkEngine` in the job, a fake
analyser in the store's state-machine test (``tests/test_store_machine.py``), so every
rule about the store is tested Java-free, over thousands of run sequences.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from jobs import manifest, state as state_index
from jobs.commit import TABLES, Staging, Store, commit, crash_point, new_staging, next_seq, recover, table_dir
from jobs.run_summary import named_inputs, run_summary, source_name
from ser_lib.errors import ConfigError
from ser_lib.nulls import none_if_missing

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("ser.job")

#: tables whose rows belong to a call (rewritten without a call analysed again elsewhere)
CALL_TABLES = ("segments", "calls", "episodes", "turns")


class Engine(Protocol):
    """What :func:`execute` needs done outside the driver."""

    def analyse(self, tasks: list[dict]) -> list[dict]:
        """Read and analyse ``tasks`` (:func:`jobs.manifest.plan`); return their input rows
        (``row_kind='input'`` dicts of :func:`ser_lib.process.process_task`)."""

    def stage(self, store: Store, staging: Staging, run_date: str, run_id: str, facts: list[dict],
              n_segments: int) -> set[str]:
        """Write this run's ``segments``/``calls``/``episodes``/``turns`` under ``staging``; return the
        tables written."""

    def rewrite_without(self, store: Store, src: str, call_ids: set[str], dst: str) -> str:
        """Stage the partition ``src`` without ``call_ids`` at ``dst``: ``'unchanged'`` (none
        of them there), ``'emptied'`` (nothing left: nothing staged) or ``'rewritten'``."""

    def counters(self) -> dict:
        """``model_loads``, ``model_batches``, ``stage_s`` (see :func:`jobs.run_summary.run_summary`)."""


@dataclass
class RunSpec:
    """What one run is asked to do (all checked before any work starts)."""

    input_path: str
    run_id: str | None
    run_date: str
    model_version: str
    extensions: tuple
    archives: bool = True
    reprocess: list | None = None
    show_failed: int = 10
    started: float = field(default_factory=time.time)  # time.time() when the run started


_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def default_run_id(run_date: str, input_path: str) -> str:
    """The first run id of a night: ``YYYYMMDD-<8 hex of sha1(input root)>``.

    :func:`resolve_run_id` adds ``-2``, ``-3``, ... for later runs of the same night and
    root: a run id is never reused, so no run can replace rows another run's records
    point at.
    """
    root = input_path if "://" in input_path else os.path.abspath(input_path)
    return run_date.replace("-", "") + "-" + hashlib.sha1(root.rstrip("/").encode()).hexdigest()[:8]


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is a valid partition value, else :class:`ConfigError`."""
    if not _RUN_ID.match(run_id):
        raise ConfigError(f"run id {run_id!r} must be 1-100 of [A-Za-z0-9_.-], starting alphanumeric")
    return run_id


def resolve_run_id(store: Store, run_date: str, input_path: str, run_id: str | None) -> str:
    """The id this run commits under (``store`` locked and recovered).

    Run ids are never reused. Without ``run_id``: :func:`default_run_id`, or the first of
    ``<it>-2``, ``<it>-3``, ... that no committed run has (a second run of the night, a
    rerun, a backfill). A run killed before its commit record left none, so started again
    it gets the same id.

    Raises:
        ConfigError: ``run_id`` is invalid or a committed run already has it.
    """
    if run_id is not None:
        check_run_id(run_id)
        if store.exists(f"_runs/{run_id}.json"):
            raise ConfigError(f"run id {run_id!r} is already committed in {store.root}: run ids are never reused "
                              "(a rerun is a new run; leave out --run-id, or give a new one)")
        return run_id
    base = check_run_id(default_run_id(run_date, input_path))
    rid, n = base, 1
    while store.exists(f"_runs/{rid}.json"):
        n += 1
        rid = f"{base}-{n}"
    return rid


def run_locked(output_path: str, inputs: list, spec: RunSpec, make_engine, wait_s: float = 0.0) -> dict:
    """Lock ``output_path``, recover it, give the run its id, then :func:`execute` it.

    Args:
        spec: the run; ``spec.run_id`` None for the default id.
        make_engine: ``(run_id) -> (engine, release)``, called once the lock is held.

    Raises:
        LockBusy: another run holds the output root (after ``wait_s`` seconds).
        ConfigError: a bad run id.
    """
    store = Store(output_path)
    store.lock(wait_s, holder=f"run {spec.run_id or default_run_id(spec.run_date, spec.input_path)}")
    release = None
    try:
        rolled = recover(store)
        spec.run_id = resolve_run_id(store, spec.run_date, spec.input_path, spec.run_id)
        engine, release = make_engine(spec.run_id)
        return execute(store, inputs, spec, engine, rolled)
    finally:
        if release is not None:
            release()
        store.unlock()


def plan_run(store: Store, inputs: list, spec: RunSpec) -> tuple[int, "pd.DataFrame", list[dict], list[dict]]:
    """What a run decides before its first task: ``(seq, state, driver_rows, tasks)``, its
    commit order, the latest committed records of the listed inputs
    (:func:`jobs.manifest.read_state`) and :func:`jobs.manifest.plan`'s decision."""
    seq = next_seq(store)
    state = manifest.read_state(store, {i.path for i in inputs})
    driver_rows, tasks = manifest.plan(inputs, state, spec.extensions, spec.archives, spec.reprocess)
    return seq, state, driver_rows, tasks


def execute(store: Store, inputs: list, spec: RunSpec, engine: Engine, recovered: list[str] | None = None) -> dict:
    """Plan, analyse, stage and commit one run over ``store`` (locked and recovered by the caller).

    Args:
        inputs: :func:`jobs.manifest.list_inputs` of ``spec.input_path``.
        recovered: run ids rolled forward before this run (for the summary).

    Returns:
        the run summary, as stored in ``OUT/_runs/<run_id>.json``.
    """
    run_id, run_date = spec.run_id, spec.run_date
    t_plan = time.time()
    seq, state, driver_rows, tasks = plan_run(store, inputs, spec)
    log.info("listed %d inputs under %s: %d to read (files and archives), %d decided without reading "
             "(unchanged, not recordings, duplicates, special files)", len(inputs), spec.input_path, len(tasks),
             len(driver_rows))
    t_analyse = time.time()
    input_rows = engine.analyse(tasks) if tasks else []
    n_segments = int(sum(none_if_missing(r.get("n_segments")) or 0 for r in input_rows))
    t_write = time.time()
    records = manifest.run_records(driver_rows, input_rows, run_id, run_date, spec.model_version)
    staging = new_staging(run_id)
    facts = [r for r in records if r["status"] in ("ok", "failed") and r["call_id"]]
    written = engine.stage(store, staging, run_date, run_id, facts, n_segments) if facts else set()
    mtable = manifest.to_arrow(records)
    manifest.write(store, staging.table("manifest", run_date), mtable)
    written.add("manifest")
    failed = mtable.filter(pc.equal(mtable["status"], "failed"))
    if failed.num_rows:
        manifest.write(store, staging.table("errors", run_date), failed)
        written.add("errors")
    actions = [{"src": staging.table(t, run_date) if t in written else None, "dst": table_dir(t, run_date, run_id)}
               for t in TABLES]
    actions += state_index.stage(store, staging, records, run_id, run_date, seq)
    own = len(actions)
    actions += supersede(store, staging, engine, manifest.supersede_targets(facts, state, run_id))

    warned = sorted((source_name(r), r["warnings"]) for r in input_rows
                    if r["status"] == "ok" and isinstance(r.get("warnings"), str))
    summary = run_summary(records, n_segments, {
        "run_id": run_id, "run_date": run_date, "input": spec.input_path, "output": store.root,
        "model_version": spec.model_version, "wall_s": time.time() - spec.started,
        "processing_s": time.time() - t_plan, "startup_s": t_plan - spec.started}, engine.counters())
    summary.update(named_inputs(records, warned, spec.show_failed, store, run_date, run_id))
    summary["recovered_runs"] = list(recovered or [])
    summary["superseded_partitions"] = len(actions) - own
    crash_point("staged")
    commit(store, staging, run_date, actions, summary, seq)
    log.info("written %s and committed run %s in %.1f s (analysis %.1f s)", ", ".join(t for t in TABLES if t in written),
             run_id, time.time() - t_write, t_write - t_analyse)
    return summary


def supersede(store: Store, staging: Staging, engine: Engine, targets: dict) -> list[dict]:
    """Stage older partitions without the calls this run analysed again (reprocessed,
    changed or retried inputs), so that after the commit every call has its rows in exactly
    one run's partitions and plain readers never double count. Returns the commit actions."""
    actions = []
    for (run_id, run_date), ids in sorted(targets.items()):
        for table in CALL_TABLES:
            dst = table_dir(table, run_date, run_id)
            if not store.exists(dst):
                continue
            src = staging.rewrite(table, run_date, run_id)
            what = engine.rewrite_without(store, dst, set(ids), src)
            if what == "emptied":
                actions.append({"src": None, "dst": dst})
            elif what == "rewritten":
                actions.append({"src": src, "dst": dst})
    return actions


def read_parquet_dir(store: Store, rel: str) -> pa.Table | None:
    """All Parquet files of one partition directory as one table (None if there is none)."""
    import pyarrow.parquet as pq
    tables = []
    for name in store.listdir(rel):
        if name.endswith(".parquet"):
            with store.fs.open_input_file(store.p(f"{rel}/{name}")) as f:
                tables.append(pq.read_table(f))
    return pa.concat_tables(tables) if tables else None
