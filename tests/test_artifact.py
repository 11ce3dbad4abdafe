"""Artifact round trip, compatibility refusal and Keras safe mode."""
import dataclasses
import json
import shutil

import numpy as np
import pytest

from ser_lib import artifact as art
from ser_lib.config import JobConfig
from ser_lib.errors import ArtifactError
from ser_lib.features import FEATURE_VERSION, FeatureConfig
from ser_lib.runtime import Predictor


def test_round_trip(tiny_artifact, tmp_path):
    meta = art.load_meta(tiny_artifact)
    assert meta.version == "tiny-test-1" and meta.feature_config == FeatureConfig()
    p = Predictor.from_path(tiny_artifact)
    fc = meta.feature_config
    x = np.random.default_rng(0).normal(size=(5, fc.frames_per_window, fc.n_features)).astype(np.float32)
    probs = p.predict(x)
    assert probs.shape == (5, len(meta.labels)) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # save again from the loaded model: same predictions
    again = art.save(tmp_path / "again", p.model, meta)
    np.testing.assert_allclose(Predictor.from_path(again).predict(x), probs, rtol=1e-5, atol=1e-6)
    # normalisation is applied: different statistics give different outputs
    meta2 = dataclasses.replace(meta, norm_mean=meta.norm_mean + 3)
    other = art.save(tmp_path / "other", p.model, meta2)
    assert not np.allclose(Predictor.from_path(other).predict(x), probs)


def test_a_trained_compiled_model_is_saved_without_optimizer_state(tiny_artifact, tmp_path):
    import io
    import zipfile

    import h5py
    import keras

    meta = art.load_meta(tiny_artifact)
    model = Predictor.from_path(tiny_artifact).model
    fc = meta.feature_config
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, fc.frames_per_window, fc.n_features)).astype(np.float32)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="categorical_crossentropy")
    model.fit(x, np.eye(len(meta.labels), dtype=np.float32)[rng.integers(0, len(meta.labels), 8)], verbose=0)
    assert model.optimizer.variables  # the moments a naive save would write
    path = art.save(tmp_path / "trained", model, meta)
    with zipfile.ZipFile(path / art.MODEL_FILE) as z:
        config = json.loads(z.read("config.json"))
        with h5py.File(io.BytesIO(z.read("model.weights.h5"))) as h5:
            assert "optimizer" not in h5 and "layers" in h5
    assert not config.get("compile_config")
    from ser_lib.features import model_input
    from ser_lib.runtime import calibrate

    want = calibrate(model.predict(model_input(x, fc, meta.norm_mean, meta.norm_std), verbose=0), meta.temperature)
    np.testing.assert_allclose(Predictor.from_path(path).predict(x), want, rtol=1e-4, atol=1e-5)


def _edit(src, dst, fn):
    shutil.copytree(src, dst)
    d = json.loads((dst / art.META_FILE).read_text())
    fn(d)
    (dst / art.META_FILE).write_text(json.dumps(d))
    return dst


@pytest.mark.parametrize("field,value,match", [
    ("version", FEATURE_VERSION + 1, "feature code"),
    ("window_s", 3.0, "window_s"),
    ("n_mels", 64, "n_mels"),
    ("sample_rate", 16000, "sample_rate"),
])
def test_feature_config_mismatch_is_refused(tiny_artifact, tmp_path, field, value, match):
    def change(d):
        d["feature_config"][field] = value
        if field == "sample_rate":  # 16 kHz frames of 256 samples are too short for a 75 Hz period
            d["feature_config"].update(n_fft=512, win_length=400, hop_length=160)
        n = FeatureConfig(**d["feature_config"]).n_features  # keep the statistics' length consistent
        d["normalization"] = {"mean": [0.0] * n, "std": [1.0] * n}

    bad = _edit(tiny_artifact, tmp_path / "bad", change)
    with pytest.raises(ArtifactError, match=match):
        Predictor.from_path(bad, expected=FeatureConfig())


def test_malformed_artifacts_are_refused(tiny_artifact, tmp_path):
    with pytest.raises(ArtifactError, match="missing"):
        art.read_bytes(tmp_path)
    bad = _edit(tiny_artifact, tmp_path / "n", lambda d: d["normalization"].__setitem__("std", [1.0]))
    with pytest.raises(ArtifactError, match="normalisation"):
        art.load_meta(bad)
    bad = _edit(tiny_artifact, tmp_path / "f", lambda d: d.__setitem__("format_version", 99))
    with pytest.raises(ArtifactError, match="format"):
        art.load_meta(bad)


def test_safe_mode_refuses_code_in_the_model(tmp_path):
    import keras

    fc = FeatureConfig()
    inp = keras.Input((fc.frames_per_window, fc.n_features))
    x = keras.layers.Lambda(lambda t: t * 2)(inp)  # arbitrary Python code: must not load
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(inp, keras.layers.Dense(7, activation="softmax")(x))
    meta = art.ArtifactMeta("lambda", ["a", "b", "c", "d", "e", "f", "g"], fc, art.SpeechConfig(),
                            np.zeros(fc.n_features, np.float32), np.ones(fc.n_features, np.float32))
    path = art.save(tmp_path / "lambda", model, meta)
    with pytest.raises(ArtifactError, match="cannot load"):  # model.tflite holds no Python; model.keras would
        Predictor.from_path(path, runtime="keras")


def test_save_refuses_shape_mismatch(tmp_path):
    import keras

    fc = FeatureConfig()
    inp = keras.Input((10, fc.n_features))
    model = keras.Model(inp, keras.layers.Dense(7)(keras.layers.GlobalAveragePooling1D()(inp)))
    meta = art.ArtifactMeta("x", list("abcdefg"), fc, art.SpeechConfig(),
                            np.zeros(fc.n_features, np.float32), np.ones(fc.n_features, np.float32))
    with pytest.raises(ArtifactError, match="do not fit"):
        art.save(tmp_path / "x", model, meta)


def test_shipped_artifact_is_compatible():
    """The repository's default model loads and matches this code's features."""
    meta = art.load_meta(art.DEFAULT_ARTIFACT)
    meta.check_compatible(FeatureConfig())  # the features `ser train` computes
    assert meta.feature_config.window_s == JobConfig.load(None).window_s, "the default job config accepts it"
    assert meta.feature_config.version == FEATURE_VERSION
    assert meta.labels and meta.metrics, "the shipped model carries its labels and evaluation metrics"


def test_predictor_applies_the_artifacts_calibration_temperature(tiny_artifact, tmp_path):
    from ser_lib.runtime import calibrate

    fc = art.load_meta(tiny_artifact).feature_config
    x = np.random.default_rng(2).normal(size=(6, fc.frames_per_window, fc.n_features)).astype(np.float32)
    plain = Predictor.from_path(tiny_artifact).predict(x)
    hot = _edit(tiny_artifact, tmp_path / "t2", lambda d: d.update(calibration={"temperature": 2.0}))
    got = Predictor.from_path(hot).predict(x)
    np.testing.assert_allclose(got, calibrate(plain, 2.0), rtol=1e-5, atol=1e-6)
    assert np.abs(got - plain).max() > 1e-3 and (got.argmax(1) == plain.argmax(1)).all()
    bad = _edit(tiny_artifact, tmp_path / "t0", lambda d: d.update(calibration={"temperature": 0.0}))
    with pytest.raises(art.ArtifactError, match="temperature"):
        Predictor.from_path(bad)


def test_feature_config_written_before_pitch_loads_as_the_74_column_layout():
    """Artifacts whose feature_config has no ``pitch`` key were trained on 74 columns."""
    old = {k: v for k, v in FeatureConfig().to_dict().items() if k != "pitch"}
    assert FeatureConfig.from_dict(old).pitch is False and FeatureConfig.from_dict(old).n_features == 74
    assert FeatureConfig.from_dict(FeatureConfig().to_dict()) == FeatureConfig()
