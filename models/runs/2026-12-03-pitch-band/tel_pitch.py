import random, sys, dataclasses
import numpy as np
sys.path.insert(0, "/work/main")  # the repository root, with pitch-band.patch applied
from ser_lib.features import FeatureConfig, level_normalize, window_features
from training.augment import telephone
from training.corpora import discover
from training.dataset import clip_samples
clips = [c for c in discover(["/work/shared/corpora"]).clips if c.corpus == "ravdess"]
random.Random(1).shuffle(clips); clips = clips[:80]
for band in [None, (300.0, 3400.0)]:
    fc = dataclasses.replace(FeatureConfig(), pitch_band_hz=band)
    W, T = [], []
    for c in clips:
        y = clip_samples(c.path, 8000)
        yt = telephone(y, 8000, np.random.default_rng(7))
        W.append(window_features(y, fc, 0.5)[0]); T.append(window_features(yt.astype(np.float32), fc, 0.5)[0])
    W = np.concatenate(W); T = np.concatenate(T)
    a, b = level_normalize(W, fc), level_normalize(T, fc)
    sd = a.reshape(-1, a.shape[-1]).std(0) + 1e-6
    d = (np.abs(a - b) / sd).mean(axis=(0, 1))
    print(band, f"all {d.mean():.3f} rms {d[1]:.3f} mfcc {d[2:22].mean():.3f} chroma {d[22:34].mean():.3f} mel {d[34:74].mean():.3f} zcr {d[0]:.3f} pitch {d[74:].round(3)}", flush=True)
