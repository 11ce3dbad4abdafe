"""Spark job: call recordings → per-segment and per-call emotion timelines in Parquet.

    spark-submit jobs/analyze_calls.py --input IN --output OUT [--conf conf/job.yaml]
    ser analyze IN OUT [--conf conf/job.yaml]          # same code path

extract (list recordings) → transform (windows + features in mapInPandas, model in an
iterator pandas UDF, call summaries in applyInPandas) → load (Parquet partitioned by
run date). Each step is a function of DataFrames, tested on a local session.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

if __package__ in (None, ""):  # run as a script by spark-submit: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import pandas as pd
from pyspark import SparkConf
from pyspark.accumulators import AccumulatorParam
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import schemas
from ser_lib import artifact as art
from ser_lib.config import JobConfig
from ser_lib.errors import SERError

log = logging.getLogger("ser.job")


# ---------------------------------------------------------------- session
def build_spark(cfg: JobConfig, master: str | None = None) -> SparkSession:
    """Get or create the SparkSession.

    Settings given by spark-submit (``--master``, ``--conf``) win over ``conf/job.yaml``;
    ``master`` (``--master`` of ``ser analyze``) wins over both. In local mode the
    Python workers are pointed at this interpreter so they see the same packages.
    """
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
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
            os.environ.setdefault(var, cpus)  # local workers inherit the driver's environment
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


def new_run_id(now: dt.datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


# ---------------------------------------------------------------- extract
def list_recordings(input_path: str, extensions) -> list[tuple[str, int, dt.datetime]]:
    """Every file under ``input_path`` (recursive) whose extension is in ``extensions``.

    Listing goes through ``pyarrow.fs`` (local disks, HDFS, S3, GCS by URI) rather than
    Spark's ``binaryFile`` source, which silently drops 0-byte files: an empty recording
    must still appear in the output as a failed call. Hidden files (``.*``, e.g. macOS
    ``._x.wav`` resource forks) are not recordings and are left out.

    Returns:
        ``[(path, size_bytes, modified_utc)]`` sorted by path; local paths are absolute.

    Raises:
        FileNotFoundError: ``input_path`` does not exist.
    """
    from pyarrow import fs
    if "://" in input_path:
        filesystem, root = fs.FileSystem.from_uri(input_path)
        scheme = input_path.split("://", 1)[0] + "://"
    else:
        filesystem, root, scheme = fs.LocalFileSystem(), os.path.abspath(input_path), ""
    top = filesystem.get_file_info(root)
    if top.type == fs.FileType.NotFound:
        raise FileNotFoundError(f"input {input_path} does not exist")
    infos = [top] if top.type == fs.FileType.File else filesystem.get_file_info(fs.FileSelector(root, recursive=True))
    exts = tuple("." + e.lower() for e in extensions)
    out = []
    for info in infos:
        if info.type != fs.FileType.File or info.base_name.startswith(".") or not info.base_name.lower().endswith(exts):
            continue
        mtime = info.mtime.astimezone(dt.timezone.utc) if info.mtime else None
        out.append((scheme + info.path if scheme else info.path, int(info.size or 0), mtime))
    return sorted(out)


def extract(spark: SparkSession, input_path: str, cfg: JobConfig) -> DataFrame:
    """The recordings to analyse as a DataFrame (see :func:`list_recordings`).

    Returns:
        DataFrame ``[source_path: string, size_bytes: long, modified: timestamp]``, one row a file.
    """
    from pyspark.sql import types as T
    schema = T.StructType([T.StructField("source_path", T.StringType(), False),
                           T.StructField("size_bytes", T.LongType(), False),
                           T.StructField("modified", T.TimestampType(), True)])
    return spark.createDataFrame(list_recordings(input_path, cfg.extensions), schema)


# ---------------------------------------------------------------- transform
def _open_source(uri: str):
    """Something soundfile can read: local paths as they are, other file systems' files as bytes."""
    if "://" not in uri:
        return uri
    from pyarrow import fs  # HDFS, S3, GCS ... as configured on the cluster
    filesystem, path = fs.FileSystem.from_uri(uri)
    with filesystem.open_input_file(path) as f:
        return f.read()


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


_NULLABLE = {"IntegerType": "Int32", "LongType": "Int64", "BooleanType": "boolean", "DoubleType": "float64",
             "FloatType": "float32"}


def _error_row(cid: str, path: str, error: str, schema) -> pd.DataFrame:
    """One ``status='failed'`` row; unset columns are typed nulls (an all-None object column
    for a numeric or boolean field is refused by Arrow)."""
    values = {"call_id": cid, "source_path": path, "status": "failed", "error": error}
    return pd.DataFrame({f.name: pd.Series([values.get(f.name)], dtype=_NULLABLE.get(type(f.dataType).__name__, object))
                         for f in schema.fields})


def analyze_udf(ctx: RunContext):
    """``mapInPandas`` function: file rows → scored window rows (:func:`schemas.segment_rows`).

    One Python pass per recording: decode, resample, window, features, speech flags and
    the model, so the ~58 KB feature tensor of a window never leaves the worker. The
    broadcast artifact is deserialised once per Python worker process, before the loop
    over batches (never per batch or row); threads are capped at the task's cores.
    """
    from ser_lib.analysis import analyze, call_id
    cfg, meta = ctx.cfg, ctx.meta
    labels = list(meta.labels)
    schema = schemas.segment_rows(labels)
    columns = schema.fieldNames()
    model_bc, loads, batches_acc, stage_acc = ctx.model_bc, ctx.model_loads, ctx.model_batches, ctx.stage_s
    fcfg, hop_s, speech_cfg, names, batch_size = meta.feature_config, cfg.hop_s, cfg.speech, cfg.channel_names, cfg.batch_size

    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from pyspark import TaskContext
        from ser_lib.inference import limit_threads
        tc = TaskContext.get()
        limit_threads(tc.cpus() if tc is not None else 1)
        t0 = time.perf_counter()
        predictor, loaded = _predictor(model_bc.value, batch_size)
        timings = {"model_load_s": time.perf_counter() - t0, "decode_s": 0.0, "features_s": 0.0, "model_s": 0.0}
        if loaded:
            loads.add({(os.getpid(), predictor.meta.version)})
        for files in batches:
            batches_acc.add(1)
            for path in files["source_path"]:
                cid = call_id(path)
                try:
                    rec = analyze(_open_source(path), fcfg, hop_s, speech_cfg, names, timings)
                except SERError as err:
                    yield _error_row(cid, path, str(err), schema)
                    continue
                except Exception as err:  # never lose a file to an unexpected decoder failure
                    yield _error_row(cid, path, f"internal: {type(err).__name__}: {err}", schema)
                    continue
                info = rec.info
                for ch in rec.channels:
                    n = len(ch.start_s)
                    probs = np.full((n, len(labels)), np.nan, dtype=np.float32)
                    if ch.speech.any():
                        t0 = time.perf_counter()
                        probs[ch.speech] = predictor.predict(ch.features[ch.speech])
                        timings["model_s"] += time.perf_counter() - t0
                    best = np.nanargmax(np.where(ch.speech[:, None], probs, 0), axis=1)
                    out = pd.DataFrame({
                        "call_id": cid, "source_path": path, "status": "ok", "error": None,
                        "duration_s": rec.duration_s, "sample_rate": info.sample_rate,
                        "n_channels": info.n_channels, "audio_format": f"{info.format}/{info.subtype}",
                        "channel": ch.channel, "segment_index": np.arange(n, dtype=np.int32),
                        "start_s": ch.start_s, "end_s": ch.end_s, "is_speech": ch.speech,
                        "emotion": np.where(ch.speech, np.asarray(labels, dtype=object)[best], None),
                        "confidence": np.where(ch.speech, probs[np.arange(n), best], np.nan).astype(np.float32),
                    })
                    for j, lab in enumerate(labels):
                        out[f"p_{lab}"] = probs[:, j]
                    yield out[columns]
        stage_acc.add(timings)
    return fn


def transform_segments(files: DataFrame, ctx: RunContext) -> DataFrame:
    """Recordings → scored window rows, plus one error row (``status='failed'``) per failed file.

    Returns:
        DataFrame of :func:`schemas.segment_rows` plus ``model_version, run_id, run_date``.
    """
    spark = files.sparkSession
    # One task per file up to 4 per core: long calls don't queue behind each other.
    n_parts = max(1, min(files.count(), spark.sparkContext.defaultParallelism * 4))
    rows = files.repartition(n_parts, "source_path").mapInPandas(
        analyze_udf(ctx), schemas.segment_rows(ctx.meta.labels))
    return (rows.withColumn("model_version", F.lit(ctx.meta.version))
            .withColumn("run_id", F.lit(ctx.run_id)).withColumn("run_date", F.lit(ctx.run_date)))


SEGMENT_COLUMNS = ["call_id", "source_path", "channel", "segment_index", "start_s", "end_s", "is_speech",
                   "emotion", "confidence"]


def segments_table(rows: DataFrame, labels: list[str]) -> DataFrame:
    """The ``segments`` table: successful windows only, in documented column order."""
    cols = SEGMENT_COLUMNS + [f"p_{lab}" for lab in labels] + ["model_version", "run_id", "run_date"]
    return rows.where(F.col("status") == "ok").select(*cols)


def calls_table(rows: DataFrame, labels: list[str]) -> DataFrame:
    """The ``calls`` table: one row per input recording, failed ones included (``status``, ``error``)."""
    from ser_lib.timeline import summarize_call
    summary_schema = schemas.call_summary_schema(labels)

    def summarize(pdf: pd.DataFrame) -> pd.DataFrame:
        s = summarize_call(pdf, labels)
        s["call_id"] = pdf["call_id"].iloc[0]
        return pd.DataFrame([s], columns=summary_schema.fieldNames())

    ok = rows.where(F.col("status") == "ok")
    summaries = (ok.select("call_id", "channel", "start_s", "end_s", "is_speech", "emotion", "confidence")
                 .groupBy("call_id").applyInPandas(summarize, summary_schema))
    facts = rows.groupBy("call_id").agg(
        *[F.first(c, ignorenulls=True).alias(c) for c in
          ("source_path", "status", "error", "duration_s", "sample_rate", "n_channels", "audio_format",
           "model_version", "run_id", "run_date")])
    cols = (["call_id", "source_path", "status", "error", "duration_s", "sample_rate", "n_channels", "audio_format"]
            + [f.name for f in summary_schema.fields if f.name not in ("call_id", "timeline")]
            + ["timeline", "model_version", "run_id", "run_date"])
    return facts.join(summaries, "call_id", "left").select(*cols)


# ---------------------------------------------------------------- load
def load(df: DataFrame, path: str, cfg: JobConfig) -> None:
    """Write ``df`` as Parquet under ``path``, partitioned by ``cfg.partition_by``.

    With dynamic partition overwrite, rerunning a night replaces that night's partition
    and leaves other nights untouched.
    """
    df.write.mode("overwrite").partitionBy(*cfg.partition_by).parquet(path)


# ---------------------------------------------------------------- main
def run(input_path: str, output_path: str, conf_path: str | None = None, master: str | None = None,
        model_path: str | None = None, spark: SparkSession | None = None, now: dt.datetime | None = None) -> dict:
    """Run the job end to end and return its summary (also logged as one JSON line).

    Raises:
        ConfigError, ArtifactError: bad configuration or model (before any work starts).
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
    spark = spark or build_spark(cfg, master)
    sc = spark.sparkContext
    now = now or dt.datetime.now(dt.timezone.utc)
    ctx = RunContext(new_run_id(now), now.strftime("%Y-%m-%d"), cfg, meta, sc.broadcast(bundle),
                     sc.accumulator(set(), _SetParam()), sc.accumulator(0), sc.accumulator({}, _DictParam()))
    t_start = time.time()

    rows = transform_segments(extract(spark, input_path, cfg), ctx).persist()
    out = output_path.rstrip("/")
    load(segments_table(rows, meta.labels), f"{out}/segments", cfg)
    calls = calls_table(rows, meta.labels).persist()
    load(calls, f"{out}/calls", cfg)
    stats = calls.groupBy().agg(
        F.count("*").alias("files"), F.sum(F.when(F.col("status") == "ok", 1).otherwise(0)).alias("ok"),
        F.sum("duration_s").alias("audio_s"), F.sum("n_segments").alias("segments")).first()
    rows.unpersist()
    calls.unpersist()
    wall = time.time() - t_start
    summary = {
        "run_id": ctx.run_id, "run_date": ctx.run_date, "input": input_path, "output": out,
        "model_version": meta.version, "files": stats["files"], "processed": stats["ok"] or 0,
        "failed": (stats["files"] or 0) - (stats["ok"] or 0), "segments": stats["segments"] or 0,
        "audio_hours": round((stats["audio_s"] or 0) / 3600, 4), "wall_s": round(wall, 2),
        "startup_s": round(t_start - t0, 2),
        "x_realtime": round((stats["audio_s"] or 0) / wall, 1) if wall > 0 else None,
        "model_loads": len(ctx.model_loads.value), "model_batches": ctx.model_batches.value,
        # seconds summed over Python workers (they run in parallel, so the sum can exceed wall_s)
        "worker_stage_s": {k: round(v, 2) for k, v in sorted(ctx.stage_s.value.items())},
    }
    log.info("run summary %s", json.dumps(summary))
    return summary


def cli_main(argv=None) -> int:
    """Entry point of ``spark-submit jobs/analyze_calls.py``."""
    import argparse
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", required=True, help="directory of recordings (any Hadoop URI)")
    p.add_argument("--output", required=True, help="output root; segments/ and calls/ are written under it")
    p.add_argument("--conf", default=None, help="job configuration YAML (default conf/job.yaml)")
    p.add_argument("--model", default=None, help="model artifact directory (default: config, then models/ser-cnn)")
    p.add_argument("--master", default=None, help="Spark master (default: spark-submit's, then config's local[*])")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    summary = run(a.input, a.output, a.conf, a.master, a.model)
    print(json.dumps(summary, indent=2))
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(cli_main())
