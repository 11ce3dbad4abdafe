"""One task → rows without Spark (ser_lib.process), and ``ser predict`` on the same path
(ser_lib.one_recording): skip rules, archive members, failures, the segment-row builder."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import yaml

from ser_lib.config import JobConfig
from ser_lib.errors import ArtifactError
from ser_lib.labels import EMOTIONS, probability_column
from ser_lib.process import Segments, Task, call_id, file_sha256, process_task
from tests.conftest import write_call


@pytest.fixture(scope="module")
def predictor(tiny_artifact):
    from ser_lib.one_recording import load_predictor
    return load_predictor(JobConfig.load(), str(tiny_artifact))


def _rows(task, predictor, cfg=None):
    rows = list(process_task(task, predictor, cfg or JobConfig.load()))
    return [r for r in rows if isinstance(r, Segments)], [r for r in rows if isinstance(r, dict)]


def test_a_stereo_file_gives_one_segment_block_per_channel_then_its_input_row(tmp_path, predictor):
    wav = write_call(tmp_path / "a.wav", 8000, [[("speech", 3), ("silence", 2)], [("silence", 2), ("speech", 3)]])
    seen = []
    rows = list(process_task(Task("file", str(wav), 10, 20, None), predictor, JobConfig.load(),
                             on_recording=seen.append))
    (left, right), row = rows[:2], rows[2]
    assert [b.columns["channel"] for b in (left, right)] == ["agent", "customer"] and left.n == right.n == 4
    cols = left.columns
    assert list(cols)[:8] == ["row_kind", "call_id", "source_path", "status", "channel", "segment_index",
                              "start_s", "end_s"]
    assert [k for k in cols if k.startswith("p_")] == [probability_column(e) for e in EMOTIONS]
    assert cols["call_id"] == call_id(str(wav)) and list(cols["segment_index"]) == [0, 1, 2, 3]
    speech = cols["is_speech"]
    assert speech.any() and not speech.all()
    assert np.isnan(cols["p_angry"][~speech]).all() and np.isfinite(cols["p_angry"][speech]).all()
    assert row["row_kind"] == "input" and row["status"] == "ok" and row["error"] is None
    assert (row["kind"], row["n_channels"], row["sample_rate"], row["n_segments"]) == ("file", 2, 8000, 8)
    assert row["content_sha256"] == file_sha256(str(wav)) and seen == [pytest.approx(5.0)]
    assert (row["size_bytes"], row["modified_us"]) == (10, 20)


def test_a_file_whose_content_equals_its_baseline_is_skipped_and_a_bad_one_fails(tmp_path, predictor):
    wav = write_call(tmp_path / "a.wav", 8000, [[("speech", 2)]])
    prior = json.dumps({"sha": file_sha256(str(wav)), "out_run": "r0", "out_date": "2026-11-01", "model": "m0",
                        "duration_s": 2.0})
    segs, (row,) = _rows(Task("file", str(wav), 1, 1, prior), predictor)
    assert not segs and (row["status"], row["output_run_id"], row["output_model_version"]) == ("skipped", "r0", "m0")
    other = json.dumps({**json.loads(prior), "sha": "0" * 64})
    segs, (row,) = _rows(Task("file", str(wav), 1, 1, other), predictor)
    assert segs and row["status"] == "ok"
    (tmp_path / "bad.wav").write_bytes(b"RIFF" + bytes(60))
    segs, (row,) = _rows(Task("file", str(tmp_path / "bad.wav"), 64, 1, None), predictor)
    assert not segs and row["status"] == "failed" and row["error"].split(":")[0] in ("corrupt", "unsupported")
    segs, (row,) = _rows(Task("file", str(tmp_path / "gone.wav"), 1, 1, None), predictor)
    assert row["status"] == "failed" and row["error"].startswith("unreadable: cannot read")


def test_an_archive_gives_a_row_per_member_then_its_own(tmp_path, predictor):
    wav = write_call(tmp_path / "a.wav", 8000, [[("speech", 2)]])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.write(wav, "calls/a.wav")
        z.writestr("calls/bad.wav", b"RIFF" + bytes(40))
        z.writestr("notes.txt", "x")
        z.write(wav, "calls/a.wav")  # the same name twice
    (tmp_path / "x.zip").write_bytes(buf.getvalue())
    path = str(tmp_path / "x.zip")
    segs, rows = _rows(Task("archive", path, 1, 1, None), predictor)
    got = [(r["kind"], r.get("member"), r["status"], (r["error"] or "").split(":")[0]) for r in rows]
    assert got == [("member", "calls/a.wav", "ok", ""), ("member", "calls/bad.wav", "failed", got[1][3]),
                   ("member", "notes.txt", "skipped", got[2][3]), ("member", "calls/a.wav", "failed",
                                                                    "duplicate_member"),
                   ("archive", None, "ok", "")]
    assert rows[0]["call_id"] == call_id(path, "calls/a.wav") and segs[0].columns["call_id"] == rows[0]["call_id"]
    prior = json.dumps({"calls/a.wav": {"sha": rows[0]["content_sha256"], "out_run": "r0", "out_date": "d",
                                        "model": "m0", "duration_s": 2.0}})
    segs, rows = _rows(Task("archive", path, 1, 1, prior), predictor)
    assert not segs and rows[0]["status"] == "skipped" and rows[0]["output_run_id"] == "r0"
    (tmp_path / "broken.zip").write_bytes(b"PK not a zip")
    segs, rows = _rows(Task("archive", str(tmp_path / "broken.zip"), 1, 1, None), predictor)
    assert [(r["kind"], r["status"]) for r in rows] == [("archive", "failed")]


def test_ser_predict_rows_are_the_jobs_rows(tmp_path, predictor, tiny_artifact):
    from ser_lib.one_recording import predict_file
    wav = write_call(tmp_path / "a.wav", 16000, [[("speech", 3), ("silence", 3), ("speech", 2)]])
    segs, (row,) = _rows(Task("file", str(wav), 1, 1, None), predictor)
    out = predict_file(str(wav), None, str(tiny_artifact))
    assert len(out["segments"]) == segs[0].n == row["n_segments"]
    cols = segs[0].columns
    for i, r in enumerate(out["segments"]):
        s = bool(cols["is_speech"][i])
        assert r["segment_index"] == i and r["start_s"] == cols["start_s"][i] and r["is_speech"] == s
        assert r["emotion"] == cols["emotion"][i]
        assert r["p_happy"] == (float(cols["p_happy"][i]) if s else None)
    assert out["timeline"] == row["timeline"] and out["episodes"] == row["episodes"]


def test_ser_predict_checks_the_window_length_and_uses_the_batch_size(tmp_path, tiny_artifact):
    from ser_lib.one_recording import load_predictor, predict_file
    wav = write_call(tmp_path / "a.wav", 8000, [[("speech", 2)]])
    conf = tmp_path / "job.yaml"
    conf.write_text(yaml.safe_dump({"windows": {"window_s": 3.0, "hop_s": 1.0}}))
    with pytest.raises(ArtifactError, match="window_s=3.0"):
        predict_file(str(wav), str(conf), str(tiny_artifact))
    conf.write_text(yaml.safe_dump({"model": {"batch_size": 3}}))
    assert load_predictor(JobConfig.load(conf), str(tiny_artifact)).batch_size == 3


def test_an_s3_recording_without_pyarrow_s3_fails_saying_how_to_pack_it(predictor, monkeypatch):
    """An executors' environment packed without ``--with s3`` (jobs/pack_env.py): pyarrow
    would only say "Unrecognized filesystem type"; the row says what is missing."""
    from pyarrow import fs
    monkeypatch.setattr(fs, "_not_imported", [*getattr(fs, "_not_imported", []), "S3FileSystem"])
    segs, (row,) = _rows(Task("file", "s3://bucket/calls/a.wav", 1, 1, None), predictor)
    assert not segs and row["status"] == "failed", row
    assert row["error"].startswith("unreadable: ") and "--with s3" in row["error"], row["error"]
