import random, sys, tempfile, dataclasses
from pathlib import Path
import numpy as np, soundfile as sf
sys.path.insert(0, "/work/main")  # the repository root, with ../2026-12-03-band/band-and-gate.patch applied and band_hz None
from bench.robustness import build_call
from ser_lib.config import JobConfig
from ser_lib.features import FeatureConfig, level_normalize
from ser_lib.stream import StreamAnalyzer
from training.corpora import discover
from training.cv import FOLDS_PATH, assign, load_folds
clips = discover(["/work/shared/corpora"]).clips
folds = load_folds(FOLDS_PATH); cfg = JobConfig.load(None); fcfg = FeatureConfig()
rng = random.Random(20261202)
ys = []
for i in range(3):
    test = [c for c in clips if c.corpus == "ravdess" and assign(c, folds, i) == "test"]
    actor = rng.sample(sorted({c.speaker for c in test}), 1)[0]
    ys.append(build_call([c for c in test if c.speaker == actor], rng))
def feats(y, gain, st):
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "a.wav"
        sf.write(p, np.clip(y * 10 ** (gain / 20), -1, 1), 16000, subtype=st)
        F, S = [], []
        for chunk in StreamAnalyzer(str(p), fcfg, 1.0, cfg.speech, cfg.channel_names, cfg.chunk_s):
            ch = chunk[0]; F.append(ch.features); S.append(ch.speech)
        return np.concatenate(F), np.concatenate(S)
ref = [feats(y, 0, "PCM_24") for y in ys]
conds = {(g, "PCM_16"): [feats(y, g, "PCM_16") for y in ys] for g in (0, -10, -20, -30)}
names = fcfg.feature_names()
for lf, gate in [(-40.0, None), (-40.0, -25.0), (-40.0, -20.0)]:
    fc = dataclasses.replace(fcfg, quiet_gate_db=gate, level_floor_db=lf)
    R = np.concatenate([level_normalize(F[S], fc) for F, S in ref])
    sd = R.reshape(-1, R.shape[-1]).std(0) + 1e-6
    out = []
    for (g, st), L in conds.items():
        A = np.concatenate([level_normalize(F[S & S0], fc) for (F, S), (F0, S0) in zip(L, ref)])
        B = np.concatenate([level_normalize(F0[S & S0], fc) for (F, S), (F0, S0) in zip(L, ref)])
        d = (np.abs(A - B) / sd).mean(axis=(0, 1))
        out.append(f"{g}: all {d.mean():.3f} zcr {d[0]:.3f} chroma {d[34-12:34].mean():.3f} voic {d[74]:.3f} mel {d[34:74].mean():.3f}")
    print(lf, gate, " | ".join(out), flush=True)
