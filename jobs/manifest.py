"""The manifest: every input a run saw, and what became of it.

One row per input per run (``OUT/manifest/run_date=D/run_id=R/``): plain files,
archives and archive members, recordings or not. ``status``:

* ``ok``: analysed; its rows are in ``calls``/``segments`` of this run.
* ``failed``: could not be analysed; ``error`` = ``reason: details``; its ``calls`` row
  (``status='failed'``) is in this run. Failed inputs are retried by the next run.
* ``skipped``: not analysed by this run. ``error`` null: unchanged since the run in
  ``output_run_id`` analysed it (same size and mtime, or same sha256), whose rows stay
  current. ``error`` set: not a recording (``not_audio``, ``hidden``, ``not_a_file``), or
  another path of a file listed under a first path (``duplicate``, see :func:`list_inputs`).

Incremental rule (:func:`plan`): an input is analysed again unless its latest committed
record is ``ok``/``skipped`` with the same size and modification time (then it is
skipped on the driver, nothing is read) or, read by an executor, the same sha256. A
``--reprocess`` spec forces analysis of the inputs it matches.
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import json
import logging
import os
import re
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ser_lib.archive import archive_kind
from ser_lib.nulls import is_missing, none_if_missing
from ser_lib.process import call_id

from .commit import Store

log = logging.getLogger("ser.manifest")

SCHEMA = pa.schema([
    ("source_path", pa.string()),          # file (or archive) path / URI
    ("member", pa.string()),               # archive member name; null for plain files and the archive's own row
    ("kind", pa.string()),                 # file | archive | member
    ("call_id", pa.string()),              # null for archives and non-recordings
    ("size_bytes", pa.int64()),            # file size, or member's uncompressed size
    ("modified", pa.timestamp("us", tz="UTC")),  # file mtime, or member mtime from the archive
    ("source_size", pa.int64()),           # size of the file on disk (the archive for members)
    ("source_modified", pa.timestamp("us", tz="UTC")),
    ("content_sha256", pa.string()),       # of the file / member bytes; null when not read
    ("status", pa.string()),               # ok | failed | skipped
    ("error", pa.string()),                # reason: details
    ("duration_s", pa.float64()),
    ("output_run_id", pa.string()),        # run whose calls/segments partitions hold this input's rows
    ("output_run_date", pa.string()),
    ("model_version", pa.string()),        # model of those rows
])
COLUMNS = SCHEMA.names


@dataclass
class Input:
    """One listed file system entry."""

    path: str
    size: int
    modified: dt.datetime | None
    regular: bool
    hidden: bool
    duplicate_of: str | None = None  # another listed path of the same file (links)


def list_inputs(input_path: str) -> list[Input]:
    """Every entry under ``input_path`` (recursive), sorted by path; local paths absolute.

    Listing goes through ``pyarrow.fs`` (local, HDFS, S3, GCS by URI) rather than Spark's
    ``binaryFile`` source, which silently drops 0-byte files. Nothing is left out here:
    hidden files, non-recordings and special files are recorded as skipped/failed.
    Local directories: symbolic links are followed, each real directory and file once
    (see :func:`_list_local`).

    Raises:
        FileNotFoundError: ``input_path`` does not exist.
    """
    if "://" not in input_path:
        return _list_local(os.path.abspath(input_path))
    from pyarrow import fs
    filesystem, root = fs.FileSystem.from_uri(input_path)
    scheme = input_path.split("://", 1)[0] + "://"
    top = filesystem.get_file_info(root)
    if top.type == fs.FileType.NotFound:
        raise FileNotFoundError(f"input {input_path} does not exist")
    infos = [top] if top.type == fs.FileType.File else filesystem.get_file_info(fs.FileSelector(root, recursive=True))
    out = []
    for info in infos:
        if info.type == fs.FileType.Directory:
            continue
        rel = info.path[len(root):] if info.path != root else info.base_name
        mtime = info.mtime.astimezone(dt.timezone.utc) if info.mtime else None
        out.append(Input(scheme + info.path, int(info.size or 0), mtime, info.type == fs.FileType.File,
                         any(part.startswith(".") for part in rel.split("/") if part)))
    return sorted(out, key=lambda i: i.path)


def _list_local(root: str) -> list[Input]:
    """Local listing with ``os.walk``: unlike ``pyarrow.fs`` it also reports broken symbolic
    links, pipes and devices, which become failed rows instead of vanishing.

    Symbolic links are followed, but every real directory is walked once and every real
    file is listed once: the real tree is walked first, then the directory links found in
    it (those leading to a directory already walked, e.g. a loop back to a parent, are not
    descended into); a file reached by several paths (symbolic or hard links) is listed
    under the path with the fewest links, then the first in path order, and its other
    paths get ``duplicate_of`` set.
    """
    import stat

    def entry(path: str) -> tuple[Input, tuple | None]:
        try:
            st, regular = os.stat(path), None
            regular = stat.S_ISREG(st.st_mode)
        except OSError:
            st, regular = os.lstat(path), False
        mtime = dt.datetime.fromtimestamp(st.st_mtime_ns // 10**9, dt.timezone.utc).replace(
            microsecond=st.st_mtime_ns // 1000 % 10**6)
        rel = os.path.relpath(path, root) if path != root else os.path.basename(root)
        inp = Input(path, int(st.st_size) if regular else 0, mtime, regular,
                    any(part.startswith(".") for part in rel.split(os.sep) if part))
        return inp, ((st.st_dev, st.st_ino) if regular else None)

    if not os.path.lexists(root):
        raise FileNotFoundError(f"input {root} does not exist")
    if not os.path.isdir(root):
        return [entry(root)[0]]
    seen_dirs: set[tuple[int, int]] = set()
    walks = [(root, 0)]  # the input root, then directory links in the order found, with links on their path
    found = []           # (links on the path, path)
    for top, n_links in walks:
        for d, dirs, files in os.walk(top):  # followlinks=False: directory links are queued instead
            try:
                st = os.stat(d)
            except OSError:
                dirs[:] = []
                continue
            if (st.st_dev, st.st_ino) in seen_dirs:
                log.info("not following %s: directory already listed (symbolic link loop or second link)", d)
                dirs[:] = []
                continue
            seen_dirs.add((st.st_dev, st.st_ino))
            links = {x for x in dirs if os.path.islink(os.path.join(d, x))}
            walks.extend((os.path.join(d, x), n_links + 1) for x in sorted(links))
            dirs[:] = sorted(x for x in dirs if x not in links)
            found.extend((n_links, os.path.join(d, x)) for x in files)
    out, first = [], {}
    for n_links, path in sorted(found, key=lambda f: (f[0], os.path.islink(f[1]), f[1])):
        inp, ident = entry(path)
        if ident is not None:
            if ident in first:
                inp.duplicate_of = first[ident]
            else:
                first[ident] = path
        out.append(inp)
    return sorted(out, key=lambda i: i.path)


def read_state(store: Store, paths=None) -> pd.DataFrame:
    """Latest committed record per ``(source_path, member)`` (member '' for none).

    Args:
        paths: the listed inputs' paths: only their records are read (see
            :mod:`jobs.state`: one small file per directory). None: every record.

    Returns:
        :data:`COLUMNS` plus ``run_id``, ``run_date``, ``seq`` (the commit order of the run
        that wrote the record) and ``key_member``.
    """
    from jobs import state as st
    return st.read(store, paths)


_DATE_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})?\.\.(\d{4}-\d{2}-\d{2})?$")


def known_failure(prior) -> bool:
    """A committed record of an input that failed and has not been analysed since: its
    ``failed`` record, or the ``skipped`` records (``error`` kept) of later runs that found
    it unchanged. Its failed ``calls`` row is in ``output_run_id``. An ``internal`` failure
    (a bug, not the input's fault) is no known failure: every run retries it."""
    return (prior is not None and not is_missing(prior.get("error"))
            and not str(prior["error"]).startswith("internal:")
            and (prior["status"] == "failed"
                 or (prior["status"] == "skipped" and not is_missing(prior.get("output_run_id")))))


def reprocess_matcher(specs):
    """``specs`` → predicate ``(source_path, member, prior_record | None) -> bool``.

    A spec is ``all``; ``failed`` (inputs whose latest record is a failure, see
    :func:`known_failure`); a date range ``FROM..TO`` (inclusive, either end open) of the
    run date that produced an input's current rows (``output_run_date``); or a glob
    matched (fnmatch) against the path, or ``path!member`` for archive members.
    """
    specs = [s for s in (specs or []) if s]

    def match(path: str, member: str | None, prior) -> bool:
        for s in specs:
            if s == "all":
                return True
            if s == "failed":
                if known_failure(prior):
                    return True
                continue
            m = _DATE_RANGE.match(s)
            if m:
                d = None if prior is None else prior.get("output_run_date")
                if d and (m.group(1) is None or d >= m.group(1)) and (m.group(2) is None or d <= m.group(2)):
                    return True
                continue
            name = path if member is None else f"{path}!{member}"
            if fnmatch.fnmatchcase(name, s) or fnmatch.fnmatchcase(path, s):
                return True
        return False
    return match


def _rec(**kw) -> dict:
    return {c: kw.get(c) for c in COLUMNS}


def _usable(prior) -> bool:
    """A committed ok/skipped record of a recording analysed without error (a baseline)."""
    return (prior is not None and prior["status"] in ("ok", "skipped") and is_missing(prior.get("error"))
            and not is_missing(prior.get("content_sha256")))


def _baseline(prior) -> dict | None:
    """The part of a prior record an executor needs to recognise unchanged content."""
    if not _usable(prior):
        return None
    return {"sha": prior["content_sha256"], "out_run": prior["output_run_id"], "out_date": prior["output_run_date"],
            "model": prior["model_version"], "duration_s": prior.get("duration_s")}


def _ts(x):
    if is_missing(x):
        return None
    return pd.Timestamp(x).tz_convert("UTC") if pd.Timestamp(x).tzinfo else pd.Timestamp(x, tz="UTC")


def _carried(prior: dict, **base) -> dict:
    """This run's record of an input it did not read: the prior record's facts, ``skipped``
    (``error`` kept for a known failure, see :func:`known_failure`)."""
    return {**{k: none_if_missing(prior.get(k)) for k in COLUMNS}, **base, "status": "skipped"}


def plan(inputs: list[Input], state: pd.DataFrame, extensions, archives: bool, reprocess=None):
    """Decide per input: skip on the driver, or send to an executor.

    An input is skipped without reading when its latest record is ``ok``/``skipped``, or a
    failure (:func:`known_failure`: a file that failed is not retried until it changes or
    ``--reprocess failed``), with the same size and modification time, and no
    ``--reprocess`` spec matches it. An archive is skipped with the members its latest
    reading recorded.

    Returns:
        ``(driver_rows, tasks)``: manifest records decided here (skips, non-recordings,
        special files), and task dicts ``{task_kind, source_path, size_bytes, modified, prior}``
        (``prior`` JSON: the baseline of a file, or ``{member: baseline}`` of an archive).
    """
    exts = tuple("." + e.lower() for e in extensions)
    force = reprocess_matcher(reprocess)
    by_key = {(r["source_path"], r["key_member"]): r for r in state.to_dict("records")} if len(state) else {}
    by_archive: dict[str, list[dict]] = {}
    for (path, member), r in by_key.items():
        if member:
            by_archive.setdefault(path, []).append(r)
    rows, tasks = [], []
    for inp in inputs:
        name = inp.path.rsplit("/", 1)[-1].lower()
        kind = archive_kind(name) if archives else None
        is_rec = name.endswith(exts)
        base = dict(source_path=inp.path, size_bytes=inp.size, modified=inp.modified, source_size=inp.size,
                    source_modified=inp.modified)
        if inp.hidden:
            rows.append(_rec(**base, kind="file", status="skipped", error="hidden: hidden file or directory (.*)"))
            continue
        if not (is_rec or kind):
            rows.append(_rec(**base, kind="file", status="skipped", error="not_audio: extension is not a recording or archive"))
            continue
        if inp.duplicate_of:
            rows.append(_rec(**base, kind="archive" if kind else "file", status="skipped",
                             error=f"duplicate: same file as {inp.duplicate_of}"))
            continue
        prior = by_key.get((inp.path, ""))
        # same size and mtime as a record that is a result (ok, unchanged) or a known failure
        unchanged = (prior is not None and prior["size_bytes"] == inp.size and _ts(prior["modified"]) == _ts(inp.modified)
                     and (known_failure(prior) or (prior["status"] in ("ok", "skipped") and is_missing(prior.get("error"))))
                     and not force(inp.path, None, prior))
        if not inp.regular:
            if unchanged and known_failure(prior):
                rows.append(_carried(prior, **base))
                continue
            rows.append(_rec(**base, kind="archive" if kind else "file", call_id=None if kind else call_id(inp.path),
                             status="failed", error="unreadable: not a regular file (broken link, pipe or device)"))
            continue
        if kind is None:
            if unchanged and (known_failure(prior) or _usable(prior)):
                rows.append(_carried(prior, **base, kind="file", call_id=call_id(inp.path)))
                continue
            b = None if force(inp.path, None, prior) else _baseline(prior)
            tasks.append(dict(task_kind="file", **{k: base[k] for k in ("source_path", "size_bytes", "modified")},
                              prior=json.dumps(b)))
            continue
        # the members the archive's latest reading recorded (not those of older contents)
        members = [m for m in by_archive.get(inp.path, []) if prior is not None and m.get("seq") == prior.get("seq")]
        forced = {m["key_member"] for m in members if force(inp.path, m["key_member"], m)}
        if unchanged and not forced:
            rows.append(_carried(prior, **base, kind="archive"))
            rows += [_carried(m) for m in members]
            continue
        priors = {m["key_member"]: _baseline(m) for m in members if m["key_member"] not in forced}
        tasks.append(dict(task_kind="archive", **{k: base[k] for k in ("source_path", "size_bytes", "modified")},
                          prior=json.dumps({k: v for k, v in priors.items() if v})))
    return rows, tasks


def run_records(driver_rows: list[dict], input_rows: list[dict], run_id: str, run_date: str,
                model_version: str) -> list[dict]:
    """The run's manifest records, sorted by ``(source_path, member)``.

    Args:
        driver_rows: the records :func:`plan` decided on the driver.
        input_rows: the executors' ``row_kind='input'`` rows (:func:`ser_lib.process.process_task`;
            mtimes as ``modified_us``/``source_modified_us``, skipped inputs' model as
            ``output_model_version``).
        run_id, run_date, model_version: what analysed (ok) and failed inputs are recorded under.

    Returns:
        dicts with the :data:`COLUMNS` keys; missing values (NaN, NA) are None.
    """
    out = [dict(r) for r in driver_rows]
    for rec in out:  # failed on the driver (not a regular file): its calls row is this run's
        if rec["status"] == "failed":
            rec.update(output_run_id=run_id, output_run_date=run_date, model_version=model_version)
    for r in input_rows:
        rec = {c: r.get(c) for c in COLUMNS}
        rec["modified"] = _from_us(r.get("modified_us"))
        rec["source_modified"] = _from_us(r.get("source_modified_us"))
        if r["status"] in ("ok", "failed"):
            rec.update(output_run_id=run_id, output_run_date=run_date, model_version=model_version)
        else:
            rec["model_version"] = r.get("output_model_version")
        out.append(rec)
    out = [{k: none_if_missing(v) for k, v in rec.items()} for rec in out]
    out.sort(key=lambda r: (r["source_path"], r["member"] or ""))
    return out


def _from_us(us):
    return None if is_missing(us) else pd.Timestamp(int(us), unit="us", tz="UTC").to_pydatetime()


def supersede_targets(facts: list[dict], state: pd.DataFrame, run_id: str) -> dict[tuple[str, str], set[str]]:
    """Older partitions holding calls this run analysed again (reprocessed, changed or retried).

    Args:
        facts: this run's records of analysed or failed recordings.
        state: :func:`read_state` (the latest committed record per input).

    Returns:
        ``{(output_run_id, output_run_date): {call_id, ...}}`` of other runs whose partitions
        must be rewritten without those calls, so that every call has rows in one run only.
    """
    by_key = {(p["source_path"], p["key_member"]): p for p in state.to_dict("records")} if len(state) else {}
    targets: dict = {}
    for r in facts:
        p = by_key.get((r["source_path"], r["member"] or ""))
        if p is not None and isinstance(p.get("output_run_id"), str) and p["output_run_id"] != run_id:
            targets.setdefault((p["output_run_id"], p["output_run_date"]), set()).add(r["call_id"])
    return targets


def to_arrow(records_: list[dict]) -> pa.Table:
    df = pd.DataFrame(records_, columns=COLUMNS)
    for c in ("modified", "source_modified"):
        df[c] = pd.to_datetime(df[c], utc=True)
    return pa.Table.from_pandas(df, schema=SCHEMA, preserve_index=False)


def write(store: Store, rel_dir: str, table: pa.Table) -> None:
    """One Parquet file ``part-00000.parquet`` under ``rel_dir``."""
    store.mkdirs(rel_dir)
    with store.fs.open_output_stream(store.p(f"{rel_dir}/part-00000.parquet")) as f:
        pq.write_table(table, f)
