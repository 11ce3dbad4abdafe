"""Feature-level gain diagnosis with existing fold models as a sensitivity proxy."""
import sys, random, tempfile, json, dataclasses
from pathlib import Path
import numpy as np, soundfile as sf
sys.path.insert(0, '.')
from bench.robustness import build_call
from ser_lib import features as F
from ser_lib.config import JobConfig
from ser_lib.runtime import Predictor
from ser_lib.speech import SpeechConfig, is_speech
from ser_lib.stream import StreamAnalyzer
from training.corpora import default_corpora_root, discover
from training.cv import FOLDS_PATH, assign, load_folds

clips = discover([str(default_corpora_root())]).clips
folds = load_folds(FOLDS_PATH)
fcfg = F.FeatureConfig(); cfg = JobConfig.load(None)
rng = random.Random(20261202)
calls = []
for i in range(len(folds["ravdess"]["test"])):
    pred = Predictor.from_path(Path("./models/ser-cnn/cv") / f"fold-{i}", expected=fcfg)
    test = [c for c in clips if c.corpus == "ravdess" and assign(c, folds, i) == "test"]
    for actor in rng.sample(sorted({c.speaker for c in test}), 1):
        calls.append((build_call([c for c in test if c.speaker == actor], rng), pred))
orig_ln = F.level_normalize
def ln_variant(floor, gate):
    def ln(w, c):
        x = orig_ln(w, dataclasses.replace(c, level_floor_db=floor))
        if gate:
            m = x[:, :, 1] <= floor + 1e-3
            x[:, :, 0][m] = 0.0
            x[:, :, 2 + c.n_mfcc:2 + c.n_mfcc + c.n_chroma][m] = 0.0
        return x
    return ln
tmp = Path(tempfile.mkdtemp())
def feats(y, g, subtype):
    p = tmp / "x.wav"
    sf.write(p, np.clip(y * 10 ** (g / 20), -1, 1), 16000, subtype=subtype)
    sa = StreamAnalyzer(str(p), fcfg, cfg.hop_s, cfg.speech, cfg.channel_names, cfg.chunk_s)
    return np.concatenate([ch.features for chunk in sa for ch in chunk])
dets = {"d90": cfg.speech, "d110": dataclasses.replace(cfg.speech, floor_db=-110.0)}
for amin in (1e-10, 1e-20):
    F._AMIN = amin; F._RMS_FLOOR = np.sqrt(amin)
    for subtype in ("PCM_16", "FLOAT"):
        data = {g: [feats(y, g, subtype) for y, _ in calls] for g in (0, -30, -20, -10, 10, 20)}
        ref = [np.percentile(w[:, :, 1], 95, axis=1) for w in data[0]]
        print("amin", amin, subtype, "window ref dBFS p5/p50:", np.percentile(np.concatenate(ref), [5, 50]).round(1), flush=True)
        for dn, dc in dets.items():
            s0 = [is_speech(w, dc) for w in data[0]]
            out = {}
            for g in (-30, -20, -10, 10, 20):
                sg = [is_speech(w, dc) for w in data[g]]
                out[g] = round(float(np.mean(np.concatenate([a != b for a, b in zip(s0, sg)]))), 3)
            print(f"  flags {dn}: {out}", flush=True)
        for floor in (-40.0, -35.0, -30.0):
            for gate in (False, True):
                F.level_normalize = ln_variant(floor, gate)
                s0 = [is_speech(w, cfg.speech) for w in data[0]]
                p0 = [pr.predict(w[s]).argmax(1) for (w, s, (_, pr)) in zip(data[0], s0, calls)]
                out = {}
                for g in (-30, -20, -10, 10, 20):
                    ch = [(pr.predict(w[s]).argmax(1) != a).mean() for (w, s, a, (_, pr)) in zip(data[g], s0, p0, calls)]
                    out[g] = round(float(np.mean(ch)), 3)
                print(f"  emo floor {floor} gate {gate}: {out}", flush=True)
                F.level_normalize = orig_ln
