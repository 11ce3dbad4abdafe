"""The encoder levers on what the job serves: speech windows of call channels, not clips.

``../2026-12-07-accurate/window_encoding.py``'s calls (each speaker of the test corpus is a
call: the clips at 8 kHz joined by 0.3 s of silence, streamed by ``ser_lib.stream.StreamAnalyzer``
as the job does; each speech window labelled with the clip covering most of it) and its head
(trained on the *float* encoder's cached 8 kHz + G.711 clip features of the other corpora);
each speech window's 512 values by ``segments_features`` (serving's batched path) with each
encoder variant and partial rate; each channel standardised over its own windows; per-window
UA of the head alone and fused with the CNN (0.5 / 0.5 mean, as window_encoding.py).
Also: the share of windows with 2 partials (the rest have 1, so their std half is 0) and the
cosine of each window's features with the float encoder's at rate 1.3.

Usage: python models/runs/2026-12-07-encoder-int8/window_check.py CACHE_DIR VARIANT_DIR OUT_JSON CORPUS
(CORPUS emovo: 7 and 4 classes, the shipped CNN; turev: 4 classes, the CNN's TurEV-DB LOCO model)
"""
from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf
from sklearn.metrics import balanced_accuracy_score

from ser_lib.encoder import SpeechEncoder, partial_mels
from ser_lib.encoder_head import fuse, prepare, segments_features, speaker_standardize, SegmentSettings
from ser_lib.labels import EMOTIONS
from ser_lib.runtime import Predictor
from ser_lib.speech import SpeechConfig
from ser_lib.stream import StreamAnalyzer
from training.encoder_head import fit_head, standardize_by_speaker

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("we", ROOT / "models/runs/2026-12-07-accurate/window_encoding.py")
we = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(we)
FC, FOUR = we.FC, we.FOUR


def main(cache: str, variants: str, out_json: str, test: str) -> None:
    cache, variants = Path(cache), Path(variants)
    meta = json.loads((cache / "meta-encoder.json").read_text())["clips"]
    corpus = np.array([c[1] for c in meta])
    speaker = np.array([c[2] for c in meta])
    y_all = np.array([EMOTIONS.index(c[3]) for c in meta])
    tr = corpus != test
    x8 = standardize_by_speaker(np.load(cache / "enc-8k.npy")[tr], speaker[tr])
    xt = standardize_by_speaker(np.load(cache / "enc-tel.npy")[tr][:, 1536:2048], speaker[tr])
    head = fit_head(np.vstack([x8, xt]), np.tile(y_all[tr], 2), np.tile(corpus[tr], 2))
    cnn = Predictor.from_path(ROOT / "models" / "ser-cnn" / ("cv/loco" if test == "turev" else ""))
    st = SegmentSettings()
    encs = {"float": SpeechEncoder(cache / "encoder.onnx"),
            "qint8-pc-skip0": SpeechEncoder(variants / "qint8-pc-skip0.onnx"),
            "qint8": SpeechEncoder(variants / "qint8.onnx")}
    configs = {"float, rate 1.3 (shipped)": ("float", st), "qint8 per-channel, first LSTM float": ("qint8-pc-skip0", st),
               "qint8 (all layers)": ("qint8", st),
               "float, rate 1.2": ("float", replace(st, rate=1.2)),
               "qint8 per-channel, first LSTM float, rate 1.2": ("qint8-pc-skip0", replace(st, rate=1.2))}
    ys, probs, feats, n2 = [], {"cnn": []}, {k: [] for k in configs}, []
    for spk in sorted(set(speaker[corpus == test])):
        clips = [meta[i] for i in np.flatnonzero(speaker == spk)]
        y, owner = we.channel(clips)
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "call.wav"
            sf.write(path, y, FC.sample_rate, subtype="FLOAT")
            wins = [ch for chunk in StreamAnalyzer(path, FC, 1.0, SpeechConfig(), lambda n: ("mono",), 60.0,
                                                   keep_audio=True) for ch in chunk]
        fe = np.concatenate([w.features[w.speech] for w in wins])
        audio = [a for w in wins for a, s in zip(w.audio, w.speech) if s]
        start = np.concatenate([w.start_s[w.speech] for w in wins])
        end = np.concatenate([w.end_s[w.speech] for w in wins])
        lab = []
        for s, e in zip(start, end):
            o = owner[round(s * FC.sample_rate):round(e * FC.sample_rate)]
            o = o[o >= 0]
            lab.append(EMOTIONS.index(clips[np.bincount(o).argmax()][3]) if len(o) else -1)
        lab = np.array(lab)
        keep = lab >= 0
        n2 += [len(partial_mels(prepare(a, st), FC.sample_rate, st.rate, st.min_coverage)[0]) for a in audio]
        p_cnn = cnn.predict(fe)
        ys.append(lab[keep])
        probs["cnn"].append(p_cnn[keep])
        for k, (e, s) in configs.items():
            r = segments_features(encs[e], audio, FC.sample_rate, s)
            feats[k].append(r)
            ph = head.predict(speaker_standardize(r))
            probs.setdefault(f"{k}|head", []).append(ph[keep])
            probs.setdefault(f"{k}|fused", []).append(fuse(p_cnn, ph, 0.5)[keep])
        print(spk, len(audio), flush=True)
    y = np.concatenate(ys)
    k4 = np.isin(y, FOUR)
    n2 = np.array(n2)
    ref = np.concatenate(feats["float, rate 1.3 (shipped)"])
    out = {"method": __doc__.split("\n\n")[1].replace("\n", " "), "test_corpus": test, "n_windows": int(len(n2)),
           "labelled_windows": int(len(y)), "partials_per_window_at_1.3": {str(int(k)): int((n2 == k).sum()) for k in np.unique(n2)},
           "scores": {}, "cosine_vs_float": {}}
    for k, v in probs.items():
        p = np.concatenate(v)
        sc = {"ua4": float(balanced_accuracy_score(y[k4], np.array(FOUR)[p[k4][:, FOUR].argmax(1)]))}
        if test != "turev":
            sc["ua7"] = float(balanced_accuracy_score(y, p.argmax(1)))
        out["scores"][k] = sc
    for k in configs:
        x = np.concatenate(feats[k])
        cos = (x * ref).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(ref, axis=1))
        out["cosine_vs_float"][k] = {"mean": float(cos.mean()), "min": float(cos.min())}
    print(json.dumps({k: out[k] for k in ("partials_per_window_at_1.3", "scores", "cosine_vs_float")}, indent=1))
    Path(out_json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:5])
