"""The store's current state: the latest manifest record of every input, indexed by directory.

Planning a run needs, for each input it lists, the latest committed record. Reading every
run's manifest for that grows with the store's history (a year of nights is 365 manifests);
this index keeps the answer instead, one small Parquet file per input directory::

    OUT/_state/dir=<16 hex of sha1(parent directory)>/part-00000.parquet

Each holds the latest record (:data:`jobs.manifest.COLUMNS` plus ``run_id``, ``run_date``,
``seq``) of every input ever listed in that directory (archive members under their
archive's directory). A run reads the files of the directories it listed, and stages new
versions of those it recorded inputs in; the commit renames them into place with the run's
tables (:mod:`jobs.commit`), so the index always agrees with the committed manifests. The
manifests stay the full history; an output root written before the index existed is
indexed from them by its next run.
"""
from __future__ import annotations

import hashlib

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from jobs.commit import Staging, Store, applied_files

INDEX = "_state"
EXTRA = [("run_id", pa.string()), ("run_date", pa.string()), ("seq", pa.int64())]


def schema() -> pa.Schema:
    from jobs.manifest import SCHEMA
    return pa.schema(list(SCHEMA) + [pa.field(n, t) for n, t in EXTRA])


def dir_key(source_path: str) -> str:
    """The index partition of an input: 16 hex digits of SHA-1 over its parent directory."""
    parent = source_path.rsplit("/", 1)[0] if "/" in source_path else ""
    return hashlib.sha1(parent.encode("utf-8")).hexdigest()[:16]


def part_dir(key: str) -> str:
    return f"{INDEX}/dir={key}"


def _empty() -> pd.DataFrame:
    from jobs.manifest import COLUMNS
    return pd.DataFrame(columns=COLUMNS + [n for n, _ in EXTRA] + ["key_member"])


def _finish(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["key_member"] = df["member"].fillna("")
    return df


def indexed(store: Store) -> bool:
    """Whether the index exists (it does after the first run of this version)."""
    return store.exists(INDEX)


def read_parts(store: Store, keys) -> dict[str, pd.DataFrame]:
    """The index partitions ``keys`` (those that exist), whole."""
    out = {}
    for key in sorted(set(keys)):
        rel = f"{part_dir(key)}/part-00000.parquet"
        if store.exists(rel):
            with store.fs.open_input_file(store.p(rel)) as f:
                out[key] = pq.read_table(f).to_pandas()
    return out


def read(store: Store, paths=None) -> pd.DataFrame:
    """Latest committed record of each input under ``paths`` (None: of every input).

    Reads only the index partitions of the paths' directories; an output root without the
    index (written before it existed) is read from its manifests.
    """
    if not indexed(store):
        df = from_manifests(store)
    elif paths is None:
        keys = [n.split("=", 1)[1] for n in store.listdir(INDEX) if n.startswith("dir=")]
        parts = read_parts(store, keys)
        df = pd.concat(list(parts.values()), ignore_index=True) if parts else _empty()
    else:
        paths = set(paths)
        parts = read_parts(store, {dir_key(p) for p in paths})
        df = pd.concat(list(parts.values()), ignore_index=True) if parts else _empty()
    if paths is not None and len(df):
        df = df[df["source_path"].isin(set(paths))]
    return _finish(df) if len(df) else _empty()


def from_manifests(store: Store, exclude_run: str | None = None) -> pd.DataFrame:
    """The latest record per input from every applied run's manifest (the index's source);
    ``exclude_run``: leave that run's records out (``bench/store_old_logic.py``)."""
    frames = []
    for r, rel in applied_files(store, "manifest"):
        if r["run_id"] == exclude_run:
            continue
        with store.fs.open_input_file(store.p(rel)) as f:
            t = pq.read_table(f).to_pandas()
        t["run_id"], t["run_date"], t["seq"] = r["run_id"], r["run_date"], int(r.get("seq", 0))
        frames.append(t)
    if not frames:
        return _empty()
    df = pd.concat(frames, ignore_index=True)
    df["key_member"] = df["member"].fillna("")
    df = df.sort_values("seq", kind="stable").drop_duplicates(["source_path", "key_member"], keep="last")
    return df.drop(columns=["key_member"])


def stage(store: Store, staging: Staging, records_: list[dict], run_id: str, run_date: str, seq: int) -> list[dict]:
    """Stage the index partitions this run's records change; return their commit actions.

    A partition's new version is its committed rows less the inputs this run recorded,
    plus this run's records of them. On an output root without the index, every
    partition is built from the manifests first.
    """
    from jobs.manifest import to_arrow
    if not records_ and indexed(store):
        return []
    mine = to_arrow(records_).to_pandas()
    mine["run_id"], mine["run_date"], mine["seq"] = run_id, run_date, seq
    mine["_key"] = mine["source_path"].map(dir_key)
    if indexed(store):
        old = read_parts(store, set(mine["_key"]))
    else:
        full = from_manifests(store)
        full["_key"] = full["source_path"].map(dir_key) if len(full) else []
        old = {k: g.drop(columns="_key") for k, g in full.groupby("_key")} if len(full) else {}
    sch = schema()
    actions = []
    for key in sorted(set(old) | set(mine["_key"])):
        new = mine[mine["_key"] == key].drop(columns="_key")
        prev = old.get(key)
        if prev is not None and len(prev):
            done = set(zip(new["source_path"], new["member"].fillna("")))
            keep = [(p, m) not in done for p, m in zip(prev["source_path"], prev["member"].fillna(""))]
            new = pd.concat([prev[keep][sch.names], new[sch.names]], ignore_index=True)
        for c in ("modified", "source_modified"):
            new[c] = pd.to_datetime(new[c], utc=True)
        table = pa.Table.from_pandas(new[sch.names].sort_values(["source_path", "member"], na_position="first"),
                                     schema=sch, preserve_index=False)
        rel = f"{staging.root}/{part_dir(key)}"
        store.mkdirs(rel)
        with store.fs.open_output_stream(store.p(f"{rel}/part-00000.parquet")) as f:
            pq.write_table(table, f)
        actions.append({"src": rel, "dst": part_dir(key)})
    return actions
