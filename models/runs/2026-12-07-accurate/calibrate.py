"""Calibration of the accurate model's fused probabilities: ECE (15 bins, the product's
``training.evaluate.calibration``) before and after temperature scaling, for the arithmetic
mean (``linear``) and the weighted geometric mean (``log``) of the CNN's and the head's clip
probabilities (``ser_lib.encoder_head.fuse``, CNN weight 0.5), with UA and the transfer AUCs.

Clip level, from the cached features of ``measure.py`` (the shipped head recipe: 8 kHz +
telephone training rows, 8 kHz test rows, ``training.encoder_head.fit_head``):

- RAVDESS actor CV: CNN fold models (``cnn-folds-wide.npy``) + heads fitted without the
  fold's actors; "after" = each fold scaled by the temperature fitted on the other 5 folds'
  out-of-fold predictions (nested; the shipped temperature is the one fitted on all 6).
- TurEV-DB out (CNN: its LOCO model; head without TurEV-DB) and EMOVO out (CNN: the shipped
  model, never trained on EMOVO; head without EMOVO): "after" = the temperature fitted as the
  build fits it, on RAVDESS actor-CV out-of-fold predictions, with heads fitted without the
  evaluated corpus. Never on the evaluated corpus.
- ``ece_with_artifact_T``: with the shipped artifact's temperature (``models/ser-accurate``,
  fitted on RAVDESS CV *windows*), for its fusion rule: what the shipped T does to clip means.
- Sensitivity: ``T_other_corpus`` = fitted on the other left-out corpus's predictions (head
  and CNN without either corpus: RAVDESS + TESS head, TurEV-DB LOCO CNN); ``T_oracle`` =
  fitted on the evaluated corpus itself (not an estimate: the best one temperature can do).

All ECEs are over the 7 output classes (TurEV-DB clips have 4 true labels; a clip called
disgust, fear or surprise counts as wrong). ``fit_fusion_temperature`` and ``fuse`` are the
product's (training/encoder_head.py, ser_lib/encoder_head.py).

Usage: python models/runs/2026-12-07-accurate/calibrate.py CACHE_DIR OUT_JSON
"""
from __future__ import annotations

import importlib.util
import json
import sys
import warnings
from pathlib import Path

import numpy as np
from sklearn.metrics import balanced_accuracy_score

from ser_lib.encoder_head import fuse
from training.cv import FOLDS_PATH, load_folds
from training.evaluate import calibration
from training.encoder_head import CNN_WEIGHT, fit_fusion_temperature, fit_head, standardize_by_speaker

warnings.filterwarnings("ignore")
_spec = importlib.util.spec_from_file_location(
    "probe", Path(__file__).resolve().parent.parent / "2026-12-07-encoder" / "probe.py")
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)
RULES = ("linear", "log")


def main(cache: str, out_json: str) -> None:
    cache = Path(cache)
    corpus, speaker, y, _feats, cnn = probe.load(cache)
    x8 = standardize_by_speaker(np.load(cache / "enc-8k.npy"), speaker)
    xt = standardize_by_speaker(np.load(cache / "enc-tel.npy")[:, 1536:2048], speaker)
    folds_p = np.load(cache / "cnn-folds-wide.npy")

    def head(tr, te):
        return fit_head(np.vstack([x8[tr], xt[tr]]), np.tile(y[tr], 2), np.tile(corpus[tr], 2)).predict(x8[te])

    def rav_oof(excl=None):
        """RAVDESS actor-CV out-of-fold (cnn, head, y, fold), heads also without corpus ``excl``."""
        parts = []
        for i, actors in enumerate(load_folds(FOLDS_PATH)["ravdess"]["test"]):
            te = np.isin(speaker, [f"ravdess:{a}" for a in actors])
            parts.append((folds_p[te], head(~te & (corpus != excl), te), y[te], np.full(te.sum(), i)))
        return tuple(np.concatenate(p) for p in zip(*parts))

    rav = {None: rav_oof(), "turev": rav_oof("turev"), "emovo": rav_oof("emovo")}
    tv, em, rt = corpus == "turev", corpus == "emovo", np.isin(corpus, ["ravdess", "tess"])
    loco = {"turev": (cnn["wide"]["loco"][tv], head(corpus != "turev", tv), y[tv]),
            "emovo": (cnn["wide"]["final"][em], head(corpus != "emovo", em), y[em])}
    neither = {"turev": (cnn["wide"]["loco"][tv], head(rt, tv), y[tv]),
               "emovo": (cnn["wide"]["loco"][em], head(rt, em), y[em])}
    ece = lambda p, yy: calibration(p, yy)["ece"]  # noqa: E731
    out = {"protocol": __doc__.split("\n\n")[1] + "\n\n" + __doc__.split("\n\n")[2], "cnn_weight": CNN_WEIGHT,
           "models_alone": {}, "rules": {}}
    pc, ph, yy, fold = rav[None]
    out["models_alone"]["ravdess_cv"] = {"cnn_ece": ece(pc, yy), "head_ece": ece(ph, yy),
                                         "cnn": probe.score(pc, yy), "head": probe.score(ph, yy)}
    for p in ("turev", "emovo"):
        out["models_alone"][p] = {"cnn_ece": ece(loco[p][0], loco[p][2]), "head_ece": ece(loco[p][1], loco[p][2]),
                                  "cnn": probe.score(loco[p][0], loco[p][2]), "head": probe.score(loco[p][1], loco[p][2])}
    shipped = json.loads((Path(__file__).resolve().parents[2] / "ser-accurate" / "encoder_head.json").read_text())
    for rule in RULES:
        f = lambda a, b, t=1.0: fuse(a, b, CNN_WEIGHT, rule, t)  # noqa: E731
        fitT = lambda a, b, yy_: fit_fusion_temperature(a, b, yy_, CNN_WEIGHT, rule)  # noqa: E731
        r = {}
        # RAVDESS actor CV, nested temperature
        before, after, ts = f(pc, ph), np.empty((len(yy), 7), np.float32), []
        for k in np.unique(fold):
            m = fold == k
            ts.append(fitT(pc[~m], ph[~m], yy[~m]))
            after[m] = f(pc[m], ph[m], ts[-1])
        r["ravdess_cv"] = {"ua7_folds": [float(balanced_accuracy_score(yy[fold == k], before[fold == k].argmax(1)))
                                         for k in np.unique(fold)],
                           **{k: v for k, v in probe.score(before, yy).items() if k != "ua7"},
                           "ece_before": ece(before, yy), "ece_after": ece(after, yy), "T_folds": ts,
                           "T_all_folds": fitT(pc, ph, yy)}
        r["ravdess_cv"]["ua7_mean"] = float(np.mean(r["ravdess_cv"]["ua7_folds"]))
        r["ravdess_cv"]["ua7_std"] = float(np.std(r["ravdess_cv"]["ua7_folds"], ddof=1))
        for p, other in (("turev", "emovo"), ("emovo", "turev")):
            a, b, yp = loco[p]
            before = f(a, b)
            t = fitT(*rav[p][:3])
            t_other = fitT(*neither[other])
            t_oracle = fitT(a, b, yp)
            r[p] = {**probe.score(before, yp), "ece_before": ece(before, yp), "T": t, "ece_after": ece(f(a, b, t), yp),
                    "T_other_corpus": t_other, "ece_after_T_other_corpus": ece(f(a, b, t_other), yp),
                    "T_oracle": t_oracle, "ece_after_T_oracle": ece(f(a, b, t_oracle), yp)}
        if shipped.get("fusion") == rule:
            t = shipped["temperature"]
            r["ravdess_cv"]["ece_with_artifact_T"] = ece(f(pc, ph, t), yy)
            for p in ("turev", "emovo"):
                r[p]["ece_with_artifact_T"] = ece(f(*loco[p][:2], t), loco[p][2])
        out["rules"][rule] = r
        print(rule, {p: (round(v["ece_before"], 3), round(v["ece_after"], 3)) for p, v in r.items()}, flush=True)
    Path(out_json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
