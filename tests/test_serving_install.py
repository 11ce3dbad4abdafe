"""The serving install (plain ``pip install ser-calls``, no extras): a wheel built from a clean
copy of the checkout, installed into a fresh venv, runs ``ser predict`` with no flags from
another folder (the wheel carries the shipped model) and ``ser analyze``, without TensorFlow.

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

import zipfile

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
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built from a clean copy of the checkout (no build litter in it)."""
    src = tmp_path_factory.mktemp("src") / "ser-calls"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "out", ".cache", "build", "dist",
                                                             "*.egg-info", "__pycache__", "runs", "cv", "members"))
    dist = tmp_path_factory.mktemp("dist")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check",
                            "-w", str(dist), str(src)], capture_output=True, text=True, timeout=900)
    if build.returncode != 0:
        _unavailable(f"pip wheel failed: {build.stderr.strip()[-600:]}")
    (whl,) = dist.glob("ser_calls-*.whl")
    return whl


@pytest.fixture(scope="module")
def serving_venv(tmp_path_factory, wheel) -> Path:
    venv = tmp_path_factory.mktemp("serving") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(wheel)],
                         capture_output=True, text=True, timeout=1500)
    if pip.returncode != 0:
        _unavailable(f"pip install of the serving wheel failed: {pip.stderr.strip()[-600:]}")
    return venv


def _clean_env(venv: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "SPARK_", "VIRTUAL_ENV", "PYTHONPATH"))}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    env["PYSPARK_PYTHON"] = str(venv / "bin" / "python")
    return env


def _installed(venv: Path) -> set[str]:
    pkgs = subprocess.run([str(venv / "bin" / "pip"), "list", "--format", "json"],
                          capture_output=True, text=True, check=True).stdout
    return {p["name"].lower() for p in json.loads(pkgs)}


def test_plain_install_is_what_executors_run(serving_venv):
    """No TensorFlow, and none of the driver's, the report's or the web page's libraries: the
    packed environment of the cluster recipe is this install."""
    names = _installed(serving_venv)
    assert "ser-calls" in names and "ai-edge-litert" in names and "librosa" in names
    assert not names & {"tensorflow", "tensorflow-cpu", "keras", "audiomentations", "tf-keras", "torch",
                        "resemblyzer"}
    assert "onnxruntime" in names  # the pretrained speech encoder's runtime (ser_lib/encoder.py)
    assert not names & {"pyspark", "flask", "waitress", "duckdb", "plotly", "matplotlib"}, names


def test_wheel_carries_the_serving_model_only(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for f in ("artifact.json", "model.tflite"):
        assert f"ser_lib/default_model/{f}" in names
    for f in ("encoder_head.json", "encoder.onnx", "encoder-int8.onnx", "ENCODER_LICENSE.txt"):  # model.variant: accurate
        assert f"ser_lib/accurate_model/{f}" in names
    # training-only files stay in the repository; nothing lands in a top-level models/ package
    assert not [n for n in names if n.startswith("models/") or "/cv/" in n or "/members/" in n], names
    assert wheel.stat().st_size < 10 * 2**20


def test_wheel_predicts_with_no_flags_from_another_folder(serving_venv, tmp_path):
    """The README's ``ser predict call.wav``: the default model is the wheel's own copy."""
    shipped = json.loads((ROOT / "models" / "ser-cnn" / "artifact.json").read_text())["version"]
    elsewhere = tmp_path / "elsewhere"
    write_call(elsewhere / "call.wav", 8000, [[("speech", 3.0), ("silence", 1.0)], [("silence", 1.0), ("speech", 3.0)]])
    ser, env = str(serving_venv / "bin" / "ser"), _clean_env(serving_venv)
    plain = subprocess.run([ser, "predict", "call.wav"], cwd=elsewhere, env=env, capture_output=True, text=True,
                           timeout=300)
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert f"(model {shipped})" in plain.stdout
    pred = subprocess.run([ser, "predict", "--json", "call.wav"], cwd=elsewhere, env=env, capture_output=True,
                          text=True, timeout=300)
    assert pred.returncode == 0, pred.stderr[-2000:]
    summary = json.loads(pred.stdout)
    assert summary["model_version"] == shipped and summary["speech_s"] > 0
    # and it is the installed copy, not the checkout's
    where = subprocess.run([str(serving_venv / "bin" / "python"), "-c",
                            "from ser_lib.artifact import DEFAULT_ARTIFACT; print(DEFAULT_ARTIFACT)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).is_relative_to(serving_venv)
    # the accurate variant runs from the wheel's own encoder head, on onnxruntime
    acc = subprocess.run([ser, "predict", "--json", "--variant", "accurate", "call.wav"], cwd=elsewhere, env=env,
                         capture_output=True, text=True, timeout=300)
    assert acc.returncode == 0, acc.stderr[-2000:]
    assert json.loads(acc.stdout)["model_version"].startswith(f"{shipped}+enchead-")


def test_serving_install_runs_predict_and_analyze(serving_venv, wheel, tiny_artifact, tmp_path):
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

    # the plain install says which extra ser analyze needs, then gets it
    bare = subprocess.run([ser, "analyze", str(calls), str(tmp_path / "out0")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert bare.returncode == 2 and "pip install 'ser-calls[spark]'" in bare.stderr, bare.stderr[-2000:]
    pip = subprocess.run([str(serving_venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                          f"{wheel}[spark]"], capture_output=True, text=True, timeout=1500)
    if pip.returncode != 0:
        _unavailable(f"pip install of the [spark] extra failed: {pip.stderr.strip()[-600:]}")
    if not shutil.which("java", path=env["PATH"]) and "JAVA_HOME" not in env:
        _unavailable("ser analyze needs Java 17 on the PATH or JAVA_HOME")
    out = tmp_path / "out"
    job = subprocess.run([ser, "analyze", str(calls), str(out), "--model", str(tiny_artifact), "--master", "local[1]"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert job.returncode == 0, job.stderr[-3000:]
    result = json.loads(job.stdout)
    assert result["failed"] == 0 and result["processed"] == 1, result
    assert list((out / "calls").rglob("*.parquet")) and list((out / "segments").rglob("*.parquet"))
