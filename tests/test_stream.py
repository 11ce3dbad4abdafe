"""Streaming analysis equals whole-file analysis, bit for bit, whatever the chunking."""
from __future__ import annotations

import numpy as np
import pytest

from tests.oracle import analyze
from ser_lib.errors import AudioError
from ser_lib.features import FeatureConfig
from ser_lib.speech import SpeechConfig
from ser_lib.stream import StreamAnalyzer
from tests.conftest import write_call

NAMES = {1: ("mono",), 2: ("agent", "customer")}


@pytest.mark.parametrize("sr,dur,chunk_s,hop_s", [
    (8000, 13.37, 2.0, 1.0),      # model rate: no resampling
    (22050, 9.3, 2.1, 0.5),       # resampled in a stream
    (16000, 0.8, 2.0, 1.0),       # shorter than one window: one padded window
    (8000, 2.0, 2.0, 1.0),        # exactly one window
    (11025, 30.0, 7.0, 2.0),      # hop == window
    (8000, 61.3, 60.0, 1.0),      # default chunk, last partial window
])
def test_streaming_equals_whole_file(tmp_path, sr, dur, chunk_s, hop_s):
    path = write_call(tmp_path / "c.wav", sr, [[("speech", dur)], [("silence", dur / 2), ("speech", dur / 2)]])
    fc = FeatureConfig()
    ref = analyze(str(path), fc, hop_s, SpeechConfig(), NAMES.get)
    sa = StreamAnalyzer(str(path), fc, hop_s, SpeechConfig(), NAMES.get, chunk_s=chunk_s)
    chunks = list(sa)
    assert sa.duration_s == ref.duration_s and sa.info == ref.info
    for c, want in enumerate(ref.channels):
        got = {k: np.concatenate([getattr(ch[c], k) for ch in chunks]) for k in ("features", "start_s", "end_s", "speech")}
        assert all(ch[c].channel == want.channel for ch in chunks)
        np.testing.assert_array_equal(got["features"], want.features)
        np.testing.assert_array_equal(got["start_s"], want.start_s)
        np.testing.assert_array_equal(got["end_s"], want.end_s)
        np.testing.assert_array_equal(got["speech"], want.speech)


def test_streaming_errors(tmp_path):
    import soundfile as sf
    fc, sc = FeatureConfig(), SpeechConfig()
    y = np.zeros((16000, 1), np.float32)
    y[12000] = np.nan  # NaN in the second chunk: the call fails, nothing half-done is kept by the caller
    sf.write(tmp_path / "nan.wav", y, 8000, subtype="FLOAT")
    with pytest.raises(AudioError) as e:
        list(StreamAnalyzer(str(tmp_path / "nan.wav"), fc, 1.0, sc, NAMES.get, chunk_s=1.0))
    assert e.value.reason == "non_finite"
    (tmp_path / "e.wav").write_bytes(b"")
    with pytest.raises(AudioError) as e:
        list(StreamAnalyzer(str(tmp_path / "e.wav"), fc, 1.0, sc, NAMES.get))
    assert e.value.reason == "empty"
