"""A fake analyser for the store's tests: the job's real store logic (:mod:`jobs.runner`,
:mod:`jobs.manifest`, :mod:`jobs.commit`) over an engine that needs no Spark and no model.

The executor's rules are the real ones (:class:`ser_lib.process._Work`: hashing, the
unchanged-content skip, archive members and their limits); only the scoring of a recording
is faked: content starting with ``BAD`` fails as ``corrupt``, anything else is a call of
``1 + len(content) % 3`` segments.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jobs.commit import Staging, Store
from jobs.runner import read_parquet_dir
from ser_lib.config import JobConfig
from ser_lib.nulls import none_if_missing
from ser_lib.process import Task, _Work, process_task  # noqa: F401  (process_task: the path _Work serves)

CALLS = pa.schema([("call_id", pa.string()), ("source_path", pa.string()), ("member", pa.string()),
                   ("content_sha256", pa.string()), ("status", pa.string()), ("n_segments", pa.int64())])
SEGMENTS = pa.schema([("call_id", pa.string()), ("segment_index", pa.int64())])
EPISODES = pa.schema([("call_id", pa.string()), ("episode_index", pa.int64())])
TURNS = pa.schema([("call_id", pa.string()), ("turn_index", pa.int64())])


def fake_segments(content: bytes) -> int:
    """Segments the fake analyser gives a recording."""
    return 1 + len(content) % 3


class _FakeWork(_Work):
    def recording(self, source, fields: dict):
        if isinstance(source, (bytes, bytearray)):
            data = bytes(source)
        elif hasattr(source, "read"):
            data = source.read()
        else:
            data = Path(source).read_bytes()
        if data.startswith(b"BAD"):
            return [self.input_row(fields, "failed", "corrupt: fake decoder refused it")]
        n = fake_segments(data)
        return [self.input_row(fields, "ok", duration_s=float(n), n_segments=n)]


class _Predictor:
    labels = ["neutral"]


class FakeEngine:
    """A :class:`jobs.runner.Engine` without Spark (see the module docstring)."""

    def __init__(self, cfg: JobConfig | None = None):
        self.cfg = cfg or JobConfig.load(None)
        self.rows: list[dict] = []

    def analyse(self, tasks: list[dict]) -> list[dict]:
        work = _FakeWork(_Predictor(), self.cfg, {}, lambda s: None)
        out = []
        for t in tasks:
            us = None if t["modified"] is None else int(t["modified"].timestamp() * 1e6)
            task = Task(t["task_kind"], t["source_path"], t["size_bytes"], us, t["prior"])
            for row in (work.archive(task) if task.kind == "archive" else work.file(task)):
                out.append(row)
        self.rows = out
        return out

    def stage(self, store: Store, staging: Staging, run_date: str, run_id: str, facts: list[dict],
              n_segments: int) -> set[str]:
        calls, segs, eps, turns = [], [], [], []
        for f in facts:
            n = none_if_missing(f.get("duration_s"))
            n = int(n) if f["status"] == "ok" and n else 0
            calls.append({"call_id": f["call_id"], "source_path": f["source_path"], "member": f["member"],
                          "content_sha256": f["content_sha256"], "status": f["status"], "n_segments": n})
            segs += [{"call_id": f["call_id"], "segment_index": i} for i in range(n)]
            eps += [{"call_id": f["call_id"], "episode_index": 0}] if n >= 2 else []
            turns += [{"call_id": f["call_id"], "turn_index": i} for i in range(n - 1)]  # a talk spurt per pause
        written = set()
        for name, rows, schema in (("calls", calls, CALLS), ("segments", segs, SEGMENTS), ("episodes", eps, EPISODES),
                                   ("turns", turns, TURNS)):
            if rows:
                _write(store, staging.table(name, run_date), pa.Table.from_pylist(rows, schema))
                written.add(name)
        return written

    def rewrite_without(self, store: Store, src: str, call_ids: set[str], dst: str) -> str:
        t = read_parquet_dir(store, src)
        if t is None:
            return "unchanged"
        drop = pc.is_in(t["call_id"], pa.array(sorted(call_ids)))
        if not pc.any(drop).as_py():
            return "unchanged"
        keep = t.filter(pc.invert(drop))
        if not keep.num_rows:
            return "emptied"
        _write(store, dst, keep)
        return "rewritten"

    def counters(self) -> dict:
        return {"model_loads": 0, "model_batches": 0, "stage_s": {}}


def _write(store: Store, rel: str, table: pa.Table) -> None:
    store.mkdirs(rel)
    with store.fs.open_output_stream(store.p(f"{rel}/part-00000.parquet")) as f:
        pq.write_table(table, f)


def read_table(out: Path, table: str) -> list[dict]:
    """Every row of ``OUT/<table>/run_date=*/run_id=*/*.parquet`` with its partition values."""
    rows = []
    for f in sorted((out / table).glob("run_date=*/run_id=*/*.parquet")):
        run_id = f.parent.name.split("=", 1)[1]
        run_date = f.parent.parent.name.split("=", 1)[1]
        rows += [{**r, "run_id": run_id, "run_date": run_date} for r in pq.read_table(f).to_pylist()]
    return rows


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in sorted(members.items()):
            zf.writestr(name, data)
    return buf.getvalue()
