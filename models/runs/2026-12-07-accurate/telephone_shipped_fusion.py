"""The accurate model through a G.711 telephone channel, scored with the *shipped* fusion rule
(``models/ser-accurate/encoder_head.json``: log-space mean, cnn_weight 0.5, its temperature)
instead of ``measure.py``'s arithmetic mean: the head trained on 8 kHz + G.711 features
without the left-out corpus, the CNN's probabilities of the G.711 clips (TurEV-DB: its LOCO
model; EMOVO: the shipped model). Clip level, as measure.py.

Usage: python models/runs/2026-12-07-accurate/telephone_shipped_fusion.py CACHE_DIR OUT_JSON [--current-cnn]

``--current-cnn``: the CNN's G.711 clip probabilities are recomputed with the CNN shipped now
(``models/ser-cnn``; TurEV-DB: its leave-one-corpus-out model at the served temperature,
``training.encoder_head.unheard_predictor``, as the accurate build scores it) on the encoder
probe's G.711 windows (``training.dataset.build_windows``, variant ``telephone``, seed 7, its
window cache), instead of the cache's ``ac-tel.npz`` (the CNN of the time).
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

from ser_lib.artifact import load_meta
from ser_lib.encoder_head import EncoderHead, fuse
from training.encoder_head import fit_head, standardize_by_speaker
from training.evaluate import calibration

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("probe", HERE.parent / "2026-12-07-encoder" / "probe.py")
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)
L2 = slice(1536, 2048)


def current_cnn_telephone(cache: Path) -> dict:
    """``{"final", "loco"}`` clip probabilities of the CNN shipped now on the G.711 clips."""
    from ser_lib.features import FeatureConfig
    from ser_lib.runtime import Predictor
    from ser_lib.speech import SpeechConfig
    from training.corpora import default_corpora_root, discover
    from training.dataset import build_windows
    from training.encoder_head import unheard_predictor

    order = [c[0] for c in json.loads((cache / "meta-acoustic.json").read_text())["clips"]]
    by_path = {c.path: c for c in discover(default_corpora_root()).clips}
    clips = [by_path[p] for p in order]
    ws = build_windows(clips, FeatureConfig(), SpeechConfig(), 0.5, ["telephone"], seed=7,
                       cache_dir=cache / "windows", processes=2, desc="probe-telephone", progress=False)
    root = HERE.parents[1] / "ser-cnn"
    out = {}
    for name, model in (("final", Predictor.from_path(root, expected=FeatureConfig())),
                        ("loco", unheard_predictor(root, root / "cv" / "loco"))):
        probs = model.predict(ws.x)
        out[name] = np.stack([probs[ws.clip == k].mean(0) for k in range(ws.n_clips)])
    out["version"] = load_meta(root).version
    return out


def main(cache: str, out_json: str, current_cnn: bool = False) -> None:
    cache = Path(cache)
    corpus, speaker, y, _feats, cnn = probe.load(cache)
    if current_cnn:
        cnn["tel"] = current_cnn_telephone(cache)
    shipped = EncoderHead.from_json((HERE.parents[1] / "ser-accurate" / "encoder_head.json").read_text())
    X = {"8k": standardize_by_speaker(np.load(cache / "enc-8k.npy"), speaker),
         "tel": standardize_by_speaker(np.load(cache / "enc-tel.npy")[:, L2], speaker)}
    out = {"fusion": shipped.fusion, "cnn_weight": shipped.cnn_weight, "temperature": shipped.temperature,
           "cnn": cnn["tel"].get("version", "the encoder probe cache's (ac-tel.npz)")}
    for p, cnn_p in (("turev", cnn["tel"]["loco"]), ("emovo", cnn["tel"]["final"])):
        tr, te = np.isin(corpus, probe.PROTOCOLS[p]), corpus == p
        head = fit_head(np.vstack([X["8k"][tr], X["tel"][tr]]), np.tile(y[tr], 2), np.tile(corpus[tr], 2))
        fused = fuse(cnn_p[te], head.predict(X["tel"][te]), shipped.cnn_weight, shipped.fusion, shipped.temperature)
        out[p] = {**probe.score(fused, y[te]), "ece_clips": calibration(fused, y[te])["ece"],
                  "cnn_alone": probe.score(cnn_p[te], y[te])}
        print(p, json.dumps(out[p]), flush=True)
    Path(out_json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--current-cnn" in sys.argv[3:])
