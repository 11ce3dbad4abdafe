"""The default model (the CNN alone) on voices it never heard: window ECE with its shipped
temperature (read from models/ser-cnn/artifact.json: when this record was made, the median
of the CV folds' validation-fitted temperatures; since models/runs/2026-12-07-unheard-temperature,
fitted on the TurEV-DB leave-one-corpus-out windows, so TurEV-DB's "shipped T" is in-sample
there), and with a temperature fitted on the *other* unheard corpus (the lever of
models/runs/2026-12-07-short-channels/cnn_temperature.py, for the CNN now shipped). Reads the
CNN window probabilities that extract.py (clips alone) and window_calibration.py (speaker
streams) cached for the CNN in models/ser-cnn, all at the served CNN's temperature.

Usage: PYTHONPATH=$PWD python models/runs/2026-12-07-distilled-default/cnn_temperature.py [CACHE_DIR]
"""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

from training.evaluate import calibration

ROOT = Path(__file__).resolve().parents[3]
spec = importlib.util.spec_from_file_location("t", ROOT / "models/runs/2026-12-07-short-channels/temperature.py")
t = importlib.util.module_from_spec(spec)
spec.loader.exec_module(t)
T0 = json.loads((ROOT / "models" / "ser-cnn" / "artifact.json").read_text())["calibration"]["temperature"]
cache = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/enc30/feats")
d = {}
for c in ("turev", "emovo", "ravdess"):
    for u, f in (("clip", f"clips-{c}.npz"), ("speaker", f"windows-{c}.npz")):
        z = np.load(cache / f)
        d[c, u] = (T0 * np.log(np.maximum(z["cnn"].astype(np.float64), 1e-12)), z["y"])   # logits before T
pooled = {c: (np.vstack([d[c, u][0] for u in ("clip", "speaker")]),
              np.concatenate([d[c, u][1] for u in ("clip", "speaker")])) for c in ("turev", "emovo", "ravdess")}
T = {c: t.fit_t(*pooled[c]) for c in pooled}
T["both"] = t.fit_t(np.vstack([pooled["turev"][0], pooled["emovo"][0]]),
                    np.concatenate([pooled["turev"][1], pooled["emovo"][1]]))
print("shipped T", round(T0, 3), "fitted:", {k: round(v, 3) for k, v in T.items()})
src = {"turev": "emovo", "emovo": "turev", "ravdess": "both"}
for (c, u), (z, y) in d.items():
    print(c, u, "shipped T", round(calibration(t.temper(z, T0), y)["ece"], 3),
          f"T from {src[c]}", round(calibration(t.temper(z, T[src[c]]), y)["ece"], 3),
          "own", round(calibration(t.temper(z, t.fit_t(z, y)), y)["ece"], 3))
