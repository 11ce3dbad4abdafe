"""Does the driver grow with the store's history? 365 simulated nights.

    python -m bench.store_history [--nights 365] [--per-night 1000] [--out bench/results/store-history-DATE.json]

Each night lists a new day folder of ``--per-night`` recordings (synthetic inputs: no
audio is read; the engine answers every task at once, so only the driver's store logic
is measured), every 7th night also reruns the previous night's folder (everything
skipped), and every 30th night reprocesses one earlier folder (``--reprocess``, with
superseded partitions). Each run is the job's own :func:`jobs.runner.run_locked`.

Measured per run, on the driver: the planning wall time (lock, recover, run id, state
read, plan: everything before the first task is sent) and the peak of Python memory
allocated during planning (``tracemalloc``; numpy and pandas buffers are traced).
Each is planned 11 times (the fastest wall, the highest peak), and once more counting
what planning reads from the store (commit records, directory entries, state index
files: independent of the machine's load); reported at nights 1, 30 and
365 as the median of that night and its neighbours, and as ratios to night 1. Goal: night 365 within 1.5x of night 1 in both.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import platform
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import pyarrow as pa

from jobs import commit, manifest, runner
from jobs.commit import Store
from jobs.manifest import Input
from ser_lib.process import call_id

DAY0 = dt.date(2026, 1, 1)


class BenchEngine:
    """Answers every task without reading: ok, a content hash from the path, 60 s of audio."""

    def analyse(self, tasks):
        out = []
        for t in tasks:
            us = int(t["modified"].timestamp() * 1e6)
            out.append({"row_kind": "input", "source_path": t["source_path"], "kind": "file", "member": None,
                        "call_id": call_id(t["source_path"]), "size_bytes": t["size_bytes"], "modified_us": us,
                        "source_size": t["size_bytes"], "source_modified_us": us, "status": "ok", "error": None,
                        "content_sha256": hashlib.sha256(t["source_path"].encode()).hexdigest(),
                        "duration_s": 60.0, "n_segments": 60})
        return out

    def stage(self, store, staging, run_date, run_id, facts, n_segments):
        t = pa.table({"call_id": [f["call_id"] for f in facts], "source_path": [f["source_path"] for f in facts]})
        manifest.write(store, staging.table("calls", run_date), t)
        return {"calls"}

    def rewrite_without(self, store, src, call_ids, dst):
        t = runner.read_parquet_dir(store, src)
        import pyarrow.compute as pc
        keep = t.filter(pc.invert(pc.is_in(t["call_id"], pa.array(sorted(call_ids)))))
        if keep.num_rows == t.num_rows:
            return "unchanged"
        if not keep.num_rows:
            return "emptied"
        manifest.write(store, dst, keep)
        return "rewritten"

    def counters(self):
        return {"model_loads": 0, "model_batches": 0, "stage_s": {}}


def day_inputs(night: int, per_night: int) -> tuple[str, list[Input]]:
    day = DAY0 + dt.timedelta(days=night)
    folder = f"/data/calls/{day.isoformat()}"
    mtime = dt.datetime(day.year, day.month, day.day, 23, tzinfo=dt.timezone.utc)
    return folder, [Input(f"{folder}/call-{i:05d}.wav", 480_000 + i, mtime, True, False) for i in range(per_night)]


class _Counting:
    """Counts what planning reads from the store: deterministic, whatever the machine's load."""

    def __init__(self):
        self.n = {"json_files_read": 0, "dir_entries_listed": 0, "state_files_read": 0}
        self._orig = {}

    def __enter__(self):
        from jobs import state as st
        for obj, name, key, size in ((Store, "read_json", "json_files_read", None),
                                     (Store, "listdir", "dir_entries_listed", len),
                                     (st, "read_parts", "state_files_read", len)):
            orig = getattr(obj, name)
            self._orig[(obj, name)] = orig

            def wrapped(*args, _orig=orig, _key=key, _size=size, **kw):
                res = _orig(*args, **kw)
                self.n[_key] += 1 if _size is None else _size(res)
                return res
            setattr(obj, name, wrapped)
        return self

    def __exit__(self, *exc):
        for (obj, name), orig in self._orig.items():
            setattr(obj, name, orig)


def planning(out: str, folder: str, inputs: list, run_date: str, reprocess) -> tuple[float, int]:
    """Wall seconds and peak traced bytes of what a run does before its first task."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    t0 = time.perf_counter()
    store = Store(out)
    store.lock()
    try:
        commit.recover(store)
        rid = runner.resolve_run_id(store, run_date, folder, None)
        runner.plan_run(store, inputs, runner.RunSpec(folder, rid, run_date, "bench", ("wav",), True, reprocess))
    finally:
        store.unlock()
    wall = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert rid
    return wall, peak


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nights", type=int, default=365)
    p.add_argument("--per-night", type=int, default=1000)
    p.add_argument("--out", default=f"bench/results/store-history-{dt.date.today().isoformat()}.json")
    a = p.parse_args(argv)
    logging.disable(logging.WARNING)
    marks = sorted({1, min(30, a.nights), a.nights})
    per_night: dict[int, tuple[float, int]] = {}
    reads: dict[int, dict] = {}
    t_all = time.time()
    with tempfile.TemporaryDirectory(prefix="ser-history-") as tmp:
        out = str(Path(tmp) / "OUT")
        for night in range(1, a.nights + 1):
            folder, inputs = day_inputs(night, a.per_night)
            run_date = (DAY0 + dt.timedelta(days=night)).isoformat()
            runs = [(folder, inputs, None)]
            if night % 7 == 0:
                runs.append(day_inputs(night - 1, a.per_night) + (None,))
            if night % 30 == 0:
                runs.append(day_inputs(night - 15, a.per_night) + (["all"],))
            for i, (f, inp, reprocess) in enumerate(runs):
                if i == 0 and any(abs(night - m) <= 1 for m in marks):
                    tries = [planning(out, f, inp, run_date, reprocess) for _ in range(11)]
                    per_night[night] = (min(w for w, _ in tries), max(b for _, b in tries))
                    if night in marks:
                        with _Counting() as c:
                            planning(out, f, inp, run_date, reprocess)
                        reads[night] = c.n
                spec = runner.RunSpec(f, None, run_date, "bench", ("wav",), True, reprocess)
                runner.run_locked(out, inp, spec, lambda rid: (BenchEngine(), None))
    res = {}
    for m in marks:
        near = [per_night[n] for n in (m - 1, m, m + 1) if n in per_night]
        res[m] = {"planning_s": round(statistics.median(w for w, _ in near), 4),
                  "planning_peak_mib": round(statistics.median(b for _, b in near) / 2**20, 2)}
    first = res[1]
    for m in marks:
        res[m]["planning_ratio"] = round(res[m]["planning_s"] / first["planning_s"], 2)
        res[m]["memory_ratio"] = round(res[m]["planning_peak_mib"] / first["planning_peak_mib"], 2)
        res[m]["store_reads"] = reads[m]
    last = res[marks[-1]]
    report = {"benchmark": "store_history", "date": dt.date.today().isoformat(), "nights": a.nights,
              "per_night": a.per_night, "machine": f"{platform.machine()}, {platform.python_version()}",
              "total_wall_s": round(time.time() - t_all, 1),
              "load_average_at_end": [round(x, 2) for x in __import__("os").getloadavg()], "by_night": {str(k): v for k, v in res.items()},
              "goal": "night 365 within 1.5x of night 1 in planning wall and planning peak memory",
              "met": last["planning_ratio"] <= 1.5 and last["memory_ratio"] <= 1.5}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
