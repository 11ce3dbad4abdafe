"""The accurate model through a G.711 telephone channel, scored with the *shipped* fusion rule
(``models/ser-accurate/encoder_head.json``: log-space mean, cnn_weight 0.5, its temperature)
instead of ``measure.py``'s arithmetic mean: the head trained on 8 kHz + G.711 features
without the left-out corpus, the CNN's probabilities of the G.711 clips (TurEV-DB: its LOCO
model; EMOVO: the shipped model). Clip level, as measure.py.

Usage: python models/runs/2026-12-07-accurate/telephone_shipped_fusion.py CACHE_DIR OUT_JSON
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

from ser_lib.encoder_head import EncoderHead, fuse
from training.encoder_head import fit_head, standardize_by_speaker
from training.evaluate import calibration

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("probe", HERE.parent / "2026-12-07-encoder" / "probe.py")
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)
L2 = slice(1536, 2048)


def main(cache: str, out_json: str) -> None:
    cache = Path(cache)
    corpus, speaker, y, _feats, cnn = probe.load(cache)
    shipped = EncoderHead.from_json((HERE.parents[1] / "ser-accurate" / "encoder_head.json").read_text())
    X = {"8k": standardize_by_speaker(np.load(cache / "enc-8k.npy"), speaker),
         "tel": standardize_by_speaker(np.load(cache / "enc-tel.npy")[:, L2], speaker)}
    out = {"fusion": shipped.fusion, "cnn_weight": shipped.cnn_weight, "temperature": shipped.temperature}
    for p, cnn_p in (("turev", cnn["tel"]["loco"]), ("emovo", cnn["tel"]["final"])):
        tr, te = np.isin(corpus, probe.PROTOCOLS[p]), corpus == p
        head = fit_head(np.vstack([X["8k"][tr], X["tel"][tr]]), np.tile(y[tr], 2), np.tile(corpus[tr], 2))
        fused = fuse(cnn_p[te], head.predict(X["tel"][te]), shipped.cnn_weight, shipped.fusion, shipped.temperature)
        out[p] = {**probe.score(fused, y[te]), "ece_clips": calibration(fused, y[te])["ece"]}
        print(p, json.dumps(out[p]), flush=True)
    Path(out_json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
