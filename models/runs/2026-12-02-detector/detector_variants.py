"""Clips with a speech window and share of speech windows per corpus, at 0/-20/-30 dB, for the
change measured over every log-mel band (skip0) or above the 3 lowest (skip3), with the floor
relative to the strongest band of all at R dB (R1000 = none). Usage: python <this> turev tess ravdess"""
import sys
from dataclasses import replace
import numpy as np
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[3]))  # the repository root
from training.corpora import default_corpora_root, discover
from training.dataset import clip_samples
from ser_lib.features import FeatureConfig, window_features
from ser_lib.speech import SpeechConfig, is_speech
fc, sc = FeatureConfig(), SpeechConfig()
cfgs = {f"skip{k}-R{r}": replace(sc, flux_skip_bands=k, flux_total_range_db=r) for k in (0, 3) for r in (1000, 60, 50, 40)}
clips = [c for c in discover([str(default_corpora_root())]).clips if c.corpus in sys.argv[1:]]
res = {}
for c in clips:
    y = clip_samples(c.path, fc.sample_rate)
    for g in (0, -20, -30):
        f, _ = window_features((y * 10 ** (g / 20)).astype(np.float32), fc, 1.0)
        for name, cfg in cfgs.items():
            s = is_speech(f, cfg)
            r = res.setdefault((c.corpus, g, name), [0, 0, 0, 0])
            r[0] += 1; r[1] += bool(s.any()); r[2] += int(s.sum()); r[3] += len(s)
for (corp, g, k), (n, cov, sw, w) in sorted(res.items()):
    print(f"{corp:8s} {g:4d} dB {k}: coverage {cov/n:.4f} ({n-cov} missed)  speech windows {sw}/{w} = {sw/w:.4f}")
