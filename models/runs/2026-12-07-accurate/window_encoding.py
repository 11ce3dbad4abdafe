"""How the accurate model encodes a call channel's speech windows: CPU time and accuracy of three ways.

EMOVO (never in the CNN's training; the head here is trained without it: RAVDESS + TESS +
TurEV-DB, 8 kHz + telephone, from the cached features of ``features8k.py`` and the encoder
probe) as six "calls", one per speaker: the speaker's 98 clips at the job's 8 kHz (as
decoded by the job), 0.3 s of silence between clips, written to a WAV and streamed through
``ser_lib.stream.StreamAnalyzer`` (``keep_audio``) as the job does. Each speech window is
labelled with the clip that covers most of it. Ways to get each window's 512 encoder values:

* ``per_window``: ``ser_lib.encoder_head.segment_features`` of each window alone (2 partials
  of 1.6 s per 2 s window, windows overlapping by half), one ONNX call per window;
* ``per_window_batched``: the same values, all windows' partials in batched ONNX calls
  (``segments_features``, what serving runs);
* ``stretch``: each run of consecutive speech windows encoded once (trimmed and levelled as
  one recording, partials at 1.3 per second), each window's values pooled from the partials
  whose centre lies in it (the nearest partial when none): the "encode the channel once" lever.

CPU seconds of this process (``time.process_time``, onnxruntime on 1 thread, best of 3) per
hour of speech windows; per-window UA of the head alone and fused with the shipped CNN
(mean of probabilities), each channel standardised over its own speech windows.

Usage: python models/runs/2026-12-07-accurate/window_encoding.py CACHE_DIR OUT_JSON [CORPUS]
(CORPUS: emovo, the default, or turev: TurEV-DB's speakers as calls, the head trained on
RAVDESS + TESS + EMOVO and the CNN its TurEV-DB leave-one-corpus-out model ``cv/loco``; 4 classes)
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from sklearn.metrics import balanced_accuracy_score

from ser_lib.encoder import partial_mels, pool_stats
from ser_lib.encoder_head import (EncoderModel, fuse, prepare, segment_features, segments_features,
                                  speaker_standardize)
from ser_lib.features import FeatureConfig
from ser_lib.labels import EMOTIONS
from ser_lib.runtime import Predictor
from ser_lib.speech import SpeechConfig
from ser_lib.stream import StreamAnalyzer
from training.cv import TUREV_CLASSES
from training.dataset import clip_samples
from training.encoder_head import fit_head, standardize_by_speaker

FC = FeatureConfig()
GAP_S = 0.3
FOUR = [EMOTIONS.index(e) for e in TUREV_CLASSES]


def channel(clips) -> tuple[np.ndarray, np.ndarray]:
    """The speaker's clips joined with silence: samples at 8 kHz and the clip index per sample (-1 in gaps)."""
    ys, owner = [], []
    for k, (path, *_r) in enumerate(clips):
        y = clip_samples(path, FC.sample_rate)
        ys += [y, np.zeros(int(GAP_S * FC.sample_rate), np.float32)]
        owner += [np.full(len(y), k), np.full(int(GAP_S * FC.sample_rate), -1)]
    return np.concatenate(ys), np.concatenate(owner)


def stretch_features(model: EncoderModel, audio, start_s, end_s) -> np.ndarray:
    st, enc = model.head.settings, model.encoder
    rows = np.zeros((len(audio), 512), np.float32)
    # runs of consecutive windows (hop 1 s): a gap in start_s of more than one hop starts a new run
    breaks = [0] + [i for i in range(1, len(start_s)) if start_s[i] - start_s[i - 1] > 1.0 + 1e-9] + [len(start_s)]
    for a, b in zip(breaks[:-1], breaks[1:]):
        t0 = start_s[a]
        y = np.concatenate([audio[a]] + [w[-round((end_s[i] - end_s[i - 1]) * FC.sample_rate):] if end_s[i] > end_s[i - 1]
                                         else w[:0] for i, w in zip(range(a + 1, b), audio[a + 1:b])])
        # no trimming: the run's ends are the windows'; level over the run
        yl = prepare(y, type(st)(**{**st.__dict__, "trim_db": 0.0}))
        mels, starts = partial_mels(yl, FC.sample_rate, st.rate, st.min_coverage)
        _, hid = enc.run(mels)
        centre = t0 + starts + 0.8
        for i in range(a, b):
            m = (centre >= start_s[i]) & (centre <= end_s[i])
            if not m.any():
                m = np.zeros(len(centre), bool)
                m[np.argmin(np.abs(centre - (start_s[i] + end_s[i]) / 2))] = True
            rows[i] = pool_stats(hid[m, st.layer])
    return rows


def main(cache: str, out_json: str, test: str = "emovo") -> None:
    cache = Path(cache)
    meta = json.loads((cache / "meta-encoder.json").read_text())["clips"]
    corpus = np.array([c[1] for c in meta])
    speaker = np.array([c[2] for c in meta])
    y_all = np.array([EMOTIONS.index(c[3]) for c in meta])
    tr = corpus != test
    x8 = standardize_by_speaker(np.load(cache / "enc-8k.npy")[tr], speaker[tr])
    xt = standardize_by_speaker(np.load(cache / "enc-tel.npy")[tr][:, 1536:2048], speaker[tr])
    head = fit_head(np.vstack([x8, xt]), np.tile(y_all[tr], 2), np.tile(corpus[tr], 2))
    model = EncoderModel(Path(__file__).resolve().parents[3] / "models" / "ser-accurate")
    model.head = head  # the encoder of the shipped artifact, the head trained without EMOVO
    cnn = Predictor.from_path(Path(__file__).resolve().parents[3] / "models" / "ser-cnn" /
                              ("cv/loco" if test == "turev" else ""))
    out = {"method": __doc__.split("\n\n")[1].replace("\n", " "), "test_corpus": test, "speakers": {}}
    cpu = {"per_window": 0.0, "per_window_batched": 0.0, "stretch": 0.0}
    speech_s = 0.0
    ys, probs = [], {k: [] for k in ("cnn",) + tuple(f"{m}|{h}" for m in cpu for h in ("head", "fused"))}
    for spk in sorted(set(speaker[corpus == test])):
        clips = [meta[i] for i in np.flatnonzero(speaker == spk)]
        y, owner = channel(clips)
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
        keep = lab >= 0
        speech_s += float((end - start).sum())
        p_cnn = cnn.predict(feats)
        rows = {}
        for m in cpu:
            best = None
            for _ in range(3):
                t0 = time.process_time()
                if m == "per_window":
                    r = np.stack([segment_features(model.encoder, a, FC.sample_rate, model.head.settings) for a in audio])
                elif m == "per_window_batched":
                    r = segments_features(model.encoder, audio, FC.sample_rate, model.head.settings)
                else:
                    r = stretch_features(model, audio, start, end)
                t = time.process_time() - t0
                best = t if best is None else min(best, t)
            cpu[m] += best
            rows[m] = r
        ys.append(lab[keep])
        probs["cnn"].append(p_cnn[keep])
        for m, r in rows.items():
            ph = head.predict(speaker_standardize(r))
            probs[f"{m}|head"].append(ph[keep])
            probs[f"{m}|fused"].append(fuse(p_cnn, ph, 0.5)[keep])
        out["speakers"][spk] = {"speech_windows": int(len(start)), "labelled": int(keep.sum()),
                                "max_abs_diff_batched_vs_per_window": float(np.abs(rows["per_window"] - rows["per_window_batched"]).max())}
        print(spk, out["speakers"][spk], {k: round(v, 1) for k, v in cpu.items()}, flush=True)
    y = np.concatenate(ys)
    k4 = np.isin(y, FOUR)
    out["scores"] = {}
    for k, v in probs.items():
        p = np.concatenate(v)
        out["scores"][k] = {"ua4": float(balanced_accuracy_score(y[k4], np.array(FOUR)[p[k4][:, FOUR].argmax(1)]))}
        if test != "turev":
            out["scores"][k]["ua7"] = float(balanced_accuracy_score(y, p.argmax(1)))
    out["speech_window_s"] = speech_s
    out["cpu_s"] = cpu
    out["cpu_s_per_speech_hour"] = {k: v / speech_s * 3600 for k, v in cpu.items()}
    out["n_windows"] = int(len(y))
    print(json.dumps({k: out[k] for k in ("scores", "cpu_s_per_speech_hour")}, indent=1))
    Path(out_json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:4])
