"""Which temperature for voices the model never heard? The accurate model's windows (as
``probe.py``'s ``product`` rule serves them, T = 1.107 fitted on RAVDESS actor-CV speaker
streams) re-tempered by a T fitted on *another* held-out corpus's windows (both protocols:
clips scored alone and speakers streamed as calls, pooled): TurEV-DB's T tested on EMOVO
and the reverse; both corpora's T tested on RAVDESS actor CV. ECE: 15 bins, top-class
confidence, 7 classes (``training.evaluate.calibration``).

Usage: python models/runs/2026-12-07-short-channels/temperature.py CACHE_DIR OUT_JSON
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import importlib.util

import numpy as np

from training.evaluate import calibration

_spec = importlib.util.spec_from_file_location("short_probe", Path(__file__).resolve().parent / "probe.py")
_probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_probe)
fit_t = _probe.fit_t

T_SHIPPED = 1.107


def logits(p):
    return T_SHIPPED * np.log(np.maximum(p.astype(np.float64), 1e-12))


def temper(z, t):
    a = z / t
    e = np.exp(a - a.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def main(cache: str, out_json: str) -> None:
    cache = Path(cache)
    data = {(c, u): dict(np.load(cache / f"product-{c}-{u}.npz")) for c in ("turev", "emovo", "ravdess")
            for u in ("clip", "speaker")}
    pooled = {c: (np.vstack([logits(data[c, u]["p"]) for u in ("clip", "speaker")]),
                  np.concatenate([data[c, u]["y"] for u in ("clip", "speaker")])) for c in ("turev", "emovo", "ravdess")}
    t_of = {c: fit_t(*pooled[c]) for c in pooled}
    t_of["turev+emovo"] = fit_t(np.vstack([pooled["turev"][0], pooled["emovo"][0]]),
                                np.concatenate([pooled["turev"][1], pooled["emovo"][1]]))
    source = {"emovo": "turev", "turev": "emovo", "ravdess": "turev+emovo"}
    out = {"method": __doc__.split("\n\n")[0].replace("\n", " "), "T_fitted": t_of, "ece": {}}
    for (c, u), d in data.items():
        z = logits(d["p"])
        out["ece"][f"{c} / {u}"] = {
            "previous_T_1.107": calibration(d["p"], d["y"])["ece"],
            f"T_from_{source[c]}": calibration(temper(z, t_of[source[c]]), d["y"])["ece"],
            "T_shipped_fitted_on_turev+emovo": calibration(temper(z, t_of["turev+emovo"]), d["y"])["ece"],
            "own_T_oracle": calibration(temper(z, fit_t(z, d["y"])), d["y"])["ece"]}
        print(c, u, {k: round(v, 3) for k, v in out["ece"][f"{c} / {u}"].items()})
    print({k: round(v, 3) for k, v in t_of.items()})
    Path(out_json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
