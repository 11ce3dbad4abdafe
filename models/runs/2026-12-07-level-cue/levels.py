import json, numpy as np, soundfile as sf
from pathlib import Path
from sklearn.metrics import roc_auc_score
from ser_lib.labels import EMOTIONS
cache = Path("/tmp/enc30/feats")
meta = json.loads((cache / "meta-encoder.json").read_text())["clips"]
corpus = np.array([c[1] for c in meta]); speaker = np.array([c[2] for c in meta])
y = np.array([EMOTIONS.index(c[3]) for c in meta])
lv = []
for m in meta:
    x, sr = sf.read(m[0], dtype="float32")
    f = x[: len(x) // 160 * 160].reshape(-1, 160)
    e = 10 * np.log10((f.astype(np.float64) ** 2).mean(1) + 1e-12)
    act = e[e > e.max() - 30]
    lv.append([10 * np.log10(np.mean(10 ** (act / 10))), np.percentile(e, 95), e.max()])
lv = np.array(lv)
np.save(cache / "levels.npy", lv)
hi = [EMOTIONS.index(e) for e in ("angry", "happy", "fear", "surprise")]; lo = [EMOTIONS.index(e) for e in ("neutral", "sad")]
for c in ("turev", "emovo", "ravdess", "tess"):
    m = (corpus == c) & np.isin(y, hi + lo)
    z = lv[m].copy()
    for s in np.unique(speaker[m]):
        k = speaker[m] == s
        z[k] = (z[k] - z[k].mean(0)) / (z[k].std(0) + 1e-9)
    t = np.isin(y[m], hi)
    print(c, "raw level AUC", [round(roc_auc_score(t, lv[m][:, j]), 3) for j in range(3)],
          "speaker-standardised", [round(roc_auc_score(t, z[:, j]), 3) for j in range(3)])
