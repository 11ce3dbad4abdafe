"""The serving install (plain ``pip install ser-calls``, no extras) into a fresh venv runs
``ser predict`` and ``ser analyze`` without TensorFlow.

Needs PyPI (or pip's cache) and minutes: ``.ci/run`` runs it; locally skip it with
``-m "not install"``. Outside CI a failed ``pip install`` skips with pip's reason; in CI
(``CI=true``) it fails.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_call

pytestmark = pytest.mark.install
ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"CI must run the serving install test: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def serving_venv(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("serving") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    src = tmp_path_factory.mktemp("src") / "ser-calls"  # a clean copy: no build litter in the checkout
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "out", ".cache", "build", "dist",
                                                             "*.egg-info", "__pycache__", "models"))
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(src)],
                         capture_output=True, text=True, timeout=1500)
    if pip.returncode != 0:
        _unavailable(f"pip install of the serving extras failed: {pip.stderr.strip()[-600:]}")
    return venv


def _clean_env(venv: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "SPARK_", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    env["PYSPARK_PYTHON"] = str(venv / "bin" / "python")
    return env


def test_serving_install_has_no_tensorflow(serving_venv):
    pkgs = subprocess.run([str(serving_venv / "bin" / "pip"), "list", "--format", "json"],
                          capture_output=True, text=True, check=True).stdout
    names = {p["name"].lower() for p in json.loads(pkgs)}
    assert "ser-calls" in names and "ai-edge-litert" in names
    assert not names & {"tensorflow", "tensorflow-cpu", "keras", "audiomentations", "tf-keras", "torch",
                        "resemblyzer"}
    assert "onnxruntime" in names  # the pretrained speech encoder's runtime (ser_lib/encoder.py)


def test_serving_install_runs_predict_and_analyze(serving_venv, tiny_artifact, tmp_path):
    assert (tiny_artifact / "model.tflite").is_file()
    calls = tmp_path / "in"
    write_call(calls / "short.wav", 8000, [[("speech", 3.0), ("silence", 1.0), ("speech", 1.0)]])
    env, ser = _clean_env(serving_venv), str(serving_venv / "bin" / "ser")
    # run from elsewhere, so nothing is imported from the checkout
    pred = subprocess.run([ser, "predict", "--json", "--model", str(tiny_artifact), str(calls / "short.wav")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert pred.returncode == 0, pred.stderr[-2000:]
    summary = json.loads(pred.stdout)
    assert summary["model_version"] == "tiny-test-1" and summary["speech_s"] > 0

    if not shutil.which("java", path=env["PATH"]) and "JAVA_HOME" not in env:
        _unavailable("ser analyze needs Java 17 on the PATH or JAVA_HOME")
    out = tmp_path / "out"
    job = subprocess.run([ser, "analyze", str(calls), str(out), "--model", str(tiny_artifact), "--master", "local[1]"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert job.returncode == 0, job.stderr[-3000:]
    result = json.loads(job.stdout)
    assert result["failed"] == 0 and result["processed"] == 1, result
    assert list((out / "calls").rglob("*.parquet")) and list((out / "segments").rglob("*.parquet"))
