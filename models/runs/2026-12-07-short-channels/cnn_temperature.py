"""The same question for the default model (the CNN alone, T 1.058 fitted on RAVDESS CV validation
windows): does a temperature fitted on one unheard corpus calibrate the other? Reads the CNN
window probabilities of extract.py (clips alone) and window_calibration.py (speaker streams).

Usage: PYTHONPATH=$PWD python models/runs/2026-12-07-short-channels/cnn_temperature.py
"""
import numpy as np, json
from pathlib import Path
from training.evaluate import calibration
import importlib.util
spec = importlib.util.spec_from_file_location("t", "models/runs/2026-12-07-short-channels/temperature.py")
t = importlib.util.module_from_spec(spec); spec.loader.exec_module(t)
T0 = 1.0580773754007664  # the shipped CNN's temperature
cache = Path("/tmp/enc30/feats")
d = {}
for c in ("turev", "emovo", "ravdess"):
    for u, f in (("clip", f"clips-{c}.npz"), ("speaker", f"windows-{c}.npz")):
        z = np.load(cache / f); d[c, u] = (T0 * np.log(np.maximum(z["cnn"].astype(np.float64), 1e-12)), z["y"])
pooled = {c: (np.vstack([d[c, u][0] for u in ("clip", "speaker")]), np.concatenate([d[c, u][1] for u in ("clip", "speaker")])) for c in ("turev", "emovo", "ravdess")}
T = {c: t.fit_t(*pooled[c]) for c in pooled}
T["both"] = t.fit_t(np.vstack([pooled["turev"][0], pooled["emovo"][0]]), np.concatenate([pooled["turev"][1], pooled["emovo"][1]]))
print({k: round(v, 3) for k, v in T.items()})
src = {"turev": "emovo", "emovo": "turev", "ravdess": "both"}
for (c, u), (z, y) in d.items():
    print(c, u, "shipped T", round(calibration(t.temper(z, T0), y)["ece"], 3), f"T from {src[c]}", round(calibration(t.temper(z, T[src[c]]), y)["ece"], 3), "own", round(calibration(t.temper(z, t.fit_t(z, y)), y)["ece"], 3))
