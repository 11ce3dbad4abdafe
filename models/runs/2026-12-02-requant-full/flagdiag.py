"""Why do speech flags change at -30 dB in a 16-bit file? Scores 3 call-like recordings (bench.robustness.build_call)
of fold 0-2 test actors as 16-bit WAV at 0 and -30 dB and prints, per changed window, the active-frame share, noise
floor and spectral change at both gains (output quoted in the 2026-12-02 closing note)."""
import random, sys
from pathlib import Path
import numpy as np, soundfile as sf, io
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository root
from bench.robustness import build_call
from training.corpora import default_corpora_root, discover
from training.cv import load_folds, assign
from ser_lib.features import FeatureConfig, window_features
from ser_lib.speech import SpeechConfig, active_frames, spectral_change, is_speech

if __name__ == "__main__":
    found = discover([str(default_corpora_root())])
    folds = load_folds()
    fc, sc = FeatureConfig(), SpeechConfig()
    tot = {}
    for fold in range(3):
        clips = [c for c in found.clips if c.corpus == "ravdess" and assign(c, folds, fold) == "test"]
        actor = sorted({c.speaker for c in clips})[0]
        y = build_call([c for c in clips if c.speaker == actor], random.Random(fold))
        def feats(g, sub):
            b = io.BytesIO(); sf.write(b, np.clip(y * 10 ** (g / 20), -1, 1), 16000, subtype=sub, format="WAV"); b.seek(0)
            z, _ = sf.read(b, dtype="float32")
            f, _ = window_features(z, fc, 1.0)
            return f
        f0, f30 = feats(0, "PCM_16"), feats(-30, "PCM_16")
        for name, f in (("0", f0), ("-30", f30)):
            a = active_frames(f, sc)
            print(fold, name, "speech", is_speech(f, sc).mean().round(3), "active ratio mean", a.mean().round(3),
                  "p10 floor median", np.median(np.percentile(f[:, :, 1], 10, axis=1)).round(1))
        s0, s30 = is_speech(f0, sc), is_speech(f30, sc)
        ch = np.flatnonzero(s0 != s30)
        print(" changed", len(ch), "of", len(s0), "lost", (s0 & ~s30).sum(), "gained", (~s0 & s30).sum())
        a0, a30 = active_frames(f0, sc), active_frames(f30, sc)
        for i in ch[:12]:
            print(f"  w{i} s0={s0[i]} s30={s30[i]} act {a0[i].mean():.2f}/{a30[i].mean():.2f} "
                  f"p10 {np.percentile(f0[i,:,1],10):.1f}/{np.percentile(f30[i,:,1],10):.1f} "
                  f"ch10 {spectral_change(f0[i:i+1],a0[i:i+1],sc,1)[0]:.2f}/{spectral_change(f30[i:i+1],a30[i:i+1],sc,1)[0]:.2f} "
                  f"ch40 {spectral_change(f0[i:i+1],a0[i:i+1],sc,4)[0]:.2f}/{spectral_change(f30[i:i+1],a30[i:i+1],sc,4)[0]:.2f}")
