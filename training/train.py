"""The training pipeline: corpora -> split -> windows -> model -> evaluated artifact.

Steps (``ser train`` / ``python -m training.train``):

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
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import click
import numpy as np

from ser_lib.features import FeatureConfig, level_normalize, model_input
from ser_lib.labels import EMOTIONS
from ser_lib.speech import SpeechConfig

from .augment import AugmentConfig
from .config import DEFAULT_CONF, DEFAULTS, REPO, load_conf, stored_conf  # noqa: F401  (DEFAULTS: public API)
from .corpora import Clip, default_corpora_root, discover, summarize
from .dataset import CACHE_DIR, WindowSet, build_windows, class_weights, norm_stats
from .split import SPLIT_PATH, check_disjoint, load_split, partition

DEFAULT_OUT = REPO / "models" / "ser-cnn"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Data:
    """Everything extracted for one training run."""

    parts: dict[str, list[Clip]]
    train: WindowSet
    val: WindowSet
    test: WindowSet
    test_tel: WindowSet
    fcfg: FeatureConfig
    scfg: SpeechConfig
    provenance: dict


def prepare(roots: Sequence[str | os.PathLike], conf: dict, *, processes: int = 2, cache: bool = True,
            progress: bool = True, echo=print) -> Data:
    """Discover, split and extract the windows of a run (steps 1-3 of the module docstring).

    Raises:
        ValueError: no clips found, a clip outside the split, a partition without
            clips, or a split that is not speaker-disjoint.
    """
    parts, found = _partitions(roots, conf, echo)
    split_path = Path(conf["split"]) if conf.get("split") else SPLIT_PATH
    fcfg, scfg = FeatureConfig(), SpeechConfig()
    seed, hop = int(conf["seed"]), float(conf["hop_s"])
    aug_conf = dict(conf["augment"])
    copies = int(aug_conf.pop("copies", 0))
    aug = AugmentConfig.from_dict(aug_conf)
    kw = dict(cache_dir=CACHE_DIR if cache else None, processes=processes, progress=progress)
    t0 = time.time()
    train = build_windows(parts["train"], fcfg, scfg, hop, ["clean"] + [f"aug{k}" for k in range(copies)],
                          aug, seed, desc="train", **kw)
    val = build_windows(parts["val"], fcfg, scfg, hop, desc="val", **kw)
    test, tel = _test_windows(parts["test"], conf, fcfg, scfg, **kw)
    extract_s = time.time() - t0
    for name, ws in (("train", train), ("val", val), ("test", test), ("test_telephone", tel)):
        echo(f"{name}: {len(ws)} speech windows from {ws.n_clips} clips "
             f"({ws.n_fallback} clips without a speech window kept their loudest)")

    summ = summarize(found.clips).reset_index().to_dict(orient="records")
    provenance = {
        "corpora_roots": [str(Path(r).resolve()) for r in roots],
        "corpora": {r["corpus"]: {k: int(v) for k, v in r.items() if k != "corpus"} for r in summ},
        "skipped_files": found.skipped,
        "split_file": str(split_path), "split_sha256": _sha256(split_path),
        "partitions": {p: {c: sum(1 for x in cl if x.corpus == c) for c in sorted({x.corpus for x in cl})}
                       for p, cl in parts.items()},
        "windows": {n: {"windows": len(w), "clips": w.n_clips, "fallback_clips": w.n_fallback}
                    for n, w in (("train", train), ("val", val), ("test", test), ("test_telephone", tel))},
        "hop_s": hop, "augment": {"copies": copies, **aug.to_dict()},
        "all_silent_clip_rule": "a clip with no speech window keeps its single loudest window (max mean rms_db)",
        "feature_extraction_s": round(extract_s, 1),
    }
    return Data(parts, train, val, test, tel, fcfg, scfg, provenance)


def _partitions(roots: Sequence[str | os.PathLike], conf: dict, echo=print):
    """Discover the corpora under ``roots`` and partition them with the configured split
    (steps 1-2), printing what was found.

    Returns:
        ``(partition name -> clips, the discovery's LoadResult)``.

    Raises:
        ValueError: as :func:`prepare`.
    """
    found = discover(roots)
    if not found.clips:
        raise ValueError(f"no corpus clips found under {', '.join(map(str, roots))}")
    table = summarize(found.clips)
    echo("corpora found: " + ", ".join(sorted({c.corpus for c in found.clips})))
    echo("clips per label:\n" + table.to_string())
    if found.skipped:
        echo("skipped files: " + ", ".join(f"{k} {v}" for k, v in found.skipped.items()))

    split_path = Path(conf["split"]) if conf.get("split") else SPLIT_PATH
    split = load_split(split_path)
    parts = partition(found.clips, split)
    check_disjoint(parts, split, include_train_val=True)
    for name, clips in parts.items():
        if not clips:
            raise ValueError(f"the {name} partition has no clips")
        per = {c: sum(1 for x in clips if x.corpus == c) for c in sorted({x.corpus for x in clips})}
        echo(f"{name}: {len(clips)} clips " + str(per))
    return parts, found


def _test_windows(clips: Sequence[Clip], conf: dict, fcfg: FeatureConfig, scfg: SpeechConfig,
                  **kw) -> tuple[WindowSet, WindowSet]:
    """The wideband and the telephone-degraded test windows (the latter seeded by
    ``telephone_test_seed``, so every run degrades every test clip the same way)."""
    hop = float(conf["hop_s"])
    test = build_windows(clips, fcfg, scfg, hop, desc="test", **kw)
    tel = build_windows(clips, fcfg, scfg, hop, ["telephone"], seed=int(conf["telephone_test_seed"]),
                        desc="test_telephone", **kw)
    return test, tel


def _score_tests(pred, test: WindowSet, tel: WindowSet, test_clips: Sequence[Clip]) -> dict:
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


def _plot_test_confusions(version: str, test: dict, tel: dict, path: Path) -> Path:
    """The report's confusion PNG: pooled wideband, pooled telephone, RAVDESS wideband (clip level)."""
    from .evaluate import plot_confusions

    return plot_confusions([(f"{version} test clip-level, wideband", test["pooled"]["clip"]["confusion"]),
                            ("test clip-level, telephone", tel["pooled"]["clip"]["confusion"]),
                            ("test RAVDESS clip-level, wideband",
                             test.get("ravdess", test["pooled"])["clip"]["confusion"])], path)


def _val_score(results: dict) -> float:
    """Mean over corpora of clip-level UA (the selection score)."""
    per = [v["clip"]["ua"] for k, v in results.items() if k != "pooled"]
    return float(np.mean(per)) if per else results["pooled"]["clip"]["ua"]


def sample_weights(ws: WindowSet, rule, n_cls: int = len(EMOTIONS)) -> np.ndarray:
    """Per-window training weights.

    Args:
        ws: the training windows.
        rule: ``"corpus_class"`` -- every (corpus, class) group present gets the same total
            weight (corpora contribute the labels they have, and a big corpus does not drown
            a small one); ``True`` / ``"class"`` -- balanced class weights
            (:func:`training.dataset.class_weights`); ``False`` -- all 1.

    Returns:
        ``float32 (len(ws),)``, mean 1 over the windows.
    """
    if rule == "corpus_class":
        groups = np.char.add(np.char.add(ws.corpus.astype(str), "|"), ws.y.astype(str))
        _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
        w = len(ws) / (len(counts) * counts[inverse])
        return w.astype(np.float32)
    if rule in (True, "class"):
        cw = class_weights(ws.y, n_cls)
        return np.array([cw[c] for c in range(n_cls)], dtype=np.float32)[ws.y]
    return np.ones(len(ws), dtype=np.float32)


def fit(family: str, train_ws: WindowSet, val_ws: WindowSet | None, xtr: np.ndarray, xval: np.ndarray | None,
        conf: dict, epochs: int, progress: bool = True, echo=print):
    """Train one model family on normalised windows, selecting the epoch on VAL.

    Args:
        family: ``"cnn1d"`` or ``"cnn2d"``.
        train_ws, val_ws: the training / validation windows (labels, clips, corpora);
            ``val_ws = None`` trains exactly ``epochs`` epochs and keeps the last weights
            (the final model of the cross-validated recipe, which has no data left over).
        xtr, xval: model inputs of those windows (:func:`ser_lib.features.model_input`), float32.
        epochs: maximum epochs.

    Returns:
        ``(model with the best validation weights, history dict, best epoch (1-based), fit seconds)``.
    """
    import keras
    from .evaluate import evaluate_probs
    from .models import build_model

    tc = conf["train"]
    seed = int(conf["seed"])
    keras.utils.set_random_seed(seed)
    n_cls = len(EMOTIONS)
    model = build_model(family, xtr.shape[1:], n_cls, **conf["models"].get(family, {}))
    bs = int(tc["batch_size"])
    steps = int(np.ceil(len(xtr) / bs))
    warm = int(tc.get("warmup_epochs", 0)) * steps
    lr = float(tc["learning_rate"])
    sched = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=lr / 10 if warm else lr, decay_steps=max(1, epochs * steps - warm), alpha=0.0,
        warmup_target=lr if warm else None, warmup_steps=warm)
    model.compile(optimizer=keras.optimizers.AdamW(sched, weight_decay=float(tc["weight_decay"])),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=float(tc["label_smoothing"])),
                  metrics=["accuracy"])
    y_onehot = np.eye(n_cls, dtype=np.float32)[train_ws.y]
    sample_w = sample_weights(train_ws, tc.get("class_weights", True), n_cls)
    batches = _make_batches(xtr, y_onehot, sample_w, bs, tc, seed)

    history: dict[str, list] = {"loss": [], "accuracy": [], "val_loss": [], "val_window_ua": [],
                                "val_clip_ua": [], "val_score": [], "val_score_smoothed": [], "lr": []}
    # Checkpoint selection and early stopping use the validation score averaged over
    # `smooth` consecutive epochs (centred): with two RAVDESS validation actors the
    # per-epoch score jumps by +-0.05, and picking its single best epoch picks noise.
    smooth = max(1, int(conf.get("select", {}).get("smooth_epochs", 3)))
    # select.checkpoint: "last" keeps the weights at the end of the cosine schedule (no early
    # stopping; validation is logged); "best_smoothed" picks the epoch by validation score.
    last_epoch = conf.get("select", {}).get("checkpoint", "best_smoothed") == "last"
    half = smooth // 2
    recent: list[tuple[int, list]] = []  # (epoch, weights) of the last `half + 1` epochs
    best = {"score": -1.0, "epoch": 0, "weights": None}
    wait = 0
    t0 = time.time()

    def consider(center: int) -> bool:
        lo, hi = max(0, center - 1 - half), min(len(history["val_score"]), center + half)
        sm = float(np.mean(history["val_score"][lo:hi]))
        history["val_score_smoothed"].append(sm)
        if sm > best["score"] + 1e-9:
            best.update(score=sm, epoch=center, weights=next(w for e, w in recent if e == center))
            return True
        return False

    if val_ws is None:
        h = model.fit(batches, epochs=epochs, verbose=2 if progress else 0, shuffle=False)
        history["loss"], history["accuracy"] = list(map(float, h.history["loss"])), list(map(float, h.history["accuracy"]))
        return model, history, epochs, time.time() - t0
    yval_onehot = np.eye(n_cls, dtype=np.float32)[val_ws.y]
    for epoch in range(1, epochs + 1):
        h = model.fit(batches, epochs=1, verbose=2 if progress else 0, shuffle=False)
        probs = model.predict(xval, batch_size=512, verbose=0)
        res = evaluate_probs(val_ws, probs, n_cls)
        vloss = float(keras.losses.CategoricalCrossentropy()(yval_onehot, probs))
        score = _val_score(res)
        history["loss"].append(float(h.history["loss"][-1]))
        history["accuracy"].append(float(h.history["accuracy"][-1]))
        history["val_loss"].append(vloss)
        history["val_window_ua"].append(res["pooled"]["window"]["ua"])
        history["val_clip_ua"].append(res["pooled"]["clip"]["ua"])
        history["val_score"].append(score)
        history["lr"].append(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
        recent = (recent + [(epoch, model.get_weights())])[-(half + 1):]
        improved = consider(epoch - half) if epoch - half >= 1 else False
        wait = 0 if improved else wait + (epoch - half >= 1)
        per = " ".join(f"{k}={v['clip']['ua']:.3f}" for k, v in res.items() if k != "pooled")
        echo(f"[{family}] epoch {epoch}/{epochs} loss={history['loss'][-1]:.3f} val_loss={vloss:.3f} "
             f"val clip UA {per} score={score:.3f}{' (best smoothed: epoch %d)' % best['epoch'] if improved else ''}"
             f" ({time.time() - t0:.0f}s)")
        if last_epoch:
            continue  # the schedule's end is the model: validation is only watched
        if wait >= int(tc["patience"]):
            echo(f"[{family}] early stop: no better smoothed validation score for {wait} epochs")
            break
    if last_epoch:
        return model, history, epochs, time.time() - t0
    # The last `half` epochs have no full window after them; score them on what exists.
    for center in range(max(1, len(history["val_score"]) - half + 1), len(history["val_score"]) + 1):
        consider(center)
    model.set_weights(best["weights"])
    return model, history, best["epoch"], time.time() - t0


def _make_batches(x: np.ndarray, y: np.ndarray, w: np.ndarray, batch_size: int, tc: dict, seed: int):
    """A shuffling ``keras.utils.PyDataset`` with feature-space masking and optional mixup."""
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(len(x))

        def __len__(self):
            return int(np.ceil(len(x) / batch_size))

        def on_epoch_end(self):
            self.order = self.rng.permutation(len(x))

        def __getitem__(self, i):
            idx = np.sort(self.order[i * batch_size:(i + 1) * batch_size])
            xb, yb, wb = x[idx].copy(), y[idx].copy(), w[idx].copy()
            n, frames, feats = xb.shape
            rng = self.rng
            for _ in range(int(tc.get("time_masks", 0))):
                width = rng.integers(0, int(tc["time_mask_frames"]) + 1, n)
                start = rng.integers(0, frames, n)
                t = np.arange(frames)
                xb[(t[None, :] >= start[:, None]) & (t[None, :] < (start + width)[:, None])] = 0.0
            for _ in range(int(tc.get("feature_masks", 0))):
                width = rng.integers(0, int(tc["feature_mask_width"]) + 1, n)
                start = rng.integers(0, feats, n)
                f = np.arange(feats)
                m = (f[None, :] >= start[:, None]) & (f[None, :] < (start + width)[:, None])
                xb.transpose(0, 2, 1)[m] = 0.0
            alpha = float(tc.get("mixup_alpha", 0.0))
            if alpha > 0:
                lam = rng.beta(alpha, alpha, n).astype(np.float32)
                lam = np.maximum(lam, 1 - lam)
                perm = rng.permutation(n)
                xb = lam[:, None, None] * xb + (1 - lam[:, None, None]) * xb[perm]
                yb = lam[:, None] * yb + (1 - lam[:, None]) * yb[perm]
                wb = lam * wb + (1 - lam) * wb[perm]
            return xb, yb, wb

    return Batches()


def _compact(results: dict) -> dict:
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
        metrics={"selection": {"val_score": round(_val_score(val_res), 4),
                               "rule": "mean over corpora of clip-level validation UA"},
                 "val": _compact(val_res)},
        training={"family": family, "seed": int(conf["seed"]), "epochs_max": epochs, "best_epoch": best_epoch,
                  "fit_seconds": round(fit_s, 1), "model": stats,
                  "conf": {k: v for k, v in conf.items() if not k.startswith("_")},
                  "keras": keras.__version__, **data.provenance},
    )
    if stage.exists():
        shutil.rmtree(stage)
    save(stage, model, meta)  # inference-only: no optimizer state (see ser_lib.artifact.save)
    # Score through the artifact exactly as the job loads it.
    pred = Predictor.from_path(stage, expected=data.fcfg)
    scored = _score_tests(pred, data.test, data.test_tel, data.parts["test"])
    test_res, tel_res, spk = scored["test"], scored["test_telephone"], scored["test_speakers"]
    meta.metrics.update({"test": _compact(test_res), "test_telephone": _compact(tel_res), "test_speakers": spk})
    wps = _bench_one_core(stage) if bench else None
    meta.training["model"]["windows_per_s_1core"] = wps
    (stage / "artifact.json").write_text(meta.to_json() + "\n")
    return {"family": family, "dir": str(stage), "version": version, "model_stats": stats, "val": val_res,
            "test": test_res, "test_telephone": tel_res, "test_speakers": spk, "history": history, "best_epoch": best_epoch,
            "fit_s": fit_s, "windows_per_s_1core": wps, "val_score": _val_score(val_res)}


def _comparison_table(runs: Sequence[dict]) -> str:
    """Markdown table of the families trained on the same windows."""
    def ua(res: dict, corpus: str, level: str = "clip") -> str:
        s = res.get(corpus, {}).get(level)
        return f"{s['ua']:.3f}" if s else "-"

    lines = ["| model | params | MFLOPs/window | windows/s (1 core) | val score | best epoch | fit s "
             "| test RAVDESS clip UA | test RAVDESS window UA | test pooled clip UA "
             "| telephone RAVDESS clip UA | telephone pooled clip UA |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        wps = r["windows_per_s_1core"]
        lines.append(
            f"| {r['family']} | {r['model_stats']['params']:,} | {r['model_stats']['flops'] / 1e6:.2f} "
            f"| {wps:.0f} | " if wps else f"| {r['family']} | {r['model_stats']['params']:,} "
            f"| {r['model_stats']['flops'] / 1e6:.2f} | - | ")
        lines[-1] += (f"{r['val_score']:.3f} | {r['best_epoch']} | {r['fit_s']:.0f} "
                      f"| {ua(r['test'], 'ravdess')} | {ua(r['test'], 'ravdess', 'window')} "
                      f"| {ua(r['test'], 'pooled')} | {ua(r['test_telephone'], 'ravdess')} "
                      f"| {ua(r['test_telephone'], 'pooled')} |")
    return "\n".join(lines)


def _choose(runs: Sequence[dict], min_gain: float) -> dict:
    """Best validation score; a costlier (more FLOPs) model must beat the cheapest by ``min_gain``."""
    cheapest = min(runs, key=lambda r: r["model_stats"]["flops"])
    best = max(runs, key=lambda r: r["val_score"])
    return best if best is cheapest or best["val_score"] >= cheapest["val_score"] + min_gain else cheapest


def _existing_score(out: Path, split_sha: str) -> float | None:
    try:
        meta = json.loads((out / "artifact.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("training", {}).get("split_sha256") != split_sha:
        return None  # not comparable: another split
    return meta.get("metrics", {}).get("selection", {}).get("val_score")


def run(roots: Sequence[str | os.PathLike], conf: dict, out: str | os.PathLike, *, families: Sequence[str],
        epochs: int | None = None, force: bool = False, processes: int = 2, cache: bool = True,
        progress: bool = True, bench: bool = True, echo=print) -> dict:
    """The whole pipeline (module docstring). Returns the report dict written to ``report.json``."""
    import keras
    from .evaluate import format_speakers, format_table, plot_curves, summary_rows

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
    chosen = _choose(runs, float(conf["select"]["min_gain_for_costlier"])) if len(runs) > 1 else runs[0]
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
        "conf": {k: v for k, v in conf.items() if not k.startswith("_")},
    }
    stage = Path(chosen["dir"])
    (stage / "report.json").write_text(json.dumps(report, indent=1, default=_json_default) + "\n")
    _plot_test_confusions(chosen["version"], chosen["test"], chosen["test_telephone"], stage / "confusion.png")
    plot_curves({r["family"]: r["history"] for r in runs}, stage / "curves.png")
    if len(runs) > 1:
        (stage / "comparison.md").write_text(
            "# Model comparison (same split, same windows)\n\n" + _comparison_table(runs)
            + f"\n\nchosen: **{chosen['family']}** ({report['selection_rule']})\n")

    echo("\n" + table)
    for cond in ("test", "test_telephone"):
        echo(f"\n{cond}:\n" + format_speakers(chosen["test_speakers"][cond]))
    if len(runs) > 1:
        echo("\n" + _comparison_table(runs))
    # Replace the shipped artifact only by one at least as good on validation.
    old = _existing_score(out, data.provenance["split_sha256"])
    if old is not None and not force and chosen["val_score"] < old:
        dest = CACHE_DIR.parent / "rejected" / out.name  # gitignored, never shipped by accident
        echo(f"existing artifact {out} has a better validation score ({old:.4f} > {chosen['val_score']:.4f}); "
             f"kept it, new model written to {dest} (use --force to replace)")
    else:
        dest = out
    dest.mkdir(parents=True, exist_ok=True)
    for f in stage.iterdir():
        if f.is_file():
            shutil.copy2(f, dest / f.name)
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
    if want and _sha256(split_path) != want:
        raise ValueError(f"{split_path} is not the split {meta.version} was trained with (SHA-256 differs)")
    parts, _ = _partitions(roots, conf, echo)
    kw = dict(cache_dir=CACHE_DIR if cache else None, processes=processes, progress=progress)
    test, tel = _test_windows(parts["test"], conf, meta.feature_config, meta.speech_config, **kw)
    return {"version": meta.version, **_score_tests(pred, test, tel, parts["test"])}


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
    meta.metrics.update({"test": _compact(res["test"]), "test_telephone": _compact(res["test_telephone"]),
                         "test_speakers": res["test_speakers"],
                         "evaluated": {"date": f"{_dt.date.today():%Y-%m-%d}", "by": "ser evaluate",
                                       "split_sha256": meta.training.get("split_sha256")}})
    (d / "artifact.json").write_text(meta.to_json() + "\n")
    (d / "evaluation.json").write_text(json.dumps(res, indent=1, default=_json_default) + "\n")
    _plot_test_confusions(res["version"], res["test"], res["test_telephone"], d / "confusion.png")
    return [d / "artifact.json", d / "evaluation.json", d / "confusion.png"]


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(type(o).__name__)


def _default_roots() -> list[Path]:
    root = default_corpora_root()
    return [root] if root.is_dir() else []


@click.command("train")
@click.argument("roots", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--conf", "conf_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=DEFAULT_CONF, show_default=True, help="training configuration YAML")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT, show_default=True,
              help="artifact folder to write")
@click.option("--only", type=click.Choice(["cv", "loco", "final"]), multiple=True,
              help="run only these steps of the recipe (repeatable; default: cv, loco and final)")
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
def cli(roots, conf_path, out, only, single_split, family, epochs, compare, force, processes, no_cache, no_bench):
    """Train the emotion model on corpus ROOTS (default: ../shared/corpora next to the repo).

    By default this runs the cross-validated recipe of training/cv.py: 6-fold actor
    cross-validation over RAVDESS, leave-one-corpus-out on TurEV-DB, then the shipped
    artifact trained on every clip (see the model card, models/ser-cnn/README.md)."""
    roots = list(roots) or _default_roots()
    if not roots:
        raise click.UsageError(f"no corpus roots given and {default_corpora_root()} does not exist")
    conf = load_conf(conf_path)
    if family:
        conf["model"] = family
    try:
        if not single_split:
            from .cv import run_recipe
            if epochs:
                conf["train"]["epochs"] = epochs
            run_recipe(roots, conf, out, only=list(only) or None, processes=processes, cache=not no_cache,
                       echo=click.echo)
            return
        families = ["cnn1d", "cnn2d"] if compare else [conf["model"]]
        run(roots, conf, out, families=families, epochs=epochs, force=force, processes=processes,
            cache=not no_cache, bench=not no_bench, echo=click.echo)
    except ValueError as err:
        raise click.ClickException(str(err)) from err


@click.command("evaluate")
@click.argument("roots", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--model", "model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=DEFAULT_OUT, show_default=True, help="artifact folder to score")
@click.option("--split", "single_split", is_flag=True,
              help="score a --split artifact on its test partition instead of re-scoring the CV folds")
@click.option("--processes", type=click.IntRange(min=1), default=2, show_default=True,
              help="feature-extraction processes")
@click.option("--no-cache", is_flag=True, help="do not read or write the window cache (.cache/windows)")
@click.option("--json", "as_json", is_flag=True, help="print the full results as JSON")
@click.option("--write", is_flag=True, help="with --split: store the results in the artifact folder "
              "(artifact.json test metrics, evaluation.json, confusion.png)")
def evaluate_cli(roots, model_dir, single_split, processes, no_cache, as_json, write):
    """Score a model artifact again on held-out speakers in corpus ROOTS (default:
    ../shared/corpora). By default: re-score the cross-validation fold artifacts
    (<model>/cv/fold-*) on their test actors and the leave-one-corpus-out artifact on
    TurEV-DB, and print the CV table next to the one stored in <model>/cv.json."""
    from ser_lib.errors import ArtifactError
    from .evaluate import format_speakers, format_table, summary_rows

    roots = list(roots) or _default_roots()
    if not roots:
        raise click.UsageError(f"no corpus roots given and {default_corpora_root()} does not exist")
    echo = (lambda *a, **k: None) if as_json else click.echo
    if not single_split:
        from .cv import evaluate_cv, format_cv_table
        try:
            res = evaluate_cv(model_dir, roots, processes=processes, cache=not no_cache, progress=not as_json,
                              echo=echo)
        except (ValueError, ArtifactError, FileNotFoundError) as err:
            raise click.ClickException(str(err)) from err
        if as_json:
            click.echo(json.dumps(res, indent=1, default=_json_default))
            return
        stored = json.loads((Path(model_dir) / "cv.json").read_text())
        click.echo("\nnow:\n" + format_cv_table(res["table"], res["loco"]))
        click.echo("\nstored in cv.json:\n" + format_cv_table(stored["cv"]["table"],
                                                              stored.get("loco", {}).get("turev_4class")))
        return
    try:
        res = evaluate_artifact(model_dir, roots, processes=processes, cache=not no_cache,
                                progress=not as_json, echo=echo)
    except (ValueError, ArtifactError) as err:
        raise click.ClickException(str(err)) from err
    stored = json.loads((Path(model_dir) / "artifact.json").read_text()).get("metrics", {})
    written = write_evaluation(model_dir, res) if write else []
    if as_json:
        click.echo(json.dumps(res, indent=1, default=_json_default))
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
