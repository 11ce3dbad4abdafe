"""The speech detector: relative to the recording's level, blind to silence, noise, hum and tones."""
import numpy as np
import pytest

from ser_lib.errors import ConfigError
from ser_lib.features import FeatureConfig, window_features
from ser_lib.speech import SpeechConfig, active_frames, is_speech, spectral_change
from ser_lib.synth import silence, speech_like

CFG = FeatureConfig()
SR = 8000


def _peak_normalize(y: np.ndarray, peak_dbfs: float) -> np.ndarray:
    return (y / np.abs(y).max() * 10 ** (peak_dbfs / 20)).astype(np.float32)


def _flags(y: np.ndarray, hop_s: float = 1.0, cfg: SpeechConfig = SpeechConfig()) -> np.ndarray:
    feats, _ = window_features(y, CFG, hop_s)
    return is_speech(feats, cfg)


def _t(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * SR)) / SR


@pytest.mark.parametrize("peak_dbfs", [-60, -45, -30, -6])
def test_speech_is_found_at_any_level(peak_dbfs):
    rng = np.random.default_rng(3)
    y = np.concatenate([np.zeros(3 * SR, np.float32), speech_like(5.0, SR, rng), np.zeros(3 * SR, np.float32)])
    flags = _flags(_peak_normalize(y, peak_dbfs))
    # windows 3..6 lie inside the speech (starts at 3 s, 2 s windows, 1 s hop)
    assert flags[3:7].all(), flags
    assert not flags[0] and not flags[-1], flags


def test_flags_do_not_depend_on_the_recording_gain():
    rng = np.random.default_rng(4)
    parts = []
    for _ in range(8):
        parts += [speech_like(rng.uniform(1, 4), SR, rng), silence(rng.uniform(0.5, 3), SR, rng, level_db=-60)]
    y = _peak_normalize(np.concatenate(parts), -12)
    ref = _flags(y)
    assert 0.3 < ref.mean() < 1.0  # both kinds of windows are present
    for gain_db in (-30, -20, -10, 6, 11):
        changed = np.mean(_flags((y * 10 ** (gain_db / 20)).astype(np.float32)) != ref)
        assert changed <= 0.05, (gain_db, changed)


@pytest.mark.parametrize("kind", ["digital_silence", "dither", "white_noise", "pink_noise", "hum_50", "hum_60",
                                  "dial_tone", "busy_tone", "ringback", "dtmf", "tone_1k_cadenced"])
@pytest.mark.parametrize("peak_dbfs", [-40, -10])
def test_silence_noise_hum_and_line_tones_are_not_speech(kind, peak_dbfs):
    rng = np.random.default_rng(5)
    t = _t(8.0)

    def cadence(y, on, off):
        return y * ((t % (on + off)) < on)

    def sines(*f):
        return sum(np.sin(2 * np.pi * fi * t) for fi in f)

    pink = np.cumsum(rng.standard_normal(len(t)))
    pink -= np.convolve(pink, np.ones(400) / 400, mode="same")
    signals = {
        "digital_silence": np.zeros(len(t)),
        "dither": rng.uniform(-1, 1, len(t)) / 32768,
        "white_noise": rng.standard_normal(len(t)),
        "pink_noise": pink,
        "hum_50": sum(np.sin(2 * np.pi * 50 * h * t) / h for h in range(1, 9)),
        "hum_60": sum(np.sin(2 * np.pi * 60 * h * t) / h ** 2 for h in (1, 3, 5, 7)),
        "dial_tone": sines(350, 440),
        "busy_tone": cadence(sines(480, 620), 0.5, 0.5),
        "ringback": cadence(sines(440, 480), 2.0, 4.0),
        # dialling: a different digit every 200 ms (100 ms tone, 100 ms pause)
        "dtmf": sum(sines(lo, hi) * (((t - i * 0.2) % 0.8) < 0.1)
                    for i, (lo, hi) in enumerate([(697, 1209), (770, 1336), (852, 1477), (941, 1633)])),
        "tone_1k_cadenced": cadence(sines(1000), 0.3, 0.7),
    }
    y = signals[kind]
    if np.abs(y).max() > 1e-3:  # dither and silence stay at their own (tiny) level
        y = _peak_normalize(y, peak_dbfs) + rng.standard_normal(len(t)).astype(np.float32) * 1e-5
    flags = _flags(np.asarray(y, np.float32))
    assert not flags.any(), (kind, flags)


@pytest.mark.parametrize("word_s", [0.4, 0.5, 1.0, 2.0])
def test_a_short_word_alone_in_a_file_gets_a_scored_window(word_s):
    rng = np.random.default_rng(6)
    y = _peak_normalize(speech_like(word_s, SR, rng), -20)
    assert _flags(y).any()


def test_a_short_word_between_silences_gets_a_scored_window():
    rng = np.random.default_rng(7)
    y = np.concatenate([silence(3.0, SR, rng), speech_like(0.5, SR, rng), silence(3.0, SR, rng)])
    flags = _flags(y)
    assert flags.sum() >= 1
    feats, starts = window_features(y, CFG, 1.0)
    # every flagged window covers the word (3.0-3.5 s)
    for s in starts[flags] / SR:
        assert s < 3.5 and s + CFG.window_s > 3.0


@pytest.mark.parametrize("lag, limit", [(1, SpeechConfig().min_change_10ms_db), (4, SpeechConfig().min_change_40ms_db)])
def test_steady_tone_has_no_spectral_change_and_speech_has(lag, limit):
    rng = np.random.default_rng(8)
    tone = (0.1 * np.sin(2 * np.pi * 440 * _t(2.0))).astype(np.float32)
    speech = speech_like(2.0, SR, rng)
    for y, expect_low in ((tone, True), (speech, False)):
        feats, _ = window_features(y, CFG, 1.0)
        act = np.ones(feats.shape[:2], bool)  # measure every frame
        change = spectral_change(feats, act, lag=lag)[0]
        assert (change < limit) == expect_low, change


def test_active_frames_follow_the_margin():
    rng = np.random.default_rng(9)
    y = np.concatenate([silence(1.0, SR, rng, level_db=-60), speech_like(1.0, SR, rng, level_db=-20)])
    feats, _ = window_features(y, CFG, 2.0)
    loose = active_frames(feats, SpeechConfig(margin_db=3.0)).sum()
    strict = active_frames(feats, SpeechConfig(margin_db=30.0)).sum()
    never = active_frames(feats, SpeechConfig(margin_db=200.0)).sum()
    assert loose > strict > never == 0


def test_config_is_validated_and_rejects_the_old_absolute_threshold():
    with pytest.raises(ConfigError):
        SpeechConfig(min_active_ratio=0.0)
    with pytest.raises(ConfigError):
        SpeechConfig.from_dict({"threshold_db": -45.0, "min_active_ratio": 0.25})
    assert SpeechConfig.from_dict(SpeechConfig().to_dict()) == SpeechConfig()


def test_the_absolute_floor_follows_the_source_resolution():
    cfg = SpeechConfig()
    assert cfg.for_subtype("PCM_16") == cfg and cfg.for_subtype("ULAW") == cfg and cfg.for_subtype(None) == cfg
    for subtype in ("PCM_24", "PCM_32", "FLOAT", "DOUBLE", "float"):
        assert cfg.for_subtype(subtype).floor_db == cfg.floor_db - 48
    assert cfg.for_subtype("PCM_U8").floor_db == cfg.floor_db + 48


def _file_flags(tmp_path, y, subtype, name):
    import soundfile as sf

    from ser_lib.stream import StreamAnalyzer
    path = tmp_path / f"{name}.wav"
    sf.write(path, y, SR, subtype=subtype)
    sa = StreamAnalyzer(str(path), CFG, 1.0, SpeechConfig(), lambda n: [f"ch{i}" for i in range(n)])
    return np.concatenate([ch.speech for chunk in sa for ch in chunk])


@pytest.mark.parametrize("subtype", ["PCM_24", "FLOAT"])
def test_a_quiet_24_bit_or_float_file_keeps_its_flags_30_db_down(tmp_path, subtype):
    """Speech 30 dB below a -21 dBFS peak (frames near -100 dBFS) is still above a 24-bit
    file's quantisation noise: its flags must not change (a 16-bit floor lost 22 % of them)."""
    rng = np.random.default_rng(8)
    parts = []
    for _ in range(10):
        parts += [speech_like(rng.uniform(1, 3), SR, rng), silence(rng.uniform(2.5, 4), SR, rng, level_db=-75)]
    y = _peak_normalize(np.concatenate(parts), -21)
    ref = _file_flags(tmp_path, y, subtype, "ref")
    assert 0.3 < ref.mean() < 1.0
    quiet = _file_flags(tmp_path, (y * 10 ** (-30 / 20)).astype(np.float32), subtype, "quiet")
    assert np.mean(quiet != ref) <= 0.05, np.mean(quiet != ref)
    if subtype == "FLOAT":  # ... and it is the floor that matters: the 16-bit floor loses windows
        sixteen = is_speech(window_features((y * 10 ** (-30 / 20)).astype(np.float32), CFG, 1.0)[0], SpeechConfig())
        assert np.mean(sixteen != ref) > np.mean(quiet != ref)


@pytest.mark.parametrize("kind", ["digital_silence", "dither", "low_noise"])
def test_float_files_of_silence_or_low_noise_are_not_speech(tmp_path, kind):
    rng = np.random.default_rng(9)
    n = 8 * SR
    y = {"digital_silence": np.zeros(n), "dither": rng.uniform(-1, 1, n) / 32768,
         "low_noise": rng.standard_normal(n) * 10 ** (-110 / 20)}[kind].astype(np.float32)
    assert not _file_flags(tmp_path, y, "FLOAT", kind).any()


def _word_over_rumble(rng, speech_db, word_s=0.75):
    """A quiet word whose spectrum is dominated by a steady 60 Hz rumble 25 dB louder (as
    in some TurEV-DB recordings): the lowest log-mel band stands 30-55 dB above the
    voice's formant bands."""
    t = _t(word_s)
    rumble = (np.sqrt(2) * 10 ** (-20 / 20) * np.sin(2 * np.pi * 60 * t)).astype(np.float32)
    noise = rng.standard_normal(len(t)).astype(np.float32) * 10 ** (-70 / 20)
    voice = speech_like(word_s, SR, rng, level_db=speech_db) if speech_db is not None else 0
    return (rumble + noise + voice).astype(np.float32)


def test_a_quiet_word_over_low_rumble_is_speech_and_the_rumble_alone_is_not():
    rng = np.random.default_rng(12)
    word = _word_over_rumble(rng, -45)
    assert _flags(word).any()
    # measured over every band (the rumble's too) the word's change is floored away
    assert not _flags(word, cfg=SpeechConfig(flux_skip_bands=0)).any()
    # the rumble alone, even as a short file padded with digital silence, is no speech
    assert not _flags(_word_over_rumble(rng, None)).any()
    # ... and the floor relative to the strongest band of all is what rejects it
    assert _flags(_word_over_rumble(rng, None), cfg=SpeechConfig(flux_total_range_db=1000.0)).any()


def test_skipping_every_band_is_a_config_error():
    feats, _ = window_features(speech_like(2.0, SR, np.random.default_rng(0)), CFG, 1.0)
    with pytest.raises(ConfigError):
        spectral_change(feats, np.ones(feats.shape[:2], bool), SpeechConfig(flux_skip_bands=CFG.n_mels))
    with pytest.raises(ConfigError):
        SpeechConfig(flux_total_range_db=0.0)
