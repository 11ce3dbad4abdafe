"""``ser serve`` under concurrency, and what a server must not leak (issue 29 §3), without Spark:
concurrent uploads against ``ser predict``, the fd-2 silencing of overlapping model loads,
upload errors without server paths, the audio route's input roots, and an unexpected
exception in one recording's analysis counted as ``internal`` with its own exit code."""
from __future__ import annotations

import io
import json
import logging
import os
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import write_call

#: (seconds per channel part, sample rate, seed): different lengths, so different batch sizes
FILES = {
    "a.wav": (8000, [[("speech", 6), ("silence", 1)]], 21),
    "b.wav": (8000, [[("speech", 4), ("silence", 3), ("speech", 4)], [("silence", 2), ("speech", 9)]], 22),
    "c.wav": (16000, [[("speech", 15)]], 23),
    "d.wav": (8000, [[("silence", 3), ("speech", 20)], [("speech", 12), ("silence", 11)]], 24),
}


@pytest.fixture(scope="module")
def conf(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("conf") / "job.yaml"
    p.write_text("input:\n  chunk_s: 3.0\n")  # many model calls per upload: more chances to overlap
    return p


@pytest.fixture(scope="module")
def empty_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("out")
    (out / "_runs").mkdir()  # a results root before its first run: uploads work
    return out


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("uploads-src")
    return {name: write_call(d / name, sr, parts, seed=seed) for name, (sr, parts, seed) in FILES.items()}


@pytest.fixture(scope="module")
def served(empty_out, tiny_artifact, conf, tmp_path_factory):
    """``ser serve``'s app on waitress (8 threads, as ``ser serve``), 4 uploads at a time."""
    from waitress import create_server

    from jobs.web import create_app
    app = create_app(str(empty_out), str(tiny_artifact), str(conf), max_concurrent=4,
                     tmpdir=str(tmp_path_factory.mktemp("serve-tmp")))
    server = create_server(app, host="127.0.0.1", port=0, threads=8)
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    yield app, f"http://127.0.0.1:{server.effective_port}"
    server.close()


def _post(url: str, path: Path) -> tuple[int, dict]:
    boundary = "ser-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() + \
        f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(f"{url}/upload", data=body, method="POST", headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_four_concurrent_uploads_equal_ser_predict_twenty_times(served, recordings, tiny_artifact, conf):
    from ser_lib.one_recording import predict_file
    app, url = served
    expect = {n: json.loads(json.dumps(predict_file(str(p), str(conf), str(tiny_artifact))))
              for n, p in recordings.items()}
    assert len({json.dumps(e["timeline"]) for e in expect.values()}) == 4  # four different answers
    scorer = app.extensions["ser"]["scorer"]
    assert scorer.predictor().runtime == "litert"  # the runtime whose interpreter is not thread-safe
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, so that model calls of two uploads overlap
    try:
        _rounds(url, recordings, expect)
    finally:
        sys.setswitchinterval(old)


def _rounds(url, recordings, expect):
    for round_ in range(20):
        start = threading.Barrier(len(recordings))
        got: dict[str, tuple[int, dict]] = {}

        def upload(name: str) -> None:
            start.wait()
            got[name] = _post(url, recordings[name])

        threads = [threading.Thread(target=upload, args=(n,)) for n in recordings]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for name in recordings:
            status, answer = got[name]
            assert status == 200, (round_, name, answer)
            assert answer == expect[name], f"round {round_}: {name} differs from ser predict"


def _fd2() -> tuple[int, int]:
    st = os.fstat(2)
    return st.st_dev, st.st_ino


@pytest.mark.parametrize("leave_first", ["a", "b"])
def test_overlapping_silencing_leaves_fd2_where_it_was(monkeypatch, leave_first):
    from ser_lib.artifact import native_stderr_silenced
    monkeypatch.delenv("SER_TF_LOGS", raising=False)
    devnull = os.stat(os.devnull)
    before = _fd2()
    assert before != (devnull.st_dev, devnull.st_ino)
    a_in, b_in, a_go, b_go = (threading.Event() for _ in range(4))
    inside = []

    def call(entered, go, wait_for=None):
        if wait_for is not None:
            wait_for.wait(10)
        with native_stderr_silenced():
            entered.set()
            go.wait(10)
            inside.append(_fd2())

    ta = threading.Thread(target=call, args=(a_in, a_go))
    tb = threading.Thread(target=call, args=(b_in, b_go, a_in))  # b enters while a is inside
    ta.start(), tb.start()
    assert a_in.wait(10) and b_in.wait(10)
    first, second = (a_go, b_go) if leave_first == "a" else (b_go, a_go)
    (ta_, tb_) = (ta, tb) if leave_first == "a" else (tb, ta)
    first.set()
    ta_.join(10)
    second.set()
    tb_.join(10)
    assert inside == [(devnull.st_dev, devnull.st_ino)] * 2  # silenced while either was inside
    assert _fd2() == before


@pytest.mark.parametrize("payload, name", [
    (b"this is plain text, not audio" * 50, "notes.wav"),
    (b"RIFF\x00\x00\x00\x00WAVEjunk" * 20, "broken.wav"),
])
def test_upload_errors_name_no_server_path(served, payload, name):
    app, _ = served
    tmpdir = app.extensions["ser"]["tmpdir"]
    client = app.test_client()
    for accept in ("text/html", "application/json"):
        r = client.post("/upload", data={"file": (io.BytesIO(payload), name)}, headers={"Accept": accept})
        assert r.status_code == 400
        text = r.get_json()["error"] if accept == "application/json" else r.get_data(as_text=True)
        assert tmpdir not in text and os.path.realpath(tmpdir) not in text and "/uploads" not in text, text
        if accept == "application/json":  # (the HTML page's header names OUT, on purpose)
            assert "/tmp" not in text and (name in text or "not a recording" in text), text


def test_audio_is_read_only_under_the_committed_input_roots(tmp_path):
    from jobs.web.audio import AudioCache, AudioUnavailable, under_roots
    from ser_lib.archive import ArchiveLimits
    inside = write_call(tmp_path / "IN" / "day" / "a.wav", 8000, [[("speech", 2)]])
    outside = write_call(tmp_path / "elsewhere" / "b.wav", 8000, [[("speech", 2)]])
    (tmp_path / "IN" / "link.wav").symlink_to(outside)
    roots = [str(tmp_path / "IN")]
    assert under_roots(str(inside), roots)
    assert not under_roots(str(outside), roots)
    assert not under_roots(str(tmp_path / "IN" / ".." / "elsewhere" / "b.wav"), roots)
    assert not under_roots(str(tmp_path / "IN" / "link.wav"), roots)  # a link out of IN
    assert not under_roots("/etc/passwd", roots) and not under_roots(str(inside), [])
    assert under_roots(str(inside), ["IN"]) and not under_roots(str(inside), ["N"])  # older relative roots
    assert not under_roots(str(inside), ["."]) and not under_roots(str(inside), [".."])
    assert under_roots("s3://bucket/calls/x.wav", ["s3://bucket/calls"])
    assert not under_roots("s3://bucket/calls/../secret.wav", ["s3://bucket/calls"])
    assert not under_roots("s3://bucket/callsX/x.wav", ["s3://bucket/calls"])

    cache = AudioCache(str(tmp_path / "tmp"), ArchiveLimits())
    row = {"call_id": "0" * 16, "member": None, "audio_format": "WAV/PCM_16"}
    assert cache.playable({**row, "source_path": str(inside)}, roots).path == str(inside)
    with pytest.raises(AudioUnavailable, match="not under the input folders"):
        cache.playable({**row, "call_id": "1" * 16, "source_path": str(outside)}, roots)


class _Broken:
    """A predictor whose model call raises what no bad input raises: a bug."""

    def __init__(self, p):
        self.meta, self.labels, self.batch_size = p.meta, p.labels, p.batch_size

    def predict(self, x):
        raise ZeroDivisionError("division by zero in the model call")


def test_an_unexpected_exception_is_logged_counted_as_internal_with_its_own_exit_code(tmp_path, tiny_artifact,
                                                                                        caplog):
    from jobs import manifest
    from jobs.run_summary import exit_code, run_summary
    from ser_lib.config import JobConfig
    from ser_lib.one_recording import load_predictor
    from ser_lib.process import Task, process_task
    wav = write_call(tmp_path / "a.wav", 8000, [[("speech", 3)]])
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 20)
    broken = _Broken(load_predictor(JobConfig.load(), str(tiny_artifact)))
    with caplog.at_level(logging.ERROR, logger="ser.process"):
        (row,) = list(process_task(Task("file", str(wav), 1, 1, None), broken, JobConfig.load()))
    assert row["status"] == "failed" and row["error"].startswith("internal: ZeroDivisionError")
    (rec,) = [r for r in caplog.records if r.name == "ser.process"]
    assert str(wav) in rec.getMessage() and rec.exc_info and rec.exc_info[0] is ZeroDivisionError
    (bad_row,) = list(process_task(Task("file", str(bad), 1, 1, None), broken, JobConfig.load()))
    assert bad_row["status"] == "failed" and not bad_row["error"].startswith("internal")

    run = {"run_id": "r", "run_date": "2026-12-07", "input": "IN", "output": "OUT", "model_version": "m",
           "wall_s": 1.0, "startup_s": 0.0}
    counters = {"model_loads": 1, "model_batches": 1, "stage_s": {}}
    recs = [{c: r.get(c) for c in manifest.COLUMNS} for r in (row, bad_row)]
    summary = run_summary(recs, 0, run, counters)
    assert summary["failed"] == 2 and summary["internal"] == 1
    assert summary["failed_reasons"]["internal"] == 1
    assert summary["input"] == os.path.abspath("IN")
    assert exit_code(summary) == 3
    assert exit_code(run_summary(recs[1:], 0, run, counters)) == 1
    assert exit_code(run_summary([], 0, run, counters)) == 0


def test_one_predictor_scores_four_threads_as_one(tiny_artifact):
    """The model call itself, hammered: 4 threads, different batch sizes, one ``Predictor``
    (as ``ser serve`` shares one), with Python switching threads every microsecond so that
    their ``set_tensor``/``invoke``/``get_tensor`` would interleave on a shared interpreter."""
    import numpy as np

    from ser_lib.config import JobConfig
    from ser_lib.one_recording import load_predictor
    p = load_predictor(JobConfig.load(), str(tiny_artifact))
    assert p.runtime == "litert"
    fc = p.meta.feature_config
    rng = np.random.default_rng(5)
    xs = [rng.normal(size=(n, fc.frames_per_window, fc.n_features)).astype(np.float32) for n in (3, 7, 12, 20)]
    expect = [p.predict(x) for x in xs]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        bad = []
        start = threading.Barrier(len(xs))

        def work(i):
            start.wait()
            for _ in range(50):
                try:
                    if not np.array_equal(p.predict(xs[i]), expect[i]):
                        bad.append(i)
                except Exception as err:  # a shared interpreter also raises on resized tensors
                    bad.append((i, repr(err)))
        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert bad == []
