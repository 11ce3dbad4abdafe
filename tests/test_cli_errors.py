"""How the ``ser`` commands fail and report: one line per error, documented exit codes,
the output lock, and ``ser report`` on failed calls (no Spark: OUT is written by hand)."""
from __future__ import annotations

import json
import os
import threading
import time

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from jobs.cli import cli
from tests.conftest import write_call

RUN, DATE = "20261122-testrun0", "2026-11-22"


@pytest.fixture(scope="module")
def conf(tmp_path_factory):
    """The built-in defaults (independent of what conf/job.yaml says)."""
    path = tmp_path_factory.mktemp("conf") / "job.yaml"
    path.write_text("{}\n")
    return str(path)


def _one_line_error(res, code: int, *needles: str) -> str:
    assert res.exit_code == code, res.output
    err = res.stderr.strip()
    assert "\n" not in err and "Traceback" not in res.output, res.output
    assert err.startswith("cli ") and ": error: " in err, err
    for n in needles:
        assert n in err, err
    return err


@pytest.fixture(scope="module")
def out_with_a_failed_call(tmp_path_factory, tiny_artifact, conf):
    """A committed OUT holding one ok mono call and one failed call, as the job writes them."""
    from jobs.call_tables import calls_table
    from ser_lib.process import call_id
    from ser_lib.one_recording import predict_file
    tmp = tmp_path_factory.mktemp("report")
    wav = write_call(tmp / "in" / "ok.wav", 8000, [[("speech", 3), ("silence", 2)]])
    summary = predict_file(str(wav), conf, str(tiny_artifact))
    ok = {"call_id": call_id(str(wav)), "source_path": str(wav), "member": None, "status": "ok", "error": None,
          "duration_s": summary["duration_s"], "sample_rate": 8000, "n_channels": 1, "audio_format": "WAV/PCM_16"}
    bad = {"call_id": call_id(str(tmp / "in" / "bad.wav")), "source_path": str(tmp / "in" / "bad.wav"), "member": None,
           "status": "failed", "error": "empty: file is empty (0 bytes)", "duration_s": None, "sample_rate": None,
           "n_channels": None, "audio_format": None}
    labels = [k[len("share_"):] for k in summary if k.startswith("share_")]
    table = calls_table([ok, bad], {ok["call_id"]: summary}, labels, "tiny-test-1")
    out = tmp / "out"
    part = out / "calls" / f"run_date={DATE}" / f"run_id={RUN}"
    part.mkdir(parents=True)
    pq.write_table(table, part / "part-00000.parquet")
    (out / "_runs").mkdir()
    (out / "_runs" / f"{RUN}.json").write_text(json.dumps(
        {"run_id": RUN, "run_date": DATE, "seq": 1, "attempt": "a", "state": "applied", "actions": []}))
    return out, ok, bad


def test_report_of_a_failed_call_prints_its_error(out_with_a_failed_call, tmp_path):
    out, _, bad = out_with_a_failed_call
    res = CliRunner().invoke(cli, ["report", str(out), "--call", bad["call_id"], "--png", str(tmp_path / "x.png")])
    assert res.exit_code == 0, res.output
    assert "status failed: empty: file is empty (0 bytes)" in res.stdout
    assert not (tmp_path / "x.png").exists()


def test_report_of_a_call_prints_confidences_like_predict(out_with_a_failed_call, tmp_path, tiny_artifact, conf):
    out, ok, _ = out_with_a_failed_call
    png = tmp_path / "ok.png"
    res = CliRunner().invoke(cli, ["report", str(out), "--call", ok["call_id"], "--png", str(png)])
    assert res.exit_code == 0, res.output
    assert png.stat().st_size > 0
    pred = CliRunner().invoke(cli, ["predict", ok["source_path"], "--model", str(tiny_artifact), "--conf", conf])
    timeline = [ln for ln in pred.stdout.splitlines() if ln.startswith("  ") and " s  " in ln]
    assert timeline and all(ln in res.stdout.splitlines() for ln in timeline)
    speech = [ln for ln in timeline if "non-speech" not in ln]
    assert speech and all(0 <= float(ln.split()[-1]) <= 1 for ln in speech)  # the confidence column


def test_report_lists_channel_counts_as_integers(out_with_a_failed_call):
    out, ok, bad = out_with_a_failed_call
    res = CliRunner().invoke(cli, ["report", str(out)])
    assert res.exit_code == 0, res.output
    row = next(ln for ln in res.stdout.splitlines() if ln.startswith(ok["call_id"]))
    assert row.split()[4] == "1", row                     # n_channels, not 1.0
    assert f"{bad['call_id']}  {bad['source_path']}: empty" in res.stdout


def test_timeline_png_explains_confidence_and_keeps_the_axis_label_clear(out_with_a_failed_call):
    from jobs.report import draw_timeline, find_call
    out, ok, _ = out_with_a_failed_call
    fig = draw_timeline(find_call(str(out), ok["call_id"]))
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    ax, legend = fig.axes[0], fig.legends[0]
    assert "confidence" in legend.get_title().get_text()
    label, box = ax.xaxis.label.get_window_extent(r), legend.get_window_extent(r)
    assert not label.overlaps(box), (label, box)
    assert fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1)  # not cut off


@pytest.mark.parametrize("make", ["missing", "not_an_output"])
def test_report_on_something_that_is_not_an_output_fails(tmp_path, make):
    target = tmp_path / "nowhere"
    if make == "not_an_output":
        target.mkdir()
    res = CliRunner().invoke(cli, ["report", str(target)])
    _one_line_error(res, 1, str(target))


def test_score_calls_refuses_a_truth_file_it_cannot_use(out_with_a_failed_call, tmp_path):
    out, _, _ = out_with_a_failed_call
    garbage = tmp_path / "truth.csv"
    garbage.write_bytes(b"\x00\xff not a csv \x00")
    _one_line_error(CliRunner().invoke(cli, ["score-calls", str(out), str(garbage)]), 1, "truth")
    other = tmp_path / "other.csv"  # a valid truth file of calls that are not in OUT
    other.write_text("file,channel,start_s,end_s,emotion,clip\nmono16k/call_000.wav,mono,0.0,2.0,angry,x.wav\n")
    _one_line_error(CliRunner().invoke(cli, ["score-calls", str(out), str(other)]), 1, "none of the 1 calls")


def test_predict_on_a_bad_file_is_one_line(tmp_path, tiny_artifact, conf):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"")
    res = CliRunner().invoke(cli, ["predict", str(bad), "--model", str(tiny_artifact), "--conf", conf])
    _one_line_error(res, 1, "empty: file is empty (0 bytes)")


def test_verbose_prints_the_traceback_and_keeps_the_exit_code(tmp_path, monkeypatch):
    import ser_lib.one_recording

    def boom(*a, **k):
        raise ValueError("boom\nsecond line")
    monkeypatch.setattr(ser_lib.one_recording, "predict_file", boom)
    wav = write_call(tmp_path / "a.wav", 8000, [[("speech", 1)]])
    res = CliRunner().invoke(cli, ["predict", str(wav)])
    _one_line_error(res, 70, "internal error: ValueError: boom second line", "-v")
    res = CliRunner().invoke(cli, ["-v", "predict", str(wav)])
    assert res.exit_code == 70 and "Traceback" in res.stderr and res.stderr.strip().endswith("boom second line"
                                                                                             " (ser -v prints the traceback)")


def test_usage_errors_are_one_line(tmp_path):
    _one_line_error(CliRunner().invoke(cli, ["predict", str(tmp_path / "missing.wav")]), 2, "does not exist",
                    "--help")


# ---------------------------------------------------------------- the lock
def test_a_second_run_on_the_same_output_exits_75(tmp_path, tiny_artifact, conf):
    from jobs.commit import Store
    write_call(tmp_path / "in" / "a.wav", 8000, [[("speech", 1)]])
    holder = Store(str(tmp_path / "out"))
    holder.lock(holder="run first")
    try:
        args = ["analyze", str(tmp_path / "in"), str(tmp_path / "out"), "--model", str(tiny_artifact), "--conf", conf]
        err = _one_line_error(CliRunner().invoke(cli, args), 75, "run first", "_lock", "--wait")
        assert "waited" not in err
        err = _one_line_error(CliRunner().invoke(cli, args + ["--wait", "0.3"]), 75, "waited 0.3 s")
        from jobs.analyze_calls import EXIT_LOCKED, cli_main
        assert cli_main(["--input", args[1], "--output", args[2], "--model", args[4], "--conf", conf]) == EXIT_LOCKED == 75
    finally:
        holder.unlock()


def test_wait_takes_the_lock_when_the_holder_finishes(tmp_path):
    from jobs.commit import LockBusy, Store
    first, second = Store(str(tmp_path)), Store(str(tmp_path))
    first.lock()
    with pytest.raises(LockBusy):
        second.lock()
    threading.Timer(0.5, first.unlock).start()
    t0 = time.monotonic()
    second.lock(wait_s=60)   # returns once the first run is done, long before 60 s
    assert time.monotonic() - t0 < 60
    second.unlock()


def test_predict_and_report_print_the_same_per_channel_figures(out_with_a_failed_call, tiny_artifact, conf,
                                                               tmp_path):
    """One definition of the headline (ser_lib.timeline.channel_figures) in ser predict, ser report
    --call and the report's list: per channel, never a sum over channels."""
    from jobs.report import find_call
    from ser_lib.timeline import clock
    out, ok, _ = out_with_a_failed_call
    rep = CliRunner().invoke(cli, ["report", str(out), "--call", ok["call_id"], "--png", str(tmp_path / "x.png")])
    pred = CliRunner().invoke(cli, ["predict", ok["source_path"], "--model", str(tiny_artifact), "--conf", conf])
    assert rep.exit_code == 0 and pred.exit_code == 0, (rep.output, pred.output)
    figures = [ln for ln in pred.stdout.splitlines() if ln.startswith("  mono: ")]
    assert len(figures) == 1 and figures[0] in rep.stdout.splitlines()
    call = find_call(str(out), ok["call_id"])
    speech = dict(call["channel_speech_s"])["mono"]
    assert f"speech {clock(speech)}" in figures[0] and f"mostly {dict(call['channel_dominant_emotion'])['mono']}" in figures[0]
    listing = CliRunner().invoke(cli, ["report", str(out)]).stdout
    row = next(ln for ln in listing.splitlines() if ln.startswith(ok["call_id"]))
    assert f"mono {clock(speech)}" in row and "speech_per_channel" in listing


@pytest.mark.parametrize("entry", ["spark-submit", "ser analyze"])
def test_json_makes_the_summary_the_only_stdout(entry, monkeypatch, capfd, tmp_path):
    """With --json, whatever the run writes to stdout (Python, native code, child processes
    such as Spark's JVM and workers) goes to stderr; stdout is the summary alone, for jq."""
    import subprocess as sp

    import jobs.analyze_calls as job
    summary = {"run_id": "r", "output": str(tmp_path / "out"), "processed": 1, "failed": 0, "internal": 0}

    def noisy_run(*args, **kwargs):
        print("INFO a log line on stdout")
        os.write(1, b"native write on fd 1\n")
        sp.run(["echo", "a child process's stdout"], check=True)
        return summary
    monkeypatch.setattr(job, "run", noisy_run)
    if entry == "spark-submit":
        code = job.cli_main(["--input", str(tmp_path), "--output", str(tmp_path / "out"), "--json"])
    else:
        from jobs.cli import cli
        with pytest.raises(SystemExit) as ex:
            cli.main(["analyze", str(tmp_path), str(tmp_path / "out"), "--json"], prog_name="ser")
        code = ex.value.code
    out, err = capfd.readouterr()
    assert code == 0
    assert json.loads(out) == summary, (out, err)
    for noise in ("INFO a log line on stdout", "native write on fd 1", "a child process's stdout"):
        assert noise in err and noise not in out
