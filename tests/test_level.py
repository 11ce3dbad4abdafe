"""Level invariance of the model input: the recording's gain must not change what the model sees."""
import numpy as np
import pytest

from ser_lib.features import FeatureConfig, level_normalize, model_input, row_percentile, window_features
from ser_lib.synth import silence, speech_like

CFG = FeatureConfig(pitch=False)
PITCH = FeatureConfig(pitch=True)
LAYOUTS = pytest.mark.parametrize("cfg", [CFG, PITCH], ids=["74", "pitch"])
SR = 8000


@pytest.fixture(scope="module")
def channel():
    rng = np.random.default_rng(11)
    y = np.concatenate([speech_like(3.0, SR, rng), silence(1.5, SR, rng, level_db=-55), speech_like(2.5, SR, rng),
                        np.zeros(SR // 2, np.float32), speech_like(0.7, SR, rng)])
    return (y / np.abs(y).max() * 10 ** (-6 / 20)).astype(np.float32)


@LAYOUTS
@pytest.mark.parametrize("gain_db", [-30, -20, -10, 0, 5])
def test_level_normalized_features_do_not_depend_on_gain(channel, gain_db, cfg):
    ref, _ = window_features(channel, cfg, 1.0)
    got, _ = window_features((channel * 10 ** (gain_db / 20)).astype(np.float32), cfg, 1.0)
    a, b = level_normalize(ref, cfg), level_normalize(got, cfg)
    # exact in theory; float32 features and the resampler-free path leave rounding only
    np.testing.assert_allclose(b, a, atol=2e-3 * max(1, abs(gain_db)))


def test_absolute_features_do_depend_on_gain(channel):
    """The test above can fail: without level_normalize the same gain moves the features."""
    ref, _ = window_features(channel, CFG, 1.0)
    got, _ = window_features((channel * 10 ** (-20 / 20)).astype(np.float32), CFG, 1.0)
    assert np.abs(got[:, :, 1] - ref[:, :, 1]).max() > 10  # rms_db moves by ~20 dB


def test_level_normalize_is_relative_to_the_window_percentile_and_floored(channel):
    x, _ = window_features(channel, CFG, 1.0)
    z = level_normalize(x, CFG)
    ref = np.percentile(x[:, :, 1], CFG.level_percentile, axis=1)
    c0 = 2 + CFG.n_mfcc + CFG.n_chroma
    expect_rms = np.maximum(x[:, :, 1] - ref[:, None], CFG.level_floor_db)
    np.testing.assert_allclose(z[:, :, 1], expect_rms, atol=1e-4)
    np.testing.assert_allclose(z[:, :, c0:], np.maximum(x[:, :, c0:] - ref[:, None, None], CFG.level_floor_db),
                               atol=1e-4)
    assert z[:, :, 1].min() >= CFG.level_floor_db
    # ZCR and chroma are left alone
    np.testing.assert_array_equal(z[:, :, 0], x[:, :, 0])
    np.testing.assert_array_equal(z[:, :, 2 + CFG.n_mfcc:c0], x[:, :, 2 + CFG.n_mfcc:c0])
    # MFCC are the DCT of the relative bands
    import librosa
    mfcc = librosa.feature.mfcc(S=z[0, :, c0:].T.astype(np.float64), n_mfcc=CFG.n_mfcc).T
    np.testing.assert_allclose(z[0, :, 2:2 + CFG.n_mfcc], mfcc, rtol=1e-4, atol=1e-3)


def test_row_percentile_equals_numpy():
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 197):
        a = rng.normal(size=(5, n)).astype(np.float32)
        for q in (0, 10, 50, 95, 100):
            np.testing.assert_allclose(row_percentile(a, q), np.percentile(a, q, axis=-1), rtol=1e-6, atol=1e-6)


def test_model_input_is_level_normalize_then_standardize(channel):
    x, _ = window_features(channel, CFG, 1.0)
    rng = np.random.default_rng(1)
    mean = rng.normal(size=CFG.n_features).astype(np.float32)
    std = rng.uniform(0.5, 2, size=CFG.n_features).astype(np.float32)
    np.testing.assert_allclose(model_input(x, CFG, mean, std), (level_normalize(x, CFG) - mean) / std,
                               rtol=1e-5, atol=1e-5)


def test_predictor_probabilities_do_not_depend_on_gain(tiny_artifact, channel):
    """The job's Predictor runs model_input: the same call at another level gets the same emotions."""
    from ser_lib.runtime import Predictor

    fc = FeatureConfig()  # the tiny artifact's: what ser train computes
    pred = Predictor.from_path(tiny_artifact, expected=fc)
    ref, _ = window_features(channel, fc, 1.0)
    quiet, _ = window_features((channel * 10 ** (-25 / 20)).astype(np.float32), fc, 1.0)
    np.testing.assert_allclose(pred.predict(quiet), pred.predict(ref), atol=1e-3)


def _quiet_call(rng):
    """Speech between pauses of low line noise, peak -21 dBFS: at -30 dB its pauses and quiet
    bands fall far below -100 dB, where librosa's default log floor (amin=1e-10) would cut them."""
    parts = []
    for _ in range(5):
        parts += [speech_like(rng.uniform(1.0, 2.5), SR, rng), silence(rng.uniform(0.5, 1.5), SR, rng, level_db=-75)]
    y = np.concatenate(parts)
    return (y / np.abs(y).max() * 10 ** (-21 / 20)).astype(np.float32)


@LAYOUTS
@pytest.mark.parametrize("gain_db", [-30, -20, 20])
def test_quiet_recordings_are_level_invariant_too(gain_db, cfg):
    y = _quiet_call(np.random.default_rng(12))
    ref, _ = window_features(y, cfg, 1.0)
    got, _ = window_features((y * 10 ** (gain_db / 20)).astype(np.float32), cfg, 1.0)
    np.testing.assert_allclose(level_normalize(got, cfg), level_normalize(ref, cfg), atol=2e-3 * abs(gain_db))


def test_quiet_recordings_would_change_with_librosas_default_log_floor(monkeypatch):
    """The test above can fail: with power_to_db's default amin (-100 dB) the -30 dB copy differs."""
    import ser_lib.features as features
    monkeypatch.setattr(features, "_AMIN", 1e-10)
    monkeypatch.setattr(features, "_RMS_FLOOR", np.sqrt(1e-10))
    y = _quiet_call(np.random.default_rng(12))
    ref, _ = window_features(y, CFG, 1.0)
    got, _ = window_features((y * 10 ** (-30 / 20)).astype(np.float32), CFG, 1.0)
    assert np.abs(level_normalize(got, CFG) - level_normalize(ref, CFG)).max() > 1.0
