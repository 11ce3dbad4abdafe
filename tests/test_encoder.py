"""The pretrained speech encoder served without PyTorch (ser_lib/encoder.py) against
resemblyzer's own (training/encoder_export.py).

The comparisons need the ``[train]`` install (torch, resemblyzer, onnx) and skip cleanly
without it; the front-end tests need only the serving install.
"""
from __future__ import annotations

import numpy as np
import pytest

from ser_lib import encoder as E
from ser_lib.synth import speech_like


def test_mel_frames_are_librosa_power_mel_of_resemblyzers_settings():
    """The front end against a plain numpy STFT with librosa's mel filters (power, centred
    frames zero-padded by n_fft // 2 as librosa >= 0.10 pads)."""
    import librosa

    wav = speech_like(0.7, E.SAMPLE_RATE, np.random.default_rng(1))
    got = E.mel_frames(wav)
    assert got.dtype == np.float32 and got.shape == (1 + len(wav) // E.HOP, E.N_MELS)
    padded = np.pad(wav, E.N_FFT // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, E.N_FFT)[::E.HOP]
    spec = np.abs(np.fft.rfft(frames * librosa.filters.get_window("hann", E.N_FFT, fftbins=True), axis=1)) ** 2
    want = spec @ librosa.filters.mel(sr=E.SAMPLE_RATE, n_fft=E.N_FFT, n_mels=E.N_MELS).T
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-6 * want.max())
    with pytest.raises(ValueError, match="mono"):
        E.mel_frames(np.zeros((2, 100)))


@pytest.mark.parametrize("seconds", [0.3, 1.6, 2.0, 4.05, 9.3])
def test_partial_slices_cover_the_utterance(seconds):
    n = int(seconds * E.SAMPLE_RATE)
    slices = E.partial_slices(n)
    assert slices[0].start == 0 and all(s.stop - s.start == E.PARTIAL_FRAMES for s in slices)
    steps = {b.start - a.start for a, b in zip(slices, slices[1:])}
    assert steps <= {round(E.SAMPLE_RATE / 1.3 / E.HOP)}
    # no partial left out that would have been at least 75 % audio (resemblyzer's min_coverage)
    step = round(E.SAMPLE_RATE / 1.3 / E.HOP)
    assert n - (slices[-1].start + step) * E.HOP < 0.75 * E.PARTIAL_FRAMES * E.HOP
    if n < E.PARTIAL_FRAMES * E.HOP * 0.75:
        assert len(slices) == 1
    with pytest.raises(ValueError):
        E.partial_slices(n, rate=0.1)


def test_pool_stats_is_mean_then_std():
    x = np.arange(12, dtype=np.float32).reshape(3, 2, 2)
    got = E.pool_stats(x)
    np.testing.assert_allclose(got, np.concatenate([x.reshape(3, -1).mean(0), x.reshape(3, -1).std(0)]))
    assert E.pool_stats(x[:1])[4:].tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError):
        E.pool_stats(x[:0])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    pytest.importorskip("torch", reason="needs the [train] install (torch) to export the encoder")
    pytest.importorskip("resemblyzer", reason="needs the [train] install (resemblyzer)")
    pytest.importorskip("onnxruntime")
    from training.encoder_export import export_onnx

    out = tmp_path_factory.mktemp("encoder")
    return export_onnx(out)


def test_export_writes_the_model_and_its_apache_notice(exported):
    notice = (exported.parent / E.ENCODER_LICENSE_FILE).read_text()
    assert "Resemblyzer" in notice and "Apache License" in notice and "Version 2.0" in notice
    assert exported.stat().st_size > 1_000_000


def test_onnx_matches_pytorch_on_any_batch_and_length(exported):
    import torch
    from training.encoder_export import _wrapped

    enc, ref = E.SpeechEncoder(exported), _wrapped()
    rng = np.random.default_rng(0)
    for batch, frames in [(1, 160), (5, 160), (3, 97), (2, 300)]:
        mels = rng.random((batch, frames, E.N_MELS)).astype(np.float32)
        emb, hid = enc.run(mels)
        with torch.no_grad():
            e, h = ref(torch.from_numpy(mels))
        assert emb.shape == (batch, E.EMBED_DIM) and hid.shape == (batch, E.N_LAYERS, E.EMBED_DIM)
        np.testing.assert_allclose(emb, e.numpy(), atol=2e-5)
        np.testing.assert_allclose(hid, h.numpy(), atol=2e-5)
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)


def test_served_embeddings_reproduce_resemblyzers(exported):
    """Front end + ONNX on onnxruntime give resemblyzer's embed_utterance (cosine ~1) on
    generated audio of several lengths and levels, and its partials one by one."""
    from resemblyzer import VoiceEncoder

    ve, enc = VoiceEncoder("cpu", verbose=False), E.SpeechEncoder(exported)
    rng = np.random.default_rng(7)
    for seconds, level in [(0.5, -30), (1.7, -20), (3.3, -12), (6.1, -25)]:
        wav = speech_like(seconds, E.SAMPLE_RATE, rng, level_db=level)
        want, want_partials, _ = ve.embed_utterance(wav, return_partials=True)
        got = enc.partials(wav)
        assert got.embedding.shape == want_partials.shape
        assert float(got.utterance() @ want) > 0.99999
        assert np.min(np.sum(got.embedding * want_partials, axis=1)) > 0.99999
    # 8 kHz input is resampled to the encoder's 16 kHz: a different embedding of the same audio
    wav = speech_like(2.0, 8000, rng)
    assert E.SpeechEncoder(exported).partials(wav, 8000).embedding.shape[1] == E.EMBED_DIM
    with pytest.raises(FileNotFoundError):
        E.SpeechEncoder(exported.parent / "nope.onnx")


def test_int8_build_keeps_the_first_lstm_float_and_follows_the_float_encoder(exported):
    """export_onnx also writes the int8 build; on this CPU it agrees with the float encoder on
    speech-like audio, and a plain dynamic quantisation (the first LSTM's mel power input in 8
    bits) is caught by the same check: the check can fail."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8 = exported.parent / E.ENCODER_INT8_FILE
    ops = [n.op_type for n in onnx.load(str(int8)).graph.node]
    assert ops.count("LSTM") == 1 and ops.count("DynamicQuantizeLSTM") == 2
    assert int8.stat().st_size < 0.5 * exported.stat().st_size
    assert "encoder-int8.onnx" in (exported.parent / E.ENCODER_LICENSE_FILE).read_text()
    flt, q = E.SpeechEncoder(exported), E.SpeechEncoder(int8)
    assert E.int8_agreement(flt, q) >= E.INT8_MIN_COSINE
    mels = E.check_mels(seed=5)
    assert mels.shape[1:] == (E.PARTIAL_FRAMES, E.N_MELS)
    np.testing.assert_array_equal(mels, E.check_mels(seed=5))
    # the head's input on fresh speech-like audio moves by far less than one unit of its spread
    rng = np.random.default_rng(11)
    wav = speech_like(4.0, 8000, rng, level_db=-30)
    a, b = flt.partials(wav, 8000).hidden[:, 2], q.partials(wav, 8000).hidden[:, 2]
    assert np.min(np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)) > 0.99
    plain = exported.parent / "plain-int8.onnx"
    quantize_dynamic(str(exported), str(plain), weight_type=QuantType.QInt8)
    assert E.int8_agreement(flt, E.SpeechEncoder(plain)) < E.INT8_MIN_COSINE
