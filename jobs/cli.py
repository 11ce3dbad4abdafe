"""The ``ser`` command line: ``ser analyze``, ``ser report``, ``ser predict``, ``ser train``, ``ser evaluate``, ``ser make-calls``, ``ser serve``, ``ser export-runtime``."""
from __future__ import annotations

import json
import logging
import sys

import click

from jobs.cli_errors import EXIT_FAILED, EXIT_USAGE, CliError, OneLineErrors


class _Commands(OneLineErrors):
    """ser's commands; ``train`` and ``evaluate`` live in training/ (the ``[train]`` extra:
    TensorFlow, scipy, audiomentations) and are imported only when named, so the serving
    commands start without them and a serving-only install says what to install."""

    _training = {"train": "cli", "evaluate": "evaluate_cli"}

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self._training))

    def get_command(self, ctx, name):
        if name not in self._training:
            return super().get_command(ctx, name)
        try:
            import training.cli
        except ImportError as err:
            return _needs_training_extra(name, err)
        return getattr(training.cli, self._training[name])


def _needs_training_extra(name: str, err: ImportError) -> click.Command:
    def fail(args):
        raise CliError(f"ser {name} needs the training install: pip install 'ser-calls[train]' ({err})", EXIT_USAGE)
    return click.Command(name, callback=fail, help="Needs the training install: pip install 'ser-calls[train]'.",
                         params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
                         context_settings={"ignore_unknown_options": True, "help_option_names": []})


def _require(extra: str, command: str, *modules: str) -> None:
    """Exit 2 with the install line when ``modules`` of the ``[extra]`` install are missing
    (the plain install is the executors' and ser predict's: setup.cfg)."""
    import importlib.util
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise CliError(f"ser {command} needs pip install 'ser-calls[{extra}]' (missing: {', '.join(missing)})",
                       EXIT_USAGE)


@click.group(cls=_Commands)
@click.option("-v", "--verbose", is_flag=True, help="Log more (INFO from the job, DEBUG from ser) and print "
                                                    "tracebacks of errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Speech-emotion analytics for call-center recordings.

    Errors are one line on stderr. Exit codes: 0 ok; 1 bad input (ser analyze: some
    inputs failed); 2 usage or configuration error; 3 ser analyze committed, but some
    recordings hit an unexpected error (a bug: see the log); 70 internal error; 75 another
    run holds the output root (retry later, or ser analyze --wait).
    """
    OneLineErrors.show_traceback = verbose
    OneLineErrors.where = f"{ctx.command_path} {ctx.invoked_subcommand}"
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("ser").setLevel(logging.DEBUG if verbose else logging.INFO)


@cli.command()
@click.argument("input_path", metavar="IN")
@click.argument("output_path", metavar="OUT")
@click.option("--conf", "conf_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Job configuration YAML [default: conf/job.yaml].")
@click.option("--model", "model_path", type=click.Path(exists=True, file_okay=False), default=None,
              help="Model artifact directory [default: models/ser-cnn].")
@click.option("--variant", type=click.Choice(["default", "accurate"]), default=None,
              help="default: the fast CNN; accurate: the CNN fused with a speech encoder, slower "
                   "[default: model.variant of the configuration, i.e. default].")
@click.option("--master", default=None, help="Spark master URL [default: local[*]].")
@click.option("--run-id", default=None, help="Run identity [default: YYYYMMDD-<hash of IN>, then -2, -3 for "
                                            "later runs of that date]; ids are never reused: a committed id is refused.")
@click.option("--run-date", default=None, help="Run date YYYY-MM-DD [default: today, UTC].")
@click.option("--reprocess", multiple=True, metavar="SPEC",
              help="Force re-analysis: 'all', 'failed' (inputs that failed before), a path glob (path!member for archive members), or FROM..TO "
                   "(run dates that produced the current results). Repeatable.")
@click.option("--wait", "wait_s", default=0.0, type=click.FloatRange(min=0), metavar="SECONDS",
              help="If another run holds OUT, wait up to SECONDS for it to finish [default: 0, exit 75 at once].")
@click.option("--show-failed", default=10, show_default=True, type=click.IntRange(min=0), metavar="N",
              help="Name the first N failed inputs and recordings with warnings (the summary gives a query "
                   "for all of them).")
@click.option("--json", "as_json", is_flag=True,
              help="Make the run summary (JSON) the only stdout: everything else the run writes there goes to "
                   "stderr (for jq).")
def analyze(input_path, output_path, conf_path, model_path, variant, master, run_id, run_date, reprocess, wait_s,
            show_failed, as_json):
    """Analyse new or changed recordings under IN (files and archives); commit segments/,
    calls/, episodes/, manifest/ and errors/ under OUT atomically.

    \b
    Exit codes:
      0   no input failed in this run (inputs that failed before and are unchanged are
          not retried: still_failed in the summary; --reprocess failed retries them)
      1   committed; some inputs failed as bad input (see OUT/errors)
      2   configuration or usage error; nothing written
      3   committed; some recordings failed on an unexpected error (a bug, logged with
          its traceback; counted as "internal" in the summary, "internal: ..." in OUT/errors)
      70  internal error of the job itself (ser -v prints the traceback)
      75  another run holds OUT (after --wait); retry later
    """
    _require("spark", "analyze", "pyspark")
    from jobs.analyze_calls import parse_run_date, run  # imports Spark only for this command
    from jobs.run_summary import exit_code, notice_lines
    from ser_lib.errors import SERError
    import contextlib

    from jobs.cli_errors import stdout_to_stderr
    try:
        with stdout_to_stderr() if as_json else contextlib.nullcontext():
            summary = run(input_path, output_path, conf_path, master, model_path, now=parse_run_date(run_date),
                          run_id=run_id, reprocess=list(reprocess) or None, wait_s=wait_s, show_failed=show_failed,
                          variant=variant)
    except (SERError, FileNotFoundError) as err:
        raise CliError(f"configuration error: {err}", EXIT_USAGE) from err
    click.echo(json.dumps(summary, indent=2))
    click.echo(f"segments: {summary['output']}/segments   calls: {summary['output']}/calls   "
               f"manifest: {summary['output']}/manifest   summary: {summary['output']}/_runs/{summary['run_id']}.json",
               err=True)
    for line in notice_lines(summary):
        click.echo(line, err=True)
    sys.exit(exit_code(summary))


@cli.command()
@click.argument("output_path", metavar="OUT")
@click.option("--call", "call_id", default=None,
              help="Print this call's facts and timeline and its emotion episodes, and draw both as a PNG.")
@click.option("--png", "png_path", default=None, help="PNG path [default: OUT/_reports/<call_id>.png].")
def report(output_path, call_id, png_path):
    """Print per-call summaries of OUT; with --call, one call's facts, timeline and episodes (and a PNG).

    Exits 1 when OUT is not an output of ser analyze or the call is not in it."""
    import pandas as pd

    from jobs.report import (arousal_lines, as_float, call_episodes, call_summaries, check_output, episode_lines,
                             find_call, render_timeline, timeline_lines)
    check_output(output_path)
    if call_id is None:
        s = call_summaries(output_path)
        if s.empty:
            click.echo("no committed calls")
            return
        with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
            click.echo(s.drop(columns=["error", "warnings"], errors="ignore").to_string(index=False))
        failed = s[s["status"] == "failed"]
        if len(failed):
            click.echo(f"\n{len(failed)} failed:")
            for r in failed.itertuples():
                click.echo(f"  {r.call_id}  {r.source}: {r.error}")
        warned = s[s["warnings"].notna()] if "warnings" in s else s.iloc[:0]
        if len(warned):
            click.echo(f"\n{len(warned)} with warnings:")
            for r in warned.itertuples():
                click.echo(f"  {r.call_id}  {r.source}: {r.warnings}")
        return
    _require("report", "report --call", "matplotlib")  # the timeline PNG
    try:
        call = find_call(output_path, call_id)
    except KeyError as err:
        raise CliError(str(err.args[0])) from err
    click.echo(f"{call['call_id']}  {call['source_path']}{'!' + call['member'] if isinstance(call['member'], str) else ''}")
    if call["status"] != "ok":
        click.echo(f"  status {call['status']}: {call['error']} (run {call['run_id']}); no timeline to draw")
        return
    from ser_lib.labels import NEGATIVE_EMOTIONS
    from ser_lib.timeline import channel_lines, clock
    click.echo(f"  status {call['status']}, {clock(as_float(call['duration_s']))} ({as_float(call['duration_s']):.1f} s) "
               f"(model {call['model_version']}, run {call['run_id']})")
    for line in channel_lines(call["timeline"], as_float(call["duration_s"]), NEGATIVE_EMOTIONS,
                              [k[len("share_"):] for k in call.index if k.startswith("share_")]):
        click.echo(line)
    for line in arousal_lines(call):
        click.echo(line)
    if isinstance(call.get("warnings"), str):
        click.echo(f"  warnings: {call['warnings']}")
    for line in timeline_lines(call["timeline"]):
        click.echo(line)
    episodes = call_episodes(output_path, call)
    click.echo(f"episodes ({len(episodes)}):")
    for line in episode_lines(episodes):
        click.echo(line)
    path = render_timeline(call, png_path or f"{output_path.rstrip('/')}/_reports/{call_id}.png", episodes)
    click.echo(f"timeline: {path}")


@cli.command()
@click.argument("output_path", metavar="OUT", type=click.Path(exists=True, file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 exposes the results to the network (no authentication).")
@click.option("--port", default=8050, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port to listen on; 0 picks a free one (the address is printed).")
@click.option("--model", "model_path", type=click.Path(exists=True, file_okay=False), default=None,
              help="Model artifact for uploads [default: models/ser-cnn].")
@click.option("--variant", type=click.Choice(["default", "accurate"]), default=None,
              help="Model for uploads. default: the fast CNN; accurate: the CNN fused with a speech encoder, "
                   "slower [default: model.variant of the configuration, i.e. default].")
@click.option("--conf", "conf_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Job configuration YAML for uploads and archive limits [default: conf/job.yaml].")
@click.option("--max-upload-mb", default=200.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Largest upload accepted, MB.")
@click.option("--max-concurrent", default=2, show_default=True, type=click.IntRange(min=1),
              help="Uploads scored at the same time; more are told to retry.")
@click.option("--keep-uploads", type=click.Path(file_okay=False), default=None,
              help="Keep uploaded files in this directory [default: delete each after its answer].")
def serve(output_path, host, port, model_path, variant, conf_path, max_upload_mb, max_concurrent, keep_uploads):
    """Browse OUT in a web browser: calls, each call's timeline with its audio, runs,
    uploads scored like ser predict, and a JSON API. Read-only on OUT."""
    _require("web", "serve", "flask", "waitress", "duckdb", "plotly")
    from jobs.web.server import serve as run_server
    try:  # OUT not a results root: exit 1; bad --conf / --model: 2 (jobs.cli_errors)
        run_server(output_path, host, port, model_path, conf_path, max_upload_mb, max_concurrent, keep_uploads,
                   echo=click.echo, variant=variant)
    except OSError as err:
        raise CliError(f"cannot listen on {host}:{port}: {err.strerror or err}", EXIT_USAGE) from err


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--conf", "conf_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Job configuration YAML: windows, speech rule, channel names [default: conf/job.yaml].")
@click.option("--model", "model_path", type=click.Path(exists=True, file_okay=False), default=None,
              help="Model artifact directory [default: models/ser-cnn].")
@click.option("--variant", type=click.Choice(["default", "accurate"]), default=None,
              help="default: the fast CNN; accurate: the CNN fused with a speech encoder, slower "
                   "[default: model.variant of the configuration, i.e. default].")
@click.option("--json", "as_json", is_flag=True, help="Print the call summary and timeline as JSON.")
def predict(file, conf_path, model_path, variant, as_json):
    """Analyse one recording locally (no Spark) and print its emotion timeline.

    Exits 1 with the reason on one line when the recording cannot be analysed."""
    from jobs.report import arousal_lines, timeline_lines
    from ser_lib.one_recording import predict_file
    summary = predict_file(file, conf_path, model_path, variant)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    from ser_lib.labels import NEGATIVE_EMOTIONS
    from ser_lib.timeline import channel_lines, clock
    click.echo(f"{file}: {clock(summary['duration_s'])} ({summary['duration_s']:.1f} s), {summary['n_channels']} "
               f"channel(s) (model {summary['model_version']})")
    for line in channel_lines(summary.get("timeline"), summary["duration_s"], NEGATIVE_EMOTIONS,
                              [k[len("share_"):] for k in summary if k.startswith("share_")]):
        click.echo(line)
    for line in arousal_lines(summary):
        click.echo(line)
    if summary.get("warnings"):
        click.echo(f"  warnings: {summary['warnings']}")
    for line in timeline_lines(summary["timeline"]):
        click.echo(line)


@cli.command("make-calls")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--corpora", type=click.Path(file_okay=False), default=None,
              help="Corpus root [default: ../shared/corpora if present, else synthetic audio].")
@click.option("--calls", "n_calls", default=4, show_default=True, help="Calls per format.")
@click.option("--minutes", default=3.0, show_default=True, help="Approximate length of each call.")
@click.option("--seed", default=0, show_default=True, help="Random seed: the same seed writes the same calls.")
def make_calls(out_dir, corpora, n_calls, minutes, seed):
    """Build call-like recordings (mono 16 kHz WAV and stereo 8 kHz mu-law WAV) with a truth file."""
    from jobs.demo_calls import build_calls
    info = build_calls(out_dir, corpora, n_calls, minutes, seed)
    click.echo(json.dumps(info, indent=2))


@cli.command("score-calls")
@click.argument("output_path", metavar="OUT")
@click.argument("truth_csv", type=click.Path(exists=True, dir_okay=False))
def score_calls_cmd(output_path, truth_csv):
    """Compare the timelines in OUT/segments with a truth.csv written by 'ser make-calls'."""
    from jobs.demo_calls import score_calls
    from jobs.report import check_output, read_table, read_truth
    check_output(output_path)
    truth = read_truth(truth_csv)
    segments = read_table(output_path, "segments",  # only what the scoring reads, not the probabilities
                          columns=["source_path", "channel", "start_s", "end_s", "emotion_smoothed", "emotion"])
    scores = score_calls(segments, truth_csv) if len(segments) else {"truth_speech_s": 0}
    if not scores["truth_speech_s"]:
        raise CliError(f"none of the {truth['file'].nunique()} calls of {truth_csv} is in {output_path}/segments "
                       "(was OUT produced from the calls next to this truth file?)", EXIT_FAILED)
    click.echo(json.dumps(scores, indent=2))


@cli.command("export-runtime")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False), metavar="MODEL_DIR")
def export_runtime_cmd(model_dir):
    """Add model.tflite (the model for the LiteRT runtime, used by ser analyze, predict and
    serve without TensorFlow) to an artifact from its model.keras. Needs the training install."""
    from ser_lib.artifact import export_runtime
    from ser_lib.errors import ArtifactError
    try:
        click.echo(export_runtime(model_dir))
    except ArtifactError as err:
        raise CliError(str(err), EXIT_USAGE) from err
    except ImportError as err:
        raise CliError(f"ser export-runtime needs TensorFlow: pip install 'ser-calls[train]' ({err})",
                       EXIT_USAGE) from err


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
