import sys, random
import numpy as np
sys.path.insert(0, '.')
from ser_lib import features as F
from ser_lib.speech import SpeechConfig
from training.corpora import default_corpora_root, discover
from training.dataset import clip_samples, speech_windows
clips = discover([str(default_corpora_root())]).clips
random.seed(1); sample = random.sample(clips, 600)
fcfg = F.FeatureConfig(); scfg = SpeechConfig()
tot = changed = 0; maxd = []
import json
meta = json.load(open('./models/ser-cnn/artifact.json'))
for c in sample:
    y = clip_samples(c.path, fcfg.sample_rate)
    out = []
    for amin in (1e-10, 1e-20):
        F._AMIN = amin; F._RMS_FLOOR = np.sqrt(amin)
        w = speech_windows(y, fcfg, scfg, 0.5)
        w = w[0] if isinstance(w, tuple) else w
        out.append(F.level_normalize(w, fcfg))
    a, b = out
    if a.shape != b.shape: print("shape", c.path); continue
    d = np.abs(a - b).reshape(len(a), -1).max(axis=1)
    tot += len(d); changed += int((d > 1e-3).sum()); maxd += list(d)
print("windows", tot, "changed >1e-3:", changed, "max", max(maxd), "p99.9", np.percentile(maxd, 99.9))
