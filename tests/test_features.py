"""Feature shapes, agreement with librosa's reference functions, and training/serving equality."""
import librosa
import numpy as np
import pytest

from ser_lib.features import FeatureConfig, frame_features, pad_to_window, window_features
from ser_lib.speech import SpeechConfig, is_speech
from ser_lib.synth import silence, speech_like

CFG = FeatureConfig(pitch=False)
PITCH = FeatureConfig(pitch=True)
LAYOUTS = pytest.mark.parametrize("cfg", [CFG, PITCH], ids=["74", "pitch"])


@pytest.fixture(scope="module")
def channel():
    rng = np.random.default_rng(1)
    return np.concatenate([speech_like(3.3, 8000, rng), silence(2.0, 8000, rng), speech_like(2.71, 8000, rng)])


def test_shapes(channel):
    feats, starts = window_features(channel, CFG, hop_s=1.0)
    assert feats.dtype == np.float32
    assert feats.shape == (len(starts), CFG.frames_per_window, CFG.n_features)
    assert CFG.frames_per_window == 1 + (16000 - 256) // 80 == 197
    assert CFG.n_features == len(CFG.feature_names()) == 74
    assert np.isfinite(feats).all()


@LAYOUTS
@pytest.mark.parametrize("hop_s", [0.5, 1.0, 2.0])
def test_serving_windows_equal_features_of_the_window_alone(channel, hop_s, cfg):
    """The job slices one per-channel frame matrix; training computes each clip on its own.
    For the same samples both give bit-identical features."""
    feats, starts = window_features(channel, cfg, hop_s)
    for i, s in enumerate(starts):
        alone = frame_features(pad_to_window(channel[s:s + cfg.window_samples], cfg), cfg)
        np.testing.assert_array_equal(feats[i], alone)


@LAYOUTS
def test_short_clip_is_padded_like_training(channel, cfg):
    clip = channel[:5000]  # 0.625 s, shorter than one window
    feats, starts = window_features(clip, cfg, 1.0)
    assert list(starts) == [0] and feats.shape[0] == 1
    np.testing.assert_array_equal(feats[0], frame_features(np.pad(clip, (0, 16000 - 5000)), cfg))


@LAYOUTS
def test_blocking_does_not_change_features(channel, cfg):
    np.testing.assert_array_equal(frame_features(channel, cfg, block_frames=7), frame_features(channel, cfg))


def test_pitch_layout_appends_to_the_74_features(channel):
    """pitch=True adds three columns after the log-mel bands and changes none of the others."""
    assert PITCH.n_features == len(PITCH.feature_names()) == 77
    assert PITCH.feature_names()[:74] == CFG.feature_names()
    assert PITCH.feature_names()[74:] == ["voicing", "f0_st", "f0_rel"]
    np.testing.assert_array_equal(frame_features(channel, PITCH)[:, :74], frame_features(channel, CFG))


def test_agrees_with_librosa_reference(channel):
    y = channel[:16000]
    got = frame_features(y, CFG)
    kw = dict(n_fft=256, hop_length=80, win_length=200, center=False)
    mel = librosa.feature.melspectrogram(y=y, sr=8000, n_mels=40, fmin=60, fmax=3800, power=2.0, **kw)
    log_mel = librosa.power_to_db(mel, ref=1.0, amin=1e-20, top_db=None)  # ser_lib.features._AMIN
    chroma = librosa.feature.chroma_stft(y=y, sr=8000, tuning=0.0, **kw)
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=20)
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=256, hop_length=80, center=False)
    names = CFG.feature_names()
    col = {n: i for i, n in enumerate(names)}
    np.testing.assert_allclose(got[:, col["mel_0"]:], log_mel.T, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(got[:, col["chroma_0"]:col["chroma_0"] + 12], chroma.T, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got[:, col["mfcc_0"]:col["mfcc_0"] + 20], mfcc.T, rtol=1e-3, atol=1e-2)
    np.testing.assert_allclose(got[:, col["zcr"]], zcr[0], rtol=1e-6)


def test_speech_flag_separates_speech_from_silence():
    rng = np.random.default_rng(2)
    y = np.concatenate([silence(4.0, 8000, rng), speech_like(4.0, 8000, rng)])
    feats, starts = window_features(y, CFG, 2.0)
    assert list(is_speech(feats, SpeechConfig())) == [False, False, True, True]
    # a stricter rule turns everything off: the flag follows the configuration
    assert not is_speech(feats, SpeechConfig(margin_db=200.0)).any()


def test_frame_features_rejects_bad_input():
    with pytest.raises(ValueError):
        frame_features(np.zeros((2, 1000), np.float32), CFG)
    with pytest.raises(ValueError):
        frame_features(np.zeros(100, np.float32), CFG)


def test_power_weights_leave_the_features_unchanged_and_weight_the_frames_power():
    """``frame_features(..., power_weights=w)`` (the loudness meter's K-weighting) returns
    the same features to the bit, and per frame ``|rfft(frame * window)|**2 @ w``."""
    from ser_lib.features import _kernels
    cfg = FeatureConfig()
    rng = np.random.default_rng(4)
    y = (rng.standard_normal(cfg.sample_rate * 3) * 0.1).astype(np.float32)
    w = rng.random(cfg.n_fft // 2 + 1)
    plain = frame_features(y, cfg)
    feats, weighted = frame_features(y, cfg, power_weights=w)
    assert np.array_equal(plain, feats)
    n = len(plain)
    frames = np.lib.stride_tricks.sliding_window_view(y, cfg.n_fft)[::cfg.hop_length][:n]
    power = np.abs(np.fft.rfft(frames * _kernels(cfg)[0], axis=-1)) ** 2
    np.testing.assert_allclose(weighted, power @ w, rtol=1e-5)
    blocks = frame_features(y, cfg, block_frames=37, power_weights=w)[1]
    np.testing.assert_allclose(blocks, weighted, rtol=1e-12)
