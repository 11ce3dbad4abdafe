"""The light inference runtime (LiteRT) against Keras, and serving without TensorFlow."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ser_lib import artifact as art
from ser_lib.errors import ArtifactError, ConfigError
from ser_lib.features import FeatureConfig, window_features
from ser_lib.synth import silence, speech_like

pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert is not installed")

ROOT = Path(__file__).resolve().parent.parent
FC = FeatureConfig()


def _windows(seconds: float = 12.0, seed: int = 3) -> np.ndarray:
    """Absolute feature windows of speech-like audio at three levels, with a pause."""
    rng = np.random.default_rng(seed)
    parts = [speech_like(seconds / 3, FC.sample_rate, rng, level_db=db) for db in (-35.0, -20.0, -8.0)]
    y = np.concatenate([parts[0], silence(1.0, FC.sample_rate, rng), parts[1], parts[2]])
    return window_features(y, FC, 0.25)[0]


@pytest.fixture(scope="module")
def served_artifact(tmp_path_factory) -> Path:
    """An artifact of the served architecture (training.models' cnn1d) with untrained weights
    and non-trivial batch-norm statistics, written by ser_lib.artifact.save."""
    import keras

    from training.models import build_model
    from ser_lib.labels import EMOTIONS
    from ser_lib.speech import SpeechConfig

    keras.utils.set_random_seed(7)
    model = build_model("cnn1d", (FC.frames_per_window, FC.n_features), len(EMOTIONS), cmn=True)
    rng = np.random.default_rng(7)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.3, layer.moving_mean.shape).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape).astype("float32"))
    meta = art.ArtifactMeta("cnn1d-runtime-test", list(EMOTIONS), FC, SpeechConfig(),
                            rng.normal(0, 2, FC.n_features).astype(np.float32),
                            rng.uniform(2, 8, FC.n_features).astype(np.float32), temperature=1.7)
    return art.save(tmp_path_factory.mktemp("served") / "cnn1d", model, meta)


def _predictor(path, runtime, batch_size=512):
    from ser_lib.runtime import Predictor
    return Predictor(art.read_bytes(path), FC, batch_size, runtime=runtime)


def test_litert_probabilities_equal_keras(served_artifact):
    path = served_artifact
    assert (path / art.RUNTIME_FILE).is_file(), "save() writes the runtime model"
    x = _windows()
    lite, keras_ = _predictor(path, "litert"), _predictor(path, "keras")
    assert (lite.runtime, keras_.runtime) == ("litert", "keras")
    want = keras_.predict(x)
    got = lite.predict(x)
    assert got.shape == want.shape == (len(x), len(lite.labels)) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    # the outputs depend on the input (a constant model would also agree)
    assert np.ptp(want, axis=0).max() > 1e-2


def test_litert_batch_sizes_agree(served_artifact):
    """The input tensor is resized between calls of different sizes: results do not depend on it."""
    x = _windows(seed=5)
    whole = _predictor(served_artifact, "litert").predict(x)
    pieces = _predictor(served_artifact, "litert", batch_size=7)
    np.testing.assert_allclose(pieces.predict(x), whole, atol=1e-6)
    np.testing.assert_allclose(pieces.predict(x[:3]), whole[:3], atol=1e-6)
    np.testing.assert_allclose(pieces.predict(x[:1]), whole[:1], atol=1e-6)


def test_auto_runtime_and_fallback(served_artifact, tmp_path, monkeypatch):
    monkeypatch.delenv("SER_RUNTIME", raising=False)
    assert _predictor(served_artifact, None).runtime == "litert"
    monkeypatch.setenv("SER_RUNTIME", "keras")
    assert _predictor(served_artifact, None).runtime == "keras"
    monkeypatch.delenv("SER_RUNTIME")
    bare = tmp_path / "bare"
    shutil.copytree(served_artifact, bare)
    (bare / art.RUNTIME_FILE).unlink()
    assert art.read_bytes(bare).runtime_bytes is None
    assert _predictor(bare, "auto").runtime == "keras"
    with pytest.raises(ArtifactError, match="no model.tflite"):
        _predictor(bare, "litert")
    with pytest.raises(ConfigError, match="runtime must be one of"):
        _predictor(served_artifact, "onnx")


def test_litert_import_missing_falls_back(served_artifact, monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import raises ImportError
    assert _predictor(served_artifact, "auto").runtime == "keras"
    with pytest.raises(ArtifactError, match="ai-edge-litert is not installed"):
        _predictor(served_artifact, "litert")


def test_corrupt_runtime_file_is_refused(served_artifact, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(served_artifact, bad)
    (bad / art.RUNTIME_FILE).write_bytes(b"not a flatbuffer" * 10)
    with pytest.raises(ArtifactError, match="LiteRT"):
        _predictor(bad, "litert")


def test_export_runtime_adds_the_file(served_artifact, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(served_artifact, bare)
    (bare / art.RUNTIME_FILE).unlink()
    assert art.export_runtime(bare) == bare / art.RUNTIME_FILE
    x = _windows(seed=9)
    np.testing.assert_allclose(_predictor(bare, "litert").predict(x), _predictor(bare, "keras").predict(x),
                               atol=1e-4, rtol=0)
    with pytest.raises(ArtifactError, match="not a model artifact"):
        art.export_runtime(tmp_path / "nothing")


def test_ser_export_runtime_command(served_artifact, tmp_path):
    from click.testing import CliRunner

    from jobs.cli import cli
    bare = tmp_path / "bare"
    shutil.copytree(served_artifact, bare)
    (bare / art.RUNTIME_FILE).unlink()
    res = CliRunner().invoke(cli, ["export-runtime", str(bare)])
    assert res.exit_code == 0, res.output
    assert (bare / art.RUNTIME_FILE).is_file() and str(bare / art.RUNTIME_FILE) in res.output


def test_serving_imports_no_tensorflow(served_artifact, tmp_path):
    """ser predict (and the job's Predictor) with model.tflite present never imports TensorFlow or Keras."""
    from tests.conftest import write_call
    wav = write_call(tmp_path / "a.wav", 8000, [[("speech", 3.0), ("silence", 1.0), ("speech", 2.0)]])
    code = ("import sys, json\n"
            "from jobs.cli import cli\n"
            f"cli(['predict', '--json', '--model', {str(served_artifact)!r}, {str(wav)!r}], standalone_mode=False)\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'))\n"
            "print('HEAVY', json.dumps(heavy))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    heavy = json.loads(out.stdout.rsplit("HEAVY", 1)[1])
    assert heavy == []
    summary = json.loads(out.stdout.rsplit("HEAVY", 1)[0])
    assert summary["model_version"] == "cnn1d-runtime-test" and summary["segments"]


def test_serve_upload_imports_no_tensorflow(served_artifact, tmp_path):
    """ser serve's app scores an upload with the runtime model, without TensorFlow or Keras."""
    from tests.conftest import write_call
    wav = write_call(tmp_path / "u.wav", 8000, [[("speech", 3.0), ("silence", 1.0)]])
    (tmp_path / "out" / "_runs").mkdir(parents=True)
    code = ("import sys, json\n"
            "from jobs.web import create_app\n"
            f"app = create_app({str(tmp_path / 'out')!r}, {str(served_artifact)!r}, tmpdir={str(tmp_path / 't')!r})\n"
            f"r = app.test_client().post('/upload', data={{'file': (open({str(wav)!r}, 'rb'), 'u.wav')}},"
            " headers={'Accept': 'application/json'})\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'))\n"
            "print('RESULT', json.dumps({'status': r.status_code, 'version': r.get_json().get('model_version'),"
            " 'heavy': heavy}))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.rsplit("RESULT", 1)[1])
    assert res == {"status": 200, "version": "cnn1d-runtime-test", "heavy": []}


@pytest.mark.corpora
def test_shipped_model_litert_equals_keras_on_corpus_windows():
    """The shipped artifact's model.tflite gives Keras's probabilities on real RAVDESS windows."""
    corpora = ROOT.parent / "shared" / "corpora" / "ravdess"
    if not corpora.is_dir():
        pytest.skip("needs ../shared/corpora/ravdess")
    if not (art.DEFAULT_ARTIFACT / art.RUNTIME_FILE).is_file():
        pytest.fail(f"{art.DEFAULT_ARTIFACT} has no {art.RUNTIME_FILE}: ser export-runtime {art.DEFAULT_ARTIFACT}")
    from ser_lib.audio import load
    bundle = art.read_bytes(art.DEFAULT_ARTIFACT)
    from ser_lib.runtime import Predictor
    lite, keras_ = Predictor(bundle, runtime="litert"), Predictor(bundle, runtime="keras")
    fc = lite.meta.feature_config
    files = sorted(corpora.glob("Actor_*/*.*"))[::90]
    x = np.concatenate([window_features(load(str(f), fc.sample_rate)[0][0], fc, 0.25)[0] for f in files])
    assert len(x) >= 50
    np.testing.assert_allclose(lite.predict(x), keras_.predict(x), atol=1e-4, rtol=0)


def test_training_commands_say_what_to_install_without_the_training_extra(monkeypatch):
    from click.testing import CliRunner

    from jobs.cli import cli
    for module in ("training.cli", "training.train"):  # as in a serving-only install
        monkeypatch.setitem(sys.modules, module, None)
    res = CliRunner().invoke(cli, ["train", "--epochs", "1"])
    assert res.exit_code == 2 and "pip install 'ser-calls[train]'" in res.output
    assert "train" in CliRunner().invoke(cli, ["--help"]).output
