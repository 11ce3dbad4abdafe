"""Stage 1: every clip of RAVDESS, EMOVO and TurEV-DB scored *alone*, as its own one-channel
recording: the clip at the job's 8 kHz streamed through ``ser_lib.stream.StreamAnalyzer``
(``training.encoder_head.speaker_call_windows`` with one clip), its speech windows' CNN
probabilities (a CNN that never heard the clip: EMOVO the shipped model, TurEV-DB its LOCO
model, RAVDESS the actor-fold model) and encoder rows (as serving encodes them).

This is what a user gets who runs the job over a folder of short clips (a corpus, or a
voicemail-length recording): 1-3 speech windows per channel.

Usage: python models/runs/2026-12-07-short-channels/extract.py CACHE_DIR CORPUS [CORPUS ...]
writes CACHE_DIR/clips-<corpus>.npz (cnn (m, 7), rows (m, 512), y (m,), clip (m,) index into
meta-encoder.json, speaker (m,)) and the clips without any speech window in ``silent``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ser_lib.encoder_head import EncoderModel
from training.corpora import Clip
from training.cv import FOLDS_PATH, load_folds
from training.encoder_head import speaker_call_windows, unheard_predictor

ROOT = Path(__file__).resolve().parents[3]


def main(cache: str, corpora: list[str]) -> None:
    cache = Path(cache)
    meta = json.loads((cache / "meta-encoder.json").read_text())["clips"]
    model = EncoderModel(ROOT / "models" / "ser-accurate")
    folds = load_folds(FOLDS_PATH)["ravdess"]["test"]
    fold_of = {f"ravdess:{a}": i for i, actors in enumerate(folds) for a in actors}
    cnns = {}
    for test in corpora:
        pc, rows, ys, clip, spk, silent = [], [], [], [], [], []
        for k, m in enumerate(meta):
            if m[1] != test:
                continue
            sub = "" if test == "emovo" else "cv/loco" if test == "turev" else f"cv/fold-{fold_of[m[2]]}"
            # at the served CNN's temperature, as the build scores them (a LOCO model keeps its own)
            cnn = cnns.setdefault(sub, unheard_predictor(ROOT / "models" / "ser-cnn", ROOT / "models" / "ser-cnn" / sub))
            f, r, lab = speaker_call_windows([Clip(m[0], m[1], m[2], m[3], "", "")], model.encoder,
                                             model.head.settings)
            if not len(lab):
                silent.append(k)
                continue
            pc.append(cnn.predict(f)), rows.append(r), ys.append(lab)
            clip.append(np.full(len(lab), k)), spk.append(np.full(len(lab), m[2]))
            if k % 200 == 0:
                print(test, k, flush=True)
        np.savez(cache / f"clips-{test}.npz", cnn=np.concatenate(pc), rows=np.concatenate(rows),
                 y=np.concatenate(ys), clip=np.concatenate(clip), speaker=np.concatenate(spk),
                 silent=np.array(silent, int))
        print(test, "done", len(clip), "clips", len(silent), "without speech windows", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
