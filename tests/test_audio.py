"""Decoding every supported encoding, resampling, channels, and clear errors for bad input."""
import struct

import numpy as np
import pytest
import soundfile as sf

from ser_lib import audio
from tests.oracle import analyze
from ser_lib.audio import load, read_audio
from ser_lib.config import JobConfig
from ser_lib.errors import AudioError
from ser_lib.features import FeatureConfig, window_features
from ser_lib.speech import SpeechConfig
from ser_lib.stream import StreamAnalyzer
from ser_lib.synth import speech_like
from tests.conftest import write_call

FORMATS = [("wav", "PCM_U8"), ("wav", "PCM_16"), ("wav", "PCM_24"), ("wav", "PCM_32"), ("wav", "FLOAT"),
           ("wav", "ULAW"), ("wav", "ALAW"), ("flac", "PCM_16"), ("ogg", "VORBIS"), ("ogg", "OPUS"),
           ("mp3", "MPEG_LAYER_III")]


def _tone(sr, seconds=1.0):
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


@pytest.mark.parametrize("ext,subtype", FORMATS)
def test_decodes_each_encoding(tmp_path, ext, subtype):
    if not sf.check_format(ext.upper() if ext != "ogg" else "OGG", subtype):
        pytest.skip(f"this libsndfile cannot write {ext}/{subtype}")
    sr = 48000 if subtype == "OPUS" else 16000
    path = tmp_path / f"tone.{ext}"
    try:
        sf.write(path, _tone(sr), sr, subtype=subtype)
    except (sf.LibsndfileError, RuntimeError) as err:
        pytest.skip(f"this libsndfile cannot write {ext}/{subtype}: {err}")
    samples, info = load(path, 8000)
    assert samples.dtype == np.float32 and samples.shape[0] == 1
    assert info.sample_rate == sr
    assert abs(samples.shape[1] - 8000) < 8000 * 0.1  # codecs may add priming samples
    # a 440 Hz tone survives every codec: its spectrum peaks at 440 Hz
    spec = np.abs(np.fft.rfft(samples[0, 1000:7000]))
    assert abs(np.argmax(spec) * 8000 / 6000 - 440) < 10


@pytest.mark.parametrize("sr", [8000, 11025, 16000, 22050, 44100, 48000])
def test_any_rate_is_resampled_to_the_model_rate(tmp_path, sr):
    path = tmp_path / "x.wav"
    sf.write(path, _tone(sr, 2.0), sr)
    samples, info = load(path, 8000)
    assert info.sample_rate == sr and samples.shape == (1, 16000)


def test_mulaw_8k_stereo_call_is_split_into_named_channels(tmp_path):
    """8 kHz mu-law stereo: agent speaks first, customer second; each channel is analysed alone."""
    path = write_call(tmp_path / "call.wav", 8000, [[("speech", 4), ("silence", 4)], [("silence", 4), ("speech", 4)]],
                      subtype="ULAW")
    cfg = JobConfig.load(None)
    fc = FeatureConfig()
    rec = analyze(path, fc, 2.0, cfg.speech, cfg.channel_names)
    assert rec.info.subtype == "ULAW" and rec.info.sample_rate == 8000
    assert [c.channel for c in rec.channels] == ["agent", "customer"]
    agent, customer = rec.channels
    assert list(agent.speech) == [True, True, False, False]
    assert list(customer.speech) == [False, False, True, True]
    # channel features are those of the channel alone
    left = sf.read(path, dtype="float32")[0][:, 0]
    np.testing.assert_array_equal(agent.features, window_features(left, fc, 2.0)[0])


def test_unknown_channel_counts_get_generic_names(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "c3.wav"
    sf.write(path, np.stack([speech_like(2.5, 8000, rng)] * 3, axis=1), 8000)
    cfg = JobConfig.load(None)
    rec = analyze(path, FeatureConfig(), 1.0, cfg.speech, cfg.channel_names)
    assert [c.channel for c in rec.channels] == ["ch0", "ch1", "ch2"]


def test_truncated_file_keeps_what_is_there(tmp_path):
    path = tmp_path / "t.wav"
    sf.write(path, _tone(8000, 4.0), 8000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    samples, info = read_audio(path)
    assert 0 < samples.shape[1] < 32000 and info.n_samples == samples.shape[1]


@pytest.mark.parametrize("case,reason", [
    ("empty", "empty"), ("garbage", "unsupported"), ("header_only", "no_samples"),
    ("nan", "non_finite"), ("rate", "sample_rate"),
])
def test_bad_input_raises_a_clear_reason(tmp_path, case, reason):
    path = tmp_path / "bad.wav"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "garbage":
        path.write_bytes(b"this is not audio at all, just text pretending to be a wav file" * 10)
    elif case == "header_only":
        sf.write(path, np.zeros((0, 1), np.float32), 8000)
    elif case == "nan":
        y = _tone(8000)
        y[100] = np.nan
        sf.write(path, y, 8000, subtype="FLOAT")
    elif case == "rate":
        sf.write(path, _tone(4000), 4000)
    with pytest.raises(AudioError) as err:
        read_audio(path)
    assert err.value.reason in (reason, "corrupt") if case == "garbage" else err.value.reason == reason
    assert str(err.value).startswith(err.value.reason + ":")


def test_bytes_source_equals_path_source(tmp_path):
    path = tmp_path / "x.flac"
    sf.write(path, _tone(16000), 16000)
    a, _ = load(path, 8000)
    b, _ = load(path.read_bytes(), 8000)
    np.testing.assert_array_equal(a, b)


def _bad_file(path, case):
    """Write one kind of undecodable or refused input to ``path``."""
    if case == "empty":
        path.write_bytes(b"")
    elif case == "garbage":
        path.write_bytes(b"this is not audio at all, just text pretending to be a wav file" * 10)
    elif case == "no_data_chunk":
        path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 20)
    elif case == "unknown_codec":  # WAVE_FORMAT_EXTENSIBLE with a sub-format libsndfile lacks
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, 1, 8000, 16000, 2, 16, 22, 16, 4) + bytes(range(16))
        body = b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", 1600) + b"\0" * 1600
        path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    elif case == "header_only":
        sf.write(path, np.zeros((0, 1), np.float32), 8000)
    elif case == "nan_late":
        y = _tone(8000, 3.0)
        y[20000] = np.nan
        sf.write(path, y, 8000, subtype="FLOAT")
    elif case == "rate":
        sf.write(path, _tone(4000), 4000)
    return path


@pytest.mark.parametrize("as_bytes", [False, True])
@pytest.mark.parametrize("case", ["empty", "garbage", "no_data_chunk", "unknown_codec", "header_only", "nan_late",
                                  "rate"])
def test_whole_file_and_streaming_reads_fail_alike(tmp_path, case, as_bytes):
    """One decoder, one error classifier: the same input fails the same way on both paths."""
    path = _bad_file(tmp_path / "bad.wav", case)
    source = path.read_bytes() if as_bytes else str(path)
    with pytest.raises(AudioError) as whole:
        read_audio(source)
    with pytest.raises(AudioError) as streamed:
        list(StreamAnalyzer(source, FeatureConfig(), 1.0, SpeechConfig(), lambda n: ("mono",) * n, chunk_s=2.0))
    assert (whole.value.reason, str(whole.value)) == (streamed.value.reason, str(streamed.value))
    assert " at 0x" not in str(whole.value), "error texts do not carry object addresses"


@pytest.mark.parametrize("ext,subtype", [("wav", "PCM_16"), ("wav", "ULAW"), ("flac", "PCM_24"), ("ogg", "VORBIS"),
                                         ("mp3", "MPEG_LAYER_III")])
def test_reading_in_blocks_equals_reading_at_once(tmp_path, monkeypatch, ext, subtype):
    path = tmp_path / f"x.{ext}"
    try:
        sf.write(path, np.stack([_tone(16000, 2.3), _tone(16000, 2.3)[::-1]], axis=1), 16000, subtype=subtype)
    except (sf.LibsndfileError, RuntimeError, ValueError) as err:
        pytest.skip(f"this libsndfile cannot write {ext}/{subtype}: {err}")
    at_once = sf.read(path, dtype="float32", always_2d=True)[0].T
    monkeypatch.setattr(audio, "READ_BLOCK", 1000)  # many blocks, the last one short
    samples, info = read_audio(path)
    # MP3 decodes to float with last-bit differences that depend on the read size; a seek
    # between blocks (python-soundfile's default) changed samples by up to 0.6
    np.testing.assert_allclose(samples, at_once, rtol=0, atol=1e-6 if ext == "mp3" else 0)
    assert info.n_samples == at_once.shape[1] and info.n_channels == 2

