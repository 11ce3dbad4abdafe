"""Spark job: call recordings → per-segment and per-call emotion timelines in Parquet.

    spark-submit jobs/analyze_calls.py --input IN --output OUT [--conf conf/job.yaml]
    ser analyze IN OUT [--conf conf/job.yaml]          # same code path

recover (roll forward / discard a killed run, :mod:`jobs.commit`) → plan (list inputs,
compare with the manifest: only new, changed or failed inputs are read,
:mod:`jobs.manifest`) → transform (files and archives in one fused mapInArrow pass:
hash, stream-decode, windows, features, model once per worker, call summaries)
→ stage (Parquet under ``OUT/_staging``) → commit (atomic commit record,
then directory renames into ``OUT/<table>/run_date=D/run_id=R/``).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import sys
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

if __package__ in (None, ""):  # run as a script by spark-submit: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
from pyspark import SparkConf
from pyspark.accumulators import AccumulatorParam
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs import manifest, schemas
from jobs.progress import AnalysisProgress
from jobs.commit import TABLES, LockBusy, Staging, Store, commit, crash_point, new_staging, recover, table_dir
from ser_lib import artifact as art
from ser_lib.config import JobConfig
from ser_lib.errors import ConfigError, SERError

log = logging.getLogger("ser.job")


# ---------------------------------------------------------------- session
#: Settings of a local run (``local[*]``) that spark-submit, ``--conf`` or conf/job.yaml did not
#: set. The driver JVM compiles with C1 only (``-XX:TieredStopAtLevel=1``): a local run's JVM
#: lives seconds to minutes and does little work of its own (Python workers score), so C2's
#: slow warm-up never pays back. Measured in bench/README.md ("Cold start").
LOCAL_SPARK_DEFAULTS = {"spark.ui.enabled": "false",
                        "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1"}


def build_spark(cfg: JobConfig, master: str | None = None) -> SparkSession:
    """Get or create the SparkSession.

    Settings given by spark-submit (``--master``, ``--conf``) win over ``conf/job.yaml``;
    ``master`` (``--master`` of ``ser analyze``) wins over both. In local mode the
    Python workers are pointed at this interpreter so they see the same packages.
    """
    if "PYSPARK_GATEWAY_PORT" in os.environ:
        # under spark-submit its JVM runs already: connect first, so SparkConf() loads its
        # settings (--master, --conf); else conf.contains() misses them and local[*] wins
        from pyspark import SparkContext
        SparkContext._ensure_initialized()
    conf = SparkConf()
    if master:
        conf.setMaster(master)
    elif not conf.contains("spark.master"):
        conf.setMaster(cfg.master)
    if not conf.contains("spark.app.name"):
        conf.setAppName(cfg.app_name)
    for k, v in cfg.spark_settings.items():
        if not conf.contains(k):
            conf.set(k, v)
    # Each Python worker runs one task: cap its math libraries at the task's cores so
    # two workers on a 2-core machine don't each start 2+ threads (oversubscription).
    cpus = conf.get("spark.task.cpus", "1")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        if not conf.contains(f"spark.executorEnv.{var}"):
            conf.set(f"spark.executorEnv.{var}", cpus)
    if conf.get("spark.master", "").startswith("local"):
        # a local run is one short-lived JVM: nobody browses its UI, and its start-up
        # (class loading, JIT) is most of a small run's wall time (bench/README.md, cold start)
        for k, v in LOCAL_SPARK_DEFAULTS.items():
            conf.setIfMissing(k, v)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
            os.environ.setdefault(var, cpus)  # local workers inherit the driver's environment
    from jobs.spark_logs import start_quiet_context
    start_quiet_context(conf)  # Spark's WARN/INFO lines off stderr unless -v or SER_SPARK_LOGS=1
    return SparkSession.builder.config(conf=conf).getOrCreate()


class _DictParam(AccumulatorParam):
    """Accumulates ``{name: seconds}`` (per-stage wall time summed over Python workers)."""

    def zero(self, value):
        return {}

    def addInPlace(self, a, b):
        for k, v in b.items():
            a[k] = a.get(k, 0.0) + v
        return a


class _SetParam(AccumulatorParam):
    """Accumulates a set (used to count distinct model loads per worker process)."""

    def zero(self, value):
        return set()

    def addInPlace(self, a, b):
        a |= b
        return a


@dataclass
class RunContext:
    """What one run shares with its UDFs: ids, config, broadcast model, counters."""

    run_id: str
    run_date: str
    cfg: JobConfig
    meta: art.ArtifactMeta
    model_bc: object            # Broadcast[ArtifactBytes]
    model_loads: object         # Accumulator[set[(pid, version)]] — one entry per load
    model_batches: object       # Accumulator[int] — UDF batches scored
    stage_s: object             # Accumulator[dict] — worker seconds per stage
    progress_addr: tuple | None = None  # where workers send live progress (jobs.progress)


_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def default_run_id(run_date: str, input_path: str) -> str:
    """Deterministic run identity: ``YYYYMMDD-<8 hex of sha1(input root)>``.

    The same night over the same input root is the same run, so a run killed at any point
    and started again (same day) commits under the same id and replaces nothing but its
    own partitions: the result equals an uninterrupted run, row for row, ``run_id`` included.
    """
    root = input_path if "://" in input_path else os.path.abspath(input_path)
    return run_date.replace("-", "") + "-" + hashlib.sha1(root.rstrip("/").encode()).hexdigest()[:8]


def new_run_id(now: dt.datetime) -> str:
    """A unique run id (kept for callers that want one run per invocation: pass it as ``run_id``)."""
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


# ---------------------------------------------------------------- extract
def list_recordings(input_path: str, extensions) -> list[tuple[str, int, dt.datetime]]:
    """Regular, non-hidden files under ``input_path`` with a recording extension:
    ``[(path, size_bytes, modified_utc)]`` sorted by path (see :func:`jobs.manifest.list_inputs`)."""
    exts = tuple("." + e.lower() for e in extensions)
    return [(i.path, i.size, i.modified) for i in manifest.list_inputs(input_path)
            if i.regular and not i.hidden and i.path.lower().endswith(exts)]


# a StructType, not a DDL string: parsing DDL costs a JVM round trip of ~0.7 s on a cold start
_TASK_SCHEMA = T.StructType([T.StructField("task_kind", T.StringType()), T.StructField("source_path", T.StringType()),
                             T.StructField("size_bytes", T.LongType()), T.StructField("modified_us", T.LongType()),
                             T.StructField("prior", T.StringType())])


def _us(t) -> int | None:
    return None if t is None else int(pd.Timestamp(t).value // 1000)


def extract(spark: SparkSession, tasks: list[dict]) -> DataFrame:
    """The inputs an executor must read (see :func:`jobs.manifest.plan`), one row per file or archive."""
    return spark.createDataFrame([(t["task_kind"], t["source_path"], t["size_bytes"], _us(t["modified"]), t["prior"])
                                  for t in tasks], _TASK_SCHEMA)


# ---------------------------------------------------------------- transform
def _open_source(uri: str):
    """Something soundfile can read: local paths as they are, other file systems' files as
    seekable pyarrow file objects (read in chunks, never whole)."""
    if "://" not in uri:
        return uri
    from pyarrow import fs  # HDFS, S3, GCS ... as configured on the cluster
    filesystem, path = fs.FileSystem.from_uri(uri)
    return filesystem.open_input_file(path)


def _sha256(uri: str) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks on the executor."""
    if "://" not in uri:
        from ser_lib.stream import file_sha256
        return file_sha256(uri)
    h = hashlib.sha256()
    with _open_source(uri) as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


_PREDICTOR: dict = {}  # per Python worker process: model version -> Predictor


def _predictor(bundle: art.ArtifactBytes, batch_size: int):
    """The worker's Predictor for ``bundle`` and whether this call loaded it.

    The cache lives in the worker process, which Spark reuses across tasks
    (``spark.python.worker.reuse``), so each worker deserialises the model once.
    """
    from ser_lib.inference import Predictor
    version = json.loads(bundle.meta_json)["version"]
    if version not in _PREDICTOR:
        _PREDICTOR.clear()  # one model per worker
        _PREDICTOR[version] = Predictor(bundle, None, batch_size)
        return _PREDICTOR[version], True
    return _PREDICTOR[version], False


def _batch(values: dict, n: int, schema: pa.Schema) -> pa.RecordBatch:
    """``n`` rows of ``schema``: sequences as given (NaN → null, as Spark's pandas
    conversion does), scalars repeated, missing fields typed nulls.

    A one-row batch takes ``[value]`` for list-valued fields (``timeline``)."""
    arrays = []
    for f in schema:
        v = values.get(f.name)
        if v is None:
            arrays.append(pa.nulls(n, f.type))
        elif isinstance(v, (np.ndarray, list)):
            arrays.append(pa.array(v, f.type, from_pandas=True))
        else:
            arrays.append(pa.array([v] * n, f.type, from_pandas=True))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def analyze_udf(ctx: RunContext):
    """``mapInArrow`` function: task rows (files, archives) → input rows + scored window rows.

    Rows are built as Arrow record batches straight from the numpy results (no pandas
    DataFrame per call, no pandas → Arrow conversion: measurably cheaper per call).

    One Python pass per recording (:func:`ser_lib.scoring.score_recording`, which ``ser
    predict`` uses too): decode, resample, window, features, speech flags and the model
    chunk by chunk, so neither the decoded call nor its ~58 KB-per-window feature tensor
    is ever held whole; the small per-window result rows of a call are kept until it ends,
    so a call that fails half-way leaves only its failed row. The broadcast artifact is deserialised once per Python
    worker process, before the loop over batches; threads are capped at the task's cores.

    Every task yields exactly one ``row_kind='input'`` row per input it saw (the file; an
    archive and each of its members), with ``status`` ok / failed / skipped.
    """
    from ser_lib.analysis import call_id
    from ser_lib.archive import ArchiveError, archive_kind, iter_members
    from ser_lib.scoring import score_recording, summarize
    cfg, meta = ctx.cfg, ctx.meta
    labels = list(meta.labels)
    from pyspark.sql.pandas.types import to_arrow_schema
    schema = to_arrow_schema(schemas.analysis_rows(labels))
    model_bc, loads, batches_acc, stage_acc = ctx.model_bc, ctx.model_loads, ctx.model_batches, ctx.stage_s
    fcfg, hop_s, speech_cfg, names, batch_size = meta.feature_config, cfg.hop_s, cfg.speech, cfg.channel_names, cfg.batch_size
    chunk_s, limits = cfg.chunk_s, cfg.archive_limits
    smoothing, episode_cfg = cfg.timeline, cfg.episodes
    exts = tuple("." + e.lower() for e in cfg.extensions)

    progress_addr = ctx.progress_addr

    def fn(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        from jobs.progress import report
        from ser_lib.inference import limit_threads
        progress = report(progress_addr)
        tc = TaskContext.get()
        limit_threads(tc.cpus() if tc is not None else 1)
        t0 = time.perf_counter()
        predictor, loaded = _predictor(model_bc.value, batch_size)
        timings = {"model_load_s": time.perf_counter() - t0, "hash_s": 0.0, "decode_s": 0.0, "features_s": 0.0,
                   "model_s": 0.0, "summary_s": 0.0}
        if loaded:
            loads.add({(os.getpid(), predictor.meta.version)})

        def input_row(fields: dict, status: str, error: str | None = None, **more) -> pa.RecordBatch:
            return _batch({**fields, **more, "row_kind": "input", "status": status, "error": error}, 1, schema)

        def skipped(fields: dict, base: dict) -> pa.RecordBatch:
            return input_row(fields, "skipped", duration_s=base.get("duration_s"), output_run_id=base["out_run"],
                             output_run_date=base["out_date"], output_model_version=base["model"])

        def analyze_one(source, fields: dict) -> list[pa.RecordBatch]:
            cid = fields["call_id"]
            try:
                rec = score_recording(source, predictor, fcfg, hop_s, speech_cfg, names, chunk_s, timings, smoothing)
            except SERError as err:
                return [input_row(fields, "failed", str(err))]
            except Exception as err:  # never lose a file to an unexpected decoder failure
                return [input_row(fields, "failed", f"internal: {type(err).__name__}: {err}")]
            out = []
            for ch in rec.channels:
                n = len(ch)
                vals = {"row_kind": "segment", "call_id": cid, "source_path": fields["source_path"], "status": "ok",
                        "channel": ch.channel, "segment_index": np.arange(n, dtype=np.int32), "start_s": ch.start_s,
                        "end_s": ch.end_s, "is_speech": ch.speech, "emotion": ch.emotion, "confidence": ch.confidence,
                        "emotion_smoothed": ch.emotion_smoothed}
                for j, lab in enumerate(labels):
                    vals[f"p_{lab}"] = ch.probs[:, j]
                out.append(_batch(vals, n, schema))
            # the task holds the whole call: summarise it here rather than shuffle its windows
            t1 = time.perf_counter()
            summary = summarize(rec, labels, episode_cfg)
            for k in ("timeline", "quarters", "episodes"):  # one row: a list of one list
                if k in summary:
                    summary[k] = [summary[k]]
            timings["summary_s"] += time.perf_counter() - t1
            info = rec.info
            progress(0, rec.duration_s)
            out.append(input_row(fields, "ok", duration_s=rec.duration_s, sample_rate=info.sample_rate,
                                 n_channels=info.n_channels, audio_format=f"{info.format}/{info.subtype}",
                                 warnings=info.warnings, **summary))
            return out

        def do_file(t) -> Iterator[pa.RecordBatch]:
            path = t.source_path
            fields = {"source_path": path, "kind": "file", "call_id": call_id(path), "size_bytes": t.size_bytes,
                      "modified_us": t.modified_us, "source_size": t.size_bytes, "source_modified_us": t.modified_us}
            base = json.loads(t.prior) if t.prior else None
            t1 = time.perf_counter()
            try:
                sha = _sha256(path)
            except OSError as err:
                yield input_row(fields, "failed", f"unreadable: cannot read {path}: {err.strerror or err}")
                return
            finally:
                timings["hash_s"] += time.perf_counter() - t1
            fields["content_sha256"] = sha
            if base and base["sha"] == sha:  # touched, not changed
                yield skipped(fields, base)
                return
            yield from analyze_one(_open_source(path), fields)

        def do_archive(t) -> Iterator[pa.RecordBatch]:
            path = t.source_path
            src = {"source_path": path, "source_size": t.size_bytes, "source_modified_us": t.modified_us}
            arch = {**src, "kind": "archive", "size_bytes": t.size_bytes, "modified_us": t.modified_us}
            base = json.loads(t.prior) if t.prior else {}
            seen: set[str] = set()
            n = 0
            try:
                handle = open(path, "rb") if "://" not in path else _open_source(path)
                with handle:
                    for m in iter_members(handle, archive_kind(path), limits, lambda nm: nm.lower().endswith(exts)):
                        n += 1
                        mf = {**src, "kind": "member", "member": m.name, "size_bytes": m.size,
                              "modified_us": _us(m.mtime), "content_sha256": m.sha256}
                        if m.status == "skipped":
                            yield input_row(mf, "skipped", m.error)
                            continue
                        if m.name in seen:
                            yield input_row(mf, "failed", "duplicate_member: the archive holds this name more than "
                                                          "once; only the first is analysed")
                            continue
                        seen.add(m.name)
                        mf["call_id"] = call_id(path, m.name)
                        if m.status == "failed":
                            yield input_row(mf, "failed", m.error)
                            continue
                        b = base.get(m.name)
                        if b and b["sha"] == m.sha256:
                            yield skipped(mf, b)
                            continue
                        data, m.data = m.data, None
                        yield from analyze_one(data, mf)
                        del data
            except ArchiveError as err:
                yield input_row(arch, "failed", str(err))
                return
            except OSError as err:
                yield input_row(arch, "failed", f"unreadable: cannot read {path}: {err.strerror or err}")
                return
            except Exception as err:
                yield input_row(arch, "failed", f"internal: {type(err).__name__}: {err}")
                return
            yield input_row(arch, "ok")

        for tasks in batches:
            batches_acc.add(1)
            for t in tasks.to_pandas(integer_object_nulls=True).itertuples(index=False):
                yield from (do_archive(t) if t.task_kind == "archive" else do_file(t))
                progress(1, 0.0)
        stage_acc.add(timings)
    return fn


def transform_segments(tasks: DataFrame, ctx: RunContext, n_tasks: int) -> DataFrame:
    """Task rows (``n_tasks`` of them) → :func:`schemas.analysis_rows` (input rows with
    call summaries, and scored window rows)."""
    spark = tasks.sparkSession
    # spark.tasks_per_core analysis tasks per core (default 1: measured fastest on 2 cores,
    # bench/README.md); an archive is always read whole by one task (decompressed once).
    n_parts = max(1, min(n_tasks, spark.sparkContext.defaultParallelism * ctx.cfg.tasks_per_core))
    return tasks.repartition(n_parts, "source_path").mapInArrow(analyze_udf(ctx), schemas.analysis_rows(ctx.meta.labels))


SEGMENT_COLUMNS = ["call_id", "source_path", "channel", "segment_index", "start_s", "end_s", "is_speech",
                   "emotion", "confidence", "emotion_smoothed"]


def segments_table(rows: DataFrame, labels: list[str], model_version: str) -> DataFrame:
    """The ``segments`` table (one run's partition): windows of analysed recordings."""
    cols = SEGMENT_COLUMNS + [f"p_{lab}" for lab in labels]
    return rows.where(F.col("row_kind") == "segment").select(*cols).withColumn("model_version", F.lit(model_version))


def calls_table(facts: list[dict], summaries: dict[str, dict], labels: list[str], model_version: str) -> pa.Table:
    """The ``calls`` table (one run's partition) as an Arrow table of :func:`schemas.calls_table`.

    Args:
        facts: one dict per analysed or failed recording with the :data:`schemas.CALL_FACTS` keys.
        summaries: ``call_id`` → that call's input row from the analysis pass (its summary
            fields, see :func:`schemas.call_summary_schema`); calls without one get nulls.
    """
    from pyspark.sql.pandas.types import to_arrow_schema
    schema = schemas.calls_table(labels)
    names = schema.fieldNames()
    rows = []
    for f in facts:
        s = summaries.get(f["call_id"], {})
        r = {c: _py(f.get(c) if c in schemas.CALL_FACTS else s.get(c)) for c in names}
        for k in ("timeline", "quarters"):
            if r[k] is not None:
                r[k] = [e.asDict() if hasattr(e, "asDict") else dict(e) for e in r[k]]
        r["model_version"] = model_version
        rows.append(r)
    return pa.Table.from_pylist(rows, schema=to_arrow_schema(schema))


def episodes_table(facts: list[dict], summaries: dict[str, dict], model_version: str) -> pa.Table:
    """The ``episodes`` table (one run's partition): the episodes of the analysed calls among
    ``facts``, from their input rows' ``episodes`` (see :func:`calls_table`), in call order."""
    from pyspark.sql.pandas.types import to_arrow_schema
    rows = []
    for f in facts:
        eps = summaries.get(f["call_id"], {}).get("episodes") if f["status"] == "ok" else None
        for e in eps if isinstance(eps, (list, np.ndarray)) else []:  # None/NaN: no windows
            e = e.asDict() if hasattr(e, "asDict") else dict(e)
            rows.append({"call_id": f["call_id"], **{k: _py(v) for k, v in e.items()}, "model_version": model_version})
    return pa.Table.from_pylist(rows, schema=to_arrow_schema(schemas.episodes_table()))


#: input-row facts the manifest lacks: the calls table takes them from the input rows
_ROW_FACTS = ("sample_rate", "n_channels", "audio_format", "warnings")


def summary_columns(labels: list[str]) -> list[str]:
    """The input rows' call-summary columns (``n_segments`` aside): what only the calls and
    episodes tables need, and what grows with calls' length (timeline, quarters, episodes)."""
    return [f.name for f in schemas.call_summary_schema(labels).fields
            if f.name not in ("call_id", "n_segments")] + ["episodes"]


def write_call_tables(store: Store, staging: Staging, run_date: str, rows: DataFrame | None, facts: list[dict],
                      labels: list[str], model_version: str, batch_calls: int = 1000) -> set[str]:
    """Write the ``calls`` and ``episodes`` tables of ``facts`` (one ``part-00000.parquet``
    each, one row group per batch) without holding every call's summary on the driver.

    The summaries come from the executors' input rows ``batch_calls`` calls at a time
    (range partitions by ``source_path, member``, fetched one by one with
    ``toLocalIterator``): the driver holds one batch of summaries, whatever the number of
    calls (the manifest records, one small dict per input, remain).
    Rows are in ``(source_path, member)`` order; facts without an input row (failed on
    the driver) come last, with null summaries.

    Args:
        rows: the analysis rows (persisted), or None when nothing was analysed.
        facts: manifest records of analysed or failed recordings (``call_id`` set).

    Returns:
        the tables written (``calls``, and ``episodes`` when any call has episodes).
    """
    import pyarrow.parquet as pq
    by_id = {f["call_id"]: f for f in facts}
    writers: dict = {}

    def put(name: str, table: pa.Table) -> None:
        if not table.num_rows:
            return
        if name not in writers:
            d = staging.table(name, run_date)
            store.mkdirs(d)
            stream = store.fs.open_output_stream(store.p(f"{d}/part-00000.parquet"))
            writers[name] = (stream, pq.ParquetWriter(stream, table.schema))
        writers[name][1].write_table(table)

    def flush(batch: list[dict], summaries: dict) -> None:
        put("calls", calls_table(batch, summaries, labels, model_version))
        put("episodes", episodes_table(batch, summaries, model_version))

    try:
        batch, summaries = [], {}
        if rows is not None:
            src = (rows.where((F.col("row_kind") == "input") & F.col("call_id").isNotNull())
                   .select("call_id", "source_path", "member", "n_segments", *_ROW_FACTS,
                           *summary_columns(labels)))
            n_parts = -(-len(by_id) // batch_calls)
            # one small run: one collect (one Spark job); else one range partition per batch
            it = (sorted(src.collect(), key=lambda r: (r["source_path"], r["member"] or "")) if n_parts <= 1 else
                  src.repartitionByRange(n_parts, "source_path", "member")
                  .sortWithinPartitions("source_path", "member").toLocalIterator())
            for row in it:
                f = by_id.pop(row["call_id"], None)
                if f is None:
                    continue
                batch.append({**{c: f.get(c) for c in schemas.CALL_FACTS}, **{c: row[c] for c in _ROW_FACTS}})
                summaries[row["call_id"]] = row.asDict()
                if len(batch) >= batch_calls:
                    flush(batch, summaries)
                    batch, summaries = [], {}
        batch += [{c: f.get(c) for c in schemas.CALL_FACTS} for f in by_id.values()]  # failed on the driver
        flush(batch, summaries)
    finally:
        for stream, writer in writers.values():
            writer.close()
            stream.close()
    return set(writers)


def _py(v):
    """A value from pandas as Arrow takes it: NaN/NA → None, numpy scalars → Python."""
    if v is None or isinstance(v, (str, dict, list)):
        return v
    if isinstance(v, np.ndarray):
        return list(v)
    if pd.isna(v):
        return None
    return v.item() if isinstance(v, np.generic) else v


# ---------------------------------------------------------------- load
def load(df: DataFrame, uri: str) -> None:
    """Write ``df`` as Parquet into one staging directory (see :mod:`jobs.commit`)."""
    df.write.mode("overwrite").parquet(uri)


def _supersede(spark: SparkSession, store: Store, staging: Staging, targets: dict) -> list[dict]:
    """Stage older partitions without the calls this run analysed again (reprocess, changed
    or retried inputs): after the commit every call has its rows in exactly one run's
    partitions, so plain readers never double count. Returns the commit actions."""
    actions = []
    for (run_id, run_date), ids in sorted(targets.items()):
        ids_df = spark.createDataFrame([(c,) for c in sorted(ids)], "call_id string")
        for table in ("segments", "calls", "episodes"):
            dst = table_dir(table, run_date, run_id)
            if not store.exists(dst):
                continue
            df = spark.read.parquet(store.uri(dst))
            if df.join(ids_df, "call_id", "left_semi").limit(1).count() == 0:
                continue
            keep = df.join(ids_df, "call_id", "left_anti").select(*df.columns)
            if keep.limit(1).count() == 0:
                actions.append({"src": None, "dst": dst})
            else:
                src = staging.rewrite(table, run_date, run_id)
                load(keep, store.uri(src))
                actions.append({"src": src, "dst": dst})
    return actions


# ---------------------------------------------------------------- main
def run(input_path: str, output_path: str, conf_path: str | None = None, master: str | None = None,
        model_path: str | None = None, spark: SparkSession | None = None, now: dt.datetime | None = None,
        run_id: str | None = None, reprocess=None, wait_s: float = 0.0, show_failed: int = 10) -> dict:
    """Run the job end to end: recover, plan (incremental), analyse, stage, commit.

    Args:
        now: the run's time; its UTC date is ``run_date`` (default: now).
        run_id: the run's identity (default :func:`default_run_id`: run date + input root).
            Running an id again replaces exactly that run's output.
        reprocess: specs forcing re-analysis (see :func:`jobs.manifest.reprocess_matcher`):
            ``["all"]``, globs, or ``FROM..TO`` run-date ranges.
        wait_s: seconds to wait for another run holding ``output_path`` (see :meth:`Store.lock`).
        show_failed: how many failed inputs (and recordings with warnings) the summary
            names in ``failed_inputs`` (``warned_inputs``); the summary's queries list all.

    Returns:
        the run summary (also logged as one JSON line and stored in ``OUT/_runs/<run_id>.json``).

    Raises:
        ConfigError, ArtifactError: bad configuration or model (before any work starts).
        FileNotFoundError: the input does not exist.
        LockBusy: another run holds ``output_path`` (still after ``wait_s`` seconds).
    """
    t0 = time.time()
    cfg = JobConfig.load(conf_path)
    model_dir = model_path or cfg.model_path or str(art.DEFAULT_ARTIFACT)
    bundle = art.read_bytes(model_dir)
    meta = art.ArtifactMeta.from_json(bundle.meta_json)
    meta.check_compatible()
    if abs(meta.feature_config.window_s - cfg.window_s) > 1e-9:
        raise art.ArtifactError(f"windows.window_s={cfg.window_s} s but model {meta.version} was trained "
                                f"on {meta.feature_config.window_s} s windows")
    meta.feature_config.grid(cfg.hop_s)  # validates hop_s against the frame grid
    now = now or dt.datetime.now(dt.timezone.utc)
    run_date = now.astimezone(dt.timezone.utc).strftime("%Y-%m-%d") if now.tzinfo else now.strftime("%Y-%m-%d")
    run_id = run_id or default_run_id(run_date, input_path)
    if not _RUN_ID.match(run_id):
        raise ConfigError(f"run id {run_id!r} must be 1-100 of [A-Za-z0-9_.-], starting alphanumeric")
    for spec in reprocess or []:
        if not spec:
            raise ConfigError("empty --reprocess spec")
    t_list = time.time()
    inputs = manifest.list_inputs(input_path)  # FileNotFoundError before any output is touched
    t_list = time.time() - t_list

    store = Store(output_path)
    store.lock(wait_s, holder=f"run {run_id}")
    rows = None
    try:
        rolled = recover(store)
        spark = spark or build_spark(cfg, master)
        sc = spark.sparkContext
        ctx = RunContext(run_id, run_date, cfg, meta, sc.broadcast(bundle),
                         sc.accumulator(set(), _SetParam()), sc.accumulator(0), sc.accumulator({}, _DictParam()))
        t_start = time.time()
        state = manifest.read_state(store, exclude_run=run_id)
        driver_rows, tasks = manifest.plan(inputs, state, cfg.extensions, cfg.archives, reprocess, run_id)
        log.info("listed %d inputs under %s in %.1f s: %d to read (files and archives), %d decided without "
                 "reading (unchanged, not recordings, duplicates, special files)", len(inputs), input_path, t_list,
                 len(tasks), len(driver_rows))
        staging = new_staging(run_id)
        exec_rows = pd.DataFrame(columns=schemas.analysis_rows(meta.labels).fieldNames())
        n_segments = 0
        if tasks:
            local = sc.master.startswith("local")
            with AnalysisProgress(len(tasks), "127.0.0.1" if local else sc.getConf().get("spark.driver.host",
                                                                                          "127.0.0.1")) as prog:
                ctx.progress_addr = prog.addr
                # Two Spark actions in all: this one runs the analysis and caches its rows, the
                # segments write below reads the cache. Call summaries come with the input rows.
                rows = transform_segments(extract(spark, tasks), ctx, len(tasks)).persist()
                # the manifest facts only: the call summaries (timelines, episodes) stay on the
                # executors until write_call_tables streams them in bounded batches
                exec_rows = rows.where(F.col("row_kind") == "input").drop(
                    *SEGMENT_COLUMNS[2:], *[f"p_{lab}" for lab in meta.labels],
                    *summary_columns(meta.labels)).toPandas()
                analysed = exec_rows["status"].eq("ok") & exec_rows["kind"].isin(["file", "member"])
                prog.finish(len(tasks), float(exec_rows.loc[analysed, "duration_s"].fillna(0).sum()))
            n_segments = int(exec_rows["n_segments"].fillna(0).sum())
        else:
            log.info("analysed 0/0 inputs: nothing new or changed to read")
        t_write = time.time()
        records = list(driver_rows)
        for r in exec_rows.to_dict("records"):
            rec = {c: r.get(c) for c in manifest.COLUMNS}
            rec["modified"] = _ts(r.get("modified_us"))
            rec["source_modified"] = _ts(r.get("source_modified_us"))
            if r["status"] in ("ok", "failed"):
                rec.update(output_run_id=run_id, output_run_date=run_date, model_version=meta.version)
            else:
                rec["model_version"] = r.get("output_model_version")
            records.append(rec)
        records = [{k: (None if (v is not None and not isinstance(v, (str, dt.datetime)) and pd.isna(v)) else v)
                    for k, v in rec.items()} for rec in records]
        records.sort(key=lambda r: (r["source_path"], r["member"] or ""))
        mtable = manifest.to_arrow(records)

        # the calls table: every analysed or failed recording (driver failures too)
        facts = [r for r in records if r["status"] in ("ok", "failed") and r["call_id"]]
        written = set()
        if facts:
            if n_segments:
                load(segments_table(rows, meta.labels, meta.version), store.uri(staging.table("segments", run_date)))
                written.add("segments")
            written |= write_call_tables(store, staging, run_date, rows if tasks else None, facts, meta.labels,
                                         meta.version)
        manifest.write(store, staging.table("manifest", run_date), mtable)
        written.add("manifest")
        failed = mtable.filter(pa.compute.equal(mtable["status"], "failed"))
        if failed.num_rows:
            manifest.write(store, staging.table("errors", run_date), failed)
            written.add("errors")
        actions = [{"src": staging.table(t, run_date), "dst": table_dir(t, run_date, run_id)} if t in written
                   else {"src": None, "dst": table_dir(t, run_date, run_id)} for t in TABLES]
        # older partitions holding calls this run analysed again
        by_key = {(p["source_path"], p["key_member"]): p for p in state.to_dict("records")} if len(state) else {}
        targets: dict = {}
        for r in facts:
            p = by_key.get((r["source_path"], r["member"] or ""))
            if p is not None and isinstance(p.get("output_run_id"), str) and p["output_run_id"] != run_id:
                targets.setdefault((p["output_run_id"], p["output_run_date"]), set()).add(r["call_id"])
        actions += _supersede(spark, store, staging, targets)

        warned = sorted((_source(r), r["warnings"]) for r in exec_rows.to_dict("records")
                        if r["row_kind"] == "input" and r["status"] == "ok" and isinstance(r.get("warnings"), str))
        wall = time.time() - t_start
        summary = _summary(records, n_segments, ctx, input_path, store.root, wall, t_start - t0)
        summary.update(_named(records, warned, show_failed, store, run_date, run_id))
        summary["recovered_runs"] = rolled
        summary["superseded_partitions"] = sum(1 for a in actions[len(TABLES):])
        crash_point("staged")
        commit(store, staging, run_date, actions, summary)
        log.info("written %s and committed run %s in %.1f s", ", ".join(t for t in TABLES if t in written), run_id,
                 time.time() - t_write)
    finally:
        if rows is not None:
            rows.unpersist()
        store.unlock()
    log.info("run summary %s", json.dumps(summary))
    return summary


def _ts(us):
    return None if us is None or pd.isna(us) else pd.Timestamp(int(us), unit="us", tz="UTC").to_pydatetime()


def _int(v):
    return None if v is None or pd.isna(v) else int(v)


def _none(v):
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else v


def _source(r: dict) -> str:
    """An input as one string: ``path`` or ``path!member``."""
    return r["source_path"] + (f"!{r['member']}" if isinstance(r.get("member"), str) else "")


def _named(records: list[dict], warned: list[tuple[str, str]], show: int, store: Store, run_date: str,
           run_id: str) -> dict:
    """Summary fields that name inputs: the first ``show`` failed inputs and recordings with
    warnings (in path order), their count, and a DuckDB query listing all of them."""
    failed = sorted((_source(r), r["error"]) for r in records if r["status"] == "failed")
    out = {"warnings": len(warned),
           "failed_inputs": [{"input": i, "error": e} for i, e in failed[:max(0, show)]],
           "warned_inputs": [{"input": i, "warnings": w} for i, w in warned[:max(0, show)]]}
    if failed:
        out["failed_query"] = (f"SELECT source_path, member, error FROM read_parquet("
                               f"'{store.uri(table_dir('errors', run_date, run_id))}/*.parquet') ORDER BY ALL")
    if warned:
        out["warnings_query"] = (f"SELECT source_path, member, warnings FROM read_parquet("
                                 f"'{store.uri(table_dir('calls', run_date, run_id))}/*.parquet') "
                                 "WHERE warnings IS NOT NULL ORDER BY ALL")
    return out


def notice_lines(summary: dict) -> list[str]:
    """Human lines naming a run's failed inputs and recordings with warnings (for stderr)."""
    lines = []
    for n, what, shown, field, query in (
            (summary["failed"], "input(s) failed", summary.get("failed_inputs", []), "error", "failed_query"),
            (summary.get("warnings", 0), "recording(s) analysed with warnings", summary.get("warned_inputs", []),
             "warnings", "warnings_query")):
        if not n:
            continue
        lines.append(f"{n} {what}" + (f"; the first {len(shown)}:" if len(shown) < n else ":"))
        lines += [f"  {x['input']}: {x[field]}" for x in shown]
        lines.append(f"  all of them (DuckDB): {summary[query]}")
    return lines


def _summary(records: list[dict], n_segments: int, ctx: RunContext, input_path: str, out: str, wall: float,
             startup: float) -> dict:
    recs = pd.DataFrame(records, columns=manifest.COLUMNS)
    recording = recs["kind"].isin(["file", "member"]) & ~(recs["status"].eq("skipped") & recs["error"].notna())
    ok = recs["status"].eq("ok") & recording
    n_failed = int(recs["status"].eq("failed").sum())
    n_skipped = int((recs["status"].eq("skipped") & recs["error"].isna() & recording).sum())
    audio_s = float(recs.loc[ok, "duration_s"].fillna(0).sum())
    return {
        "run_id": ctx.run_id, "run_date": ctx.run_date, "input": input_path, "output": out,
        "model_version": ctx.meta.version,
        # files = recordings and failed inputs this run accounted for: processed + skipped + failed
        "files": int(ok.sum()) + n_skipped + n_failed, "processed": int(ok.sum()), "skipped": n_skipped,
        "failed": n_failed,
        "ignored": int((recs["status"].eq("skipped") & recs["error"].notna()).sum()),  # not recordings
        "archives": int(recs["kind"].eq("archive").sum()), "inputs": len(recs),
        "failed_reasons": {k: int(v) for k, v in recs.loc[recs["status"].eq("failed"), "error"]
                           .str.split(":").str[0].value_counts().sort_index().items()},
        "segments": int(n_segments),
        "audio_hours": round(audio_s / 3600, 4), "wall_s": round(wall, 2), "startup_s": round(startup, 2),
        "x_realtime": round(audio_s / wall, 1) if wall > 0 else None,
        "model_loads": len(ctx.model_loads.value), "model_batches": ctx.model_batches.value,
        # seconds summed over Python workers (they run in parallel, so the sum can exceed wall_s)
        "worker_stage_s": {k: round(v, 2) for k, v in sorted(ctx.stage_s.value.items())},
    }


EXIT_OK, EXIT_FAILED_INPUTS, EXIT_CONFIG, EXIT_INTERNAL, EXIT_LOCKED = 0, 1, 2, 70, 75  # as ser (jobs/cli_errors.py)


def cli_main(argv=None) -> int:
    """Entry point of ``spark-submit jobs/analyze_calls.py``.

    Exit codes: 0 every input ok or skipped; 1 some input failed (see the manifest /
    ``errors``); 2 configuration error (bad YAML, model, run id, missing input); 75 another
    run holds the output root (``EX_TEMPFAIL``: retry later, or ``--wait SECONDS``); 70
    internal error. Errors are one log line (``-v``: with the traceback).
    """
    import argparse
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", required=True, help="directory (recursive), file or archive of recordings (any Hadoop URI)")
    p.add_argument("--output", required=True, help="output root; segments/ calls/ manifest/ errors/ _runs/ under it")
    p.add_argument("--conf", default=None, help="job configuration YAML (default conf/job.yaml)")
    p.add_argument("--model", default=None, help="model artifact directory (default: config, then models/ser-cnn)")
    p.add_argument("--master", default=None, help="Spark master (default: spark-submit's, then config's local[*])")
    p.add_argument("--run-id", default=None, help="run identity (default: YYYYMMDD-<hash of input root>)")
    p.add_argument("--run-date", default=None, help="run date YYYY-MM-DD (default: today, UTC)")
    p.add_argument("--reprocess", action="append", default=None, metavar="SPEC",
                   help="force re-analysis: 'all', a glob of paths (path!member for archive members), or a "
                        "FROM..TO range of the run dates that produced the current results; repeatable")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="if another run holds the output, wait up to SECONDS for it (default 0: exit 75 at once)")
    p.add_argument("--show-failed", type=int, default=10, metavar="N",
                   help="name the first N failed inputs and recordings with warnings (default 10)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging, tracebacks of errors")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        now = _parse_date(a.run_date)
        summary = run(a.input, a.output, a.conf, a.master, a.model, now=now, run_id=a.run_id, reprocess=a.reprocess,
                      wait_s=a.wait, show_failed=a.show_failed)
    except LockBusy as err:
        log.error("%s", err)
        return EXIT_LOCKED
    except (SERError, FileNotFoundError) as err:
        log.error("configuration error: %s", " ".join(str(err).split()))
        return EXIT_CONFIG
    except Exception as err:  # noqa: BLE001 - one line for the scheduler's log, not a traceback
        log.error("internal error: %s: %s", type(err).__name__, " ".join(str(err).split()), exc_info=a.verbose)
        return EXIT_INTERNAL
    print(json.dumps(summary, indent=2))
    for line in notice_lines(summary):
        print(line, file=sys.stderr)
    return EXIT_FAILED_INPUTS if summary["failed"] else EXIT_OK


def _parse_date(s: str | None) -> dt.datetime | None:
    if not s:
        return None
    try:
        return dt.datetime.strptime(s, "%Y-%m-%d").replace(hour=12, tzinfo=dt.timezone.utc)
    except ValueError as err:
        raise ConfigError(f"--run-date must be YYYY-MM-DD, got {s!r}") from err


if __name__ == "__main__":
    sys.exit(cli_main())
