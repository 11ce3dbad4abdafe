"""Spark's and the JVM's own lines on stderr: off at the default verbosity of ``ser analyze``.

``ser analyze`` starts Spark's JVM itself (PySpark's gateway). Unless the user configured
Spark's logging (a ``log4j.configurationFile`` in the driver's Java options, or a
``log4j2.*`` file in ``SPARK_CONF_DIR``), the JVM reads :data:`LOG4J2_PROPERTIES` (Spark's
errors only) and the one line the JVM prints before any logging exists (``WARNING: Using
incubator modules: jdk.incubator.vector``: Spark 4's launcher always adds that module, and
no JVM option silences the warning) is dropped from the JVM's stderr. Everything else the
JVM writes there (Spark's errors, the Python workers' stderr in local mode) passes through.

``ser -v`` (ser's DEBUG logging) or ``SER_SPARK_LOGS=1`` leave Spark's logging as Spark
configures it. Under ``spark-submit`` the JVM runs before the job's code: its logging is
spark-submit's (``--driver-java-options -Dlog4j.configurationFile=jobs/log4j2.properties``).
"""
from __future__ import annotations

import logging
import os
import subprocess
import threading
from pathlib import Path

LOG4J2_PROPERTIES = Path(__file__).resolve().with_name("log4j2.properties")
ENV = "SER_SPARK_LOGS"
_JVM_NOTICE = b"WARNING: Using incubator modules:"
_LOG4J_FILES = ("log4j2.properties", "log4j2.xml", "log4j2.yaml", "log4j2.yml", "log4j2.json")


def wanted() -> bool:
    """True when Spark's own lines should show: ``SER_SPARK_LOGS`` set (not ``0``) or ser
    logging at DEBUG (``ser -v``, ``spark-submit jobs/analyze_calls.py … -v``)."""
    return os.environ.get(ENV, "") not in ("", "0") or logging.getLogger("ser").isEnabledFor(logging.DEBUG)


def user_configured(conf) -> bool:
    """True when the user set Spark's log4j configuration for the driver: a
    ``log4j.configurationFile`` in ``spark.driver.*JavaOptions`` (``conf``: a SparkConf),
    ``SPARK_SUBMIT_OPTS`` or ``PYSPARK_SUBMIT_ARGS``, or a ``log4j2.*`` file in
    ``SPARK_CONF_DIR`` (default ``$SPARK_HOME/conf``)."""
    opts = " ".join([conf.get("spark.driver.extraJavaOptions", "") or "",
                     conf.get("spark.driver.defaultJavaOptions", "") or "",
                     os.environ.get("SPARK_SUBMIT_OPTS", ""), os.environ.get("PYSPARK_SUBMIT_ARGS", "")])
    if "log4j.configurationFile" in opts:
        return True
    conf_dir = os.environ.get("SPARK_CONF_DIR") or (os.environ.get("SPARK_HOME") and
                                                     os.path.join(os.environ["SPARK_HOME"], "conf"))
    return bool(conf_dir) and any(os.path.isfile(os.path.join(conf_dir, f)) for f in _LOG4J_FILES)


def start_quiet_context(conf) -> bool:
    """Start the SparkContext of ``conf`` (a SparkConf) on a JVM that logs Spark's errors only.

    Does nothing and returns False when Spark's lines are :func:`wanted`, a SparkContext or
    gateway JVM already exists (``spark-submit``, an earlier session), or the user configured
    Spark's logging; the caller's ``SparkSession.builder.getOrCreate()`` then starts Spark as
    usual. Returns True when it started the context (the builder picks it up).
    """
    from pyspark import SparkContext
    from pyspark.java_gateway import launch_gateway

    if (wanted() or SparkContext._active_spark_context is not None or SparkContext._gateway is not None
            or "PYSPARK_GATEWAY_PORT" in os.environ or user_configured(conf)):
        return False
    # SPARK_SUBMIT_OPTS reaches the driver JVM's command line before the spark.driver.*
    # options, so a -D there given by the user (spark-defaults.conf included) still wins.
    before = os.environ.get("SPARK_SUBMIT_OPTS")
    os.environ["SPARK_SUBMIT_OPTS"] = f"{before or ''} -Dlog4j.configurationFile={LOG4J2_PROPERTIES.as_uri()}".strip()
    try:
        gateway = launch_gateway(conf, popen_kwargs={"stderr": subprocess.PIPE})
    finally:
        if before is None:
            os.environ.pop("SPARK_SUBMIT_OPTS", None)
        else:
            os.environ["SPARK_SUBMIT_OPTS"] = before
    threading.Thread(target=_pass_stderr, args=(gateway.proc.stderr,), name="spark-jvm-stderr", daemon=True).start()
    SparkContext(conf=conf, gateway=gateway)
    return True


def _pass_stderr(stream) -> None:
    """Copy the JVM's stderr to ours, line by line, without the JVM's incubator-module notice."""
    with stream, os.fdopen(os.dup(2), "wb") as out:
        for line in iter(stream.readline, b""):
            if not line.startswith(_JVM_NOTICE):
                out.write(line)
                out.flush()
