"""End-to-end check of the encoder-head artifact path on real corpora: build the artifact with
training/encoder_head.py from RAVDESS + TESS + TurEV-DB only, then score EMOVO (never seen)
through ser_lib.encoder_head.EncoderModel, one "channel" per EMOVO speaker, as serving would;
alone and fused with the shipped CNN. Should reproduce the probe's LR / late-fusion EMOVO
numbers (results.json), since it is the same recipe through the serving code.

Usage (repository root): python models/runs/2026-12-07-encoder/artifact_check.py OUT_DIR RESULT_JSON
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import balanced_accuracy_score

from ser_lib.encoder_head import EncoderModel
from ser_lib.features import FeatureConfig
from ser_lib.labels import EMOTIONS
from ser_lib.runtime import Predictor
from ser_lib.speech import SpeechConfig
from training.corpora import default_corpora_root, load_emovo
from training.dataset import build_windows, clip_samples
from training.encoder_head import build


def main(out: str, result: str) -> None:
    root = default_corpora_root()
    art = build(out, [root / "ravdess", root / "tess", root / "turev"], progress=False)
    model = EncoderModel(art)
    clips = load_emovo(root / "emovo").clips
    fcfg = FeatureConfig()
    ws = build_windows(clips, fcfg, SpeechConfig(), 0.5, ["clean"], cache_dir=None, processes=2, progress=False)
    wp = Predictor.from_path("models/ser-cnn", expected=fcfg).predict(ws.x)
    cnn = np.stack([wp[ws.clip == k].mean(0) for k in range(len(clips))])
    y = np.array([EMOTIONS.index(c.emotion) for c in clips])
    head, fused = np.zeros((len(clips), 7)), np.zeros((len(clips), 7))
    for spk in sorted({c.speaker for c in clips}):
        idx = [i for i, c in enumerate(clips) if c.speaker == spk]
        segs = [clip_samples(clips[i].path, 16000) for i in idx]
        head[idx] = model.predict_channel(segs, 16000)
        fused[idx] = model.predict_channel(segs, 16000, cnn_probs=cnn[idx])
    four = [EMOTIONS.index(e) for e in ("angry", "happy", "neutral", "sad")]
    k4 = np.isin(y, four)
    res = {name: {"ua7": float(balanced_accuracy_score(y, p.argmax(1))),
                  "ua4": float(balanced_accuracy_score(y[k4], np.array(four)[p[k4][:, four].argmax(1)]))}
           for name, p in (("head", head), ("fused", fused), ("cnn", cnn))}
    res["artifact_files"] = sorted(f.name for f in Path(art).iterdir())
    print(json.dumps(res, indent=1))
    Path(result).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
