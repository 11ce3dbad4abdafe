"""``ser train`` and ``ser evaluate``: the training command line (imported by ``jobs/cli.py``
only when one of them is named, since it needs the ``[train]`` install)."""
from __future__ import annotations

import json
from pathlib import Path

import click

# Only click at import time: `ser train --help` must not wait for scipy, TensorFlow or Keras
# (training.config alone pulls scipy.signal through training.augment); defaults are shown
# relative to the checkout, not as this machine's absolute paths.
REPO = Path(__file__).resolve().parents[1]
CONF_SHOWN, OUT_SHOWN = "conf/train.yaml", "models/ser-cnn"


def _default_roots() -> list[Path]:
    from .corpora import default_corpora_root
    root = default_corpora_root()
    return [root] if root.is_dir() else []


def _no_roots() -> click.UsageError:
    from .corpora import default_corpora_root
    return click.UsageError(f"no corpus roots given and {default_corpora_root()} does not exist")


@click.command("train")
@click.argument("roots", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--conf", "conf_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, show_default=CONF_SHOWN, help="training configuration YAML")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, show_default=OUT_SHOWN,
              help="artifact folder to write")
@click.option("--only", type=click.Choice(["cv", "loco", "final"]), multiple=True,
              help="run only these steps of the recipe (repeatable; default: cv, loco and final; "
                   "loco: TurEV-DB left out, and EMOVO left out when present)")
@click.option("--split", "single_split", is_flag=True,
              help="train once on the fixed split of training/split.json instead of the cross-validated recipe")
@click.option("--model", "family", type=click.Choice(["cnn1d", "cnn2d"]), default=None,
              help="model family (default: `model` in the configuration)")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="maximum epochs (default: configuration)")
@click.option("--compare", is_flag=True, help="with --split: train both families on the same windows, keep the "
              "better (validation score, then serving cost) and write comparison.md")
@click.option("--force", is_flag=True, help="with --split: replace an existing artifact even if its validation "
              "score is better")
@click.option("--processes", type=click.IntRange(min=1), default=2, show_default=True,
              help="feature-extraction processes")
@click.option("--no-cache", is_flag=True, help="do not read or write the window cache (.cache/windows)")
@click.option("--no-bench", is_flag=True, help="with --split: skip the one-core windows/s measurement")
@click.option("--variant", type=click.Choice(["default", "accurate"]), default="default", show_default=True,
              help="accurate: build the accurate model's encoder head (models/ser-accurate) on the "
                   "CNN at --cnn instead of training the CNN (python -m training.encoder_head)")
@click.option("--cnn", "cnn_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="with --variant accurate: the CNN artifact whose cross-validation fold models fit the "
                   "fusion temperature  [default: models/ser-cnn]")
@click.option("--no-resume", is_flag=True, help="retrain every run, also those an interrupted earlier `ser train` "
              "already finished in --out with the same configuration (by default they are kept and re-scored)")
def cli(roots, conf_path, out, only, single_split, family, epochs, compare, force, processes, no_cache, no_bench,
        variant, cnn_dir, no_resume):
    """Train the emotion model on corpus ROOTS (default: ../shared/corpora next to the repo).

    By default this runs the cross-validated recipe of training/cv.py: 6-fold actor
    cross-validation over RAVDESS, leave-one-corpus-out on TurEV-DB, then the shipped
    artifact trained on every clip (see the model card, models/ser-cnn/README.md); with
    `ensemble_seeds` in the configuration (as shipped), all of that once per seed, the
    members combined into one model, each member trained in a process of its own.
    An interrupted run resumes: rerun the same command and the runs already finished in
    --out (same configuration, features and Keras) are scored again instead of retrained.

    With --variant accurate it builds the accurate model's encoder head instead (--out default
    models/ser-accurate): the pretrained speech encoder exported from the installed
    resemblyzer package, every clip encoded on the job's 8 kHz path and through G.711, the
    head fitted, its fusion temperature fitted on the CNN's RAVDESS cross-validation folds
    (models/ser-accurate/README.md)."""
    if variant == "accurate":
        from .encoder_head import DEFAULT_CNN, build
        roots = list(roots) or _default_roots()
        if not roots:
            raise _no_roots()
        try:
            click.echo(build(out or REPO / "models" / "ser-accurate", roots, cnn=cnn_dir or DEFAULT_CNN))
        except (ValueError, RuntimeError) as err:
            raise click.ClickException(str(err)) from err
        return
    from ser_lib.errors import ConfigError
    from .config import load_conf
    from .train import run
    conf_path, out = conf_path or REPO / CONF_SHOWN, out or REPO / OUT_SHOWN
    roots = list(roots) or _default_roots()
    if not roots:
        raise _no_roots()
    conf = load_conf(conf_path)
    if family:
        conf["model"] = family
    try:
        if not single_split:
            from .cv import run_recipe
            if epochs:
                conf["train"]["epochs"] = epochs
            run_recipe(roots, conf, out, only=list(only) or None, processes=processes, cache=not no_cache,
                       echo=click.echo, resume=not no_resume)
            return
        families = ["cnn1d", "cnn2d"] if compare else [conf["model"]]
        run(roots, conf, out, families=families, epochs=epochs, force=force, processes=processes,
            cache=not no_cache, bench=not no_bench, echo=click.echo)
    except (ValueError, RuntimeError, ConfigError) as err:
        raise click.ClickException(str(err)) from err


@click.command("evaluate")
@click.argument("roots", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--model", "model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, show_default=OUT_SHOWN, help="artifact folder to score")
@click.option("--split", "single_split", is_flag=True,
              help="score a --split artifact on its test partition instead of re-scoring the CV folds")
@click.option("--processes", type=click.IntRange(min=1), default=2, show_default=True,
              help="feature-extraction processes")
@click.option("--no-cache", is_flag=True, help="do not read or write the window cache (.cache/windows)")
@click.option("--json", "as_json", is_flag=True, help="print the full results as JSON")
@click.option("--write", is_flag=True, help="with --split: store the results in the artifact folder "
              "(artifact.json test metrics, evaluation.json, confusion.png); without: store the transfer "
              "AUCs (arousal, anger, negative) per fold, LOCO run and unseen corpus in cv.json")
def evaluate_cli(roots, model_dir, single_split, processes, no_cache, as_json, write):
    """Score a model artifact again on held-out speakers in corpus ROOTS (default:
    ../shared/corpora). By default: re-score the cross-validation fold artifacts
    (<model>/cv/fold-*) on their test actors and the leave-one-corpus-out artifact on
    TurEV-DB, and print the CV table next to the one stored in <model>/cv.json."""
    from ser_lib.errors import ArtifactError
    from .evaluate import format_speakers, format_table, summary_rows
    from .train import evaluate_artifact, json_default, write_evaluation

    model_dir = model_dir or REPO / OUT_SHOWN
    roots = list(roots) or _default_roots()
    if not roots:
        raise _no_roots()
    echo = (lambda *a, **k: None) if as_json else click.echo
    if not single_split:
        from .cv import evaluate_cv, format_cv_table, format_record
        try:
            res = evaluate_cv(model_dir, roots, processes=processes, cache=not no_cache, progress=not as_json,
                              echo=echo)
        except (ValueError, ArtifactError, FileNotFoundError) as err:
            raise click.ClickException(str(err)) from err
        if write:
            import datetime as dt

            from .cv import store_transfer, write_record
            path = Path(model_dir) / "cv.json"
            write_record(path, store_transfer(json.loads(path.read_text()), res["transfer"],
                                              dt.date.today().isoformat()))
        if as_json:
            click.echo(json.dumps(res, indent=1, default=json_default))
            return
        stored = json.loads((Path(model_dir) / "cv.json").read_text())
        click.echo("\nnow:\n" + format_cv_table(res["table"], res["loco"], res["extra_loco"]))
        click.echo("\nstored in cv.json:\n" + format_record(stored))
        return
    try:
        res = evaluate_artifact(model_dir, roots, processes=processes, cache=not no_cache,
                                progress=not as_json, echo=echo)
    except (ValueError, ArtifactError) as err:
        raise click.ClickException(str(err)) from err
    stored = json.loads((Path(model_dir) / "artifact.json").read_text()).get("metrics", {})
    written = write_evaluation(model_dir, res) if write else []
    if as_json:
        click.echo(json.dumps(res, indent=1, default=json_default))
        return
    click.echo(f"\n{res['version']} (test split; 'stored' = clip UA in artifact.json)")
    click.echo(format_table(summary_rows(res["test"], "wideband") + summary_rows(res["test_telephone"], "telephone")))
    for cond in ("test", "test_telephone"):
        then = {c: v.get("clip", {}).get("ua") for c, v in stored.get(cond, {}).items()}
        now = {c: v["clip"]["ua"] for c, v in res[cond].items()}
        click.echo(f"\n{cond}: clip UA now / stored: " + ", ".join(
            f"{c} {now[c]:.3f} / " + (f"{then[c]:.3f}" if then.get(c) is not None else "-") for c in now))
        click.echo(format_speakers(res["test_speakers"][cond]))
    if written:
        click.echo("\nwritten: " + ", ".join(map(str, written)))


if __name__ == "__main__":
    cli()
