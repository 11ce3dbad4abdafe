"""Voicing and F0 frame features (FeatureConfig(pitch=True)) and their window normalisation."""
import numpy as np
import pytest
from scipy.signal import butter, sosfilt

from ser_lib.errors import ConfigError
from ser_lib.features import FeatureConfig, frame_features, level_normalize, window_features
from ser_lib.synth import speech_like

CFG = FeatureConfig(pitch=True)
SR = CFG.sample_rate
V, F0, REL = (CFG.feature_names().index(n) for n in ("voicing", "f0_st", "f0_rel"))


def harmonic(f0: float, seconds: float = 1.0, n_harmonics: int = 12) -> np.ndarray:
    """A periodic, voice-like source: harmonics of ``f0`` with a 1/k spectrum, below Nyquist."""
    t = np.arange(round(seconds * SR)) / SR
    ks = [k for k in range(1, n_harmonics + 1) if k * f0 < SR / 2]
    y = sum(np.sin(2 * np.pi * f0 * k * t + k) / k for k in ks)
    return (0.2 * y / np.abs(y).max()).astype(np.float32)


def hz(semitones):
    return 100.0 * 2.0 ** (np.asarray(semitones) / 12.0)


@pytest.mark.parametrize("f0", [80.0, 130.0, 220.0, 380.0])
def test_f0_of_a_periodic_source_is_found(f0):
    ff = frame_features(harmonic(f0), CFG)
    # 80 Hz is 2.6 periods per 32 ms frame, where Boersma's window correction is coarsest
    assert np.median(ff[:, V]) > 0.95 and ff[:, V].min() > 0.7
    np.testing.assert_allclose(hz(ff[:, F0]), f0, rtol=0.01)  # within 0.17 semitone


def test_f0_survives_the_telephone_band():
    """G.711's 300-3400 Hz band removes a 120 Hz fundamental; its harmonics still give it."""
    sos = butter(6, [300, 3400], btype="bandpass", fs=SR, output="sos")
    y = sosfilt(sos, harmonic(120.0, 1.5)).astype(np.float32)[SR // 4:]
    ff = frame_features(y, CFG)
    assert np.median(ff[:, V]) > 0.8
    assert np.mean(np.abs(hz(ff[:, F0]) / 120.0 - 1) < 0.02) > 0.95


def test_noise_and_silence_are_unvoiced():
    noise = np.random.default_rng(3).normal(0, 0.05, SR).astype(np.float32)
    ff = frame_features(noise, CFG)
    assert np.mean(ff[:, V] >= CFG.voicing_threshold) < 0.02
    zero = frame_features(np.zeros(SR, np.float32), CFG)
    assert (zero[:, V] == 0).all() and (zero[:, F0] == 0).all()


def test_window_normalisation_of_f0():
    """f0_rel is a voiced frame's F0 minus the window's voiced median; unvoiced frames get 0
    there and the median in f0_st."""
    y = np.concatenate([harmonic(150.0, 1.0), np.zeros(SR // 2, np.float32), harmonic(200.0, 0.6)])
    w, _ = window_features(y, CFG, 1.0)
    x = level_normalize(w, CFG)[0]
    voiced = x[:, REL] != 0
    assert 0.4 < voiced.mean() < 0.9  # the silent half second is not voiced
    st = 12 * np.log2(np.array([150.0, 200.0]) / 100)
    med = np.median(w[0][(w[0][:, V] >= CFG.voicing_threshold), F0])
    np.testing.assert_allclose(x[~voiced, F0], med, atol=1e-4)
    assert np.abs(x[voiced, F0] - st[:, None]).min(axis=0).max() < 0.2  # every voiced frame is one of the two
    np.testing.assert_allclose(np.median(x[voiced, REL]), 0.0, atol=0.05 + np.ptp(st) / 2)
    assert np.ptp(x[voiced, REL]) == pytest.approx(np.ptp(st), abs=0.3)


def test_window_without_voiced_frames():
    noise = np.random.default_rng(4).normal(0, 0.05, 2 * SR).astype(np.float32)
    x = level_normalize(window_features(noise, CFG, 1.0)[0], CFG)
    assert (x[:, :, REL] == 0).mean() > 0.98
    assert np.isfinite(x).all()


def test_pitch_needs_a_reachable_f0_range():
    with pytest.raises(ConfigError, match="F0 range"):
        FeatureConfig(pitch=True, f0_min=40.0)  # a 25 ms period: under two per 32 ms frame
    FeatureConfig(pitch=False, f0_min=40.0)  # unused without pitch


def test_f0_of_synthetic_speech_follows_its_glide():
    """ser_lib.synth's voiced source glides between 100 and 250 Hz: the voiced frames say so."""
    y = speech_like(2.0, SR, np.random.default_rng(5))
    ff = frame_features(y, CFG)
    voiced = ff[:, V] >= CFG.voicing_threshold
    assert voiced.mean() > 0.3
    f = hz(ff[voiced, F0])
    assert np.percentile(f, 5) > 85 and np.percentile(f, 95) < 290


def test_speech_detector_ignores_the_pitch_columns():
    """The detector reads rms_db and the 40 log-mel bands only: both layouts flag the same windows."""
    from ser_lib.speech import is_speech
    rng = np.random.default_rng(6)
    y = np.concatenate([speech_like(2.5, SR, rng), np.zeros(3 * SR, np.float32), harmonic(200.0, 2.0),
                        speech_like(1.5, SR, rng)])
    plain = FeatureConfig(pitch=False)
    flags = is_speech(window_features(y, plain, 1.0)[0])
    np.testing.assert_array_equal(is_speech(window_features(y, CFG, 1.0)[0]), flags)
    assert flags.any() and not flags.all()
