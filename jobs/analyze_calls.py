"""Spark job: call recordings → per-segment and per-call emotion timelines in Parquet.

    spark-submit jobs/analyze_calls.py --input IN --output OUT [--conf conf/job.yaml]
    ser analyze IN OUT [--conf conf/job.yaml]          # same code path

recover (roll forward / discard a killed run, :mod:`jobs.commit`) → plan (list inputs,
compare with the manifest: only new, changed or failed inputs are read,
:mod:`jobs.manifest`) → transform (inputs packed into one task per core by estimated work,
:mod:`jobs.balance`; files and archives in one fused mapInPandas pass: hash, stream-decode, windows, features, model once per worker, call summaries)
→ stage (Parquet under ``OUT/_staging``) → commit (atomic commit record,
then directory renames into ``OUT/<table>/run_date=D/run_id=R/``).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import sys
import time
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
from jobs.balance import balanced_bins, task_cost
from jobs.call_tables import calls_table, episodes_table, turns_table
from jobs.commit import LockBusy, Staging, Store
from jobs.progress import AnalysisProgress
from jobs.run_summary import exit_code, notice_lines
from jobs.runner import RunSpec, check_run_id, run_locked
from jobs.spark_config import SparkConfig
from ser_lib import artifact as art
from ser_lib.config import JobConfig
from ser_lib.errors import ConfigError, SERError
from ser_lib.models import ModelBundle, load_scorer, read_bundle
from ser_lib.nulls import is_missing
from ser_lib.process import Segments, Task, check_model, process_task, us

log = logging.getLogger("ser.job")


# ---------------------------------------------------------------- session
#: Settings of a local run (``local[*]``) that spark-submit, ``--conf`` or conf/job.yaml did not
#: set. The driver JVM compiles with C1 only (``-XX:TieredStopAtLevel=1``): a local run's JVM
#: lives seconds to minutes and does little work of its own (Python workers score), so C2's
#: slow warm-up never pays back. The serial collector keeps its heap small: with G1 the JVM's
#: peak RSS grew 1.62x from 1,000 to 20,000 short calls, with it 1.42x. Measured in
#: bench/README.md ("Cold start", "Driver memory").
LOCAL_SPARK_DEFAULTS = {"spark.ui.enabled": "false",
                        "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"}


def build_spark(cfg: SparkConfig, master: str | None = None) -> SparkSession:
    """Get or create the SparkSession.

    Settings given by spark-submit (``--master``, ``--conf``) win over ``conf/job.yaml``'s
    ``spark:`` section (``cfg``);
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
    for k, v in cfg.settings.items():
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
    model_bc: object            # Broadcast[ser_lib.models.ModelBundle]
    model_loads: object         # Accumulator[set[(pid, version)]] — one entry per load
    model_batches: object       # Accumulator[int] — UDF batches scored
    stage_s: object             # Accumulator[dict] — worker seconds per stage
    progress_addr: tuple | None = None  # where workers send live progress (jobs.progress)
    tasks_per_core: int = 1             # analysis tasks per core (spark.tasks_per_core)


# ---------------------------------------------------------------- extract
# a StructType, not a DDL string: parsing DDL costs a JVM round trip of ~0.7 s on a cold start
_TASK_SCHEMA = T.StructType([T.StructField("task_kind", T.StringType()), T.StructField("source_path", T.StringType()),
                             T.StructField("size_bytes", T.LongType()), T.StructField("modified_us", T.LongType()),
                             T.StructField("prior", T.StringType())])


def extract(spark: SparkSession, tasks: list[dict], n_parts: int) -> DataFrame:
    """The inputs an executor must read (see :func:`jobs.manifest.plan`), one row per file or
    archive, in ``min(n_parts, len(tasks))`` partitions of near-equal estimated work
    (:mod:`jobs.balance`; an archive is always read whole by one task, decompressed once).

    Each partition is one element of a parallelized list of bins, so Spark keeps the
    assignment exactly: no shuffle, unlike ``repartition``, whose hash of the path put
    unequal work on the cores.
    """
    bins = balanced_bins([task_cost(t) for t in tasks], n_parts)
    rows = [[(t["task_kind"], t["source_path"], t["size_bytes"], us(t["modified"]), t["prior"])
             for t in (tasks[i] for i in b)] for b in bins]
    rdd = spark.sparkContext.parallelize(rows, len(rows)).flatMap(lambda b: b)
    return spark.createDataFrame(rdd, _TASK_SCHEMA)


# ---------------------------------------------------------------- transform
_PREDICTOR: dict = {}  # per Python worker process: bundle digest -> Predictor / AccuratePredictor


def _predictor(bundle: ModelBundle, batch_size: int):
    """The worker's model for ``bundle`` (:func:`ser_lib.models.load_scorer`: the CNN, or the
    CNN + encoder head of the accurate variant) and whether this call loaded it.

    The cache lives in the worker process, which Spark reuses across tasks
    (``spark.python.worker.reuse``), so each worker deserialises the model once. It is keyed
    on the files' digest, not the version: a long-lived Spark application (a notebook, a
    service) that runs the job again after a retrain or with another copy of a folder must get
    the model it was given, whatever its version says.
    """
    if bundle.digest not in _PREDICTOR:
        _PREDICTOR.clear()  # one model per worker
        _PREDICTOR[bundle.digest] = load_scorer(bundle, batch_size)
        return _PREDICTOR[bundle.digest], True
    return _PREDICTOR[bundle.digest], False


def _batch(values: dict, n: int, schema: pa.Schema) -> pa.RecordBatch:
    """``n`` rows of ``schema``: sequences as given (NaN → null, as Spark's pandas
    conversion does), scalars repeated, missing fields typed nulls."""
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


def _to_batch(row: Segments | dict, schema: pa.Schema) -> pa.RecordBatch:
    """A row of :func:`ser_lib.process.process_task` as an Arrow batch of ``schema``."""
    if isinstance(row, Segments):
        return _batch(row.columns, row.n, schema)
    # one input row: its list-valued fields (timeline, quarters, episodes) are one cell each
    return _batch({k: ([v] if isinstance(v, list) else v) for k, v in row.items()}, 1, schema)


#: rows handed to Spark per pandas frame: bounds a worker's buffered rows (~2 KB each) while
#: amortising the conversion over many short calls
FLUSH_ROWS = 4096


def analyze_udf(ctx: RunContext):
    """``mapInPandas`` function: task rows (files, archives) → input rows + scored window rows.

    Each task goes through :func:`ser_lib.process.process_task` (hash, skip rules, archive
    members, stream-decode, windows, features, model, call summary: the path ``ser
    predict`` shares); its rows are built as Arrow record batches straight from the numpy
    results and handed to Spark as pandas DataFrames (a pandas UDF, as the design asks:
    mapInArrow measured no gain beyond run-to-run noise, bench/README.md). The broadcast
    artifact is deserialised once per Python worker process, before the loop over
    batches; threads are capped at the task's cores.
    """
    cfg, labels = ctx.cfg, list(ctx.meta.labels)
    from pyspark.sql.pandas.types import to_arrow_schema
    schema = to_arrow_schema(schemas.analysis_rows(labels))
    model_bc, loads, batches_acc, stage_acc = ctx.model_bc, ctx.model_loads, ctx.model_batches, ctx.stage_s
    progress_addr = ctx.progress_addr

    def fn(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from pyspark import TaskContext

        from jobs.progress import report
        from ser_lib.runtime import limit_threads
        progress = report(progress_addr)
        tc = TaskContext.get()
        limit_threads(tc.cpus() if tc is not None else 1)
        t0 = time.perf_counter()
        predictor, loaded = _predictor(model_bc.value, cfg.batch_size)
        timings = {"model_load_s": time.perf_counter() - t0, "hash_s": 0.0, "decode_s": 0.0, "features_s": 0.0,
                   "model_s": 0.0, "summary_s": 0.0}
        if loaded:
            loads.add({(os.getpid(), predictor.meta.version)})
        buf: list[pa.RecordBatch] = []
        n_buf = 0

        def flush() -> pd.DataFrame:
            # rows are built as Arrow from numpy and handed to Spark as pandas in frames of
            # about FLUSH_ROWS rows: one conversion per row of a short call cost ~14 ms a call
            # (maps as dicts, as Spark's pandas-to-Arrow conversion expects)
            nonlocal buf, n_buf
            frame = pa.Table.from_batches(buf, schema=schema).to_pandas(maps_as_pydicts="strict")
            buf, n_buf = [], 0
            return frame

        for tasks in frames:
            batches_acc.add(1)
            for t in tasks.itertuples(index=False):
                # a long column with nulls arrives as float64 with NaN
                task = Task(t.task_kind, t.source_path, *(None if is_missing(v) else cast(v) for v, cast in
                                                          ((t.size_bytes, int), (t.modified_us, int), (t.prior, str))))
                for row in process_task(task, predictor, cfg, timings, lambda s: progress(0, s)):
                    buf.append(_to_batch(row, schema))
                    n_buf += buf[-1].num_rows
                    if n_buf >= FLUSH_ROWS:
                        yield flush()
                progress(1, 0.0)
        if buf:
            yield flush()
        stage_acc.add(timings)
    return fn


def analysis_parts(spark: SparkSession, ctx: RunContext) -> int:
    """Number of analysis tasks: ``spark.tasks_per_core`` per core (default 1: measured
    fastest on 2 cores, bench/README.md)."""
    return max(1, spark.sparkContext.defaultParallelism * ctx.tasks_per_core)


def transform_segments(tasks: DataFrame, ctx: RunContext) -> DataFrame:
    """Task rows (partitioned by :func:`extract`) → :func:`schemas.analysis_rows` (input
    rows with call summaries, and scored window rows), one analysis task per partition."""
    return tasks.mapInPandas(analyze_udf(ctx), schemas.analysis_rows(ctx.meta.labels))


def segments_table(rows: DataFrame, labels: list[str], model_version: str) -> DataFrame:
    """The ``segments`` table (one run's partition): windows of analysed recordings."""
    return (rows.where(F.col("row_kind") == "segment").select(*schemas.segments_columns(labels))
            .withColumn("model_version", F.lit(model_version)))


#: input-row facts the manifest lacks: the calls table takes them from the input rows
_ROW_FACTS = ("sample_rate", "n_channels", "audio_format", "warnings")


def summary_columns(labels: list[str]) -> list[str]:
    """The input rows' call-summary columns (``n_segments`` aside): what only the calls and
    episodes tables need, and what grows with calls' length (timeline, quarters, episodes)."""
    return [f.name for f in schemas.call_summary_schema(labels).fields
            if f.name not in ("call_id", "n_segments")] + ["episodes", "turns"]


def write_call_tables(store: Store, staging: Staging, run_date: str, rows: DataFrame | None, facts: list[dict],
                      labels: list[str], model_version: str, batch_calls: int = 1000) -> set[str]:
    """Write the ``calls``, ``episodes`` and ``turns`` tables of ``facts`` (one ``part-00000.parquet``
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
        the tables written (``calls``, and ``episodes`` / ``turns`` when any call has episodes /
        talk spurts).
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
        put("turns", turns_table(batch, summaries, model_version))

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


# ---------------------------------------------------------------- load
def load(df: DataFrame, uri: str) -> None:
    """Write ``df`` as Parquet into one staging directory (see :mod:`jobs.commit`)."""
    df.write.mode("overwrite").parquet(uri)


class SparkEngine:
    """The :class:`jobs.runner.Engine` of the job: analysis in ``mapInPandas`` on the
    executors, tables written by Spark and streamed from the executors (see
    :func:`write_call_tables`), older partitions rewritten with an anti join."""

    def __init__(self, spark: SparkSession, ctx: RunContext):
        self.spark, self.ctx, self.rows = spark, ctx, None

    def analyse(self, tasks: list[dict]) -> list[dict]:
        self.rows, input_rows = _analyse(self.spark, self.ctx, tasks)
        return input_rows

    def stage(self, store: Store, staging: Staging, run_date: str, run_id: str, facts: list[dict],
              n_segments: int) -> set[str]:
        labels, version = self.ctx.meta.labels, self.ctx.meta.version
        written = set()
        if n_segments:
            load(segments_table(self.rows, labels, version), store.uri(staging.table("segments", run_date)))
            written.add("segments")
        return written | write_call_tables(store, staging, run_date, self.rows, facts, labels, version)

    def rewrite_without(self, store: Store, src: str, call_ids: set[str], dst: str) -> str:
        ids_df = self.spark.createDataFrame([(c,) for c in sorted(call_ids)], "call_id string")
        df = self.spark.read.parquet(store.uri(src))
        if df.join(ids_df, "call_id", "left_semi").limit(1).count() == 0:
            return "unchanged"
        keep = df.join(ids_df, "call_id", "left_anti").select(*df.columns)
        if keep.limit(1).count() == 0:
            return "emptied"
        load(keep, store.uri(dst))
        return "rewritten"

    def counters(self) -> dict:
        c = self.ctx
        return {"model_loads": len(c.model_loads.value), "model_batches": c.model_batches.value,
                "stage_s": c.stage_s.value}

    def release(self) -> None:
        if self.rows is not None:
            self.rows.unpersist()
            self.rows = None


# ---------------------------------------------------------------- main
def run(input_path: str, output_path: str, conf_path: str | None = None, master: str | None = None,
        model_path: str | None = None, spark: SparkSession | None = None, now: dt.datetime | None = None,
        run_id: str | None = None, reprocess=None, wait_s: float = 0.0, show_failed: int = 10,
        variant: str | None = None) -> dict:
    """Run the job end to end: recover, plan (incremental), analyse, stage, commit.

    Args:
        now: the run's time; its UTC date is ``run_date`` (default: now).
        run_id: the run's identity (default: :func:`jobs.runner.resolve_run_id`, from the run
            date and input root, never reused); an id already committed is a ConfigError.
        reprocess: specs forcing re-analysis (see :func:`jobs.manifest.reprocess_matcher`):
            ``["all"]``, globs, or ``FROM..TO`` run-date ranges.
        wait_s: seconds to wait for another run holding ``output_path`` (see :meth:`Store.lock`).
        variant: ``default`` or ``accurate`` (None: ``model.variant`` of the configuration;
            :mod:`ser_lib.models`); rows carry the chosen model's version.
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
    cfg, bundle, meta, run_date, run_id = _prepare(conf_path, model_path, input_path, now, run_id, reprocess,
                                                   variant)
    spark_cfg = SparkConfig.load(conf_path)
    inputs = manifest.list_inputs(input_path)  # FileNotFoundError before any output is touched

    spec = RunSpec(input_path, run_id, run_date, meta.version, tuple(cfg.extensions), cfg.archives, reprocess,
                   show_failed, started=t0)

    def make_engine(rid: str):
        nonlocal spark
        spark = spark or build_spark(spark_cfg, master)
        sc = spark.sparkContext
        ctx = RunContext(rid, run_date, cfg, meta, sc.broadcast(bundle), sc.accumulator(set(), _SetParam()),
                         sc.accumulator(0), sc.accumulator({}, _DictParam()), tasks_per_core=spark_cfg.tasks_per_core)
        engine = SparkEngine(spark, ctx)
        return engine, engine.release

    summary = run_locked(output_path, inputs, spec, make_engine, wait_s)
    log.info("run summary %s", json.dumps(summary))
    return summary


def _prepare(conf_path, model_path, input_path: str, now, run_id, reprocess, variant: str | None = None):
    """Everything checked before any work starts: ``(cfg, bundle, meta, run_date, run_id)``
    (``bundle``: :class:`ser_lib.models.ModelBundle`; ``meta.version``: the chosen model's)."""
    cfg = JobConfig.load(conf_path)
    bundle = read_bundle(variant or cfg.model_variant, model_path or cfg.model_path, cfg.encoder_path)
    meta = bundle.meta
    check_model(cfg, meta)
    now = now or dt.datetime.now(dt.timezone.utc)
    run_date = now.astimezone(dt.timezone.utc).strftime("%Y-%m-%d") if now.tzinfo else now.strftime("%Y-%m-%d")
    if run_id is not None:
        check_run_id(run_id)
    for spec in reprocess or []:
        if not spec:
            raise ConfigError("empty --reprocess spec")
    return cfg, bundle, meta, run_date, run_id


def _analyse(spark: SparkSession, ctx: RunContext, tasks: list[dict]) -> tuple[DataFrame | None, list[dict]]:
    """Run the analysis of ``tasks`` (one Spark action) with live progress.

    Returns:
        the analysis rows (persisted; None without tasks) and their input rows' manifest
        facts as dicts (the call summaries stay on the executors until
        :func:`write_call_tables` streams them in bounded batches).
    """
    if not tasks:
        log.info("analysed 0/0 inputs: nothing new or changed to read")
        return None, []
    sc = spark.sparkContext
    local = sc.master.startswith("local")
    with AnalysisProgress(len(tasks), "127.0.0.1" if local else sc.getConf().get("spark.driver.host",
                                                                                  "127.0.0.1")) as prog:
        ctx.progress_addr = prog.addr
        # Two Spark actions in all: this one runs the analysis and caches its rows, the
        # segments write reads the cache. Call summaries come with the input rows.
        rows = transform_segments(extract(spark, tasks, analysis_parts(spark, ctx)), ctx).persist()
        labels = ctx.meta.labels
        exec_rows = rows.where(F.col("row_kind") == "input").drop(
            *schemas.segments_columns(labels)[2:], *summary_columns(labels)).toPandas()
        analysed = exec_rows["status"].eq("ok") & exec_rows["kind"].isin(["file", "member"])
        prog.finish(len(tasks), float(exec_rows.loc[analysed, "duration_s"].fillna(0).sum()))
    return rows, exec_rows.to_dict("records")


EXIT_OK, EXIT_FAILED_INPUTS, EXIT_CONFIG, EXIT_INTERNAL, EXIT_LOCKED = 0, 1, 2, 70, 75  # as ser (jobs/cli_errors.py)


def cli_main(argv=None) -> int:
    """Entry point of ``spark-submit jobs/analyze_calls.py``.

    Exit codes: 0 every input ok or skipped; 1 some input failed (see the manifest /
    ``errors``); 3 some recordings failed on an unexpected error (``internal``, a bug; logged
    with its traceback); 2 configuration error (bad YAML, model, run id, missing input); 75 another
    run holds the output root (``EX_TEMPFAIL``: retry later, or ``--wait SECONDS``); 70
    internal error. Errors are one log line (``-v``: with the traceback).
    """
    import argparse
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", required=True, help="directory (recursive), file or archive of recordings (any Hadoop URI)")
    p.add_argument("--output", required=True, help="output root; segments/ calls/ manifest/ errors/ _runs/ under it")
    p.add_argument("--conf", default=None, help="job configuration YAML (default conf/job.yaml)")
    p.add_argument("--model", default=None, help="model artifact directory (default: config, then models/ser-cnn)")
    p.add_argument("--variant", default=None, choices=["default", "accurate"],
                   help="default: the fast CNN; accurate: CNN + speech encoder (default: config's model.variant)")
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
    p.add_argument("--json", action="store_true",
                   help="the run summary (JSON) is the only thing on stdout: everything else the run writes "
                        "there goes to stderr (for jq)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from jobs.cli_errors import stdout_to_stderr
    try:
        with stdout_to_stderr() if a.json else contextlib.nullcontext():
            now = parse_run_date(a.run_date)
            summary = run(a.input, a.output, a.conf, a.master, a.model, now=now, run_id=a.run_id,
                          reprocess=a.reprocess, wait_s=a.wait, show_failed=a.show_failed, variant=a.variant)
    except LockBusy as err:
        log.error("%s", err)
        return EXIT_LOCKED
    except (SERError, FileNotFoundError) as err:
        log.error("configuration error: %s", " ".join(str(err).split()))
        return EXIT_CONFIG
    except Exception as err:  # noqa: BLE001 - one line for the scheduler's log, not a traceback
        log.error("internal error: %s: %s", type(err).__name__, " ".join(str(err).split()), exc_info=a.verbose)
        return EXIT_INTERNAL
    print(json.dumps(summary, indent=2), flush=True)
    for line in notice_lines(summary):
        print(line, file=sys.stderr)
    return exit_code(summary)


def parse_run_date(s: str | None) -> dt.datetime | None:
    """``--run-date YYYY-MM-DD`` as noon UTC of that day (None: not given).

    Raises:
        ConfigError: not a YYYY-MM-DD date.
    """
    if not s:
        return None
    try:
        return dt.datetime.strptime(s, "%Y-%m-%d").replace(hour=12, tzinfo=dt.timezone.utc)
    except ValueError as err:
        raise ConfigError(f"--run-date must be YYYY-MM-DD, got {s!r}") from err


def submit_main(argv=None) -> int:
    """``spark-submit jobs/analyze_calls.py``: :func:`cli_main`, then stop Spark before the
    Python driver exits. Left to the JVM's shutdown hooks, stopping the SparkContext of a
    standalone cluster ran into ``ShutdownHookManager``'s timeout, twice: the driver hung
    about 60 s after the commit (issue 31)."""
    try:
        return cli_main(argv)
    finally:
        active = SparkSession.getActiveSession()
        if active is not None:
            active.stop()


if __name__ == "__main__":
    sys.exit(submit_main())
