"""Accuracy of the accurate model with each encoder variant: ``../2026-12-07-accurate/measure.py``'s
protocols on ``features_int8.py``'s clip features.

Two ways to use a variant:

* ``retrained`` (the 8 kHz-only head protocol, for the float encoder and each variant alike):
  the head trained and tested on that encoder's 8 kHz-path features. The shipped head also
  trains on G.711 features, which are cached for the float encoder only, so this is the
  "8k-trained, 8k test" row of the accurate run for every variant (float: its 0.437 / 0.393).
* ``swapped``: the shipped configuration's head (trained on the *float* encoder's 8 kHz +
  G.711 features) tested on the variant's 8 kHz features: the encoder replaced under an
  unchanged head (float: the run's 0.433 / 0.413 / 0.592).

Head: ``training.encoder_head.fit_head`` (per-speaker standardisation, LR C = 0.003, balanced
(corpus, emotion) weights); fused with the CNN as measure.py does (0.5 / 0.5 mean of
probabilities). Protocols: TurEV-DB out (4-class UA, arousal AUC; CNN its LOCO model), EMOVO out
(7- and 4-class UA, arousal AUC; CNN the shipped model), RAVDESS actor CV (training/folds.json;
CNN the shipped fold models). Scores: the encoder probe's ``score``.

Usage: python models/runs/2026-12-07-encoder-int8/measure_int8.py CACHE_DIR FEAT_DIR OUT_JSON VARIANT...
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
from training.encoder_head import fit_head, standardize_by_speaker

warnings.filterwarnings("ignore")
_spec = importlib.util.spec_from_file_location(
    "probe", Path(__file__).resolve().parent.parent / "2026-12-07-encoder" / "probe.py")
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)
L2 = slice(1536, 2048)


def main(cache: str, feat_dir: str, out_json: str, *variants: str) -> None:
    cache, feat_dir = Path(cache), Path(feat_dir)
    corpus, speaker, y, _f, cnn = probe.load(cache)
    raw = {"float": np.load(cache / "enc-8k.npy"), "tel": np.load(cache / "enc-tel.npy")[:, L2]}
    raw.update({v: np.load(feat_dir / f"enc-8k-{v}.npy") for v in variants})
    X = {k: standardize_by_speaker(v, speaker) for k, v in raw.items()}
    folds_p = np.load(cache / "cnn-folds-wide.npy")
    c = cnn["wide"]  # the CNN on the job's 8 kHz path ("clean")
    out = {"protocol": __doc__.split("\n\n")[1] + "\n" + __doc__.split("\n\n")[2], "results": {}}
    for v in ("float", *variants):
        cos = (raw[v] * raw["float"]).sum(1) / (np.linalg.norm(raw[v], axis=1) * np.linalg.norm(raw["float"], axis=1))
        res = {"clip_cosine_vs_float": {"mean": float(cos.mean()), "min": float(cos.min())}}
        for how, train in (("retrained", [v]), ("swapped", ["float", "tel"])):
            entry = {}
            for p, cnn_p in (("turev", c["loco"]), ("emovo", c["final"])):
                tr, te = np.isin(corpus, probe.PROTOCOLS[p]), corpus == p
                head = fit_head(np.vstack([X[k][tr] for k in train]), np.tile(y[tr], len(train)),
                                np.tile(corpus[tr], len(train)))
                pe = head.predict(X[v][te])
                entry[p] = {"head": probe.score(pe, y[te]), "fused": probe.score(0.5 * pe + 0.5 * cnn_p[te], y[te])}
            cv = {"head": [], "fused": []}
            for actors in load_folds(FOLDS_PATH)["ravdess"]["test"]:
                te = np.isin(speaker, [f"ravdess:{a}" for a in actors])
                head = fit_head(np.vstack([X[k][~te] for k in train]), np.tile(y[~te], len(train)),
                                np.tile(corpus[~te], len(train)))
                pe = head.predict(X[v][te])
                for k, pp in (("head", pe), ("fused", 0.5 * pe + 0.5 * folds_p[te])):
                    cv[k].append(float(balanced_accuracy_score(y[te], pp.argmax(1))))
            entry["ravdess_cv"] = {k: {"folds": f, "mean": float(np.mean(f)), "std": float(np.std(f, ddof=1))}
                                   for k, f in cv.items()}
            res[how] = entry
            t, e = entry["turev"]["fused"], entry["emovo"]["fused"]
            print(f"{v:10s} {how:9s} fused: turev ua4 {t['ua4']:.3f} ar {t['arousal_auc']:.3f} | emovo ua7 {e['ua7']:.3f} "
                  f"ua4 {e['ua4']:.3f} ar {e['arousal_auc']:.3f} | CV {entry['ravdess_cv']['fused']['mean']:.3f} "
                  f"| cos {cos.mean():.5f}", flush=True)
        out["results"][v] = res
        Path(out_json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
