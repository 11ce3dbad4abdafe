"""The fixed cost of any local Spark run on this machine: the floor under ``ser analyze``.

    .venv/bin/python -m bench.spark_floor

Starts a session exactly as the job does (:func:`jobs.analyze_calls.build_spark` with
``conf/job.yaml``), then runs the smallest job of the same shape as ours: a one-row
DataFrame, repartitioned, through one trivial ``mapInPandas`` (a Python worker starts),
collected with ``toPandas``, and a one-row Parquet write. Prints one JSON line of wall
seconds per phase; ``total`` is what a run pays before and around any audio.
"""
from __future__ import annotations

import json
import tempfile
import time

T0 = time.perf_counter()


def _identity(batches):
    yield from batches


def main() -> dict:
    from jobs.analyze_calls import build_spark
    from jobs.spark_config import SparkConfig
    t_imp = time.perf_counter()
    spark = build_spark(SparkConfig.load(None))
    t_session = time.perf_counter()
    df = spark.createDataFrame([("a", 1)], "s string, n long")
    first = df.repartition(1, "s").mapInPandas(_identity, df.schema).toPandas()
    t_first = time.perf_counter()
    df.repartition(1, "s").mapInPandas(_identity, df.schema).toPandas()
    t_second = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        df.write.parquet(f"{tmp}/t")
    t_write = time.perf_counter()
    spark.stop()
    assert len(first) == 1
    return {"imports_s": round(t_imp - T0, 2), "session_s": round(t_session - t_imp, 2),
            "first_query_s": round(t_first - t_session, 2), "second_query_s": round(t_second - t_first, 2),
            "parquet_write_s": round(t_write - t_second, 2), "total_s": round(t_write - T0, 2)}


if __name__ == "__main__":
    print(json.dumps(main()))
