"""The accurate model's fusion weight, chosen on one unheard corpus and tested on the other.

The shipped rule gives the CNN's unscaled log-probabilities weight 0.5 against the head's
(``training.encoder_head.CNN_WEIGHT``, fixed before it was measured). On the corpora neither
model heard, the head alone often beats the fusion (``../2026-12-07-encoder-finetune``). Does
another weight carry better to voices never heard, when it is chosen on one unheard corpus
and judged on the other (as the fusion temperature is)?

Data: the served window predictions of ``../2026-12-07-short-channels`` (cache of
``2026-12-07-accurate/window_calibration.py`` and ``2026-12-07-short-channels/extract.py``):
each speaker's clips streamed as one call channel (``windows-<corpus>.npz``) and each clip
alone (``clips-<corpus>.npz``, scored at clip level: the mean of its windows), the CNN that
never heard the corpus at the served temperature (TurEV-DB: its leave-one-corpus-out model;
EMOVO: the shipped one), the product's heads (``training.encoder_head.fit_heads``,
``EncoderHead.predict_channel``) fitted without the corpus (RAVDESS: without the fold's actors).

For each weight ``u`` of the CNN's unscaled log-probabilities (``fusion_weight(T_cnn, u)`` on
the served probabilities; ``u = 0`` is the head alone, 1 the CNN alone): UA4, UA7, arousal,
anger and negative AUC. Selection rule, fixed before looking: the ``u`` with the highest
mean of UA4 and arousal AUC (speakers as calls, window level) on the *other* unheard corpus.

Usage: python models/runs/2026-12-07-fusion-weight/sweep.py CACHE_DIR OUT_JSON
"""
from __future__ import annotations

import importlib.util
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from ser_lib.artifact import load_meta
from ser_lib.encoder_head import fuse
from training.cv import FOLDS_PATH, load_folds
from training.encoder_head import DEFAULT_CNN, fit_heads, fusion_weight

warnings.filterwarnings("ignore")
HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("probe", HERE.parent / "2026-12-07-encoder" / "probe.py")
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 1.0)


def main(cache: str, out_json: str) -> None:
    cache = Path(cache)
    _meta, corpus, speaker, y_all, raw8, rawt = probe.load_rows(cache)
    t_cnn = load_meta(DEFAULT_CNN).temperature

    def train(tr):
        return fit_heads(np.vstack([raw8[tr], rawt[tr]]), np.tile(y_all[tr], 2), np.tile(corpus[tr], 2),
                         speaker[tr], 2)

    out = {"method": __doc__.split("\n\n")[1].replace("\n", " "), "cnn_temperature": t_cnn, "results": {}}
    for test in ("turev", "emovo", "ravdess"):
        if test == "ravdess":
            groups = [[f"ravdess:{a}" for a in actors] for actors in load_folds(FOLDS_PATH)["ravdess"]["test"]]
            heads = [train(~np.isin(speaker, g)) for g in groups]
            head_of = {s: heads[i] for i, g in enumerate(groups) for s in g}
        else:
            h = train(corpus != test)
            head_of = {s: h for s in set(speaker[corpus == test])}
        for unit, d in (("speaker", dict(np.load(cache / f"windows-{test}.npz"))),
                        ("clip", dict(np.load(cache / f"clips-{test}.npz")))):
            key = "clip" if unit == "clip" else "speaker"
            groups_ = d[key]
            head_p = np.zeros_like(d["cnn"])
            for g in np.unique(groups_):
                m = groups_ == g
                head_p[m] = head_of[d["speaker"][m][0]].predict_channel(d["rows"][m])
            res = {}
            for u in WEIGHTS:
                p = fuse(d["cnn"], head_p, fusion_weight(t_cnn, u), "log", 1.0)
                if unit == "clip":  # clip level: the clip's mean window probability
                    ids = np.unique(groups_)
                    p = np.stack([p[groups_ == c].mean(0) for c in ids])
                    yy = y_all[ids]
                else:
                    yy = d["y"]
                res[f"{u:.1f}"] = probe.score(p, yy)
            out["results"][f"{test}/{unit}"] = res
            print(f"== {test} / {unit}", flush=True)
            for u, r in res.items():
                print(f"  u={u} " + " ".join(f"{k} {v:.3f}" for k, v in r.items() if k != "n"), flush=True)
    crit = lambda r: (r["ua4"] + r["arousal_auc"]) / 2  # noqa: E731
    sel = {}
    for test, other in (("turev", "emovo"), ("emovo", "turev")):
        res_other = out["results"][f"{other}/speaker"]
        u = max(res_other, key=lambda k: crit(res_other[k]))
        sel[test] = {"chosen_on": other, "u": float(u), "speaker": out["results"][f"{test}/speaker"][u],
                     "speaker_at_0.5": out["results"][f"{test}/speaker"]["0.5"],
                     "clip": out["results"][f"{test}/clip"][u], "clip_at_0.5": out["results"][f"{test}/clip"]["0.5"]}
    out["cross_selected"] = sel
    print(json.dumps(sel, indent=1))
    Path(out_json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
