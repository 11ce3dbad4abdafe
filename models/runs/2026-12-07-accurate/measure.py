"""Wideband vs 8 kHz (the job's path) vs telephone-trained encoder head, alone and fused with the CNN.

Reads the cached per-clip features of ``models/runs/2026-12-07-encoder/features.py``
(``enc-wide.npy``, ``enc-tel.npy``, ``ac-*.npz`` with the CNN's clip probabilities,
``cnn-folds-wide.npy``) and ``features8k.py``'s ``enc-8k.npy``; the head is the shipped
recipe's (``training.encoder_head``: last LSTM layer, mean+std, per-speaker standardisation,
LR with C = 0.003 and balanced (corpus, emotion) weights), fitted by
``training.encoder_head.fit_head`` itself. Scores with the encoder probe's ``score``
(UA4, UA7, arousal / anger / negative AUCs).

Protocols: TurEV-DB out (train RAVDESS + TESS + EMOVO; CNN: its TurEV-DB LOCO model),
EMOVO out (train RAVDESS + TESS + TurEV-DB; CNN: the shipped model, never trained on EMOVO),
RAVDESS actor CV (training/folds.json; CNN: the shipped fold models).
CNN probabilities: "clean" = the job's 8 kHz path, "tel" = through G.711.

Usage: python models/runs/2026-12-07-accurate/measure.py CACHE_DIR OUT_JSON
"""
from __future__ import annotations

import importlib.util
import json
import sys
import warnings
from pathlib import Path

import numpy as np
from sklearn.metrics import balanced_accuracy_score

from training.cv import FOLDS_PATH, load_folds
from training.evaluate import calibration
from training.encoder_head import fit_head, standardize_by_speaker

warnings.filterwarnings("ignore")
_spec = importlib.util.spec_from_file_location(
    "probe", Path(__file__).resolve().parent.parent / "2026-12-07-encoder" / "probe.py")
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)
L2 = slice(1536, 2048)  # last LSTM layer, mean + std, in enc-wide / enc-tel


def head_probs(xtr, ytr, ctr, xte) -> np.ndarray:
    return fit_head(xtr, ytr, ctr).predict(xte)


def main(cache: str, out_json: str) -> None:
    cache = Path(cache)
    corpus, speaker, y, _feats, cnn = probe.load(cache)
    meta8 = json.loads((cache / "meta-encoder.json").read_text())["clips"]
    assert [c[0] for c in meta8] == [c[0] for c in json.loads((cache / "meta-acoustic.json").read_text())["clips"]]
    raw = {"wide": np.load(cache / "enc-wide.npy")[:, L2], "tel": np.load(cache / "enc-tel.npy")[:, L2],
           "8k": np.load(cache / "enc-8k.npy")}
    X = {k: standardize_by_speaker(v, speaker) for k, v in raw.items()}
    folds_p = np.load(cache / "cnn-folds-wide.npy")
    # (name, training features, test features, CNN probabilities of the test condition)
    configs = [("wideband-trained, wideband test", ["wide"], "wide", "clean"),
               ("8k-trained, 8k test (the job's path)", ["8k"], "8k", "clean"),
               ("8k+telephone-trained, 8k test", ["8k", "tel"], "8k", "clean"),
               ("wideband-trained, 8k test", ["wide"], "8k", "clean"),
               ("8k-trained, telephone test", ["8k"], "tel", "tel"),
               ("8k+telephone-trained, telephone test", ["8k", "tel"], "tel", "tel"),
               ("telephone-trained, telephone test", ["tel"], "tel", "tel")]
    out = {"protocol": __doc__.split("\n\n")[2], "cnn_alone": {}, "configs": {}}
    for cond in ("clean", "tel"):
        c = cnn["wide" if cond == "clean" else "tel"]
        out["cnn_alone"][cond] = {"turev": probe.score(c["loco"][corpus == "turev"], y[corpus == "turev"]),
                                  "emovo": probe.score(c["final"][corpus == "emovo"], y[corpus == "emovo"])}
    for name, train, test, cnn_cond in configs:
        c = cnn["wide" if cnn_cond == "clean" else "tel"]
        entry = {}
        for p, tc, cnn_p in (("turev", probe.PROTOCOLS["turev"], c["loco"]), ("emovo", probe.PROTOCOLS["emovo"], c["final"])):
            tr, te = np.isin(corpus, tc), corpus == p
            xtr = np.vstack([X[k][tr] for k in train])
            ytr, ctr = np.tile(y[tr], len(train)), np.tile(corpus[tr], len(train))
            pe = head_probs(xtr, ytr, ctr, X[test][te])
            entry[p] = {"head": probe.score(pe, y[te]), "fused": probe.score(0.5 * pe + 0.5 * cnn_p[te], y[te])}
            if p == "emovo":  # 7 classes: clip-level ECE (15 bins) of each model
                for k, pp in (("head", pe), ("fused", 0.5 * pe + 0.5 * cnn_p[te]), ("cnn", cnn_p[te])):
                    entry[p].setdefault("ece7", {})[k] = calibration(pp, y[te])["ece"]
        if cnn_cond == "clean":
            cv = {"head": [], "fused": [], "cnn": []}
            pooled = {"head": [], "fused": [], "cnn": [], "y": []}
            for actors in load_folds(FOLDS_PATH)["ravdess"]["test"]:
                te = np.isin(speaker, [f"ravdess:{a}" for a in actors])
                xtr = np.vstack([X[k][~te] for k in train])
                pe = head_probs(xtr, np.tile(y[~te], len(train)), np.tile(corpus[~te], len(train)), X[test][te])
                for k, pp in (("head", pe), ("fused", 0.5 * pe + 0.5 * folds_p[te]), ("cnn", folds_p[te])):
                    cv[k].append(float(balanced_accuracy_score(y[te], pp.argmax(1))))
                    pooled[k].append(pp)
                pooled["y"].append(y[te])
            entry["ravdess_cv"] = {k: {"folds": v, "mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)),
                                       "ece_pooled_clips": calibration(np.concatenate(pooled[k]),
                                                                       np.concatenate(pooled["y"]))["ece"]}
                                   for k, v in cv.items()}
        out["configs"][name] = entry
        t, e = entry["turev"], entry["emovo"]
        print(f"{name:40s} fused: turev ua4 {t['fused']['ua4']:.3f} ar {t['fused']['arousal_auc']:.3f} | emovo ua7 "
              f"{e['fused']['ua7']:.3f} ua4 {e['fused']['ua4']:.3f} ar {e['fused']['arousal_auc']:.3f}"
              + (f" | CV {entry['ravdess_cv']['fused']['mean']:.3f}" if "ravdess_cv" in entry else ""), flush=True)
        Path(out_json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
