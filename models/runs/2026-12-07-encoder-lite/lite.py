"""Could the accurate model's encoder cost little enough to run in the default model (the job
at >= 1,000x realtime on 2 cores)? Cheaper ways to get each speech window's 512 encoder values,
their CPU time and what they do to accuracy.

Harness of ``../2026-12-07-accurate/window_encoding.py``: each speaker of the test corpus as one
call channel (the speaker's clips at the job's 8 kHz, 0.3 s of silence between them) streamed
through ``ser_lib.stream.StreamAnalyzer`` as the job streams a call; each speech window labelled
with the clip that covers most of it. The encoder *as served* (``EncoderModel(int8=True)``: the
int8 encoder when it agrees with the float one here), onnxruntime on 1 thread; the product's
heads (``training.encoder_head.fit_heads``, ``EncoderHead.predict_channel``) fitted without the
test corpus on the cached 8 kHz + G.711 clip rows of the encoder probe (rate 1.3, as shipped);
fused with the CNN that never heard the corpus at the served temperature (TurEV-DB: its
leave-one-corpus-out model; EMOVO: the shipped CNN) by the shipped rule
(``fuse(cnn, head, cnn_weight, "log", 1)``; the argmax does not depend on the temperature).
Ways:

* ``shipped``: ``segments_features`` (2 partials of 1.6 s per 2 s window; windows overlap by
  half, so every second of speech is encoded about 3.2 times);
* ``alternate``: the same on every other window of each run of consecutive speech windows
  (the 2 s windows at a 2 s stride cover the speech once), a skipped window taking the mean of
  its encoded neighbours' rows (0.5x the encoder work);
* ``neighbours``: ``shipped``, then each window's row averaged with those of its neighbours in
  the run (a 3-window mean: the feature smoothing that ``alternate`` does for half the
  windows, at the full cost);
* ``stretch-<rate>``: each run of consecutive speech windows encoded once, as one recording
  levelled as a whole, partials at ``rate`` per second (1.3: resemblyzer's; 0.625: one partial
  every 1.6 s, no overlap), each window pooling the partials whose centre lies in it (the
  nearest one when none; ``window_encoding.stretch_features``).

Scores: UA and the transfer AUCs of each window's probabilities, and ``smoothed_ua4``: UA4 of
the product's smoothed emotion (``ser_lib.smoothing.smooth``, the default 9-window mean of
log-probabilities) over each channel's speech windows, on the 4 classes' columns. RAVDESS (``ravdess``): the 6 actor folds, each fold's actors
scored by heads fitted without them and by the CNN's fold model.

CPU: ``time.process_time`` of this process for the window rows (resampling, mel front end,
encoder, pooling), best of 2, per hour of speech windows.

Usage: python models/runs/2026-12-07-encoder-lite/lite.py CACHE_DIR OUT_JSON [turev|emovo|ravdess] [--quick]
(``--quick``: only ``shipped``, ``alternate`` and ``neighbours``; ``--shuffle``: each speaker's
clips in a seeded random order instead of the corpus's, which lists them emotion by emotion, so
that neighbouring windows share an emotion far more often than chance and any pooling over
time looks better than it is)
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

from ser_lib.artifact import load_meta
from ser_lib.encoder_head import EncoderModel, fuse, segments_features
from training.corpora import default_corpora_root, discover
from training.encoder_head import DEFAULT_CNN, fit_heads, fusion_weight, speaker_call_stream, unheard_predictor

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


we = _load("window_encoding", HERE.parent / "2026-12-07-accurate" / "window_encoding.py")
probe = _load("probe", HERE.parent / "2026-12-07-encoder" / "probe.py")
FC = we.FC


_BY_PATH: dict = {}


def speaker_stream(meta, speaker, spk: str, shuffle: bool = False):
    """``training.encoder_head.speaker_call_stream`` of one speaker's clips, in the corpus's
    order or (``shuffle``) a seeded random one: the corpora list a speaker's clips by emotion."""
    if not _BY_PATH:
        _BY_PATH.update({c.path: c for c in discover(default_corpora_root()).clips})
    clips = [_BY_PATH[meta[i][0]] for i in np.flatnonzero(speaker == spk)]
    if shuffle:
        clips = [clips[i] for i in np.random.default_rng(7).permutation(len(clips))]
    return speaker_call_stream(clips, FC.sample_rate)


def alternate(model, audio, start_s) -> np.ndarray:
    st = model.head.settings
    runs = [0] + [i for i in range(1, len(start_s)) if start_s[i] - start_s[i - 1] > 1.0 + 1e-9] + [len(start_s)]
    enc = [i for a, b in zip(runs[:-1], runs[1:]) for i in range(a, b, 2)]
    rows = np.zeros((len(audio), 512), np.float32)
    rows[enc] = segments_features(model.encoder, [audio[i] for i in enc], FC.sample_rate, st)
    done = np.zeros(len(audio), bool)
    done[enc] = True
    for a, b in zip(runs[:-1], runs[1:]):
        for i in range(a + 1, b, 2):
            nb = [j for j in (i - 1, i + 1) if j < b and done[j]]
            rows[i] = rows[nb].mean(0)
    return rows


def neighbours(model, audio, start_s) -> np.ndarray:
    rows = segments_features(model.encoder, audio, FC.sample_rate, model.head.settings)
    runs = [0] + [i for i in range(1, len(start_s)) if start_s[i] - start_s[i - 1] > 1.0 + 1e-9] + [len(start_s)]
    out = np.empty_like(rows)
    for a, b in zip(runs[:-1], runs[1:]):
        for i in range(a, b):
            out[i] = rows[max(a, i - 1):min(b, i + 2)].mean(0)
    return out


def stretch(model, audio, start_s, end_s, rate: float) -> np.ndarray:
    saved = model.head.settings
    model.head.settings = dataclasses.replace(saved, rate=rate)
    try:
        return we.stretch_features(model, audio, start_s, end_s)
    finally:
        model.head.settings = saved


WAYS = {"shipped": lambda m, a, s, e: segments_features(m.encoder, a, FC.sample_rate, m.head.settings),
        "alternate": lambda m, a, s, e: alternate(m, a, s),
        "neighbours": lambda m, a, s, e: neighbours(m, a, s),
        "stretch-1.3": lambda m, a, s, e: stretch(m, a, s, e, 1.3),
        "stretch-0.625": lambda m, a, s, e: stretch(m, a, s, e, 0.625)}
#: ``--quick``: the ways worth a RAVDESS run
QUICK = ("shipped", "alternate", "neighbours")


def main(cache: str, out_json: str, test: str = "emovo", *flags: str) -> None:
    from ser_lib.smoothing import SmoothingConfig, smooth
    from training.cv import FOLDS_PATH, load_folds

    ways = {k: v for k, v in WAYS.items() if "--quick" not in flags or k in QUICK}
    meta, corpus, speaker, y_all, raw8, rawt = probe.load_rows(Path(cache))

    def heads(tr):
        return fit_heads(np.vstack([raw8[tr], rawt[tr]]), np.tile(y_all[tr], 2), np.tile(corpus[tr], 2), speaker[tr], 2)

    if test == "ravdess":  # (speakers, head, CNN) per actor fold
        groups = []
        for i, actors in enumerate(load_folds(FOLDS_PATH)["ravdess"]["test"]):
            spk = [f"ravdess:{a}" for a in actors]
            groups.append((spk, heads(~np.isin(speaker, spk)), unheard_predictor(DEFAULT_CNN, DEFAULT_CNN / "cv" / f"fold-{i}")))
    else:
        groups = [(sorted(set(speaker[corpus == test])), heads(corpus != test),
                   unheard_predictor(DEFAULT_CNN, DEFAULT_CNN / "cv" / "loco" if test == "turev" else DEFAULT_CNN))]
    model = EncoderModel(ROOT / "models" / "ser-accurate", int8=True)
    w = fusion_weight(load_meta(DEFAULT_CNN).temperature)
    smoothing = SmoothingConfig()
    cpu = {k: 0.0 for k in ways}
    names = ["cnn"] + [f"{m}|{h}" for m in ways for h in ("head", "fused")]
    speech_s, ys, probs, smoothed = 0.0, [], {k: [] for k in names}, {k: [] for k in names}
    for speakers, head, cnn in groups:
        model.head = head
        for spk in speakers:
            st = speaker_stream(meta, speaker, spk, "--shuffle" in flags)
            feats, audio, start, end, lab = st.features, st.segments, st.start_s, st.end_s, st.labels
            keep = lab >= 0
            speech_s += float((end - start).sum())
            p_cnn = cnn.predict(feats)
            ys.append(lab[keep])
            got = {"cnn": p_cnn}
            for m, fn in ways.items():
                best = None
                for _ in range(2):
                    t0 = time.process_time()
                    r = fn(model, audio, start, end)
                    t = time.process_time() - t0
                    best = t if best is None else min(best, t)
                cpu[m] += best
                ph = head.predict_channel(r)
                got[f"{m}|head"], got[f"{m}|fused"] = ph, fuse(p_cnn, ph, w, "log", 1.0)
            for k, p in got.items():
                probs[k].append(p[keep])
                # the 4 classes' columns, as UA4 reads the window probabilities
                smoothed[k].append(np.array(probe.FOUR)[smooth(p[:, probe.FOUR], np.ones(len(p), bool), smoothing)][keep])
            print(spk, len(start), {k: round(v, 1) for k, v in cpu.items()}, flush=True)
    y = np.concatenate(ys)
    scores = {}
    for k, v in probs.items():
        scores[k] = probe.score(np.concatenate(v), y)
        sm = np.concatenate(smoothed[k])
        scores[k]["smoothed_ua4"] = float(np.mean([np.mean(sm[y == c] == c) for c in probe.FOUR if (y == c).any()]))
    out = {"method": __doc__.split("\n\n")[1].replace("\n", " "), "test_corpus": test,
           "encoder_precision": model.precision, "scores": scores, "speech_window_s": speech_s, "cpu_s": cpu,
           "cpu_s_per_speech_hour": {k: v / speech_s * 3600 for k, v in cpu.items()}, "n_windows": int(len(y))}
    for k, v in out["scores"].items():
        print(f"{k:22s} " + " ".join(f"{a} {b:.3f}" for a, b in v.items() if a != "n"))
    print(json.dumps(out["cpu_s_per_speech_hour"], indent=1))
    Path(out_json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
