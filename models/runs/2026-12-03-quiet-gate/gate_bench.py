"""Paired 16-bit gain check on folds 0-3: shipped fold models vs the gate run's fold models, same calls."""
import json, random, sys, tempfile
from pathlib import Path
sys.path.insert(0, "/work/gate-wt")  # a worktree with ../2026-12-03-band/band-and-gate.patch applied and band_hz None: the input of quiet-gate.patch (its artifacts store band_hz)
from bench.robustness import build_call, gain_invariance
from ser_lib.config import JobConfig
from ser_lib.runtime import Predictor
from training.corpora import discover
from training.cv import FOLDS_PATH, assign, load_folds
clips = discover(["/work/shared/corpora"]).clips
folds = load_folds(FOLDS_PATH); cfg = JobConfig.load(None)
rng = random.Random(20261202)
out = {}
calls = {"shipped": [], "gate": []}
for i in range(4):
    test = [c for c in clips if c.corpus == "ravdess" and assign(c, folds, i) == "test"]
    actor = rng.sample(sorted({c.speaker for c in test}), 1)[0]
    y = build_call([c for c in test if c.speaker == actor], rng)
    calls["shipped"].append((y, Predictor.from_path(Path(f"/work/main/models/ser-cnn/cv/fold-{i}"))))
    calls["gate"].append((y, Predictor.from_path(Path(f"/work/gate-out/cv/fold-{i}"))))
with tempfile.TemporaryDirectory() as tmp:
    for name, c in calls.items():
        for st in ("PCM_16", "PCM_24"):
            r = gain_invariance(c, cfg, Path(tmp), subtype=st)
            out[f"{name} {st}"] = r
            print(name, st, " | ".join(f"{g}: flag {d['flag_changed']:.3f} emo {d['emotion_changed']:.3f} either {d['either_changed']:.3f} in-range {d['in_range']['either_changed']:.3f}" for g, d in r.items()), flush=True)
Path("/work/diag/gate_bench.json").write_text(json.dumps(out, indent=1))
