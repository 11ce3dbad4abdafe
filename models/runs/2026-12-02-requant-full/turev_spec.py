"""Mean log-mel profile, relative to the strongest band, of TurEV-DB clips that get no speech window vs ones that do."""
import sys
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository root
from training.corpora import default_corpora_root
from training.dataset import clip_samples
from ser_lib.features import FeatureConfig, frame_features
fc = FeatureConfig()
for name in ["Sad/1358_hl_gezi.flac", "Sad/1358_hl_nicin.flac", "Sad/1157_hl_algi.flac", "Angry/1358_kz_gezi.flac"]:
    try:
        y = clip_samples(str(default_corpora_root() / "turev" / name), 8000)
    except Exception as e:
        print(name, e); continue
    f = frame_features(y, fc)
    lv = f[:, 1]; act = lv > lv.max() - 30
    mel = f[act, 34:]
    rel = mel - mel.max(1, keepdims=True)
    print(name, f"frames {len(f)} active {act.sum()}", "strongest band idx (mode)", np.bincount(mel.argmax(1)).argmax(),
          "mean rel profile", rel.mean(0).round(0)[::4].tolist())
