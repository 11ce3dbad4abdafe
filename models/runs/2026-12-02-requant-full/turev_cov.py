"""Which TurEV-DB clips get no speech window at 0, -20 or -30 dB, and why (active share, noise floor, spectral change)."""
import sys
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository root
from training.corpora import default_corpora_root, discover
from training.dataset import clip_samples
from ser_lib.features import FeatureConfig, window_features
from ser_lib.speech import SpeechConfig, active_frames, spectral_change, is_speech
if __name__ == "__main__":
    fc, sc = FeatureConfig(), SpeechConfig()
    clips = [c for c in discover([str(default_corpora_root())]).clips if c.corpus == "turev"]
    for c in clips:
        y = clip_samples(c.path, fc.sample_rate)
        res = []
        for g in (0, -20, -30):
            f, _ = window_features((y * 10 ** (g / 20)).astype(np.float32), fc, 1.0)
            res.append(bool(is_speech(f, sc).any()))
        if not all(res):
            f, _ = window_features(y, fc, 1.0)
            a = active_frames(f, sc)
            lv = f[:, :, 1]
            print(c.path.split("/")[-2:], f"{len(y)/fc.sample_rate:.2f}s", res, "active", a.mean(1).round(2).tolist(),
                  "p10", np.percentile(lv, 10, axis=1).round(1).tolist(), "max", lv.max(1).round(1).tolist(),
                  "ch10", spectral_change(f, a, sc, 1).round(2).tolist(), "ch40", spectral_change(f, a, sc, 4).round(2).tolist())
