"""The training pipeline: corpora -> split -> windows -> model -> evaluated artifact.

Steps (``ser train --split``; modules: :mod:`training.config`, :mod:`training.prepare`,
:mod:`training.fit`, :mod:`training.select`, the command line :mod:`training.cli`):

1. discover the corpora under the given roots (:func:`training.corpora.discover`) and
   print the clips found per corpus and label;
2. partition them with the published speaker-independent split
   (:func:`training.split.partition`);
3. extract speech windows (:mod:`training.dataset`): train = clean + ``augment.copies``
   augmented copies of each training clip (augmentation only here, after the split);
   val and test clean; plus the telephone-degraded test set;
4. per-feature mean/std over the TRAIN windows only;
5. fit with class weights; the learning-rate schedule is fixed (warm-up + cosine),
   and early stopping and checkpoint selection look at the VAL partition only;
6. export the artifact (:func:`ser_lib.artifact.save`) and score the test sets
   through :class:`ser_lib.runtime.Predictor` loaded from the written artifact;
7. write ``report.json``, ``confusion.png``, ``curves.png`` (and with ``--compare``
   ``comparison.md``) next to the artifact.

An existing artifact at ``--out`` is replaced only if the new model's validation
score is at least as good (or with ``--force``); otherwise the new one is left
in ``<repo>/.cache/rejected/<out name>/``. Validation scores are compared only
between artifacts trained on the same split file (same SHA-256).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ser_lib.features import level_normalize, model_input
from ser_lib.labels import EMOTIONS

from .config import REPO, recorded, stored_conf
from .corpora import Clip
from .dataset import CACHE_DIR, WindowSet, norm_stats
from .fit import fit, val_score
from .prepare import Data, partitions, prepare, split_sha256, test_windows
from .select import choose, comparison_table, promote
from .split import SPLIT_PATH

DEFAULT_OUT = REPO / "models" / "ser-cnn"


def score_tests(pred, test: WindowSet, tel: WindowSet, test_clips: Sequence[Clip]) -> dict:
    """Score the wideband and telephone test windows through ``pred`` (a
    :class:`ser_lib.runtime.Predictor`), with per-speaker scores.

    Returns:
        ``{"test", "test_telephone"`` (:func:`training.evaluate.evaluate_probs` results),
        ``"test_speakers": {"test"|"test_telephone": speaker_scores}}``.
    """
    from .evaluate import clip_speakers, evaluate_predictor, speaker_scores

    speaker_of = {c.path: c.speaker for c in test_clips}
    out: dict = {"test_speakers": {}}
    for name, ws in (("test", test), ("test_telephone", tel)):
        out[name], probs = evaluate_predictor(pred, ws)
        out["test_speakers"][name] = speaker_scores(ws, probs, clip_speakers(ws, speaker_of))
    return out


def plot_test_confusions(version: str, test: dict, tel: dict, path: Path) -> Path:
    """The report's confusion PNG: pooled wideband, pooled telephone, RAVDESS wideband (clip level)."""
    from .evaluate import plot_confusions

    return plot_confusions([(f"{version} test clip-level, wideband", test["pooled"]["clip"]["confusion"]),
                            ("test clip-level, telephone", tel["pooled"]["clip"]["confusion"]),
                            ("test RAVDESS clip-level, wideband",
                             test.get("ravdess", test["pooled"])["clip"]["confusion"])], path)


def compact_metrics(results: dict) -> dict:
    """UA/WA/macro-F1/n only (for artifact.json)."""
    return {c: {lvl: {k: round(s[k], 4) if isinstance(s[k], float) else s[k] for k in ("ua", "wa", "macro_f1", "n")}
                for lvl, s in levels.items()} for c, levels in results.items()}


def _bench_one_core(artifact_dir: Path) -> float | None:
    """windows/s of an artifact's model on one CPU thread, measured in a fresh process
    (thread limits must be set before TensorFlow starts). None if the measurement fails."""
    cmd = [sys.executable, "-m", "training.models", "--threads", "1", "--json", "--artifact", str(artifact_dir)]
    try:
        out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=True,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        return float(json.loads(out.stdout.strip().splitlines()[-1])["windows_per_s"])
    except (subprocess.SubprocessError, ValueError, KeyError, IndexError):
        return None


def train_family(family: str, data: Data, xtr, xval, conf: dict, epochs: int, stage: Path,
                 progress: bool = True, echo=print, bench: bool = True) -> dict:
    """Fit one family, write its artifact to ``stage`` and evaluate it there through ``Predictor``.

    Returns:
        the run record: ``{"family", "dir", "model_stats", "val", "test", "test_telephone",
        "history", "best_epoch", "fit_s", "windows_per_s_1core", "meta"}``.
    """
    import keras
    from ser_lib.artifact import ArtifactMeta, save
    from ser_lib.runtime import Predictor
    from .evaluate import evaluate_probs
    from .models import summary_stats

    model, history, best_epoch, fit_s = fit(family, data.train, data.val, xtr, xval, conf, epochs, progress, echo)
    stats = summary_stats(model)
    val_res = evaluate_probs(data.val, model.predict(xval, batch_size=512, verbose=0))
    version = f"{family}-{_dt.date.today():%Y.%m.%d}"
    meta = ArtifactMeta(
        version=version, labels=list(EMOTIONS), feature_config=data.fcfg, speech_config=data.scfg,
        norm_mean=conf["_norm_mean"], norm_std=conf["_norm_std"],
        metrics={"selection": {"val_score": round(val_score(val_res), 4),
                               "rule": "mean over corpora of clip-level validation UA"},
                 "val": compact_metrics(val_res)},
        training={"family": family, "seed": int(conf["seed"]), "epochs_max": epochs, "best_epoch": best_epoch,
                  "fit_seconds": round(fit_s, 1), "model": stats,
                  "conf": recorded(conf),
                  "keras": keras.__version__, **data.provenance},
    )
    if stage.exists():
        shutil.rmtree(stage)
    save(stage, model, meta)  # inference-only: no optimizer state (see ser_lib.artifact.save)
    # Score through the artifact exactly as the job loads it.
    pred = Predictor.from_path(stage, expected=data.fcfg)
    scored = score_tests(pred, data.test, data.test_tel, data.parts["test"])
    test_res, tel_res, spk = scored["test"], scored["test_telephone"], scored["test_speakers"]
    meta.metrics.update({"test": compact_metrics(test_res), "test_telephone": compact_metrics(tel_res), "test_speakers": spk})
    wps = _bench_one_core(stage) if bench else None
    meta.training["model"]["windows_per_s_1core"] = wps
    (stage / "artifact.json").write_text(meta.to_json() + "\n")
    return {"family": family, "dir": str(stage), "version": version, "model_stats": stats, "val": val_res,
            "test": test_res, "test_telephone": tel_res, "test_speakers": spk, "history": history, "best_epoch": best_epoch,
            "fit_s": fit_s, "windows_per_s_1core": wps, "val_score": val_score(val_res)}


def run(roots: Sequence[str | os.PathLike], conf: dict, out: str | os.PathLike, *, families: Sequence[str],
        epochs: int | None = None, force: bool = False, processes: int = 2, cache: bool = True,
        progress: bool = True, bench: bool = True, echo=print) -> dict:
    """The whole pipeline (module docstring). Returns the report dict written to ``report.json``."""
    import keras
    from .evaluate import format_speakers, format_table, plot_curves, summary_rows

    from ser_lib.errors import ConfigError
    from .config import AUTO_TEACHER, distillation

    if conf["train"].get("distill_teacher") == AUTO_TEACHER:
        # the auto teacher is fitted per recipe run (training/teacher.py); the single split has none,
        # so it trains on the labels alone and records that it did
        echo("train.distill_teacher: auto applies to the cross-validated recipe; --split trains on the labels alone")
        conf = {**conf, "train": {**conf["train"], "distill_teacher": None}}
    if distillation(conf)[0] is not None:  # a teacher file is written per recipe run (training/distill.py)
        raise ConfigError("train.distill_teacher is only used by the cross-validated recipe (ser train without "
                          "--split); set it to null or auto for the single-split pipeline")
    t_start = time.time()
    seed = int(conf["seed"])
    keras.utils.set_random_seed(seed)
    epochs = int(epochs if epochs is not None else conf["train"]["epochs"])
    data = prepare(roots, conf, processes=processes, cache=cache, progress=progress, echo=echo)

    # The model input is ser_lib.features.model_input: level normalisation, then these
    # statistics of the level-normalised TRAIN windows (the job's Predictor does the same).
    mean, std = norm_stats(level_normalize(data.train.x, data.fcfg))
    conf = {**conf, "_norm_mean": mean, "_norm_std": std}
    xtr = model_input(data.train.x, data.fcfg, mean, std)
    xval = model_input(data.val.x, data.fcfg, mean, std)

    out = Path(out)
    runs_dir = CACHE_DIR.parent / "runs"
    runs = []
    for fam in families:
        stage = runs_dir / f"{fam}-{seed}"
        runs.append(train_family(fam, data, xtr, xval, conf, epochs, stage, progress, echo, bench))
    chosen = choose(runs, float(conf["select"]["min_gain_for_costlier"])) if len(runs) > 1 else runs[0]
    total_s = time.time() - t_start

    rows = (summary_rows(chosen["test"], "wideband") + summary_rows(chosen["test_telephone"], "telephone"))
    table = format_table(rows)
    report = {
        "version": chosen["version"], "family": chosen["family"], "total_wall_s": round(total_s, 1),
        "selection_rule": "validation partition only: mean over corpora of clip-level UA"
                          + ("; costlier family must gain >= %.3f" % conf["select"]["min_gain_for_costlier"]
                             if len(runs) > 1 else ""),
        "table": rows,
        "runs": [{k: v for k, v in r.items() if k not in ("dir",)} for r in runs],
        "provenance": data.provenance,
        "conf": recorded(conf),
    }
    stage = Path(chosen["dir"])
    (stage / "report.json").write_text(json.dumps(report, indent=1, default=json_default) + "\n")
    plot_test_confusions(chosen["version"], chosen["test"], chosen["test_telephone"], stage / "confusion.png")
    plot_curves({r["family"]: r["history"] for r in runs}, stage / "curves.png")
    if len(runs) > 1:
        (stage / "comparison.md").write_text(
            "# Model comparison (same split, same windows)\n\n" + comparison_table(runs)
            + f"\n\nchosen: **{chosen['family']}** ({report['selection_rule']})\n")

    echo("\n" + table)
    for cond in ("test", "test_telephone"):
        echo(f"\n{cond}:\n" + format_speakers(chosen["test_speakers"][cond]))
    if len(runs) > 1:
        echo("\n" + comparison_table(runs))
    # Replace the shipped artifact only by one at least as good on validation.
    dest = promote(stage, out, chosen["val_score"], data.provenance["split_sha256"], force, echo)
    report["written_to"] = str(dest)
    echo(f"artifact {chosen['version']} written to {dest} (total {total_s / 60:.1f} min)")
    return report


def evaluate_artifact(artifact_dir: str | os.PathLike, roots: Sequence[str | os.PathLike], *, processes: int = 2,
                      cache: bool = True, progress: bool = True, echo=print) -> dict:
    """Score a written artifact again on the test partition it was evaluated on (``ser evaluate``).

    The split file, window hop and telephone seed are those stored in the artifact's
    training record, so on the same corpora this reproduces the artifact's reported test
    metrics exactly (same windows, same weights, same arithmetic).

    Args:
        artifact_dir: folder holding ``artifact.json`` + ``model.keras``.
        roots: corpus roots.

    Returns:
        ``{"version", "test", "test_telephone"`` (:func:`training.evaluate.evaluate_probs`
        results), ``"test_speakers": {"test"|"test_telephone": speaker_scores}}``.

    Raises:
        ValueError: no clips, a partition without clips, or a split file that is not the
            one the artifact was trained with (its SHA-256 differs: its test set could
            overlap what the model was trained on).
        ArtifactError: unreadable artifact.
    """
    from ser_lib.runtime import Predictor

    pred = Predictor.from_path(artifact_dir)
    meta = pred.meta
    conf = stored_conf(meta.training.get("conf"))
    split_path = Path(conf["split"]) if conf.get("split") else SPLIT_PATH
    want = meta.training.get("split_sha256")
    if want and split_sha256(split_path) != want:
        raise ValueError(f"{split_path} is not the split {meta.version} was trained with (SHA-256 differs)")
    parts, _ = partitions(roots, conf, echo)
    kw = dict(cache_dir=CACHE_DIR if cache else None, processes=processes, progress=progress)
    test, tel = test_windows(parts["test"], conf, meta.feature_config, meta.speech_config, **kw)
    return {"version": meta.version, **score_tests(pred, test, tel, parts["test"])}


def write_evaluation(artifact_dir: str | os.PathLike, res: dict) -> list[Path]:
    """Store :func:`evaluate_artifact` results in the artifact folder (``ser evaluate --write``).

    ``artifact.json``'s test metrics are replaced (UA / WA / macro-F1 / n per corpus and
    level, per-speaker scores) and stamped ``metrics.evaluated``; ``evaluation.json``
    gets the full results and ``confusion.png`` is drawn again from them. The weights
    and the training record (``report.json``, ``curves.png``) are not touched.

    Returns:
        the written paths.
    """
    from ser_lib.artifact import ArtifactMeta

    d = Path(artifact_dir)
    meta = ArtifactMeta.from_json((d / "artifact.json").read_text())
    meta.metrics.update({"test": compact_metrics(res["test"]), "test_telephone": compact_metrics(res["test_telephone"]),
                         "test_speakers": res["test_speakers"],
                         "evaluated": {"date": f"{_dt.date.today():%Y-%m-%d}", "by": "ser evaluate",
                                       "split_sha256": meta.training.get("split_sha256")}})
    (d / "artifact.json").write_text(meta.to_json() + "\n")
    (d / "evaluation.json").write_text(json.dumps(res, indent=1, default=json_default) + "\n")
    plot_test_confusions(res["version"], res["test"], res["test_telephone"], d / "confusion.png")
    return [d / "artifact.json", d / "evaluation.json", d / "confusion.png"]


def json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(type(o).__name__)
