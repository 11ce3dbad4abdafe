"""``neighbours`` (each speech window's encoder row averaged with its neighbours') on each clip
scored alone: a clip is a recording of its own, so the pooling never crosses into another
utterance. Clip level (the clip's mean window probability), from the served window rows cached by
``../2026-12-07-short-channels/extract.py`` (``clips-<corpus>.npz``: each clip's speech windows in
time order), heads fitted without the corpus (RAVDESS: without the fold's actors), the CNN that
never heard it at the served temperature, the shipped fusion (``fuse(.., "log", 1)``).

Usage: python models/runs/2026-12-07-encoder-lite/clips_alone.py CACHE_DIR OUT_JSON
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


def neighbours(rows: np.ndarray) -> np.ndarray:
    return np.stack([rows[max(0, i - 1):i + 2].mean(0) for i in range(len(rows))])


def main(cache: str, out_json: str) -> None:
    cache = Path(cache)
    _meta, corpus, speaker, y_all, raw8, rawt = probe.load_rows(cache)
    w = fusion_weight(load_meta(DEFAULT_CNN).temperature)

    def heads(tr):
        return fit_heads(np.vstack([raw8[tr], rawt[tr]]), np.tile(y_all[tr], 2), np.tile(corpus[tr], 2), speaker[tr], 2)

    out = {"method": __doc__.split("\n\n")[0].replace("\n", " "), "results": {}}
    for test in ("turev", "emovo", "ravdess"):
        if test == "ravdess":
            groups = [[f"ravdess:{a}" for a in actors] for actors in load_folds(FOLDS_PATH)["ravdess"]["test"]]
            hs = [heads(~np.isin(speaker, g)) for g in groups]
            head_of = {s: hs[i] for i, g in enumerate(groups) for s in g}
        else:
            h = heads(corpus != test)
            head_of = {s: h for s in set(speaker[corpus == test])}
        d = dict(np.load(cache / f"clips-{test}.npz"))
        res = {}
        for way in ("shipped", "neighbours"):
            ps, ys, n_multi = [], [], 0
            for c in np.unique(d["clip"]):
                m = d["clip"] == c
                rows = d["rows"][m] if way == "shipped" else neighbours(d["rows"][m])
                n_multi += int(m.sum() > 1)
                p = fuse(d["cnn"][m], head_of[d["speaker"][m][0]].predict_channel(rows), w, "log", 1.0)
                ps.append(p.mean(0))
                ys.append(y_all[c])
            res[way] = {**probe.score(np.array(ps), np.array(ys)), "clips_of_2_or_more_windows": n_multi}
            print(test, way, " ".join(f"{k} {v:.3f}" for k, v in res[way].items()), flush=True)
        out["results"][test] = res
    Path(out_json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
