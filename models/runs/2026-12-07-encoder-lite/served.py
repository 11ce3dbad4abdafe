"""The accurate model's window-level figures as the job now serves them (``context_windows`` 3:
``EncoderModel.predict_features`` pools each speech window's encoder row with its neighbours'
in its run of speech), for the model card.

Protocols (heads fitted without the evaluated corpus, RAVDESS without the fold's actors, with
the shipped artifact's settings, fusion weight and rule; the CNN that never heard the corpus at
the served temperature: TurEV-DB its leave-one-corpus-out model, EMOVO the shipped one,
RAVDESS the fold models):

* ``speaker``: each speaker's clips streamed as one call channel (``lite.py``'s harness), in
  the corpus's order (emotion by emotion, as ``training.encoder_head.held_out_predictions``
  fits the temperature) and, ``speaker-shuffled``, in a seeded random order; window level;
* ``clip``: each clip alone (its windows from ``clips-<corpus>.npz`` of
  ``../2026-12-07-short-channels/extract.py``, pooled within the clip), clip level (the mean of
  its windows' probabilities) for UA and AUCs, window level for ECE.

ECE (15 bins, 7 classes): with the shipped temperature (fitted by the build on both unheard
corpora's windows) and, held out, with the temperature fitted on the *other* unheard corpus's
windows (speakers in both orders and clips alone pooled, as the build pools them).

Usage: python models/runs/2026-12-07-encoder-lite/served.py CACHE_DIR OUT_JSON
"""
from __future__ import annotations

import copy
import importlib.util
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from ser_lib.encoder_head import EncoderHead, EncoderModel, fuse, pool_context
from training.cv import FOLDS_PATH, load_folds
from training.encoder_head import DEFAULT_CNN, fit_heads, unheard_predictor
from training.evaluate import calibration, fit_temperature

warnings.filterwarnings("ignore")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
_spec = importlib.util.spec_from_file_location("lite", HERE / "lite.py")
lite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lite)
probe, FC = lite.probe, lite.FC


def temper(p, t):
    z = np.log(np.maximum(p.astype(np.float64), 1e-12)) / t
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def main(cache: str, out_json: str) -> None:
    cache = Path(cache)
    meta, corpus, speaker, y_all, raw8, rawt = probe.load_rows(cache)
    model = EncoderModel(ROOT / "models" / "ser-accurate", int8=True)
    shipped: EncoderHead = model.head
    t_shipped = shipped.temperature

    def heads(tr):
        h = fit_heads(np.vstack([raw8[tr], rawt[tr]]), np.tile(y_all[tr], 2), np.tile(corpus[tr], 2), speaker[tr], 2,
                      settings=shipped.settings)
        h.cnn_weight, h.fusion, h.temperature = shipped.cnn_weight, shipped.fusion, 1.0  # unscaled; tempered below
        return h

    out = {"method": __doc__.split("\n\n")[0].replace("\n", " "), "artifact": shipped.training.get("version"),
           "context_windows": shipped.settings.context_windows, "temperature": t_shipped, "scores": {}, "ece": {}}
    windows = {}  # (corpus, unit) -> (unscaled fused window probabilities, labels)
    for test in ("turev", "emovo", "ravdess"):
        if test == "ravdess":
            groups = []
            for i, actors in enumerate(load_folds(FOLDS_PATH)["ravdess"]["test"]):
                spk = [f"ravdess:{a}" for a in actors]
                groups.append((spk, heads(~np.isin(speaker, spk)),
                               unheard_predictor(DEFAULT_CNN, DEFAULT_CNN / "cv" / f"fold-{i}")))
        else:
            groups = [(sorted(set(speaker[corpus == test])), heads(corpus != test),
                       unheard_predictor(DEFAULT_CNN, DEFAULT_CNN / "cv" / "loco" if test == "turev" else DEFAULT_CNN))]
        head_of = {s: h for spk, h, _ in groups for s in spk}
        for unit in ("speaker", "speaker-shuffled"):
            ps, ys = [], []
            for spks, head, cnn in groups:
                m = copy.copy(model)
                m.head = head
                for spk in spks:
                    st = lite.speaker_stream(meta, speaker, spk, unit == "speaker-shuffled")
                    keep = st.labels >= 0
                    # the served path: rows of the speech windows, pooled and fused by EncoderModel
                    p = m.predict_features(m.features(st.segments, FC.sample_rate), cnn.predict(st.features),
                                           st.start_s, 1.0)
                    ps.append(p[keep])
                    ys.append(st.labels[keep])
            windows[test, unit] = (np.concatenate(ps), np.concatenate(ys))
            out["scores"][f"{test}/{unit}"] = probe.score(temper(*windows[test, unit][:1], t_shipped), windows[test, unit][1])
        # each clip alone: cached served rows of the clip's speech windows, pooled within the clip
        d = dict(np.load(cache / f"clips-{test}.npz"))
        pw, yw, pc, yc = [], [], [], []
        for c in np.unique(d["clip"]):
            k = d["clip"] == c
            h = head_of[d["speaker"][k][0]]
            rows = pool_context(d["rows"][k], np.arange(k.sum()), 1.0, shipped.settings.context_windows)
            p = fuse(d["cnn"][k], h.predict_channel(rows), h.cnn_weight, h.fusion, 1.0)
            pw.append(p)
            yw.append(np.full(len(p), y_all[c]))
            pc.append(temper(p, t_shipped).mean(0))
            yc.append(y_all[c])
        windows[test, "clip"] = (np.concatenate(pw), np.concatenate(yw))
        out["scores"][f"{test}/clip"] = probe.score(np.array(pc), np.array(yc))
        for u in ("speaker", "speaker-shuffled", "clip"):
            print(test, u, " ".join(f"{k} {v:.3f}" for k, v in out["scores"][f"{test}/{u}"].items()), flush=True)
    # temperatures: each unheard corpus's own windows (speakers in both orders + clips alone, as the build)
    t_of = {}
    units = ("speaker", "speaker-shuffled", "clip")
    for c in ("turev", "emovo"):
        p = np.vstack([windows[c, u][0] for u in units])
        y = np.concatenate([windows[c, u][1] for u in units])
        t_of[c] = fit_temperature(p, y)
    out["T_fitted"] = t_of
    other = {"turev": "emovo", "emovo": "turev"}
    for (c, u), (p, y) in windows.items():
        e = {"shipped_T": calibration(temper(p, t_shipped), y)["ece"]}
        if c in other:
            e[f"T_from_{other[c]}"] = calibration(temper(p, t_of[other[c]]), y)["ece"]
        out["ece"][f"{c}/{u}"] = e
        print(c, u, {k: round(v, 3) for k, v in e.items()}, flush=True)
    print({k: round(v, 3) for k, v in t_of.items()}, "shipped", round(t_shipped, 3))
    Path(out_json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
