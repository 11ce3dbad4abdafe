import json

import pytest
from click.testing import CliRunner

from jobs.cli import cli
from tests.conftest import write_call


def test_predict_prints_a_timeline(tmp_path, tiny_artifact):
    path = write_call(tmp_path / "c.wav", 8000, [[("speech", 3), ("silence", 3)], [("silence", 3), ("speech", 3)]],
                      subtype="ULAW")
    res = CliRunner().invoke(cli, ["predict", str(path), "--model", str(tiny_artifact), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["n_channels"] == 2 and out["sample_rate"] == 8000
    assert {e["channel"] for e in out["timeline"]} == {"agent", "customer"}
    assert out["speech_s"] > 0 and out["model_version"] == "tiny-test-1"
    res = CliRunner().invoke(cli, ["predict", str(path), "--model", str(tiny_artifact)])
    assert res.exit_code == 0 and "agent" in res.output and "non-speech" in res.output


def test_predict_reports_bad_audio(tmp_path, tiny_artifact):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"")
    res = CliRunner().invoke(cli, ["predict", str(bad), "--model", str(tiny_artifact)])
    assert res.exit_code == 1 and "empty: file is empty" in res.stderr and "Traceback" not in res.output


def test_make_calls_without_corpora_uses_synthetic_audio(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_CORPORA", str(tmp_path / "nowhere"))
    res = CliRunner().invoke(cli, ["make-calls", str(tmp_path / "calls"), "--calls", "1", "--minutes", "0.2"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["source"] == "synthetic" and len(info["files"]) == 2
    assert (tmp_path / "calls" / "truth.csv").is_file()


def test_evaluate_refuses_a_split_the_model_was_not_trained_with(tmp_path, tiny_artifact):
    # The tiny artifact records no split hash; give it one that cannot match.
    meta = json.loads((tiny_artifact / "artifact.json").read_text())
    meta.setdefault("training", {})["split_sha256"] = "0" * 64
    art = tmp_path / "art"
    art.mkdir()
    (art / "artifact.json").write_text(json.dumps(meta))
    (art / "model.keras").write_bytes((tiny_artifact / "model.keras").read_bytes())
    (tmp_path / "corpora").mkdir()
    res = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "corpora"), "--split", "--model", str(art)])
    assert res.exit_code == 1 and "is not the split" in res.output, res.output


def test_evaluate_says_when_no_clips_are_found(tmp_path, tiny_artifact):
    (tmp_path / "corpora").mkdir()
    res = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "corpora"), "--split", "--model", str(tiny_artifact)])
    assert res.exit_code == 1 and "no corpus clips found" in res.output, res.output


def test_evaluate_without_cv_folds_says_how_the_model_was_trained(tmp_path, tiny_artifact):
    (tmp_path / "corpora").mkdir()
    res = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "corpora"), "--model", str(tiny_artifact)])
    assert res.exit_code == 1 and "no cv.json" in res.output, res.output


def test_help_describes_every_option():
    for cmd in (["predict"], ["report"], ["analyze"]):
        res = CliRunner().invoke(cli, cmd + ["--help"])
        assert res.exit_code == 0, res.output
        options = [ln.split() for ln in res.output.split("Options:")[1].splitlines() if ln.strip().startswith("-")]
        undocumented = [o[0] for o in options if len([w for w in o if not w.startswith("-") and not w.isupper()
                                                      and w not in ("TEXT", "PATH", "DIRECTORY", "FILE")]) == 0]
        assert not undocumented, (cmd, undocumented)
    report = CliRunner().invoke(cli, ["report", "--help"]).output
    assert "Print this call's facts and timeline" in " ".join(report.split())


def test_every_commands_help_is_plain_portable_and_light():
    """Every option of every command has a description; no reST markup and no absolute path of
    this machine in any help; ser analyze names every table and exit code; and printing the
    training commands' help imports neither scipy nor TensorFlow (it took seconds)."""
    import subprocess
    import sys
    from pathlib import Path

    import click
    repo = str(Path(__file__).resolve().parents[1])
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        cmd = cli.get_command(ctx, name)
        missing = [p.name for p in cmd.params if isinstance(p, click.Option) and not p.help]
        assert not missing, (name, missing)
        res = CliRunner().invoke(cli, [name, "--help"])
        assert res.exit_code == 0, (name, res.output)
        assert "``" not in res.output and repo not in res.output, (name, res.output)
    analyze = " ".join(CliRunner().invoke(cli, ["analyze", "--help"]).output.split())
    for table in ("segments/", "calls/", "episodes/", "manifest/", "errors/"):
        assert table in analyze
    for code in ("0 ", "1 ", "2 ", "3 ", "70 ", "75 "):
        assert f" {code}" in analyze, code
    probe = ("import sys; from click.testing import CliRunner; from jobs.cli import cli; "
             "[CliRunner().invoke(cli, [c, '--help']) for c in ('train', 'evaluate')]; "
             "print(sorted(m for m in ('scipy', 'tensorflow', 'keras', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=repo, capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "PYTHONPATH": repo})
    assert out.stdout.strip() == "[]", out.stdout


def test_quickstart_closing_hints_name_commands_that_exist():
    """The quick start ends with what to do next: ser report and ser serve on its results, and
    ser predict; each hinted command is a real ser command whose arguments it accepts."""
    import re
    import shlex
    from pathlib import Path
    script = (Path(__file__).resolve().parents[1] / "jobs" / "quickstart.sh").read_text()
    tail = script[script.rindex('echo "Results:'):]
    hints = [shlex.split(m.replace("$DEMO", "out/demo")) for m in re.findall(r"\.venv/bin/ser ([^\"(]+)", tail)]
    assert {h[0] for h in hints} >= {"report", "serve", "predict"}, hints
    for h in hints:
        cmd = cli.get_command(None, h[0])
        cmd.make_context(h[0], h[1:], resilient_parsing=True)  # raises on unknown options / arguments
        assert [p for p in cmd.params if isinstance(p, __import__("click").Argument)], h


@pytest.mark.parametrize("args, extra, module", [
    (["analyze", "IN", "OUT"], "spark", "pyspark"),
    (["serve", "."], "web", "flask"),
    (["report", ".", "--call", "0123456789abcdef"], "report", "matplotlib"),
])
def test_a_command_whose_extra_is_missing_says_which_to_install(monkeypatch, tmp_path, args, extra, module):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))
    (tmp_path / "_runs").mkdir()
    args = [str(tmp_path) if a in (".", "OUT") else str(tmp_path / "in") if a == "IN" else a for a in args]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2 and f"pip install 'ser-calls[{extra}]'" in res.output, res.output
