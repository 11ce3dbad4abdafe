"""The README's commands, run as written in a fresh shell (no activated venv, no PYSPARK_* or
SPARK_HOME inherited) from a checkout laid out as after the quick start, in the README's order:
the quick start itself, the job (ser analyze, spark-submit, --reprocess), ser predict, ser report,
ser score-calls, ser serve, the nightly cron line and the nightly queries.

The README's SQL examples are run by tests/test_job.py, its curl lines by tests/test_web.py and
its test command by .ci/run; test_every_readme_command_is_run_by_a_test keeps that list complete.
"""
from __future__ import annotations

import ast
import datetime as dt
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import doc_section, doc_text  # noqa: F401

spark = pytest.mark.spark  # the tests that run the job or the shipped model
LOCAL_SUBMIT = r"spark-submit --master 'local\[\*\]' (--driver-java-options \S+ )?jobs/analyze_calls\.py"
REPO = Path(__file__).resolve().parents[1]


def readme_lines(pattern: str) -> list[str]:
    """Command lines of the README's bash blocks that match ``pattern``."""
    blocks = re.findall(r"```bash\n(.*?)```", doc_text(), re.S)
    return [ln for b in blocks for ln in b.splitlines() if re.search(pattern, ln) and not ln.startswith("#")]


def readme_line(pattern: str) -> str:
    """The one README command line matching ``pattern``, without its trailing comment."""
    lines = readme_lines(pattern)
    assert len(lines) == 1, (pattern, lines)
    return lines[0].split("  #", 1)[0].strip()


def clean_env() -> dict:
    """What a login shell has: the system PATH, HOME, a locale; Java as configured system-wide."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
    if os.environ.get("JAVA_HOME"):
        env["JAVA_HOME"] = os.environ["JAVA_HOME"]
    if os.environ.get("SER_CORPORA"):
        env["SER_CORPORA"] = os.environ["SER_CORPORA"]
    return env


def sh(line: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=clean_env(), capture_output=True, text=True,
                          timeout=timeout)


def calls_of(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "calls")


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A checkout after ``bash jobs/quickstart.sh`` (run here verbatim; .venv is the project's)."""
    if not (REPO / ".venv" / "bin" / "spark-submit").exists():
        pytest.skip("no .venv/bin/spark-submit: the quick start installs it")
    if not shutil.which("java", path=clean_env()["PATH"]) and "JAVA_HOME" not in clean_env():
        pytest.skip("the job needs Java 17 on the system PATH or JAVA_HOME")
    root = tmp_path_factory.mktemp("checkout")
    for name in (".venv", "jobs", "ser_lib", "training", "conf", "models"):
        os.symlink(REPO / name, root / name)
    line = readme_line(r"quickstart\.sh")
    res = sh(line, root, timeout=1800)
    assert res.returncode == 0, (res.stdout[-3000:], res.stderr[-3000:])
    assert "Results: out/demo/results/segments" in res.stdout
    return root


@pytest.fixture(scope="module")
def demo(checkout) -> dict:
    calls = calls_of(checkout / "out" / "demo" / "results")
    files = sorted(p.relative_to(checkout / "out" / "demo" / "calls").as_posix()
                   for p in (checkout / "out" / "demo" / "calls").rglob("*.wav"))
    return {"calls": calls, "files": files}


@spark
def test_quickstart_analyses_every_demo_call(checkout, demo):
    got = sorted(Path(p).relative_to(checkout / "out" / "demo" / "calls").as_posix() for p in demo["calls"]["source_path"])
    assert got == demo["files"] and len(got) == 4
    assert (demo["calls"]["status"] == "ok").all()
    assert (checkout / "out" / "demo" / "calls" / "truth.csv").is_file()


@spark
@pytest.mark.parametrize("pattern, processed", [(r"^\.venv/bin/ser analyze out/demo/calls out/demo/results$", 0),
                                                (LOCAL_SUBMIT, 0),
                                                (r"ser analyze .*--reprocess all", 4)])
def test_readme_job_lines_run_as_written(checkout, demo, pattern, processed):
    """ser analyze, the spark-submit line and the reprocess line over the quick start's
    output: new runs that find nothing new (or reprocess everything), after which the calls
    table holds the same calls, once each."""
    res = sh(readme_line(pattern), checkout)
    assert res.returncode == 0, (res.stdout[-3000:], res.stderr[-3000:])
    assert f'"processed": {processed},' in res.stdout, res.stdout[-3000:]
    calls = calls_of(checkout / "out" / "demo" / "results")
    assert sorted(calls["call_id"]) == sorted(demo["calls"]["call_id"])
    assert (calls["status"] == "ok").all()


def test_readme_spark_submit_line_needs_no_activated_venv():
    line = readme_line(LOCAL_SUBMIT)
    assert line.startswith("PYSPARK_PYTHON=.venv/bin/python .venv/bin/spark-submit ")  # what a fresh shell needs


@spark
def test_readme_predict_lines(checkout):
    text, as_json = (sh(readme_line(p), checkout, timeout=600) for p in
                     (r"^\.venv/bin/ser predict \S+\.wav$", r"^\.venv/bin/ser predict \S+\.wav --json$"))
    assert text.returncode == 0 and as_json.returncode == 0, (text.stderr[-2000:], as_json.stderr[-2000:])
    res = json.loads(as_json.stdout)
    assert {t["channel"] for t in res["timeline"]} == {"agent", "customer"}
    assert "agent" in text.stdout and "customer" in text.stdout
    accurate = sh(readme_line(r"^\.venv/bin/ser predict \S+\.wav --variant accurate$"), checkout, timeout=600)
    assert accurate.returncode == 0, accurate.stderr[-2000:]
    assert re.search(r"\(model cnn1d-[\d.]+\+enchead-[\d.]+\)", accurate.stdout), accurate.stdout[:500]


@spark
def test_readme_report_lines(checkout, demo):
    summary = sh(readme_line(r"ser report out/demo/results$"), checkout, timeout=600)
    assert summary.returncode == 0, summary.stderr[-2000:]
    assert all(cid in summary.stdout for cid in demo["calls"]["call_id"])
    cid = demo["calls"]["call_id"].iloc[0]
    one = sh(readme_line(r"ser report out/demo/results --call CALL_ID$").replace("CALL_ID", cid), checkout, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    assert one.stdout.startswith(cid)
    assert (checkout / "out" / "demo" / "results" / "_reports" / f"{cid}.png").stat().st_size > 0


@spark
def test_readme_score_calls_line(checkout):
    res = sh(readme_line(r"ser score-calls "), checkout, timeout=600)
    truth = (checkout / "out" / "demo" / "calls" / "truth.csv").read_text()
    if re.search(r",synthetic\r?$", truth, re.M):  # no corpora here: as the README says, nothing to score
        assert res.returncode == 1 and "no emotion truth" in res.stderr, (res.returncode, res.stderr[-2000:])
        return
    assert res.returncode == 0, res.stderr[-2000:]
    scores = json.loads(res.stdout)
    assert 0 <= scores["speech_recall"] <= 1 and 0 <= scores["accuracy"] <= 1


@spark
def test_readme_serve_line(checkout, demo):
    """``ser serve`` as written, on a free port (8050 may be taken by another test run)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    line = readme_line(r"ser serve out/demo/results")
    proc = subprocess.Popen(["bash", "-c", f"exec {line} --port {port}"], cwd=checkout, env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, body = time.time() + 180, None
        while time.time() < deadline and proc.poll() is None:
            try:
                body = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/calls", timeout=10).read())
                break
            except OSError:
                time.sleep(1)
        assert body is not None, proc.stdout.read() if proc.poll() is not None else "no answer"
        assert body["total"] == len(demo["calls"])
    finally:
        proc.terminate()
        proc.wait(30)


def _nightly_queries() -> list[str]:
    """The DuckDB statements of the Nightly operation's "Queries" block."""
    section = doc_section("## Nightly operation")
    block = re.search(r"\*\*Queries\*\*.*?```\w*\n(.*?)```", section, re.S).group(1)
    return [s.strip() for s in block.split(";") if any(ln.strip() and not ln.strip().startswith("--")
                                                        for ln in s.splitlines())]


@spark
def test_readme_nightly_queries_run_on_the_quick_starts_output(checkout, demo):
    import duckdb
    con = duckdb.connect()
    out = checkout / "out" / "demo" / "results"  # the queries name it relative to the checkout
    failed, reasons, snapshot = (con.sql(q.replace("out/demo/results", str(out))).df() for q in _nightly_queries())
    assert failed.empty and reasons.empty
    assert sorted(snapshot["call_id"]) == sorted(demo["calls"]["call_id"])


@spark
def test_readme_cron_line_and_nightly_queries(checkout, demo, tmp_path):
    """The cron line's command with its paths moved under tmp_path: the day's directory with
    one good and one empty recording; exit 1, a log naming the failure, and the nightly
    queries find it."""
    text = doc_text()
    cron = re.findall(r"(?m)^30 2 \* \* \* +(.*)$", text)
    assert len(cron) == 1, cron
    data, logs = tmp_path / "data", tmp_path / "log"
    day = data / "calls" / dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    day.mkdir(parents=True)
    logs.mkdir()
    shutil.copy(checkout / "out" / "demo" / "calls" / demo["files"][0], day / "good.wav")
    (day / "empty.wav").write_bytes(b"")
    cmd = (cron[0].replace("/opt/ser", str(checkout)).replace("/data/", f"{data}/")
           .replace("/var/log/ser/", f"{logs}/"))
    res = sh(cmd, tmp_path)
    log = (logs / f"{day.name}.log").read_text()
    assert res.returncode == 1, log[-3000:]  # an input failed: cron mails the log
    assert "empty.wav: empty" in log
    import duckdb
    con = duckdb.connect()
    queries = [q.replace("out/demo/results", str(data / "ser")) for q in _nightly_queries()]
    failed, reasons, snapshot = (con.sql(q).df() for q in queries)
    assert [Path(p).name for p in failed["source_path"]] == ["empty.wav"]
    assert reasons[["reason", "n"]].values.tolist() == [["empty", 1]]
    assert sorted(Path(p).name for p in snapshot["source_path"]) == ["empty.wav", "good.wav"]


def test_readme_airflow_dag_passes_only_options_the_job_takes():
    """The Airflow example needs Airflow to run; here: it is valid Python and every option it
    passes to jobs/analyze_calls.py is one the job's argument parser declares."""
    block = re.search(r"```python\n(from airflow.*?)```", doc_text(), re.S).group(1)
    tree = ast.parse(block)
    args = next(kw.value for node in ast.walk(tree) if isinstance(node, ast.Call)
                for kw in node.keywords if kw.arg == "application_args")
    options = [e.value for e in args.elts if isinstance(e, ast.Constant) and str(e.value).startswith("--")]
    declared = set(re.findall(r'add_argument\("(--[\w-]+)"', (REPO / "jobs" / "analyze_calls.py").read_text()))
    assert options and set(options) <= declared, (options, declared)


# Every command line of the README's bash blocks, and the test that runs it.
COVERED = {
    r"^bash jobs/quickstart\.sh$": "checkout fixture (above)",
    r"^\.venv/bin/python -m pytest -q$": ".ci/run",
    r"^\.venv/bin/ser analyze out/demo/calls out/demo/results( --reprocess all)?$": "test_readme_job_lines_run_as_written",
    r"^PYSPARK_PYTHON=\.venv/bin/python \.venv/bin/spark-submit --master 'local": "test_readme_job_lines_run_as_written",
    r"^\.venv/bin/ser predict ": "test_readme_predict_lines",
    r"^\.venv/bin/ser report ": "test_readme_report_lines",
    r"^\.venv/bin/ser score-calls ": "test_readme_score_calls_line",
    r"^\.venv/bin/ser serve out/demo/results$": "test_readme_serve_line",
    r"^curl ": "tests/test_web.py::test_readme_curl_examples_work",
    r"^PYSPARK_PYTHON=\.venv/bin/python \.venv/bin/spark-sql ": "test_readme_spark_sql_line",
    # the cluster recipe
    r"^\.venv/bin/pip wheel |^python3 -m venv dist/exec-env |^dist/exec-env/bin/python -m jobs\.pack_env |^export SPARK_HOME="
    r"|^\$SPARK_HOME/sbin/spark-daemon\.sh |spark-submit --master spark://127\.0\.0\.1:7077 ":
        "tests/test_cluster.py::test_readme_cluster_recipe_equals_local_mode",
}


@spark
def test_readme_spark_sql_line(checkout, demo):
    """The spark-sql line, in a fresh shell: it counts the quick start's calls and leaves
    no Hive metastore files in the working folder."""
    res = sh(readme_line(r"spark-sql --properties-file"), checkout, timeout=600)
    assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-3000:])
    assert f"ok\t{len(demo['calls'])}" in res.stdout, res.stdout[-2000:]
    assert not (checkout / "derby.log").exists() and not (checkout / "metastore_db").exists()


def test_every_readme_command_is_run_by_a_test():
    blocks = re.findall(r"```bash\n(.*?)```", doc_text(), re.S)
    lines = [ln.split("  #", 1)[0].strip() for b in blocks for ln in b.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    uncovered = [ln for ln in lines if not any(re.search(p, ln) for p in COVERED)]
    assert not uncovered, f"README commands no test runs (add a test and list it in COVERED): {uncovered}"


def test_readme_fits_a_screen_or_two_and_links_every_docs_page():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for page in sorted((REPO / "docs").glob("*.md")):
        assert f"docs/{page.name}" in readme, f"the README does not link {page.name}"


def test_readme_query_is_one_of_the_tested_queries():
    """The README's one SQL query is a statement of docs/queries.md's DuckDB block (which
    tests/test_job.py runs), over the table read_parquet names."""
    from tests.conftest import readme_sql_blocks
    (query,) = re.findall(r"```sql\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    select = " ".join(query.split()).rstrip(";")
    select = select.replace("FROM read_parquet('out/demo/results/calls/*/*/*.parquet', hive_partitioning = true, "
                            "union_by_name = true)", "FROM calls")
    assert any(" ".join(s.split()) == select for s in readme_sql_blocks()["duckdb"]), select


def test_docs_links_resolve():
    """Every relative link of the README and docs/ names a file that exists (and a heading of it)."""
    import re as _re

    def slug(h):
        return _re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
    files = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))
    for f in files:
        for target in _re.findall(r"\]\(([^)\s]+)\)", f.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            dest = (f.parent / path).resolve() if path else f
            assert dest.exists(), f"{f.name}: link to missing {target}"
            if anchor and dest.suffix == ".md":
                heads = {slug(ln.lstrip("#")) for ln in dest.read_text().splitlines() if ln.startswith("#")}
                assert anchor in heads, f"{f.name}: no heading #{anchor} in {dest.name}"
