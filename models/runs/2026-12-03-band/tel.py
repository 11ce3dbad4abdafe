import random, sys, dataclasses
import numpy as np
sys.path.insert(0, "/work/main")
from ser_lib.features import FeatureConfig, level_normalize, window_features
from training.augment import telephone
from training.corpora import discover
from training.dataset import clip_samples
clips = [c for c in discover(["/work/shared/corpora"]).clips if c.corpus == "ravdess"]
random.Random(1).shuffle(clips); clips = clips[:80]
base = FeatureConfig()
W, T = [], []
for c in clips:
    y = clip_samples(c.path, 8000)
    yt = telephone(y, 8000, np.random.default_rng(7))
    W.append(window_features(y, base, 0.5)[0]); T.append(window_features(yt.astype(np.float32), base, 0.5)[0])
W = np.concatenate(W); T = np.concatenate(T)
names = base.feature_names()
for band, gate in [(None, None), (None, -30.0), ((300.0, 3400.0), None), ((300.0, 3400.0), -30.0)]:
    fc = dataclasses.replace(base, band_hz=band, quiet_gate_db=gate)
    a, b = level_normalize(W, fc), level_normalize(T, fc)
    sd = a.reshape(-1, a.shape[-1]).std(0) + 1e-6
    d = (np.abs(a - b) / sd).mean(axis=(0, 1))
    top = np.argsort(d)[::-1][:6]
    print(band, gate, f"all {d.mean():.3f} rms {d[1]:.3f} mfcc {d[2:22].mean():.3f} chroma {d[22:34].mean():.3f} mel {d[34:74].mean():.3f} zcr {d[0]:.3f} pitch {d[74:].round(3)}", [(names[k], round(float(d[k]),2)) for k in top])
