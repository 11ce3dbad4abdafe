"""Window-level calibration of the accurate model: each speaker of a corpus as one "call"
channel (its clips at the job's 8 kHz, 0.3 s of silence between them, streamed through
``ser_lib.stream.StreamAnalyzer`` as the job does; ``window_encoding.channel``), every speech
window labelled with the clip covering most of it, encoded as serving encodes it
(``segments_features``), each channel standardised over its own speech windows.

Models never trained on the window's speaker or corpus:

- ``ravdess``: each actor's windows scored by the CNN fold model that tested the actor
  (``models/ser-cnn/cv/fold-<i>``, training/folds.json) and a head fitted without the fold's
  actors (the measure.py recipe: 8 kHz + telephone cached clip rows);
- ``emovo``: the shipped CNN (never trained on EMOVO) and a head without EMOVO;
- ``turev``: the CNN's TurEV-DB LOCO model and a head without TurEV-DB.

ECE (15 bins, ``training.evaluate.calibration``) of the fused window probabilities
(``ser_lib.encoder_head.fuse``) before (T = 1) and after temperature scaling with the
temperatures of ``calibration.json`` (``calibrate.py``: fitted on clip-level out-of-fold
predictions, never on the evaluated corpus; for RAVDESS, each fold's nested temperature),
for both fusion rules; window UA7 / UA4 beside them.

Usage: python models/runs/2026-12-07-accurate/window_calibration.py CACHE_DIR CALIBRATION_JSON OUT_JSON [CORPUS ...]
"""
from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from sklearn.metrics import balanced_accuracy_score

from ser_lib.encoder_head import EncoderModel, fuse, speaker_standardize
from ser_lib.labels import EMOTIONS
from ser_lib.runtime import Predictor
from ser_lib.speech import SpeechConfig
from ser_lib.stream import StreamAnalyzer
from training.cv import FOLDS_PATH, TUREV_CLASSES, load_folds
from training.evaluate import calibration
from training.encoder_head import CNN_WEIGHT, fit_head, standardize_by_speaker

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
_spec = importlib.util.spec_from_file_location("window_encoding", HERE / "window_encoding.py")
we = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(we)
FC = we.FC
FOUR = [EMOTIONS.index(e) for e in TUREV_CLASSES]


def channel_windows(clips, model: EncoderModel):
    """(CNN features, encoder rows, labels) of one speaker's speech windows (labelled ones)."""
    y, owner = we.channel(clips)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "call.wav"
        sf.write(path, y, FC.sample_rate, subtype="FLOAT")
        wins = [ch for chunk in StreamAnalyzer(path, FC, 1.0, SpeechConfig(), lambda n: ("mono",), 60.0,
                                               keep_audio=True) for ch in chunk]
    feats = np.concatenate([w.features[w.speech] for w in wins])
    audio = [a for w in wins for a, s in zip(w.audio, w.speech) if s]
    start = np.concatenate([w.start_s[w.speech] for w in wins])
    end = np.concatenate([w.end_s[w.speech] for w in wins])
    lab = []
    for s, e in zip(start, end):
        o = owner[round(s * FC.sample_rate):round(e * FC.sample_rate)]
        o = o[o >= 0]
        lab.append(EMOTIONS.index(clips[np.bincount(o).argmax()][3]) if len(o) else -1)
    lab = np.array(lab)
    rows = model.features(audio, FC.sample_rate)
    return feats, rows, lab


def main(cache: str, cal_json: str, out_json: str, *corpora: str) -> None:
    cache = Path(cache)
    cal = json.loads(Path(cal_json).read_text())
    meta = json.loads((cache / "meta-encoder.json").read_text())["clips"]
    corpus = np.array([c[1] for c in meta])
    speaker = np.array([c[2] for c in meta])
    y_all = np.array([EMOTIONS.index(c[3]) for c in meta])
    x8 = standardize_by_speaker(np.load(cache / "enc-8k.npy"), speaker)
    xt = standardize_by_speaker(np.load(cache / "enc-tel.npy")[:, 1536:2048], speaker)
    model = EncoderModel(ROOT / "models" / "ser-accurate")

    def head(tr):
        return fit_head(np.vstack([x8[tr], xt[tr]]), np.tile(y_all[tr], 2), np.tile(corpus[tr], 2))

    out = json.loads(Path(out_json).read_text()) if Path(out_json).is_file() else {}
    out["method"] = " ".join(__doc__.split("\n\n")[0:4]).replace("\n", " ")
    for test in corpora or ("emovo", "turev", "ravdess"):
        if test == "ravdess":
            groups = [(i, [f"ravdess:{a}" for a in actors], ROOT / "models" / "ser-cnn" / "cv" / f"fold-{i}")
                      for i, actors in enumerate(load_folds(FOLDS_PATH)["ravdess"]["test"])]
        else:
            groups = [(0, sorted(set(speaker[corpus == test])),
                       ROOT / "models" / "ser-cnn" / ("cv/loco" if test == "turev" else ""))]
        pc, ph, ys, fold = [], [], [], []
        for i, spks, cnn_path in groups:
            tr = ~np.isin(speaker, spks) if test == "ravdess" else corpus != test
            h, cnn = head(tr), Predictor.from_path(cnn_path)
            for spk in spks:
                feats, rows, lab = channel_windows([meta[k] for k in np.flatnonzero(speaker == spk)], model)
                keep = lab >= 0
                pc.append(cnn.predict(feats)[keep])
                ph.append(h.predict(speaker_standardize(rows))[keep])
                ys.append(lab[keep])
                fold.append(np.full(keep.sum(), i))
            print(test, i, sum(len(v) for v in ys), flush=True)
        pc, ph, y, fold = map(np.concatenate, (pc, ph, ys, fold))
        res = {"n_windows": int(len(y)), "cnn_ece": calibration(pc, y)["ece"], "head_ece": calibration(ph, y)["ece"]}
        key = "ravdess_cv" if test == "ravdess" else test
        for rule in ("linear", "log"):
            c = cal["rules"][rule][key]
            temps = np.array(c["T_folds"])[fold] if test == "ravdess" else np.full(len(y), c["T"])
            before = fuse(pc, ph, CNN_WEIGHT, rule)
            after = np.concatenate([fuse(pc[fold == k], ph[fold == k], CNN_WEIGHT, rule, float(temps[fold == k][0]))
                                    for k in np.unique(fold)])
            yk = np.concatenate([y[fold == k] for k in np.unique(fold)])
            k4 = np.isin(y, FOUR)
            r = {"ece_before": calibration(before, y)["ece"], "ece_after": calibration(after, yk)["ece"],
                 "ua4": float(balanced_accuracy_score(y[k4], np.array(FOUR)[before[k4][:, FOUR].argmax(1)]))}
            if test != "turev":
                r["ua7"] = float(balanced_accuracy_score(y, before.argmax(1)))
            if "T_oracle" in c:
                r["ece_after_T_oracle"] = calibration(fuse(pc, ph, CNN_WEIGHT, rule, c["T_oracle"]), y)["ece"]
            res[rule] = r
        out[key] = res
        print(key, json.dumps(res), flush=True)
        Path(out_json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:4], *sys.argv[4:])
