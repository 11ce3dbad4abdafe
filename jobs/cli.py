"""The ``ser`` command line: ``ser analyze``, ``ser predict``, ``ser train``, ``ser make-calls``."""
from __future__ import annotations

import json
import logging
import sys

import click


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log more (INFO from the job, DEBUG from ser).")
def cli(verbose: bool) -> None:
    """Speech-emotion analytics for call-center recordings."""
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
@click.option("--master", default=None, help="Spark master URL [default: local[*]].")
def analyze(input_path, output_path, conf_path, model_path, master):
    """Analyse every recording under IN; write segments/ and calls/ Parquet under OUT.

    Exits 1 when any recording failed (they are listed in calls/ with status=failed).
    """
    from jobs.analyze_calls import run  # imports Spark only for this command
    summary = run(input_path, output_path, conf_path, master, model_path)
    click.echo(json.dumps(summary, indent=2))
    click.echo(f"segments: {summary['output']}/segments   calls: {summary['output']}/calls", err=True)
    sys.exit(1 if summary["failed"] else 0)


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--conf", "conf_path", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--model", "model_path", type=click.Path(exists=True, file_okay=False), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print the call summary and timeline as JSON.")
def predict(file, conf_path, model_path, as_json):
    """Analyse one recording locally (no Spark) and print its emotion timeline."""
    from ser_lib.predict import predict_file
    summary = predict_file(file, conf_path, model_path)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"{file}: {summary['duration_s']:.1f} s, {summary['n_channels']} channel(s), "
               f"speech {summary['speech_s']:.1f} s, dominant emotion: {summary['dominant_emotion']} "
               f"(model {summary['model_version']})")
    for e in summary["timeline"]:
        emo = e["emotion"] or "-- non-speech --"
        conf = f"{e['confidence']:.2f}" if e["confidence"] is not None else ""
        click.echo(f"  {e['channel']:>10}  {e['start_s']:8.2f}-{e['end_s']:8.2f} s  {emo:<16} {conf}")


@cli.command("make-calls")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--corpora", type=click.Path(file_okay=False), default=None,
              help="Corpus root [default: ../shared/corpora if present, else synthetic audio].")
@click.option("--calls", "n_calls", default=4, show_default=True, help="Calls per format.")
@click.option("--minutes", default=3.0, show_default=True, help="Approximate length of each call.")
@click.option("--seed", default=0, show_default=True)
def make_calls(out_dir, corpora, n_calls, minutes, seed):
    """Build call-like recordings (mono 16 kHz WAV and stereo 8 kHz mu-law WAV) with a truth file."""
    from jobs.demo_calls import build_calls
    info = build_calls(out_dir, corpora, n_calls, minutes, seed)
    click.echo(json.dumps(info, indent=2))


@cli.command("score-calls")
@click.argument("output_path", metavar="OUT")
@click.argument("truth_csv", type=click.Path(exists=True, dir_okay=False))
def score_calls_cmd(output_path, truth_csv):
    """Compare the timelines in OUT/segments with a truth.csv from ``ser make-calls``."""
    import pandas as pd

    from jobs.demo_calls import score_calls
    segments = pd.read_parquet(f"{output_path.rstrip('/')}/segments")
    click.echo(json.dumps(score_calls(segments, truth_csv), indent=2))


def _register_optional() -> None:
    try:
        from training.train import cli as train_cli
    except ImportError:  # the training extras are not installed
        return
    cli.add_command(train_cli, "train")


_register_optional()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
