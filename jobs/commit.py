"""Staging, atomic commit and crash recovery of a run's output.

Why not a table format: Delta Lake / Iceberg would give atomic commits, but they need
JVM jars from Maven (not reachable where this runs) and every reader would need them
too. Plain Parquet plus this small protocol gives readers (Spark, DuckDB, pandas) the
same guarantee for this job's write pattern, where a run only ever *adds* its own
partitions and *replaces* a few older ones:

Layout under the output root ``OUT``::

    OUT/<table>/run_date=D/run_id=R/part-*.parquet   tables: segments, calls, episodes, turns, manifest, errors
    OUT/_runs/<R>.json                               commit record + run summary (one per run)
    OUT/_staging/<R>.<attempt>/...                   a run's output before it commits
    OUT/_trash/<R>.<attempt>/                        replaced partitions, deleted after commit
    OUT/_lock                                        flock held by the running job (one run at a time)
    OUT/_commit/head.json, pending.json              the latest applied run; the run committing now
    OUT/_state/dir=<hash>/                           the latest record of every input (jobs.state)

1. **Stage**: the run writes everything under ``_staging/<R>.<attempt>/`` (outside the
   table directories, and ``_``-prefixed, so Spark ignores it and the documented
   DuckDB globs ``OUT/calls/*/*/*.parquet`` never reach it), including rewritten copies
   of older partitions that still hold rows this run supersedes.
2. **Commit**: the commit record ``_runs/<R>.json`` is written to a temp file and
   ``os.replace``-d into place (atomic on POSIX and HDFS). It lists every directory move.
   *The record is the single source of truth*: a run without a record never happened
   (its staging is discarded), a run with one is committed and is rolled forward.
3. **Apply**: each move is one directory rename (``run_id=R`` directories are owned by
   one run; a replaced one is first renamed into ``_trash``). Moves are idempotent (a
   move whose source is gone is done), so replaying them after a crash converges.
   The record is then rewritten with ``state: applied``.
4. **Recover** (at the start of every run and of ``ser report``): roll forward every
   record not yet applied, then delete ``_staging`` and ``_trash`` leftovers.

What a reader can see: never a byte of an uncommitted run. Between the commit record
and ``applied`` (a few renames, milliseconds; or until the next start if the driver is
killed in between) a reader may see some of a committed run's partitions and not yet
others; readers that need a snapshot restrict ``run_id`` to records with
``state = 'applied'`` (README, "Operating it").

File systems: local disks and HDFS rename files and directories atomically. On object
stores (S3, GCS) a "rename" is copy + delete and nothing is atomic: stage and commit on
HDFS/local disk, or run there only with a single reader-visible switch you trust (e.g.
an S3 committer) - this module refuses nothing, but makes no atomicity claim there.
The lock is an ``flock`` on local disks only; elsewhere the scheduler must not start two
runs on one output root at a time (Airflow ``max_active_runs=1``).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import time
import uuid
from dataclasses import dataclass
from typing import Callable

from pyarrow import fs

log = logging.getLogger("ser.commit")

TABLES = ("segments", "calls", "episodes", "turns", "manifest", "errors")

#: Test hook: ``SER_CRASH_AFTER=<step>`` makes the driver kill itself with SIGKILL right
#: after ``<step>`` (``staged``, ``committed``, ``moved``, ``applied``), exactly like an
#: operator's ``kill -9``. ``CRASH_HOOK`` is the in-process variant used by the tests.
CRASH_ENV = "SER_CRASH_AFTER"
CRASH_HOOK: Callable[[str], None] | None = None


def crash_point(step: str) -> None:
    if os.environ.get(CRASH_ENV) == step:
        log.warning("test hook %s=%s: killing the driver (SIGKILL)", CRASH_ENV, step)
        os.kill(os.getpid(), signal.SIGKILL)
    if CRASH_HOOK is not None:
        CRASH_HOOK(step)


class Store:
    """The output root on a pyarrow file system; paths passed around are relative to it."""

    def __init__(self, root: str):
        root = root.rstrip("/")
        if "://" in root:
            self.fs, self.base = fs.FileSystem.from_uri(root)
            self.scheme = root.split("://", 1)[0] + "://"
        else:
            self.fs, self.base, self.scheme = fs.LocalFileSystem(), os.path.abspath(root), ""
        self.root = root if self.scheme else self.base
        self.local = not self.scheme or self.scheme == "file://"
        self._lock_fd = None

    def p(self, rel: str) -> str:
        return f"{self.base}/{rel}" if rel else self.base

    def uri(self, rel: str) -> str:
        """What Spark should be given for ``rel``."""
        return f"{self.scheme}{self.p(rel)}" if self.scheme else self.p(rel)

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self.p(rel)).type != fs.FileType.NotFound

    def listdir(self, rel: str) -> list[str]:
        if not self.exists(rel):
            return []
        return sorted(i.base_name for i in self.fs.get_file_info(fs.FileSelector(self.p(rel))))

    def mkdirs(self, rel: str) -> None:
        self.fs.create_dir(self.p(rel), recursive=True)

    def move(self, src: str, dst: str) -> None:
        parent = dst.rsplit("/", 1)[0] if "/" in dst else ""
        if parent:
            self.mkdirs(parent)
        self.fs.move(self.p(src), self.p(dst))

    def rmtree(self, rel: str) -> None:
        if self.exists(rel):
            info = self.fs.get_file_info(self.p(rel))
            if info.type == fs.FileType.Directory:
                self.fs.delete_dir(self.p(rel))
            else:
                self.fs.delete_file(self.p(rel))

    def write_bytes_atomic(self, rel: str, data: bytes) -> None:
        """Write ``rel`` whole or not at all: a temporary file in ``_commit/`` (where recovery
        looks for leftovers, so it never lists the growing ``_runs/``), renamed over ``rel``."""
        parent = rel.rsplit("/", 1)[0]
        self.mkdirs(parent)
        self.mkdirs("_commit")
        tmp = f"_commit/{rel.replace('/', '_')}.tmp-{uuid.uuid4().hex[:8]}"
        with self.fs.open_output_stream(self.p(tmp)) as f:
            f.write(data)
        if self.local:
            with open(self.p(tmp), "rb+") as fh:  # data on disk before the rename makes it visible
                os.fsync(fh.fileno())
        self.fs.move(self.p(tmp), self.p(rel))  # rename over the target: atomic replace

    def read_json(self, rel: str) -> dict:
        with self.fs.open_input_stream(self.p(rel)) as f:
            return json.loads(f.read().decode("utf-8"))

    # ---------------------------------------------------------------- lock
    def lock(self, wait_s: float = 0.0, holder: str = "") -> None:
        """Exclusive lock on the output root for this process (local disks; released on death).

        Args:
            wait_s: seconds to wait for a run holding the lock to finish (0: fail at once).
            holder: who takes the lock (e.g. ``run 20261122-ab12cd34``); written into the
                lock file so that a refused run can say who holds it.

        Raises:
            LockBusy: another process holds the lock (after ``wait_s`` seconds).
        """
        if not self.local:
            return
        import fcntl
        os.makedirs(self.base, exist_ok=True)
        path = os.path.join(self.base, "_lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + max(0.0, wait_s)
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                left = deadline - time.monotonic()
                if left <= 0:
                    who = _read_holder(path)
                    os.close(fd)
                    raise LockBusy(path, who, wait_s) from None
                if not told:
                    log.warning("%s holds %s: waiting up to %.0f s", _read_holder(path) or "another run", path, wait_s)
                    told = True
                time.sleep(min(0.5, left))
        # who holds it, for the message of a run refused meanwhile (informative only)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}{', ' + holder if holder else ''}, since "
                      f"{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}\n".encode(), 0)
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


class LockBusy(RuntimeError):
    """Another run holds the output root's lock: a temporary failure (retry later, or ``--wait``)."""

    def __init__(self, path: str, holder: str, waited_s: float):
        self.path, self.holder, self.waited_s = path, holder, waited_s
        super().__init__(f"another run ({holder or 'unknown process'}) holds {path}"
                         + (f" (waited {waited_s:g} s)" if waited_s else "")
                         + "; one run per output root at a time: retry later or pass --wait SECONDS")


def _read_holder(path: str) -> str:
    try:
        with open(path) as f:
            return f.read(200).strip()
    except OSError:
        return ""


def table_dir(table: str, run_date: str, run_id: str) -> str:
    return f"{table}/run_date={run_date}/run_id={run_id}"


@dataclass
class Staging:
    """Where one attempt of a run stages its output."""

    run_id: str
    attempt: str

    @property
    def root(self) -> str:
        return f"_staging/{self.run_id}.{self.attempt}"

    def table(self, table: str, run_date: str) -> str:
        return f"{self.root}/{table_dir(table, run_date, self.run_id)}"

    def rewrite(self, table: str, run_date: str, run_id: str) -> str:
        return f"{self.root}/rewrite/{table_dir(table, run_date, run_id)}"


def new_staging(run_id: str) -> Staging:
    return Staging(run_id, uuid.uuid4().hex[:8])


# ---------------------------------------------------------------- records
def records(store: Store) -> list[dict]:
    """Commit records, oldest commit first (by ``seq``)."""
    out = []
    for name in store.listdir("_runs"):
        if name.endswith(".json") and ".tmp-" not in name:
            try:
                out.append(store.read_json(f"_runs/{name}"))
            except (OSError, ValueError) as err:  # a record is only ever replaced atomically
                raise RuntimeError(f"unreadable commit record _runs/{name}: {err}") from err
    return sorted(out, key=lambda r: (r.get("seq", 0), r["run_id"]))


#: The latest applied run (``{"seq", "run_id"}``) and the run about to commit: two small
#: files that let a run find the next ``seq`` and the one record that can be unapplied
#: without reading every record (the driver does not grow with the store's history).
HEAD, PENDING = "_commit/head.json", "_commit/pending.json"


def _read_optional(store: Store, rel: str) -> dict | None:
    return store.read_json(rel) if store.exists(rel) else None


def _set_head(store: Store, rec: dict) -> None:
    h = _read_optional(store, HEAD)
    if h is None or rec.get("seq", 0) >= h.get("seq", 0):
        store.write_bytes_atomic(HEAD, json.dumps({"seq": rec.get("seq", 0), "run_id": rec["run_id"]}).encode())


def applied_files(store: Store, table: str, run_id: str | None = None):
    """``(record, path)`` of every Parquet file of ``table`` in the runs whose record says
    ``applied`` (of ``run_id`` only, if given), oldest commit first: what readers that need
    a snapshot of committed output read. ``path`` is relative to the output root."""
    for r in records(store):
        if r.get("state") != "applied" or (run_id is not None and r["run_id"] != run_id):
            continue
        d = table_dir(table, r["run_date"], r["run_id"])
        for name in store.listdir(d):
            if name.endswith(".parquet") and not name.startswith((".", "_")):
                yield r, f"{d}/{name}"


def apply(store: Store, rec: dict) -> None:
    """Perform (or finish) a committed record's moves, then mark it applied. Idempotent."""
    trash = f"_trash/{rec['run_id']}.{rec['attempt']}"
    for i, a in enumerate(rec["actions"]):
        src, dst = a.get("src"), a["dst"]
        if src is not None and not store.exists(src):
            continue  # done before a crash
        if store.exists(dst):
            store.move(dst, f"{trash}/{i}")
        if src is not None:
            store.move(src, dst)
        crash_point("moved")
    rec = {**rec, "state": "applied"}
    store.write_bytes_atomic(f"_runs/{rec['run_id']}.json", json.dumps(rec, indent=2, default=str).encode())
    crash_point("applied")
    _set_head(store, rec)
    store.rmtree(PENDING)
    store.rmtree(trash)
    store.rmtree(f"_staging/{rec['run_id']}.{rec['attempt']}")


def recover(store: Store) -> list[str]:
    """Roll forward committed-but-unapplied runs; discard staging of runs that never committed.

    Runs commit one at a time and each recovers first, so only the run named in
    ``_commit/pending.json`` can be committed and unapplied; an output root without
    ``_commit/head.json`` (written before it existed) has every record checked once.

    Returns the run ids rolled forward.
    """
    rolled = []
    if _read_optional(store, HEAD) is None:
        candidates = records(store)
    else:
        pending = _read_optional(store, PENDING)
        rel = f"_runs/{pending['run_id']}.json" if pending else None
        candidates = [store.read_json(rel)] if rel and store.exists(rel) else []
    for rec in candidates:
        if rec.get("state") != "applied":
            log.warning("rolling forward committed run %s (attempt %s)", rec["run_id"], rec["attempt"])
            apply(store, rec)
            rolled.append(rec["run_id"])
        else:
            _set_head(store, rec)
    store.rmtree(PENDING)
    for d in ("_staging", "_trash"):
        for name in store.listdir(d):
            log.warning("discarding leftover %s/%s of a run that did not commit", d, name)
            store.rmtree(f"{d}/{name}")
    for name in store.listdir("_commit"):
        if ".tmp-" in name:
            store.rmtree(f"_commit/{name}")
    return rolled


def next_seq(store: Store) -> int:
    """The commit order number of the next run: one more than the committed runs' highest."""
    h = _read_optional(store, HEAD)
    if h is not None:
        return int(h["seq"]) + 1
    return max([r.get("seq", 0) for r in records(store)] + [0]) + 1


def commit(store: Store, staging: Staging, run_date: str, actions: list[dict], summary: dict,
           seq: int | None = None) -> dict:
    """Write the commit record (the atomic commit point), then apply it.

    Args:
        seq: the run's commit order (:func:`next_seq`, taken under the lock; None: now).
    """
    seq = next_seq(store) if seq is None else seq
    rec = {"run_id": staging.run_id, "attempt": staging.attempt, "run_date": run_date, "seq": seq,
           "committed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "state": "committed", "actions": actions, "summary": summary}
    store.write_bytes_atomic(PENDING, json.dumps({"run_id": staging.run_id, "attempt": staging.attempt}).encode())
    store.write_bytes_atomic(f"_runs/{staging.run_id}.json", json.dumps(rec, indent=2, default=str).encode())
    crash_point("committed")
    apply(store, rec)
    return rec
