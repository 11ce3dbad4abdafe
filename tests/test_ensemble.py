"""Seed ensembles (training/ensemble.py): one artifact that scores as the mean of its members."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ser_lib import artifact as art
from ser_lib.errors import ArtifactError
from ser_lib.features import FeatureConfig
from ser_lib.labels import EMOTIONS
from ser_lib.speech import SpeechConfig


def _member(path, seed: int, fc: FeatureConfig | None = None):
    import keras

    keras.utils.set_random_seed(seed)
    fc = fc or FeatureConfig()
    inp = keras.Input((fc.frames_per_window, fc.n_features))
    x = keras.layers.Conv1D(8, 5, strides=4, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(inp, keras.layers.Dense(len(EMOTIONS), activation="softmax")(x))
    rng = np.random.default_rng(seed)
    # different standardisation per member, as seeded augmentation gives
    meta = art.ArtifactMeta(f"tiny-{seed}", list(EMOTIONS), fc, SpeechConfig(),
                            rng.normal(size=fc.n_features).astype(np.float32),
                            rng.uniform(0.5, 2, size=fc.n_features).astype(np.float32),
                            training={"seed": seed})
    return art.save(path / f"m{seed}", model, meta)


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    d = tmp_path_factory.mktemp("members")
    return [_member(d, s) for s in (1, 2, 3)]


@pytest.mark.parametrize("runtime", ["keras", "litert"])
def test_ensemble_scores_the_mean_of_its_members(members, tmp_path, runtime):
    from ser_lib.runtime import Predictor
    from training.ensemble import combine_artifacts

    if runtime == "litert":
        pytest.importorskip("ai_edge_litert")
    out = combine_artifacts(members, tmp_path / "ens", version="tiny-ens")
    fc = FeatureConfig()
    rng = np.random.default_rng(0)
    # absolute features of a plausible scale (log-mel/MFCC in dB-like units)
    x = rng.normal(0, 10, size=(12, fc.frames_per_window, fc.n_features)).astype(np.float32)
    want = np.mean([Predictor.from_path(m, runtime="keras").predict(x) for m in members], axis=0)
    got = Predictor.from_path(out, runtime=runtime).predict(x)
    assert got.shape == (12, len(EMOTIONS))
    np.testing.assert_allclose(got, want, atol=2e-5)
    # and not the trivial answer: members disagree
    one = Predictor.from_path(members[0], runtime="keras").predict(x)
    assert np.abs(one - want).max() > 1e-3
    meta = json.loads((out / art.META_FILE).read_text())
    assert meta["version"] == "tiny-ens"
    assert [m["seed"] for m in meta["training"]["ensemble"]] == [1, 2, 3]


def test_ensemble_refuses_mismatched_members(members, tmp_path):
    from training.ensemble import combine, combine_artifacts

    other = _member(tmp_path, 9, FeatureConfig(n_mfcc=FeatureConfig().n_mfcc + 2))
    with pytest.raises(ArtifactError, match="feature_config"):
        combine_artifacts([members[0], other], tmp_path / "bad")
    with pytest.raises(ValueError, match="at least 2"):
        combine([object()], [np.zeros(3)], [np.ones(3)])
