"""bench.robustness's 16-bit gain check with the call first written as a 16-bit WAV at 0 dB
and every gain applied to THAT recording's samples (a user turning a 16-bit file up or
down), instead of quantising each gain's copy from the float call. Same 6 calls.

    PYTHONPATH=. python models/runs/2026-12-03-consistency/scaled16.py <model dir> <out.json>
"""
import io, json, random, sys, tempfile
from pathlib import Path

import numpy as np, soundfile as sf

from bench.robustness import build_call, gain_invariance
from ser_lib.config import JobConfig
from ser_lib.features import FeatureConfig
from ser_lib.runtime import Predictor
from training.corpora import default_corpora_root, discover
from training.cv import FOLDS_PATH, assign, load_folds

model, out = sys.argv[1], sys.argv[2]
clips = discover([default_corpora_root()]).clips
folds, cfg, fcfg = load_folds(FOLDS_PATH), JobConfig.load(None), FeatureConfig()
rng = random.Random(20261202)          # bench.robustness's seed: the same calls
calls = []
for i in range(len(folds["ravdess"]["test"])):
    pred = Predictor.from_path(Path(model) / "cv" / f"fold-{i}", expected=fcfg)
    test = [c for c in clips if c.corpus == "ravdess" and assign(c, folds, i) == "test"]
    for actor in rng.sample(sorted({c.speaker for c in test}), 1):
        y = build_call([c for c in test if c.speaker == actor], rng)
        buf = io.BytesIO()
        sf.write(buf, y, 16000, subtype="PCM_16", format="WAV")
        buf.seek(0)
        y16, _ = sf.read(buf, dtype="float32")   # the 16-bit recording's own samples
        calls.append((y16, pred))
with tempfile.TemporaryDirectory() as tmp:
    res = gain_invariance(calls, cfg, Path(tmp), subtype="PCM_16")
Path(out).write_text(json.dumps({"command": " ".join(["python"] + sys.argv), "per_gain": res}, indent=1) + "\n")
for g, d in res.items():
    print(f"{int(g):+3d} dB: flag {d['flag_changed']:.4f} emotion {d['emotion_changed']:.4f} "
          f"either {d['either_changed']:.4f}; peak >= -60 dBFS: either {d['in_range']['either_changed']:.4f}")
