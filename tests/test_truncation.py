"""Truncated recordings: analysed as far as they go, and marked (no Spark)."""
from __future__ import annotations

import json
import struct

import pytest
import soundfile as sf
from click.testing import CliRunner

from jobs.cli import cli
from ser_lib.audio import read_audio
from tests.conftest import write_call


def truncate(path, keep: float):
    """Cut a file to ``keep`` of its bytes, as an interrupted copy or upload leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    return path


@pytest.mark.parametrize("fmt,subtype,channels", [("wav", "PCM_16", 1), ("wav", "ULAW", 2), ("aiff", "PCM_16", 1)])
def test_a_truncated_recording_is_decoded_and_marked(tmp_path, fmt, subtype, channels):
    path = write_call(tmp_path / f"c.{fmt}", 8000, [[("speech", 9.0)]] * channels, subtype=subtype)
    samples, info = read_audio(path)
    assert info.warnings is None and info.declared_samples == samples.shape[1]
    truncate(path, 0.4)
    samples, info = read_audio(path)
    header_s, decoded_s = info.declared_samples / 8000, samples.shape[1] / 8000
    assert header_s == pytest.approx(9.0, abs=0.01) and decoded_s == pytest.approx(3.6, abs=0.1)
    assert info.warnings == f"truncated: header {header_s:.1f} s, decoded {decoded_s:.1f} s"


def test_a_streamed_wav_with_a_placeholder_length_is_not_truncated(tmp_path):
    path = write_call(tmp_path / "live.wav", 8000, [[("speech", 2.0)]])
    data = bytearray(path.read_bytes())
    at = data.index(b"data")
    data[at + 4:at + 8] = struct.pack("<I", 0xFFFFFFFF)  # length unknown when the recorder started writing
    path.write_bytes(bytes(data))
    samples, info = read_audio(path)
    assert samples.shape[1] == 16000 and info.warnings is None


def test_predict_reports_the_truncation(tmp_path, tiny_artifact):
    conf = tmp_path / "job.yaml"
    conf.write_text("{}\n")
    path = truncate(write_call(tmp_path / "c.wav", 8000, [[("speech", 9.0)]]), 0.5)
    decoded = sf.info(path).frames / 8000
    args = ["predict", str(path), "--model", str(tiny_artifact), "--conf", str(conf)]
    out = json.loads(CliRunner().invoke(cli, args + ["--json"]).stdout)
    assert out["warnings"] == f"truncated: header 9.0 s, decoded {decoded:.1f} s"
    assert out["duration_s"] == pytest.approx(decoded)
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0 and f"warnings: truncated: header 9.0 s, decoded {decoded:.1f} s" in res.stdout
