"""Top-2 probability margin at 0 dB of the windows whose emotion changes in a 16-bit copy at
another gain, against all speech windows: are the flips near-ties? Same 6 calls as bench.robustness."""
import json, sys, tempfile
from pathlib import Path
import numpy as np, soundfile as sf
from bench.robustness import fold_calls
from ser_lib.config import JobConfig
from ser_lib.features import FeatureConfig
from ser_lib.scoring import score_recording
from training.corpora import default_corpora_root, discover

model = sys.argv[1]
cfg, fcfg = JobConfig.load(None), FeatureConfig()
calls = fold_calls(discover([default_corpora_root()]).clips, model, fcfg)
out = {}
with tempfile.TemporaryDirectory() as tmp:
    def score(y, pred, g):
        p = Path(tmp) / "x.wav"
        sf.write(p, np.clip(y * 10 ** (g / 20), -1, 1), 16000, subtype="PCM_16")
        return score_recording(str(p), pred, fcfg, cfg.hop_s, cfg.speech, cfg.channel_names, cfg.chunk_s).channels[0]
    for g in (-30, -20, -10, 10, 20):
        m_all, m_chg = [], []
        for y, pred in calls:
            a, b = score(y, pred, 0), score(y, pred, g)
            both = a.speech & b.speech
            ps = np.sort(a.probs[both], axis=1)
            margin = ps[:, -1] - ps[:, -2]
            chg = (a.emotion[both] != b.emotion[both])
            m_all.append(margin); m_chg.append(margin[chg])
        m_all, m_chg = np.concatenate(m_all), np.concatenate(m_chg)
        out[g] = {"speech_windows": len(m_all), "changed": len(m_chg),
                  "median_margin_all": round(float(np.median(m_all)), 3),
                  "median_margin_changed": round(float(np.median(m_chg)), 3) if len(m_chg) else None,
                  "share_changed_with_margin_lt_0.1": round(float(np.mean(m_chg < 0.1)), 3) if len(m_chg) else None,
                  "share_all_with_margin_lt_0.1": round(float(np.mean(m_all < 0.1)), 3)}
        print(g, out[g], flush=True)
print(json.dumps(out))
