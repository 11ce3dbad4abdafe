"""Spark's and the JVM's own lines stay off stderr at the default verbosity (cron mail reads
stderr): ``ser analyze`` and the README's spark-submit line write only the job's lines there;
``SER_SPARK_LOGS=1`` brings Spark's lines back."""
from __future__ import annotations

import io
import logging
import os
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from jobs import spark_logs
from tests.conftest import write_call

REPO = Path(__file__).resolve().parents[1]
#: the job's own stderr lines: its log lines (logging's default asctime) and ser analyze's
#: closing "segments: … calls: …" line
OURS = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) ser[.:]|^segments: ")
JVM_NOTICE = "WARNING: Using incubator modules: jdk.incubator.vector"


def _env(**more) -> dict:
    drop = ("SER_SPARK_LOGS", "SPARK_SUBMIT_OPTS", "PYSPARK_SUBMIT_ARGS", "SPARK_CONF_DIR", "PYSPARK_GATEWAY_PORT",
            "PYSPARK_GATEWAY_SECRET")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return {**env, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable, **more}


def _recordings(tmp_path: Path) -> Path:
    write_call(tmp_path / "in" / "a.wav", 8000, [[("speech", 3)], [("silence", 3)]])
    return tmp_path / "in"


def _not_ours(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip() and not OURS.match(ln)]


def _ser_analyze(tmp_path: Path, artifact: Path, **env) -> subprocess.CompletedProcess:
    ser = Path(sys.executable).with_name("ser")
    if not ser.exists():
        pytest.skip("the ser command is not installed next to this interpreter")
    return subprocess.run([str(ser), "analyze", str(_recordings(tmp_path)), str(tmp_path / "out"),
                           "--master", "local[1]", "--model", str(artifact)],
                          capture_output=True, text=True, env=_env(**env), timeout=600)


@pytest.mark.spark
def test_ser_analyze_writes_only_its_own_lines_to_stderr(tmp_path, tiny_artifact):
    res = _ser_analyze(tmp_path, tiny_artifact)
    assert res.returncode == 0, res.stderr[-3000:]
    assert '"processed": 1' in res.stdout
    assert " INFO ser.job: run summary " in res.stderr
    assert _not_ours(res.stderr) == []


@pytest.mark.spark
def test_spark_lines_come_back_with_SER_SPARK_LOGS(tmp_path, tiny_artifact):
    """The test above can fail: Spark and the JVM do write their own lines to stderr."""
    res = _ser_analyze(tmp_path, tiny_artifact, SER_SPARK_LOGS="1")
    assert res.returncode == 0, res.stderr[-3000:]
    assert any("log4j" in ln or " WARN " in ln for ln in _not_ours(res.stderr)), res.stderr[-3000:]


@pytest.mark.spark
def test_readme_spark_submit_line_writes_only_the_job_lines_and_the_jvm_notice(tmp_path, tiny_artifact):
    """The README's local spark-submit line (its paths swapped for a tiny input and model).
    Spark's PythonRunner merges the Python driver's stderr into its stdout, so the job's
    lines come on stdout; the JVM's own stderr holds only its incubator-module notice
    (printed before any of Spark's or the job's code runs; no JVM option turns it off)."""
    from tests.test_readme_commands import LOCAL_SUBMIT, readme_line
    line = readme_line(LOCAL_SUBMIT)
    assert "-Dlog4j.configurationFile=jobs/log4j2.properties" in line
    assert (REPO / ".venv" / "bin" / "spark-submit").exists() or pytest.skip("no .venv/bin/spark-submit")
    line = (line.replace("'local[*]'", "'local[1]'").replace("out/demo/calls", shlex.quote(str(_recordings(tmp_path))))
            .replace("out/demo/results", shlex.quote(str(tmp_path / "out"))) + f" --model {shlex.quote(str(tiny_artifact))}")
    env = {k: v for k, v in _env().items() if k not in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON")}
    res = subprocess.run(["bash", "-c", line], cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert '"processed": 1' in res.stdout and " INFO ser.job: run summary " in res.stdout
    assert set(res.stderr.splitlines()) <= {JVM_NOTICE}, res.stderr[-3000:]


def test_the_jvm_stderr_passes_through_without_the_incubator_notice(capfd):
    r, w = os.pipe()
    t = threading.Thread(target=spark_logs._pass_stderr, args=(io.open(r, "rb"),))
    t.start()
    with io.open(w, "wb") as f:
        f.write(f"{JVM_NOTICE}\n26/12/02 04:00:00 ERROR Executor: task failed\nworker line\n".encode())
    t.join(10)
    assert capfd.readouterr().err == "26/12/02 04:00:00 ERROR Executor: task failed\nworker line\n"


def test_spark_lines_are_wanted_with_the_env_var_or_ser_debug_logging(monkeypatch):
    monkeypatch.delenv(spark_logs.ENV, raising=False)
    ser = logging.getLogger("ser")
    level = ser.level
    try:
        ser.setLevel(logging.INFO)  # ser's default
        assert not spark_logs.wanted()
        monkeypatch.setenv(spark_logs.ENV, "0")
        assert not spark_logs.wanted()
        monkeypatch.setenv(spark_logs.ENV, "1")
        assert spark_logs.wanted()
        monkeypatch.delenv(spark_logs.ENV)
        ser.setLevel(logging.DEBUG)  # ser -v
        assert spark_logs.wanted()
    finally:
        ser.setLevel(level)


def test_a_users_log4j_configuration_is_left_alone(tmp_path, monkeypatch):
    from pyspark import SparkConf
    for var in ("SPARK_SUBMIT_OPTS", "PYSPARK_SUBMIT_ARGS", "SPARK_CONF_DIR", "SPARK_HOME"):
        monkeypatch.delenv(var, raising=False)
    conf = SparkConf(loadDefaults=False)
    assert not spark_logs.user_configured(conf)
    assert spark_logs.user_configured(
        SparkConf(loadDefaults=False).set("spark.driver.extraJavaOptions", "-Dlog4j.configurationFile=my.xml"))
    monkeypatch.setenv("SPARK_CONF_DIR", str(tmp_path))
    assert not spark_logs.user_configured(conf)
    (tmp_path / "log4j2.properties").write_text("rootLogger.level = info\n")
    assert spark_logs.user_configured(conf)


def test_the_log4j_file_ships_with_the_package():
    assert spark_logs.LOG4J2_PROPERTIES.is_file()
    assert "log4j2.properties" in (REPO / "setup.cfg").read_text().split("[options.package_data]")[1].split("[")[0]
