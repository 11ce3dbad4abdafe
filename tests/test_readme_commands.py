"""The README's spark-submit line, run verbatim in a fresh shell: no activated venv, no
PYSPARK_* or SPARK_HOME inherited, from a checkout laid out as after the quick start."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import write_call

pytestmark = pytest.mark.spark
REPO = Path(__file__).resolve().parents[1]


def readme_lines(pattern: str) -> list[str]:
    """Command lines of the README's bash blocks that match ``pattern``."""
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    return [ln for b in blocks for ln in b.splitlines() if re.search(pattern, ln) and not ln.startswith("#")]


def clean_env() -> dict:
    """What a login shell has: the system PATH, HOME, a locale; Java as configured system-wide."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
    if os.environ.get("JAVA_HOME"):
        env["JAVA_HOME"] = os.environ["JAVA_HOME"]
    return env


def test_readme_spark_submit_line_runs_as_written(tmp_path):
    lines = readme_lines(r"spark-submit .*jobs/analyze_calls\.py")
    assert len(lines) == 1, lines
    if not (REPO / ".venv" / "bin" / "spark-submit").exists():
        pytest.skip("no .venv/bin/spark-submit: the quick start installs it")
    if not shutil.which("java", path=clean_env()["PATH"]) and "JAVA_HOME" not in clean_env():
        pytest.skip("spark-submit needs Java 17 on the system PATH or JAVA_HOME")
    # a checkout after the quick start, with small demo calls instead of the quick start's
    root = tmp_path / "checkout"
    root.mkdir()
    for name in (".venv", "jobs", "ser_lib", "conf", "models"):
        os.symlink(REPO / name, root / name)
    calls = root / "out" / "demo" / "calls"
    write_call(calls / "mono16k" / "call_000.wav", 16000, [[("speech", 3), ("silence", 1)]], seed=1)
    write_call(calls / "stereo8k" / "call_000.wav", 8000, [[("speech", 2), ("silence", 2)],
                                                          [("silence", 2), ("speech", 2)]], subtype="ULAW", seed=2)
    res = subprocess.run(["bash", "-c", lines[0]], cwd=root, env=clean_env(), capture_output=True, text=True,
                         timeout=900)
    assert res.returncode == 0, (res.stdout[-3000:], res.stderr[-3000:])
    out = pd.read_parquet(root / "out" / "demo" / "results" / "calls")
    assert sorted(Path(p).relative_to(calls).as_posix() for p in out["source_path"]) == [
        "mono16k/call_000.wav", "stereo8k/call_000.wav"]
    assert (out["status"] == "ok").all()
