"""Each speech window's level relative to its channel's: an arousal cue that survives languages?

Every speaker of TurEV-DB, EMOVO and RAVDESS as one call channel (the layout of
``training.encoder_head.speaker_call_windows``: the speaker's clips at the job's 8 kHz joined by
0.3 s of silence), scored by ``ser predict``'s path (``ser_lib.one_recording.predict_file``: the
job's windows, speech rule and scoring, the default model), each speech window labelled with
the clip covering most of it. The job's columns ``level_db`` (the window's active level),
``level_rel_db`` (against the channel's median; :mod:`ser_lib.vocal_level`) and, for
comparison, the model's ``arousal`` and ``p_angry``, scored against each window's emotion:
arousal AUC (angry, fear, happy, surprise against neutral, sad), anger-against-the-rest AUC,
angry / happy against neutral / sad; per corpus, windows pooled over speakers (each speaker is
its own channel, so the median is per speaker).

Usage: python models/runs/2026-12-07-relative-level/measure.py CORPUS_ROOT OUT_JSON
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from sklearn.metrics import roc_auc_score

from ser_lib.labels import EMOTIONS
from training.corpora import discover
from training.encoder_head import speaker_call_audio

HIGH, LOW = ("angry", "fear", "happy", "surprise"), ("neutral", "sad")


def speaker_windows(clips, rate=8000):
    """The speaker's clips as one call, scored by ``ser predict``'s path (the job's scoring, the
    default model): its speech windows' ``level_db``, ``level_rel_db``, ``arousal`` and
    ``p_angry``, and labels."""
    from ser_lib.one_recording import predict_file

    audio, owner = speaker_call_audio(clips, rate)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "call.wav"
        sf.write(path, audio, rate, subtype="FLOAT")
        segs = [s for s in predict_file(str(path))["segments"] if s["is_speech"] and s["level_db"] is not None]
    lab = []
    for s in segs:
        o = owner[round(s["start_s"] * rate):round(s["end_s"] * rate)]
        o = o[o >= 0]
        lab.append(EMOTIONS.index(clips[np.bincount(o).argmax()].emotion) if len(o) else -1)
    lab = np.array(lab)
    cols = {k: np.array([s[k] for s in segs], float) for k in ("level_db", "level_rel_db", "arousal", "p_angry")}
    keep = lab >= 0
    return {k: v[keep] for k, v in cols.items()}, lab[keep]


def aucs(score, y) -> dict:
    hi, lo = [EMOTIONS.index(e) for e in HIGH], [EMOTIONS.index(e) for e in LOW]
    m = np.isin(y, hi + lo)
    out = {"n_windows": int(len(y)),
           "arousal_auc": float(roc_auc_score(np.isin(y[m], hi), score[m])),
           "anger_auc": float(roc_auc_score(y == EMOTIONS.index("angry"), score))}
    for h in ("angry", "happy"):
        for lo_e in LOW:
            mm = np.isin(y, [EMOTIONS.index(h), EMOTIONS.index(lo_e)])
            out[f"{h}_vs_{lo_e}"] = float(roc_auc_score(y[mm] == EMOTIONS.index(h), score[mm]))
    return out


def main(root: str, out_json: str) -> None:
    found = discover([root])
    out = {"method": __doc__.split("\n\n")[1].replace("\n", " ")}
    for corpus in ("turev", "emovo", "ravdess"):
        clips = [c for c in found.clips if c.corpus == corpus]
        cols, ys = {}, []
        for s in sorted({c.speaker for c in clips}):
            c, y = speaker_windows([c for c in clips if c.speaker == s])
            for k, v in c.items():
                cols.setdefault(k, []).append(v)
            ys.append(y)
        cols, ys = {k: np.concatenate(v) for k, v in cols.items()}, np.concatenate(ys)
        rel = cols["level_rel_db"]
        out[corpus] = {k: aucs(cols[k], ys) for k in ("level_rel_db", "level_db", "arousal")}
        out[corpus]["p_angry_anger_auc"] = float(roc_auc_score(ys == EMOTIONS.index("angry"), cols["p_angry"]))
        out[corpus]["level_rel_db_by_emotion"] = {EMOTIONS[k]: [float(np.median(rel[ys == k])),
                                                                float(np.percentile(rel[ys == k], 25)),
                                                                float(np.percentile(rel[ys == k], 75))]
                                                  for k in np.unique(ys)}
        r, m = out[corpus]["level_rel_db"], out[corpus]["arousal"]
        print(f"{corpus}: level_rel_db arousal AUC {r['arousal_auc']:.3f} anger {r['anger_auc']:.3f} | "
              f"level_db {out[corpus]['level_db']['arousal_auc']:.3f} | model arousal {m['arousal_auc']:.3f} "
              f"anger (p_angry) {out[corpus]['p_angry_anger_auc']:.3f}; medians "
              f"{ {k: round(v[0], 1) for k, v in out[corpus]['level_rel_db_by_emotion'].items()} }", flush=True)
        Path(out_json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
