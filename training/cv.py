"""The cross-validated training recipe: actor k-fold CV, leave-one-corpus-out, final artifact.

``ser train`` runs, on every training corpus found (the configuration's ``corpora``:
RAVDESS, TESS, TurEV-DB, plus CREMA-D / SAVEE when present; EMOVO is found but left out by
default, the shipped CNN's unseen-language test that ``ser evaluate`` scores):

1. **Windows**, once for all runs: every clip clean and with ``augment.copies``
   augmented copies (:mod:`training.augment`, seeded per clip), and a telephone-degraded
   copy of every RAVDESS clip (the telephone test condition). Augmented copies are only
   ever used as *training* data of a run whose test/validation clips they are not
   (selection is by source clip, so no copy of a test clip is ever trained on).
2. **k-fold cross-validation over the RAVDESS actors** (:data:`FOLDS_PATH`, written by
   :func:`build_folds`): fold ``i`` tests on its 4 actors (2 male, 2 female); its
   validation set (early stopping, checkpoint, temperature) is 2 actors of the next fold
   plus the TESS validation words and TurEV-DB speaker ``1157``; everything else trains.
   Each fold's model is written as a complete artifact (``<out>/cv/fold-<i>/``) and
   scored through :class:`ser_lib.runtime.Predictor` exactly as the job scores.
3. **Leave-one-corpus-out**: the same recipe trained without TurEV-DB, tested on all of
   it (4 classes: argmax over angry / happy / neutral / sad), run ``loco``; and, when
   EMOVO (Italian, all 7 emotions) is a training corpus (``corpora``), trained without EMOVO
   and tested on all of it (7 classes, and 4 as TurEV-DB), run ``loco-emovo``
   (:data:`EXTRA_LOCO_CORPORA`); in every other run it is training data then. Each LOCO run also reports the transfer AUCs
   of :func:`transfer_aucs` (arousal, anger, negative).
4. **The shipped artifact**: trained on every clip, for the median of the folds' best
   epochs, with the median of the folds' temperatures (nothing is left over to choose
   them on; cross-validation chose them). Each fold model is then scored with the median
   of the *other* folds' temperatures (:func:`recalibrate`), which is how the shipped
   model's calibration is estimated without using a fold's test actors.

Results (mean +- std over folds of clip UA / WA / macro-F1, telephone, ECE; the LOCO
scores) go to ``<out>/cv.json`` and the final ``artifact.json``; ``ser evaluate``
re-scores the fold artifacts and reproduces the table (:func:`evaluate_cv`).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ser_lib.artifact import META_FILE, MODEL_FILE, RUNTIME_FILE
from ser_lib.errors import ConfigError
from ser_lib.features import FeatureConfig, level_normalize, model_input
from ser_lib.dimensions import HIGH_AROUSAL, LOW_AROUSAL, arousal, valence
from ser_lib.labels import EMOTIONS
from ser_lib.speech import SpeechConfig

from .config import (POST_HOC_KEYS, augmentation, distillation, found_training_clips, recorded, temperature_rule,
                     training_clips)
from .corpora import Clip, discover, summarize
from .dataset import CACHE_DIR, WindowSet, build_windows, norm_stats
from .split import load_split

#: The published fold file.
FOLDS_PATH = Path(__file__).resolve().with_name("folds.json")
#: The four classes TurEV-DB has (its held-out score is the argmax over these).
TUREV_CLASSES = ("angry", "happy", "neutral", "sad")
#: Corpora left out in a LOCO run of their own (``loco-<corpus>``) besides the fold file's
#: ``loco.test_corpus`` (run ``loco``); kept out of ``folds.json`` so that its checksum, which
#: ``ser evaluate`` compares with the artifacts', stays that of the shipped folds.
EXTRA_LOCO_CORPORA = ("emovo",)
# HIGH_AROUSAL / LOW_AROUSAL (imported above) are ser_lib.dimensions': the grouping of the
# served ``arousal`` column and of Russell's circumplex; disgust clips are left out of the
# arousal AUC (their arousal is mixed).


def loco_runs(folds: dict) -> dict[str, str]:
    """The leave-one-corpus-out runs: ``{run name: left-out corpus}``, ``"loco"`` first
    (the fold file's ``loco.test_corpus``), then ``"loco-<corpus>"`` per :data:`EXTRA_LOCO_CORPORA`."""
    runs = {"loco": folds["loco"]["test_corpus"]}
    runs.update({f"loco-{c}": c for c in EXTRA_LOCO_CORPORA if c != runs["loco"]})
    return runs


def is_loco(run: int | str) -> bool:
    """Whether ``run`` names a leave-one-corpus-out run (``"loco"``, ``"loco-emovo"``)."""
    return isinstance(run, str) and (run == "loco" or run.startswith("loco-"))


def record_key(run: str) -> str:
    """The ``cv.json`` key of a LOCO run's record: ``"loco"``, ``"loco_emovo"``."""
    return run.replace("-", "_")


# --------------------------------------------------------------------------- folds

def build_folds(k: int = 6, tess_val_words: Sequence[str] | None = None, turev_val: Sequence[str] = ("1157",)) -> dict:
    """The fold assignment (deterministic; written to :data:`FOLDS_PATH`).

    RAVDESS actors 01-24 (odd male, even female) in order, ``24 / k`` consecutive actors
    per fold (so each fold of 4 holds 2 male and 2 female actors); fold ``i``'s validation
    actors are the first male and first female actor of fold ``i + 1`` (cyclic).

    Args:
        k: number of folds; must divide 24 into an even number of actors.
        tess_val_words: TESS validation words (default: the ``val`` words of ``training/split.json``).
        turev_val: TurEV-DB validation speakers.

    Raises:
        ValueError: ``k`` does not give gender-balanced folds.
    """
    if 24 % k or (24 // k) % 2:
        raise ValueError(f"{k} folds do not split 24 actors into gender-balanced folds")
    actors = [f"{i:02d}" for i in range(1, 25)]
    n = 24 // k
    folds = [actors[i * n:(i + 1) * n] for i in range(k)]
    val = [[folds[(i + 1) % k][0], folds[(i + 1) % k][1]] for i in range(k)]
    if tess_val_words is None:
        tess_val_words = load_split()["tess"]["val"]
    return {
        "version": 1,
        "description": "Actor-disjoint k-fold cross-validation over RAVDESS; see training/cv.py",
        "ravdess": {"test": folds, "val": val},
        "tess": {"val_words": sorted(tess_val_words)},
        "turev": {"val_speakers": sorted(turev_val)},
        "loco": {"test_corpus": "turev", "val_fold": 0},
    }


def load_folds(path: str | os.PathLike = FOLDS_PATH) -> dict:
    """Read a fold file.

    Raises:
        FileNotFoundError: missing. ValueError: malformed, or test folds that overlap or
            a validation actor that is also its fold's test actor.
    """
    d = json.loads(Path(path).read_text())
    try:
        test, val = d["ravdess"]["test"], d["ravdess"]["val"]
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a fold file ({err!r})") from None
    flat = [a for f in test for a in f]
    if len(flat) != len(set(flat)) or len(val) != len(test):
        raise ValueError(f"{path}: test folds overlap or validation lists do not match the folds")
    for i, (t, v) in enumerate(zip(test, val)):
        if set(t) & set(v):
            raise ValueError(f"{path}: fold {i} validates on its own test actors {sorted(set(t) & set(v))}")
    return d


def assign(clip: Clip, folds: dict, run: int | str) -> str:
    """Partition (``"train"``, ``"val"``, ``"test"`` or ``"unused"``) of a clip in a run:
    fold index ``0..k-1``, a LOCO run (:func:`loco_runs`) or ``"final"`` (everything trains).

    Raises:
        KeyError: an unknown LOCO run name."""
    if run == "final":
        return "train"
    actor = clip.speaker.split(":", 1)[1]
    loco = folds["loco"]
    if is_loco(run):
        if clip.corpus == loco_runs(folds)[run]:
            return "test"
        fold = int(loco["val_fold"])
    else:
        fold = int(run)
    if clip.corpus == "ravdess":
        if not is_loco(run) and actor in folds["ravdess"]["test"][fold]:
            return "test"
        return "val" if actor in folds["ravdess"]["val"][fold] else "train"
    if clip.corpus == "tess":
        return "val" if clip.text in folds["tess"]["val_words"] else "train"
    if clip.corpus == "turev":
        return "val" if actor in folds["turev"]["val_speakers"] else "train"
    return "train"  # CREMA-D / SAVEE / EMOVO when present: training data of every run but their LOCO


# --------------------------------------------------------------------------- windows

@dataclass
class Pool:
    """Every window a recipe run needs, extracted once.

    Attributes:
        clips: the corpus clips found.
        train: clean + augmented windows of every clip (``clip_id`` ``path`` or ``path#aug<k>``).
        tel: telephone-degraded windows of every RAVDESS clip (``path#telephone``).
        level: :func:`ser_lib.features.level_normalize` of ``train.x`` (computed once).
    """

    clips: list[Clip]
    train: WindowSet
    tel: WindowSet
    level: np.ndarray

    def source_paths(self, ws: WindowSet) -> np.ndarray:
        return np.array([c.split("#", 1)[0] for c in ws.clip_id])


def extract(roots: Sequence[str | os.PathLike], conf: dict, fcfg: FeatureConfig, scfg: SpeechConfig, *,
            processes: int = 2, cache: bool = True, progress: bool = True, echo=print) -> Pool:
    """Discover the corpora and extract the windows of step 1 (module docstring).

    Raises:
        ValueError: no clips found (:func:`training.config.found_training_clips`).
    """
    clips = found_training_clips(roots, conf, echo)
    echo("clips per label:\n" + summarize(clips).to_string())
    copies, aug = augmentation(conf)
    kw = dict(cache_dir=CACHE_DIR if cache else None, processes=processes, progress=progress)
    hop, seed = float(conf["hop_s"]), int(conf["seed"])
    train = build_windows(clips, fcfg, scfg, hop, ["clean"] + [f"aug{k}" for k in range(copies)], aug, seed,
                          desc="all", **kw)
    rav = [c for c in clips if c.corpus == "ravdess"]
    tel = build_windows(rav, fcfg, scfg, hop, ["telephone"], seed=int(conf["telephone_test_seed"]),
                        desc="telephone", **kw)
    echo(f"{len(train)} windows from {train.n_clips} clip variants; {len(tel)} telephone windows")
    return Pool(clips, train, tel, level_normalize(train.x, fcfg))


def _select(ws: WindowSet, sources: np.ndarray, keep_paths: set, clean_only: bool) -> np.ndarray:
    """Clip mask of ``ws``: clips whose source path is in ``keep_paths`` (clean variant only if asked)."""
    mask = np.isin(sources, list(keep_paths))
    if clean_only:
        mask &= np.char.find(ws.clip_id.astype(str), "#") < 0
    return mask


def _run_test_windows(clips: Sequence[Clip], folds: dict, run: int | str, conf: dict, fcfg: FeatureConfig,
                      scfg: SpeechConfig, kw: dict) -> tuple[WindowSet, WindowSet | None]:
    """The test windows of one run (clean, and telephone-degraded for a fold; ``None`` for the
    leave-one-corpus-out run, whose corpus has no telephone condition), extracted as the
    single-split pipeline extracts its test sets (:func:`training.prepare.test_windows`)."""
    from .prepare import test_windows

    test = [c for c in clips if assign(c, folds, run) == "test"]
    if is_loco(run):
        return build_windows(test, fcfg, scfg, float(conf["hop_s"]), desc=f"{run}-test", **kw), None
    return test_windows(test, conf, fcfg, scfg, **kw)


# --------------------------------------------------------------------------- scoring

def subset_scores(ws: WindowSet, probs: np.ndarray, classes: Sequence[str]) -> dict:
    """Clip-level scores restricted to ``classes``: mean window probability per clip,
    argmax over those classes only (a corpus with fewer categories, e.g. TurEV-DB's four).

    Returns:
        :func:`training.evaluate.scores` of the clips whose label is in ``classes``,
        labels indexed in ``classes`` order.
    """
    from .evaluate import clip_probabilities, scores

    idx = [EMOTIONS.index(c) for c in classes]
    cp = clip_probabilities(probs, ws.clip, ws.n_clips)[:, idx]
    keep = np.isin(ws.clip_label, idx)
    y = np.searchsorted(idx, ws.clip_label[keep])
    return scores(y, cp[keep].argmax(1), len(idx))


def _auc(y: np.ndarray, score: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score)) if 0 < int(y.sum()) < len(y) else None


def transfer_aucs(ws: WindowSet, probs: np.ndarray) -> dict:
    """The outputs that transfer across corpora, as clip-level ROC AUCs (scikit-learn's
    ``roc_auc_score``) of the clips' mean window probabilities, scored with the very
    functions that make the served ``segments.arousal`` / ``valence`` columns
    (:mod:`ser_lib.dimensions`; both are sums of probabilities, so a clip's score is also the
    mean of its windows' column values):

    - ``arousal``: clips of :data:`HIGH_AROUSAL` against :data:`LOW_AROUSAL` emotions (disgust
      clips left out), scored by :func:`ser_lib.dimensions.arousal`;
    - ``anger``: angry clips against all others, scored by ``p_angry``;
    - ``negative``: clips of :data:`ser_lib.dimensions.NEGATIVE` emotions against the others,
      scored by ``1 -`` :func:`ser_lib.dimensions.valence`.

    Args:
        ws: the windows (``clip``, ``clip_label`` per :class:`training.dataset.WindowSet`).
        probs: float ``(len(ws), len(EMOTIONS))`` window probabilities.

    Returns:
        ``{"arousal", "anger", "negative"}`` -> AUC in [0, 1], or None where a side has no clips;
        ``"n"``: the number of clips.
    """
    from ser_lib.dimensions import NEGATIVE

    from .evaluate import clip_probabilities

    cp = clip_probabilities(probs, ws.clip, ws.n_clips)
    lab = np.asarray(ws.clip_label)
    idx = lambda names: [EMOTIONS.index(e) for e in names]  # noqa: E731
    hi, lo, neg = idx(HIGH_AROUSAL), idx(LOW_AROUSAL), idx(NEGATIVE)
    ar = np.isin(lab, hi + lo)
    return {"arousal": _auc(np.isin(lab[ar], hi).astype(int), arousal(cp[ar])),
            "anger": _auc((lab == EMOTIONS.index("angry")).astype(int), cp[:, EMOTIONS.index("angry")]),
            "negative": _auc(np.isin(lab, neg).astype(int), 1.0 - valence(cp)),
            "n": int(len(lab))}


def score_run(pred, test: WindowSet, tel: WindowSet | None) -> dict:
    """Score a run's test windows through ``pred`` (a :class:`ser_lib.runtime.Predictor`).

    Returns:
        ``{"test": evaluate_probs, "test_telephone": evaluate_probs | None,
        "calibration": calibration of the test windows, "four_class": {corpus: subset_scores},
        "transfer": {corpus: transfer_aucs}}``.
    """
    from .evaluate import calibration, evaluate_probs

    probs = pred.predict(test.x)
    out = {"test": evaluate_probs(test, probs), "calibration": calibration(probs, test.y),
           "test_telephone": evaluate_probs(tel, pred.predict(tel.x)) if tel is not None and len(tel) else None,
           "four_class": {}, "transfer": {}}
    for corpus in sorted(set(test.clip_corpus.tolist())):
        m = test.clip_corpus == corpus
        sub, sub_probs = test.subset_clips(m), probs[m[test.clip]]
        out["four_class"][corpus] = subset_scores(sub, sub_probs, TUREV_CLASSES)
        out["transfer"][corpus] = transfer_aucs(sub, sub_probs)
    return out


def loco_record(run: str, folds: dict, scores: dict) -> dict:
    """What ``cv.json`` keeps of a LOCO run's scores besides the run record: for the left-out
    corpus ``c``, ``"<c>_4class"`` (:func:`subset_scores`), ``"<c>_7class"`` (the clip scores
    over every emotion; only for a corpus with more than the 4 classes) and ``"transfer"``
    (:func:`transfer_aucs`), and ``"ece"``, the window ECE at the run's temperature."""
    return unseen_record(loco_runs(folds)[run], scores)


# --------------------------------------------------------------------------- calibration

#: Corpora whose validation clips are by speakers the run never trained on; TESS's
#: validation words are spoken by its two training speakers, so they would fit the
#: temperature to familiar voices (near-perfect, over-confident) and are left out.
CALIBRATION_CORPORA = ("ravdess", "turev", "cremad", "savee")


def calibration_mask(val_ws: WindowSet) -> np.ndarray:
    """Windows of ``val_ws`` the temperature is fitted on (:data:`CALIBRATION_CORPORA`), bool ``(n,)``."""
    return np.isin(val_ws.corpus, CALIBRATION_CORPORA)


def recalibrate(out: str | os.PathLike, roots: Sequence[str | os.PathLike], *,
                folds_path: str | os.PathLike = FOLDS_PATH, refit: bool = False, processes: int = 2,
                cache: bool = True, progress: bool = True, echo=print) -> dict:
    """Give the final artifact and every fold artifact their temperature by the record's
    ``calibration`` rule (:func:`training.config.temperature_rule`), re-score the test sets
    and rewrite ``cv.json`` (per fold: ``temperature_fitted`` and ``temperature``; the rule
    and what it was fitted on under ``calibration``).

    - ``unheard_corpora`` (the default): one temperature fitted on the leave-one-corpus-out
      runs' test windows, scored by the models that never trained on those corpora
      (:func:`fit_unheard_temperature`), for the final artifact and every fold. Why: the job
      hears languages, speakers and phones no model trained on, and a temperature fitted on
      validation speakers of the training corpora leaves such voices over-confident (window
      ECE 0.24-0.25 on TurEV-DB and EMOVO, 0.04-0.05 with a temperature fitted on the other
      one: models/runs/2026-12-07-distilled-default). The folds' ECE then says what the rule
      does on RAVDESS actors (a heard corpus: under-confident); a corpus neither trained nor
      fitted on (``ser evaluate``'s ``unseen``) estimates it on unheard voices. With no LOCO
      run to fit on, the rule falls back to ``validation_speakers`` (and says so).
    - ``validation_speakers``: every fold artifact gets the **leave-one-fold-out median** of
      the folds' validation-fitted temperatures, the final artifact the median of all of them.
      A fold's own validation set is 2 RAVDESS actors and 1 TurEV-DB speaker, and a
      temperature fitted on 3 voices follows them (fold 1 of the 2026-12-02 run: ECE 0.26);
      fold ``i`` scored with the median of the *other* folds' temperatures estimates the
      rule without touching its test actors.

    The LOCO runs get the median of the folds' validation temperatures under both rules, so
    their ECE shows what that rule leaves on a corpus never heard. Temperature scaling changes
    no weights and no window's argmax, only the probabilities (post-hoc, Guo et al. 2017); a
    clip's decision averages its windows' probabilities, so a borderline clip can change.

    Args:
        refit: fit each fold's temperature again on its validation windows
            (:func:`calibration_mask`) instead of reading ``temperature_fitted`` /
            ``temperature`` from ``cv.json``.

    Returns:
        the rewritten ``cv.json`` record.

    Raises:
        ConfigError: the record's ``calibration`` is not a known rule.
    """
    from ser_lib.runtime import Predictor
    from .evaluate import plot_reliability

    out = Path(out)
    record = json.loads((out / "cv.json").read_text())
    folds = load_folds(folds_path)
    conf = record["conf"]
    fcfg, scfg = FeatureConfig(), SpeechConfig()
    clips = training_clips(discover(roots).clips, conf)  # the validation sets the runs were trained with
    kw = dict(cache_dir=CACHE_DIR if cache else None, processes=processes, progress=progress)
    hop = float(conf["hop_s"])
    k = len(folds["ravdess"]["test"])
    runs = record["cv"]["runs"]
    if refit:
        fitted = [_fit_fold_temperature(out, clips, folds, i, fcfg, scfg, hop, kw) for i in range(k)]
    else:
        fitted = [float(runs[i].get("temperature_fitted", runs[i]["temperature"])) for i in range(k)]
    t_val = float(np.median(fitted))
    # each LOCO run's test windows, built once: the unheard_corpora fit and the run's scores use them
    loco_tests = {run: _run_test_windows(clips, folds, run, conf, fcfg, scfg, kw)[0] for run in loco_runs(folds)
                  if (out / "cv" / run / "artifact.json").is_file()}
    rule, t_unheard, fitted_on = temperature_rule(conf), None, {}
    if rule == "unheard_corpora":
        t_unheard, fitted_on = fit_unheard_temperature(out, folds, loco_tests, fcfg)
        if t_unheard is None:
            echo("calibration: unheard_corpora, but no leave-one-corpus-out run to fit on: the folds' "
                 "validation temperatures are used (validation_speakers)")
            rule = "validation_speakers"
        else:
            echo(f"calibration: T={t_unheard:.3f} fitted on the leave-one-corpus-out test windows "
                 + ", ".join(f"{c} ({n})" for c, n in fitted_on.items())
                 + f" (the folds' validation median: {t_val:.3f})")
    recs = []
    for run in [*range(k), *loco_runs(folds)]:
        d = out / "cv" / (f"fold-{run}" if not is_loco(run) else run)
        if not (d / "artifact.json").is_file():
            continue
        if is_loco(run):
            t, how = t_val, VALIDATION_FITTED_ON
        elif t_unheard is not None:
            t, how = t_unheard, UNHEARD_FITTED_ON
        else:
            t = float(np.median([f for j, f in enumerate(fitted) if j != run]))
            how = "median of the other CV folds' temperatures (each fitted on its validation speakers)"
        meta = json.loads((d / "artifact.json").read_text())
        meta["calibration"]["temperature"] = t
        meta["calibration"]["fitted_on"] = how
        (d / "artifact.json").write_text(json.dumps(meta, indent=2) + "\n")
        pred = Predictor.from_path(d, expected=fcfg)
        tests = (loco_tests[run], None) if is_loco(run) else _run_test_windows(clips, folds, run, conf, fcfg, scfg, kw)
        scores = score_run(pred, *tests)
        echo(f"[{run}] T={t:.3f} " + _line(scores))
        if is_loco(run):
            record.setdefault(record_key(run), {"run": run, "dir": str(d)}).update(
                temperature=t, **loco_record(run, folds, scores), scores=compact_scores(scores))
        else:
            runs[run].update(temperature=t, temperature_fitted=fitted[run], scores=compact_scores(scores))
            recs.append({"run": run, "best_epoch": runs[run]["best_epoch"], "temperature": t, "scores": scores})
    record["cv"]["table"] = cv_table(recs)
    record["cv"]["calibration_pooled"] = _pool_bins([r["scores"]["calibration"] for r in recs])
    record["cv"]["temperature_rule"] = (UNHEARD_FITTED_ON if t_unheard is not None else
                                        "leave-one-fold-out median of the folds' validation-fitted temperatures")
    final_t = t_unheard if t_unheard is not None else t_val
    record["calibration"] = {"rule": rule, "temperature": final_t, "validation_temperature": t_val,
                             "fitted_on_windows": fitted_on}
    plot_reliability([("CV test folds, wideband windows", record["cv"]["calibration_pooled"])],
                     out / "reliability.png")
    if recs and all(r["scores"].get("test_telephone") for r in recs):
        _plot_cv_confusions(recs, out / "confusion.png")
    _recalibrate_final(out / "artifact.json", record, final_t,
                       UNHEARD_FITTED_ON if t_unheard is not None else VALIDATION_FITTED_ON)
    write_record(out / "cv.json", record)
    return record


#: ``fitted_on`` of a temperature of the ``unheard_corpora`` rule.
UNHEARD_FITTED_ON = ("fitted on the leave-one-corpus-out runs' test windows (corpora the run never trained on: "
                     "conf calibration: unheard_corpora)")
#: ``fitted_on`` of the median of the folds' validation temperatures (``validation_speakers``).
VALIDATION_FITTED_ON = "median of the CV folds' temperatures (each fitted on its validation speakers)"


def fit_unheard_temperature(out: Path, folds: dict, tests: dict[str, WindowSet],
                            fcfg: FeatureConfig) -> tuple[float | None, dict[str, int]]:
    """The temperature of the ``unheard_corpora`` rule: the softmax temperature that minimises
    the NLL (:func:`training.evaluate.fit_temperature`) of every leave-one-corpus-out run's
    test windows ``tests[run]`` (all of its left-out corpus, all 7 labels), scored
    uncalibrated by that run's artifact ``<out>/cv/<run>``, pooled.

    Returns:
        ``(T, {corpus: windows})``; ``(None, {})`` when no LOCO run has test windows.
    """
    from .evaluate import fit_temperature

    probs, ys, used = [], [], {}
    for run, corpus in loco_runs(folds).items():
        test = tests.get(run)
        if test is None or not len(test):
            continue
        probs.append(_uncalibrated(out / "cv" / run, fcfg).predict(test.x))
        ys.append(test.y)
        used[corpus] = int(len(test))
    if not probs:
        return None, {}
    return fit_temperature(np.vstack(probs), np.concatenate(ys)), used


def _uncalibrated(path: Path, fcfg: FeatureConfig):
    """The :class:`ser_lib.runtime.Predictor` of the artifact at ``path`` with temperature 1
    (what a temperature is fitted on)."""
    from ser_lib.runtime import Predictor

    pred = Predictor.from_path(path, expected=fcfg)
    pred.meta.temperature = 1.0
    return pred


def _fit_fold_temperature(out: Path, clips, folds: dict, i: int, fcfg: FeatureConfig, scfg: SpeechConfig,
                          hop: float, kw: dict) -> float:
    """Fold ``i``'s temperature fitted again on its validation windows (:func:`calibration_mask`)."""
    from .evaluate import fit_temperature

    val = [c for c in clips if assign(c, folds, i) == "val"]
    val_ws = build_windows(val, fcfg, scfg, hop, desc=f"{i}-val", **kw)
    cal = calibration_mask(val_ws)
    return fit_temperature(_uncalibrated(out / "cv" / f"fold-{i}", fcfg).predict(val_ws.x[cal]), val_ws.y[cal])


def _recalibrate_final(final: Path, record: dict, temperature: float, fitted_on: str) -> None:
    """Give the final artifact (if written) ``temperature`` (``fitted_on`` says how) and the
    recalibrated CV metrics."""
    if not final.is_file():
        return
    meta = json.loads(final.read_text())
    meta["calibration"]["temperature"] = temperature
    meta["calibration"]["fitted_on"] = fitted_on
    meta["training"]["temperature_rule"] = record["calibration"]["rule"]
    table = record["cv"]["table"]
    meta["metrics"]["cv"] = cv_metrics(table)
    if record.get("loco"):
        meta["metrics"]["loco_turev_4class"] = {k2: record["loco"]["turev_4class"].get(k2)
                                                for k2 in ("ua", "wa", "macro_f1", "n")}
    meta["metrics"].update(loco_metrics(record))
    final.write_text(json.dumps(meta, indent=2) + "\n")
    if "final" in record:
        record["final"]["temperature"] = meta["calibration"]["temperature"]


# --------------------------------------------------------------------------- one run

def train_run(run: int | str, pool: Pool, folds: dict, conf: dict, fcfg: FeatureConfig, scfg: SpeechConfig,
              out: Path, *, epochs: int | None = None, temperature: float | None = None,
              progress: bool = True, echo=print) -> dict:
    """Train, calibrate, save and score one run of the recipe (a fold, a LOCO run or ``"final"``).

    Returns:
        the run record: ``{"run", "dir", "best_epoch", "temperature", "fit_s", "n_train", "scores"}``
        (``scores`` from :func:`score_run`, absent for ``"final"``).
    """
    import keras
    from ser_lib.artifact import ArtifactMeta, save
    from .evaluate import fit_temperature
    from .models import summary_stats
    from .fit import fit

    paths = _partition(pool.clips, folds, run)
    src = pool.source_paths(pool.train)
    tr_mask = _select(pool.train, src, paths["train"], clean_only=False)
    train_ws = pool.train.subset_clips(tr_mask)
    w = tr_mask[pool.train.clip]
    mean, std = norm_stats(pool.level[w])
    # the standardisation model_input does, written out on the level-normalised windows computed
    # once per pool; it divides where model_input multiplies by 1/std (last-bit differences):
    # kept so that retraining reproduces the shipped models' inputs exactly
    xtr = (pool.level[w] - mean) / std
    val_ws = pool.train.subset_clips(_select(pool.train, src, paths["val"], clean_only=True)) if paths["val"] else None
    xval = model_input(val_ws.x, fcfg, mean, std) if val_ws is not None else None
    family = conf["model"]
    n_epochs = int(epochs or conf["train"]["epochs"])
    echo(f"[{run}] train {len(train_ws)} windows / {train_ws.n_clips} clip variants, "
         f"val {len(val_ws) if val_ws is not None else 0}, test clips {len(paths['test'])}")
    targets = distill_targets(train_ws, run, conf, echo)
    keras.utils.set_random_seed(int(conf["seed"]))
    model, history, best_epoch, fit_s = fit(family, train_ws, val_ws, xtr, xval, conf, n_epochs, progress, echo,
                                            targets=targets)
    del xtr
    if temperature is None:
        cal = calibration_mask(val_ws)
        temperature = fit_temperature(model.predict(xval[cal], batch_size=512, verbose=0), val_ws.y[cal])
    meta = ArtifactMeta(
        # date and UTC time of the training: two models trained the same day get different
        # versions (every output row carries it; reprocessing by model relies on it)
        version=f"{family}-{_dt.datetime.now(_dt.timezone.utc):%Y.%m.%d.%H%M}"
                + ("" if run == "final" else f"-{'fold' + str(run) if not is_loco(run) else run.replace('-', '')}"),
        labels=list(EMOTIONS), feature_config=fcfg, speech_config=scfg, norm_mean=mean, norm_std=std,
        temperature=float(temperature), metrics={},
        training={"recipe": "training/cv.py", "run": run, "family": family, "seed": int(conf["seed"]),
                  "epochs": n_epochs, "best_epoch": best_epoch, "fit_seconds": round(fit_s, 1),
                  "model": summary_stats(model), "train_windows": len(train_ws),
                  "conf": recorded(conf), "keras": keras.__version__,
                  "teacher_sha256": teacher_digest(conf)})
    if out.exists():
        shutil.rmtree(out)
    save(out, model, meta)
    rec = {"run": run, "dir": str(out), "best_epoch": best_epoch, "temperature": float(temperature),
           "fit_s": round(fit_s, 1), "n_train": len(train_ws), "history": history}
    return _score_saved(rec, pool, paths["test"], fcfg, echo)


def distill_targets(train_ws: WindowSet, run: int | str, conf: dict, echo=print) -> np.ndarray | None:
    """The soft training targets of ``run`` when ``train.distill_teacher`` is set
    (:func:`training.distill.soft_targets`), else ``None`` (the one-hot labels).

    Raises:
        ConfigError: a bad setting, or a teacher file without the run or without a training clip."""
    from .distill import load_teacher, soft_targets

    path, weight = distillation(conf)
    if path is None:
        return None
    targets = soft_targets(train_ws, load_teacher(path), run, weight)
    echo(f"[{run}] distillation: targets = {1 - weight:g} x label + {weight:g} x teacher ({path})")
    return targets


def _partition(clips: Sequence[Clip], folds: dict, run: int | str) -> dict[str, set]:
    """The source paths of ``clips`` in each part of ``run``: ``{"train", "val", "test"} -> set``."""
    part = {c.path: assign(c, folds, run) for c in clips}
    return {p: {c for c, q in part.items() if q == p} for p in ("train", "val", "test")}


def _score_saved(rec: dict, pool: Pool, test_paths: set, fcfg: FeatureConfig, echo) -> dict:
    """``rec`` with ``scores`` (:func:`score_run`) of the artifact in ``rec["dir"]`` on the
    pool's clean and telephone windows of ``test_paths`` (none: ``rec`` unchanged)."""
    from ser_lib.runtime import Predictor

    if test_paths:
        pred = Predictor.from_path(rec["dir"], expected=fcfg)
        test_ws = pool.train.subset_clips(_select(pool.train, pool.source_paths(pool.train), test_paths,
                                                  clean_only=True))
        tel_ws = pool.tel.subset_clips(_select(pool.tel, pool.source_paths(pool.tel), test_paths, clean_only=False))
        rec["scores"] = score_run(pred, test_ws, tel_ws)
        echo(f"[{rec['run']}] " + _line(rec["scores"]))
    return rec


def teacher_digest(conf: dict) -> str | None:
    """SHA-256 (hex) of the targets of the distillation teacher file ``conf`` trains towards
    (its ``labels`` and ``runs``, as canonical JSON), or ``None`` when distillation is off. A
    run records it, so that resuming compares what the run was trained towards, not the
    file's path (a teacher rewritten in place with other probabilities retrains the runs) nor
    its other fields (what it says it was built from).

    Raises:
        ConfigError: as :func:`training.config.distillation`."""
    path, _ = distillation(conf)
    if path is None:
        return None
    t = json.loads(Path(path).read_text())
    return hashlib.sha256(json.dumps({"labels": t.get("labels"), "runs": t.get("runs")},
                                     sort_keys=True).encode()).hexdigest()


def _same_conf(a: dict, b: dict) -> bool:
    """Whether two training configurations train the same weights: equal once written as JSON
    (tuples vs lists), the post-hoc keys (:data:`training.config.POST_HOC_KEYS`) left out."""
    from .train import json_default

    a, b = ({k: v for k, v in (c or {}).items() if k not in POST_HOC_KEYS} for c in (a, b))
    return json.dumps(a, sort_keys=True, default=json_default) == json.dumps(b, sort_keys=True, default=json_default)


def finished_run(out: Path, run: int | str, conf: dict, fcfg: FeatureConfig, scfg: SpeechConfig) -> dict | None:
    """The artifact record of a run that an earlier, interrupted ``ser train`` already
    finished in ``out``, or ``None`` when it has to be trained (no artifact, or one trained
    for another run, configuration, seed, teacher file contents or feature/speech settings, or by
    another Keras).

    A resumed run is not retrained but is scored again. ``ser train --no-resume`` retrains
    every run.
    """
    import keras

    path = out / META_FILE
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
        tr = meta["training"]
        same = (tr.get("run") == run and tr.get("keras") == keras.__version__
                and _same_conf(tr.get("conf"), recorded(conf))
                and tr.get("teacher_sha256") == teacher_digest(conf)
                and FeatureConfig.from_dict(meta["feature_config"]) == fcfg
                and SpeechConfig.from_dict(meta["speech_config"]) == scfg)
    except (ValueError, KeyError, TypeError):
        return None
    if not same:
        return None
    return {"run": run, "dir": str(out), "best_epoch": int(tr["best_epoch"]),
            "temperature": float(meta["calibration"]["temperature"]), "fit_s": float(tr.get("fit_seconds", 0.0)),
            "n_train": int(tr.get("train_windows", 0)), "resumed": True}


def run_or_resume(run: int | str, pool: Pool, folds: dict, conf: dict, fcfg: FeatureConfig, scfg: SpeechConfig,
                  out: Path, *, resume: bool = True, progress: bool = True, echo=print) -> dict:
    """:func:`train_run`, unless ``resume`` and :func:`finished_run` finds the run already
    trained in ``out``: then its artifact is only scored again."""
    rec = finished_run(out, run, conf, fcfg, scfg) if resume else None
    if rec is None:
        return train_run(run, pool, folds, conf, fcfg, scfg, out, progress=progress, echo=echo)
    echo(f"[{run}] resumed: {out} was trained by an earlier run with this configuration")
    return _score_saved(rec, pool, _partition(pool.clips, folds, run)["test"], fcfg, echo)


def _line(s: dict) -> str:
    parts = []
    for corpus, lv in s["test"].items():
        if corpus != "pooled":
            parts.append(f"{corpus} clip UA {lv['clip']['ua']:.3f}")
    if s.get("test_telephone"):
        parts.append(f"telephone {s['test_telephone']['pooled']['clip']['ua']:.3f}")
    for corpus, sc in s["four_class"].items():
        if corpus in ("turev", *EXTRA_LOCO_CORPORA):
            parts.append(f"{corpus} 4-class UA {sc['ua']:.3f}")
    for corpus, t in s.get("transfer", {}).items():
        if corpus in ("turev", *EXTRA_LOCO_CORPORA) and t.get("arousal") is not None:
            parts.append(f"{corpus} arousal AUC {t['arousal']:.3f}")
    parts.append(f"ECE {s['calibration']['ece']:.3f}")
    return ", ".join(parts)


# --------------------------------------------------------------------------- the table

def cv_table(records: Sequence[dict]) -> dict:
    """Mean and standard deviation over folds of RAVDESS clip UA / WA / macro-F1 (wideband and
    telephone) and window-level ECE, plus the per-fold values and the ECE of all folds'
    test windows pooled.

    Args:
        records: ``[{"run": i, "scores": score_run(...), ...}]``, one per fold.

    Returns:
        ``{"folds": [...per fold...], "mean": {...}, "std": {...}, "pooled": {"ece",
        "windows", "ece_if_calibrated", "fold_ece_if_calibrated"}}`` (the last two:
        :func:`training.evaluate.ece_if_calibrated` of the pooled windows and, averaged,
        of each fold's).
    """
    rows = []
    for r in records:
        s = r["scores"]
        rav, tel = s["test"]["ravdess"]["clip"], s["test_telephone"]["ravdess"]["clip"]
        rows.append({"fold": r["run"], "ua": rav["ua"], "wa": rav["wa"], "macro_f1": rav["macro_f1"], "clips": rav["n"],
                     "telephone_ua": tel["ua"], "telephone_wa": tel["wa"], "telephone_macro_f1": tel["macro_f1"],
                     "ece": s["calibration"]["ece"], "best_epoch": r.get("best_epoch"),
                     "temperature": r.get("temperature")})
    from .evaluate import ece_if_calibrated

    keys = ["ua", "wa", "macro_f1", "telephone_ua", "telephone_wa", "telephone_macro_f1", "ece"]
    cals = [r["scores"]["calibration"] for r in records]
    pooled = _pool_bins(cals)
    return {"folds": rows,
            "mean": {k: float(np.mean([r[k] for r in rows])) for k in keys},
            "std": {k: float(np.std([r[k] for r in rows], ddof=1)) if len(rows) > 1 else 0.0 for k in keys},
            # every fold's test windows scored by that fold's model, pooled (out-of-fold
            # predictions), and the ECE a perfectly calibrated model would show on as many
            # windows: a fold's ~1,200 windows alone put that floor at ~0.035
            "pooled": {"ece": pooled["ece"], "windows": pooled["n"],
                       "ece_if_calibrated": ece_if_calibrated(pooled),
                       "fold_ece_if_calibrated": float(np.mean([ece_if_calibrated(c) for c in cals]))}}


def cv_metrics(table: dict) -> dict:
    """The part of :func:`cv_table` an artifact's ``metrics.cv`` keeps (what the model card and
    :func:`format_cv_table` read): mean, std, per-fold rows and the pooled ECE when present."""
    return {k: table[k] for k in ("mean", "std", "folds", "pooled") if k in table}


def format_cv_table(table: dict | None, loco: dict | None = None, extra_loco: Sequence[dict] = ()) -> str:
    """Markdown table of :func:`cv_table` and the leave-one-corpus-out line; either may be
    ``None`` (``ser train --only loco`` into a fresh folder has no CV table). ``extra_loco``:
    the ``cv.json`` records of the other LOCO runs (``loco_emovo``), one line each."""
    lines = []
    if table is not None:
        lines += ["| fold | RAVDESS clip UA | WA | macro-F1 | telephone UA | ECE |", "|---|---|---|---|---|---|"]
        for r in table["folds"]:
            lines.append(f"| {r['fold']} | {r['ua']:.3f} | {r['wa']:.3f} | {r['macro_f1']:.3f} "
                         f"| {r['telephone_ua']:.3f} | {r['ece']:.3f} |")
        m, s = table["mean"], table["std"]
        lines.append(f"| **mean ± std** | **{m['ua']:.3f} ± {s['ua']:.3f}** | {m['wa']:.3f} ± {s['wa']:.3f} "
                     f"| {m['macro_f1']:.3f} ± {s['macro_f1']:.3f} | {m['telephone_ua']:.3f} ± {s['telephone_ua']:.3f} "
                     f"| {m['ece']:.3f} ± {s['ece']:.3f} |")
        if "pooled" in table:
            p = table["pooled"]
            lines.append(f"\nECE over the {p['windows']:,} test-fold windows pooled (each scored by its fold's model): "
                         f"**{p['ece']:.3f}**; a perfectly calibrated model would show {p['ece_if_calibrated']:.3f} "
                         f"on as many windows, and {p['fold_ece_if_calibrated']:.3f} on one fold's (sampling alone)")
    if loco:
        lines.append(f"\nLeave-one-corpus-out, TurEV-DB (not trained on), 4 classes: clip UA **{loco['ua']:.3f}**, "
                     f"WA {loco['wa']:.3f}, macro-F1 {loco['macro_f1']:.3f}, {loco['n']} clips")
    for rec in extra_loco:
        lines.append(_loco_line(rec))
    return "\n".join(lines).lstrip("\n")


#: Display names of corpora in tables.
CORPUS_NAMES = {"emovo": "EMOVO", "turev": "TurEV-DB", "cremad": "CREMA-D", "savee": "SAVEE", "ravdess": "RAVDESS",
                "tess": "TESS"}
#: What each left-out corpus is, for the transfer table.
_CORPUS_NOTES = {"turev": "Turkish", "emovo": "Italian", "cremad": "English", "savee": "English"}


def _mean_std(values: Sequence[float]) -> str:
    v = [x for x in values if x is not None]
    if not v:
        return "–"
    return f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}" if len(v) > 1 else f"{v[0]:.3f}"


def transfer_table(record: dict) -> str:
    """Markdown table of what holds on voices and languages a model never trained on, from a
    ``cv.json`` record: per held-out set (the RAVDESS actor CV, each LOCO run, each corpus
    the shipped artifact never trained on: ``unseen``, see :func:`evaluate_cv`) the transfer
    AUCs of :func:`transfer_aucs` first (arousal, anger: what holds best), then the negative
    AUC and the 4- and 7-class clip UAs. ``""`` when the record holds no transfer AUCs (a
    record from before they existed: ``ser evaluate --write`` adds them)."""
    rows = []
    runs = record.get("cv", {}).get("runs", [])
    folds = [r["scores"].get("transfer", {}).get("ravdess") for r in runs if "scores" in r]
    if folds and all(folds):
        four = [r["scores"].get("four_class", {}).get("ravdess", {}).get("ua") for r in runs]
        seven = [f["ua"] for f in record["cv"]["table"]["folds"]] if "table" in record["cv"] else []
        rows.append((f"RAVDESS, actors held out ({len(folds)}-fold CV, mean ± std)", sum(f["n"] for f in folds),
                     *(_mean_std([f[k] for f in folds]) for k in ("arousal", "anger", "negative")),
                     _mean_std(four), _mean_std(seven)))
    held = [(k, rec, "leave-one-corpus-out run") for k, rec in sorted(record.items())
            if (k == "loco" or k.startswith("loco_")) and isinstance(rec, dict)]
    held += [(k, rec, "never trained on") for k, rec in sorted(record.get("unseen", {}).items())]
    for key, rec, how in held:
        corpus = next((k[:-len("_4class")] for k in rec if k.endswith("_4class")), None)
        t = rec.get("transfer")
        if corpus is None or not t:
            continue
        seven = rec.get(f"{corpus}_7class")
        note = ", ".join(x for x in (_CORPUS_NOTES.get(corpus), how) if x)
        rows.append((f"{CORPUS_NAMES.get(corpus, corpus)} ({note})", t["n"],
                     *(f"{t[k]:.3f}" if t.get(k) is not None else "–" for k in ("arousal", "anger", "negative")),
                     f"{rec[f'{corpus}_4class']['ua']:.3f}", f"{seven['ua']:.3f}" if seven else "–"))
    if not rows:
        return ""
    lines = ["| held-out speakers | clips | **arousal AUC** | **anger AUC** | negative AUC | 4-class UA | 7-class UA |",
             "|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


def _loco_line(rec: dict) -> str:
    """One line of a ``loco-<corpus>`` record: its 7- and 4-class UAs and transfer AUCs."""
    corpus = next(k[:-len("_4class")] for k in rec if k.endswith("_4class"))
    four, seven, t = rec[f"{corpus}_4class"], rec.get(f"{corpus}_7class"), rec.get("transfer", {})
    parts = [f"7 classes: clip UA **{seven['ua']:.3f}**" if seven else None,
             f"4 classes: clip UA **{four['ua']:.3f}**",
             *(f"{name} AUC {t[name]:.3f}" for name in ("arousal", "anger", "negative") if t.get(name) is not None),
             f"{four['n'] if not seven else seven['n']} clips"]
    name = CORPUS_NAMES.get(corpus, corpus)
    return f"\nLeave-one-corpus-out, {name} (not trained on): " + ", ".join(p for p in parts if p)


def loco_metrics(record: dict) -> dict:
    """The artifact ``metrics`` of the extra LOCO runs in ``record``: ``{"loco_<corpus>": {"4class",
    "7class", "transfer"}}`` (UA, WA, macro-F1, n of each; the AUCs of :func:`transfer_aucs`)."""
    out = {}
    for key, rec in record.items():
        if not (key.startswith("loco_") and isinstance(rec, dict)):
            continue
        corpus = key[len("loco_"):]
        pick = lambda d: {k: d.get(k) for k in ("ua", "wa", "macro_f1", "n")} if d else None  # noqa: E731
        out[key] = {"4class": pick(rec.get(f"{corpus}_4class")), "7class": pick(rec.get(f"{corpus}_7class")),
                    "transfer": rec.get("transfer")}
    return out


def format_record(record: dict) -> str:
    """:func:`format_cv_table` of a ``cv.json`` record: its CV table and LOCO line, either
    of which may be missing (``ser train --only loco`` writes no CV table)."""
    extra = [record[k] for k in sorted(record) if k.startswith("loco_") and isinstance(record[k], dict)
             and any(x.endswith("_4class") for x in record[k])]
    return format_cv_table(record.get("cv", {}).get("table"), record.get("loco", {}).get("turev_4class"), extra)


def compact_scores(s: dict) -> dict:
    keep = ("ua", "wa", "macro_f1", "n")
    return {"test": {c: {lvl: {k: v[k] for k in keep} for lvl, v in lv.items()} for c, lv in s["test"].items()},
            "test_telephone": ({c: {lvl: {k: v[k] for k in keep} for lvl, v in lv.items()}
                                for c, lv in s["test_telephone"].items()} if s.get("test_telephone") else None),
            "ece": s["calibration"]["ece"],
            "four_class": {c: {k: v[k] for k in keep} for c, v in s["four_class"].items()},
            "transfer": s.get("transfer", {})}


# --------------------------------------------------------------------------- the recipe

def ensemble_seeds(conf: dict) -> list[int]:
    """The members' seeds of a seed ensemble (``ensemble_seeds``), or ``[]`` for one model.

    Raises:
        ConfigError: not a list of at least two distinct integers (or null / empty).
    """
    seeds = conf.get("ensemble_seeds") or []
    if not isinstance(seeds, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in seeds) \
            or len(set(seeds)) != len(seeds) or len(seeds) == 1:
        raise ConfigError(f"ensemble_seeds must be null or a list of >= 2 distinct integers, got {seeds!r}")
    return list(seeds)


#: the teacher ``train.distill_teacher: auto`` builds, in the recipe's output folder
TEACHER_FILE = "teacher.json"


def with_teacher(roots: Sequence[str | os.PathLike], conf: dict, out: str | os.PathLike,
                 folds_path: str | os.PathLike = FOLDS_PATH, progress: bool = True, echo=print) -> dict:
    """``conf`` with the distillation teacher of ``train.distill_teacher: auto`` in place:
    ``<out>/teacher.json``, built by :func:`training.teacher.build_teacher` unless an earlier
    call built it (its path goes under the runtime key ``_teacher``, which an ensemble's
    members inherit and which no record keeps). Other settings: ``conf`` as it is.

    Raises:
        ConfigError: ``<out>/teacher.json`` exists but was built from other clips, labels,
            folds or encoder head (:func:`training.teacher.stale_reason`)."""
    from .config import AUTO_TEACHER

    if conf["train"].get("distill_teacher") != AUTO_TEACHER or conf.get("_teacher"):
        return conf
    from .teacher import build_teacher, stale_reason

    path = Path(out) / TEACHER_FILE
    if path.is_file():
        why = stale_reason(path, roots, conf, folds_path)
        if why:  # runs trained on it may be in ``out`` too: never mix teachers silently
            raise ConfigError(f"{path} was built for other training data ({why}); delete it, and use --no-resume "
                              "or a fresh output folder, to train with a new teacher")
    else:
        echo(f"distillation teacher: building {path} (training.teacher)")
        build_teacher(path, roots, conf, folds_path=folds_path, progress=progress)
    return {**conf, "_teacher": str(path)}


def run_recipe(roots: Sequence[str | os.PathLike], conf: dict, out: str | os.PathLike, *,
               folds_path: str | os.PathLike = FOLDS_PATH, only: Sequence[str] | None = None,
               processes: int = 2, cache: bool = True, progress: bool = True, echo=print,
               calibrate: bool = True, resume: bool = True, isolate: bool = True) -> dict:
    """Steps 1-4 of the module docstring; writes ``<out>/cv/fold-<i>/``, ``<out>/cv/loco/``,
    ``<out>/cv.json``, the final artifact in ``<out>`` and its plots. With
    ``ensemble_seeds`` every step trains one member per seed (:func:`run_ensemble`).

    Args:
        only: run just these of ``["cv", "loco", "final"]`` (default all; ``final`` needs
            ``<out>/cv.json`` from an earlier ``cv`` run when ``cv`` is not in the list).
        calibrate: finish with :func:`recalibrate` (an ensemble's members skip it: the
            ensemble is calibrated as a whole).
        resume: keep the runs an interrupted earlier call already finished in ``out``
            with the same configuration (:func:`finished_run`); they are scored again,
            not retrained.
        isolate: an ensemble trains each member in a process of its own
            (:func:`run_ensemble`).

    Returns:
        the ``cv.json`` record.

    Raises:
        ConfigError: a bad ``ensemble_seeds``.
    """
    from .evaluate import plot_reliability

    only = list(only or ["cv", "loco", "final"])
    conf = with_teacher(roots, conf, out, folds_path, progress, echo)
    if ensemble_seeds(conf):
        return run_ensemble(roots, conf, out, folds_path=folds_path, only=only, processes=processes, cache=cache,
                            progress=progress, echo=echo, resume=resume, isolate=isolate)
    out = Path(out)
    t0 = time.time()
    folds = load_folds(folds_path)
    fcfg, scfg = FeatureConfig(), SpeechConfig()
    pool = extract(roots, conf, fcfg, scfg, processes=processes, cache=cache, progress=progress, echo=echo)
    record_path = out / "cv.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    record.update({"folds_file": str(Path(folds_path).name),
                   "folds_sha256": hashlib.sha256(Path(folds_path).read_bytes()).hexdigest(),
                   "corpora": {r["corpus"]: {k: int(v) for k, v in r.items() if k != "corpus"}
                               for r in summarize(pool.clips).reset_index().to_dict(orient="records")},
                   "conf": recorded(conf)})
    if "cv" in only:
        recs = [run_or_resume(i, pool, folds, conf, fcfg, scfg, out / "cv" / f"fold-{i}", resume=resume,
                              progress=progress, echo=echo)
                for i in range(len(folds["ravdess"]["test"]))]
        record["cv"] = {"table": cv_table(recs), "runs": [{**{k: v for k, v in r.items() if k not in ("scores", "history")},
                                                          "scores": compact_scores(r["scores"])} for r in recs]}
        cal = [r["scores"]["calibration"] for r in recs]
        pooled_bins = _pool_bins(cal)
        record["cv"]["calibration_pooled"] = pooled_bins
        plot_reliability([("CV test folds, wideband windows", pooled_bins)], out / "reliability.png")
        _plot_cv_confusions(recs, out / "confusion.png")
        write_record(record_path, record)
    if "loco" in only:
        for run, corpus in loco_runs(folds).items():
            if run != "loco" and not any(c.corpus == corpus for c in pool.clips):
                continue  # an extra corpus that is not there (EMOVO): no run
            r = run_or_resume(run, pool, folds, conf, fcfg, scfg, out / "cv" / run, resume=resume,
                              progress=progress, echo=echo)
            record[record_key(run)] = {**{k: v for k, v in r.items() if k not in ("scores", "history")},
                                       **loco_record(run, folds, r["scores"]), "scores": compact_scores(r["scores"])}
            write_record(record_path, record)
    if "final" in only and resume and "final" in record and finished_run(out, "final", conf, fcfg, scfg):
        echo(f"[final] resumed: {out} holds the final artifact of an earlier run with this configuration")
    elif "final" in only:
        runs = record["cv"]["runs"]
        epochs = int(np.median([r["best_epoch"] for r in runs]))
        temp = float(np.median([r["temperature"] for r in runs]))
        r = train_run("final", pool, folds, conf, fcfg, scfg, out / ".final-stage", epochs=epochs, temperature=temp,
                      progress=progress, echo=echo)
        publish_final(out, Path(r["dir"]), record, epochs, temp)
        record["final"] = {k: v for k, v in r.items() if k not in ("dir", "history")}
        write_record(record_path, record)
    if calibrate and "cv" in record and (out / "cv" / "fold-0" / "artifact.json").is_file():
        # the folds' temperatures become leave-one-fold-out medians (see recalibrate)
        record = recalibrate(out, roots, folds_path=folds_path, processes=processes, cache=cache,
                             progress=progress, echo=echo)
    record["total_wall_s"] = round(time.time() - t0, 1)
    write_record(record_path, record)
    echo("\n" + format_record(record))
    return record


#: Where :func:`run_ensemble` trains the members, under the output folder.
MEMBERS_DIR = "members"


def run_ensemble(roots: Sequence[str | os.PathLike], conf: dict, out: str | os.PathLike, *,
                 folds_path: str | os.PathLike = FOLDS_PATH, only: Sequence[str] | None = None,
                 processes: int = 2, cache: bool = True, progress: bool = True, echo=print,
                 resume: bool = True, isolate: bool = True) -> dict:
    """The recipe as a seed ensemble (:mod:`training.ensemble`): the whole recipe once per
    seed of ``ensemble_seeds`` into ``<out>/members/seed-<s>/`` (augmentation draws and
    weight initialisation differ; folds, clips and epochs don't), then every run's members
    combined into one artifact at the single model's place (``<out>/cv/fold-<i>/``,
    ``<out>/cv/loco/``, ``<out>``), and the combined folds calibrated and scored by
    :func:`recalibrate` (each fold's temperature fitted again on its validation windows).

    With ``isolate`` each member trains in a fresh process (``spawn``): a member's window
    pool and TensorFlow state (several GB) are returned to the system when it ends, so the
    peak memory of an ensemble is that of one member (a 2-member run in one process was
    OOM-killed at 24 GB on a 23 GB machine: models/runs/2026-12-03-pitch). With ``resume``
    the members' finished runs are kept (:func:`finished_run`), so a killed ensemble
    resumes at the run it was in. A member's process ends by itself when ``ser train``
    is killed (:func:`exit_with_parent`).

    Returns:
        the ensemble's ``cv.json`` record (member 0's runs, re-scored; ``ensemble`` lists
        the members).

    Raises:
        RuntimeError: a member's process failed (its exit code is in the message).
    """
    import multiprocessing as mp

    only = list(only or ["cv", "loco", "final"])
    out = Path(out)
    t0 = time.time()
    seeds = ensemble_seeds(conf)
    members = [out / MEMBERS_DIR / f"seed-{s}" for s in seeds]
    for s, mdir in zip(seeds, members):
        echo(f"== ensemble member seed {s} -> {mdir}")
        args = (list(roots), {**conf, "seed": s, "ensemble_seeds": None}, mdir)
        kw = dict(folds_path=folds_path, only=only, processes=processes, cache=cache, progress=progress,
                  echo=echo, calibrate=False, resume=resume)
        if not isolate:
            run_recipe(*args, **kw)
            continue
        proc = mp.get_context("spawn").Process(target=_member_main, args=(os.getpid(), *args), kwargs=kw,
                                               name=f"member-{s}")
        proc.start()
        try:
            proc.join()
        finally:  # Ctrl-C or an error here: the member must not go on training alone
            if proc.is_alive():
                proc.terminate()
                proc.join()
        if proc.exitcode != 0:
            raise RuntimeError(f"ensemble member seed {s} failed (exit code {proc.exitcode}; a negative code is the "
                               f"signal that killed it, -9 = SIGKILL, e.g. the kernel's OOM killer); rerun the same "
                               f"command to resume at the run it was in")
    record = assemble_ensemble(roots, conf, out, folds_path=folds_path, processes=processes, cache=cache,
                               progress=progress, echo=echo)
    record["total_wall_s"] = round(time.time() - t0, 1)
    write_record(out / "cv.json", record)
    return record


def _member_main(parent_pid: int, *args, **kw) -> None:
    """:func:`run_recipe` in a member's process, which ends itself when ``ser train`` is
    gone (:func:`exit_with_parent`)."""
    exit_with_parent(parent_pid)
    run_recipe(*args, **kw)


#: How often a member's process checks that ``ser train`` still runs, seconds.
PARENT_POLL_S = 2.0


def exit_with_parent(parent_pid: int, poll_s: float = PARENT_POLL_S) -> None:
    """End this process (exit code 3) as soon as its parent ``parent_pid`` is gone.

    A parent killed by a signal, ``kill -9`` included, leaves its children running; a
    member would go on training for up to 40 min beside whatever runs next. A daemon
    thread polls :func:`os.getppid` every ``poll_s`` seconds: an orphan is re-parented,
    so a changed id means the parent died.
    """
    import threading

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(3)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def assemble_ensemble(roots: Sequence[str | os.PathLike], conf: dict, out: str | os.PathLike, *,
                      folds_path: str | os.PathLike = FOLDS_PATH, processes: int = 2, cache: bool = True,
                      progress: bool = True, echo=print) -> dict:
    """Combine the members trained in ``<out>/members/seed-<s>/`` (one per seed of
    ``ensemble_seeds``, each a recipe output) run by run into ``<out>``, then calibrate
    and score the combined folds (:func:`recalibrate` with ``refit``).

    Returns:
        the ensemble's ``cv.json`` record.

    Raises:
        FileNotFoundError: a member has no ``cv.json``.
    """
    from .ensemble import combine_artifacts

    out = Path(out)
    seeds = ensemble_seeds(conf)
    members = [out / MEMBERS_DIR / f"seed-{s}" for s in seeds]
    record = json.loads((members[0] / "cv.json").read_text())
    k = len(load_folds(folds_path)["ravdess"]["test"])
    subs = [Path("cv") / f"fold-{i}" for i in range(k)] + [Path("cv") / run for run in loco_runs(load_folds(folds_path))] \
        + [Path(".")]
    stamp = f"{conf['model']}-{_dt.datetime.now(_dt.timezone.utc):%Y.%m.%d.%H%M}"
    for sub in subs:
        if not all((m / sub / META_FILE).is_file() for m in members):
            continue
        suffix = "" if sub == Path(".") else "-" + sub.name.replace("-", "")  # -fold0 .. -loco, as train_run
        if sub != Path(".") and (out / sub).exists():
            shutil.rmtree(out / sub)
        combine_artifacts([m / sub for m in members], out / sub, version=stamp + suffix)
    for r in record.get("cv", {}).get("runs", []):
        r["dir"] = str(out / "cv" / f"fold-{r['run']}")
    for run in loco_runs(load_folds(folds_path)):
        if record_key(run) in record:
            record[record_key(run)]["dir"] = str(out / "cv" / run)
    record["conf"] = recorded(conf)
    record["ensemble"] = {"seeds": seeds, "members": [str(m.relative_to(out)) for m in members],
                          "rule": "mean of the members' probabilities, then the ensemble's temperature"}
    write_record(out / "cv.json", record)
    if "cv" in record and (out / "cv" / "fold-0" / META_FILE).is_file():
        record = recalibrate(out, roots, folds_path=folds_path, refit=True, processes=processes, cache=cache,
                             progress=progress, echo=echo)
        echo("\n" + format_record(record))
    return record


def _plot_cv_confusions(recs: Sequence[dict], path: Path) -> None:
    """The RAVDESS clip-level confusion matrices summed over the folds' test sets
    (wideband and telephone), drawn to ``path``."""
    from .evaluate import plot_confusions

    cm = np.sum([np.array(r["scores"]["test"]["ravdess"]["clip"]["confusion"]) for r in recs], axis=0)
    cmt = np.sum([np.array(r["scores"]["test_telephone"]["ravdess"]["clip"]["confusion"]) for r in recs], axis=0)
    plot_confusions([("RAVDESS CV test folds, clip level, wideband", cm.tolist()),
                     ("RAVDESS CV test folds, clip level, telephone", cmt.tolist())], path)


def _pool_bins(cals: Sequence[dict]) -> dict:
    """One reliability diagram over several runs' :func:`training.evaluate.calibration` bins."""
    n_bins = len(cals[0]["bins"])
    bins, ece, total = [], 0.0, sum(c["n"] for c in cals)
    for b in range(n_bins):
        parts = [c["bins"][b] for c in cals if c["bins"][b]["n"]]
        k = sum(p["n"] for p in parts)
        conf = sum(p["n"] * p["confidence"] for p in parts) / k if k else None
        acc = sum(p["n"] * p["accuracy"] for p in parts) / k if k else None
        if k:
            ece += k / total * abs(acc - conf)
        bins.append({"lo": cals[0]["bins"][b]["lo"], "hi": cals[0]["bins"][b]["hi"], "n": k,
                     "confidence": conf, "accuracy": acc})
    return {"ece": ece, "n": total, "bins": bins}


def publish_final(out: Path, stage: Path, record: dict, epochs: int, temp: float) -> None:
    """Copy the final artifact from ``stage`` into ``out`` with the CV results in its metrics."""
    meta_path = stage / "artifact.json"
    meta = json.loads(meta_path.read_text())
    table = record["cv"]["table"]
    meta["metrics"] = {"cv": cv_metrics(table),
                       "loco_turev_4class": {k: record.get("loco", {}).get("turev_4class", {}).get(k)
                                             for k in ("ua", "wa", "macro_f1", "n")},
                       **loco_metrics(record),
                       "protocol": "RAVDESS actor 6-fold CV (training/folds.json), clip level; calibration "
                                   "ECE on the test folds' windows; leave-one-corpus-out on TurEV-DB (and on EMOVO "
                                   "when present)"}
    meta["training"].update({"epochs_rule": "median best epoch over the CV folds", "epochs": epochs,
                             "temperature_rule": "median fold temperature", "folds_sha256": record["folds_sha256"],
                             "corpora": record["corpora"]})
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    # the LiteRT flatbuffer (RUNTIME_FILE) is what the job runs: it ships too
    for f in (META_FILE, MODEL_FILE, RUNTIME_FILE):
        shutil.copy2(stage / f, out / f)
    shutil.rmtree(stage)


def write_record(path: Path, record: dict) -> None:
    """Write ``record`` as JSON to ``path`` atomically (a temp file, then a rename)."""
    from .train import json_default

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1, default=json_default) + "\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- re-scoring

def evaluate_cv(artifact_dir: str | os.PathLike, roots: Sequence[str | os.PathLike], *,
                folds_path: str | os.PathLike = FOLDS_PATH, processes: int = 2, cache: bool = True,
                progress: bool = True, echo=print) -> dict:
    """Re-score the fold artifacts ``<artifact_dir>/cv/fold-<i>`` on their test actors
    (``ser evaluate``): the windows are extracted again from the corpora and scored
    through :class:`ser_lib.runtime.Predictor`, so this reproduces ``cv.json``'s table.

    Returns:
        ``{"table": cv_table, "loco": TurEV 4-class scores or None, "extra_loco": [the
        :func:`loco_record` of every other LOCO run whose artifact and corpus are there],
        "transfer": {"folds": [each fold's :func:`transfer_aucs` on its RAVDESS test actors],
        "loco": {run: :func:`loco_record`}, "unseen": {corpus: :func:`unseen_record`}}}``.
        ``unseen``: the corpora found that the artifact in ``artifact_dir`` never trained on
        (absent from ``cv.json``'s ``corpora``; e.g. EMOVO for a model trained before it
        was added), scored whole by that artifact.

    Raises:
        FileNotFoundError: no fold artifacts. ValueError: no clips, or a fold file that
            differs from the one the folds were trained with.
    """
    from ser_lib.runtime import Predictor

    d = Path(artifact_dir)
    if not (d / "cv.json").is_file():
        raise FileNotFoundError(f"{d} has no cv.json: it was not trained by the cross-validated recipe "
                                "(ser train); for a single-split artifact use ser evaluate --split")
    record = json.loads((d / "cv.json").read_text())
    folds_path = Path(folds_path)
    if hashlib.sha256(folds_path.read_bytes()).hexdigest() != record["folds_sha256"]:
        raise ValueError(f"{folds_path} is not the fold file the CV artifacts were trained with")
    folds = load_folds(folds_path)
    conf = record["conf"]
    fcfg, scfg = FeatureConfig(), SpeechConfig()
    found = discover(roots)
    if not found.clips:
        raise ValueError(f"no corpus clips found under {', '.join(map(str, roots))}")
    kw = dict(cache_dir=CACHE_DIR if cache else None, processes=processes, progress=progress)
    recs = []
    for i in range(len(folds["ravdess"]["test"])):
        fold_dir = d / "cv" / f"fold-{i}"
        if not (fold_dir / "artifact.json").is_file():
            raise FileNotFoundError(f"{fold_dir} holds no fold artifact")
        pred = Predictor.from_path(fold_dir, expected=fcfg)
        recs.append({"run": i, "scores": score_run(pred, *_run_test_windows(found.clips, folds, i, conf, fcfg,
                                                                            scfg, kw))})
        echo(f"[{i}] " + _line(recs[-1]["scores"]))
    loco, extra, loco_recs = None, [], {}
    for run in loco_runs(folds):
        if not (d / "cv" / run / "artifact.json").is_file():
            continue
        if any(assign(c, folds, run) == "test" for c in found.clips):
            pred = Predictor.from_path(d / "cv" / run, expected=fcfg)
            scores = score_run(pred, *_run_test_windows(found.clips, folds, run, conf, fcfg, scfg, kw))
            loco_recs[run] = loco_record(run, folds, scores)
            if run == "loco":
                loco = scores["four_class"][folds["loco"]["test_corpus"]]
            else:
                extra.append(loco_recs[run])
    unseen = {}
    trained_on = set(record.get("corpora", {}))
    left = sorted({c.corpus for c in found.clips} - trained_on) if trained_on else []
    if left and (d / "artifact.json").is_file():
        pred = Predictor.from_path(d, expected=fcfg)
        for corpus in left:
            clips = [c for c in found.clips if c.corpus == corpus]
            ws = build_windows(clips, fcfg, scfg, float(conf["hop_s"]), desc=f"unseen-{corpus}", **kw)
            unseen[corpus] = unseen_record(corpus, score_run(pred, ws, None))
            echo(f"[unseen {corpus}] " + _loco_line(unseen[corpus]).strip())
    return {"table": cv_table(recs), "loco": loco, "extra_loco": extra,
            "transfer": {"folds": [r["scores"]["transfer"].get("ravdess") for r in recs], "loco": loco_recs,
                         "unseen": unseen}}


def unseen_record(corpus: str, scores: dict) -> dict:
    """:func:`loco_record`'s fields for a corpus the scored artifact never trained on (the
    shipped model on a corpus added after it was trained): ``"<c>_4class"``, ``"<c>_7class"``
    (when the corpus has more than the 4 classes), ``"transfer"`` and ``"ece"`` (window ECE,
    15 bins, at the artifact's temperature: :func:`training.evaluate.calibration`)."""
    out = {f"{corpus}_4class": scores["four_class"][corpus], "transfer": scores["transfer"][corpus],
           "ece": scores["calibration"]["ece"]}
    clip = scores["test"][corpus]["clip"]
    if len(set(np.flatnonzero(np.asarray(clip["confusion"]).sum(1)).tolist())) > len(TUREV_CLASSES):
        out[f"{corpus}_7class"] = {k: clip[k] for k in ("ua", "wa", "macro_f1", "n")}
    return out


def store_transfer(record: dict, transfer: dict, when: str) -> dict:
    """Write :func:`evaluate_cv`'s ``transfer`` into a ``cv.json`` record where ``ser train``
    writes it (``ser evaluate --write``; for records made before the transfer AUCs existed):
    each fold's ``cv.runs[i].scores.transfer.ravdess``, each LOCO run's ``transfer`` (and the
    extra runs' 4/7-class scores), and ``unseen`` (corpora the shipped artifact never trained
    on), plus ``transfer_rescored`` (``when``: the date). Returns ``record``, changed in place."""
    for run, t in zip(record.get("cv", {}).get("runs", []), transfer["folds"]):
        if t is not None:
            run.setdefault("scores", {}).setdefault("transfer", {})["ravdess"] = t
    for run, rec in transfer["loco"].items():
        record.setdefault(record_key(run), {}).update(rec)
    if transfer["unseen"]:
        record["unseen"] = transfer["unseen"]
    record["transfer_rescored"] = when
    return record
