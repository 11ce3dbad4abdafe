"""Window-level calibration of the accurate model, as served: each speaker of a corpus as one
call channel (``training.encoder_head.speaker_call_windows``: the speaker's clips at the
job's 8 kHz joined by 0.3 s of silence, streamed through ``ser_lib.stream.StreamAnalyzer``,
each speech window encoded as serving encodes it and labelled with the clip covering most of
it), each channel's encoder rows standardised together.

Models never trained on the window's speaker or corpus:

- ``ravdess`` (actor CV): each actor's windows scored by the CNN fold model that tested the
  actor (``models/ser-cnn/cv/fold-<i>``, training/folds.json) and a head fitted without the
  fold's actors (the measure.py recipe on the cached 8 kHz + telephone clip rows);
- ``emovo``: the shipped CNN (never trained on EMOVO) and a head without EMOVO;
- ``turev``: the CNN's TurEV-DB LOCO model and a head without TurEV-DB.

ECE (15 bins, ``training.evaluate.calibration``, over the windows' top-class confidence, 7
classes) of the fused window probabilities (``ser_lib.encoder_head.fuse``), for both fusion
rules: before (T = 1); after the temperature fitted as the build fits it
(``training.encoder_head.fit_fusion_temperature`` on RAVDESS actor-CV window predictions:
for RAVDESS nested, each fold scaled by the T of the other 5 folds' windows; for EMOVO and
TurEV-DB the T of all RAVDESS folds' windows with heads also fitted without the evaluated
corpus); with the clip-level temperatures of ``calibration.json`` (what not to do); and with
the evaluated corpus's own best T (``T_oracle``, not an estimate). Window UA7 / UA4 beside.

Per-window arrays are kept in ``CACHE_DIR/windows-<corpus>.npz`` (rerun: no streaming).

Usage: python models/runs/2026-12-07-accurate/window_calibration.py CACHE_DIR CALIBRATION_JSON OUT_JSON
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import balanced_accuracy_score

from ser_lib.encoder_head import EncoderModel
from ser_lib.encoder_head import fuse as _fuse
from ser_lib.labels import EMOTIONS
from training.encoder_head import unheard_predictor
from training.corpora import Clip
from training.cv import FOLDS_PATH, TUREV_CLASSES, load_folds
from training.evaluate import calibration
from training.encoder_head import (CNN_WEIGHT, fit_fusion_temperature, fit_head, speaker_call_windows,
                                   standardize_by_speaker)

ROOT = Path(__file__).resolve().parents[3]
FOUR = [EMOTIONS.index(e) for e in TUREV_CLASSES]
RULES = ("linear", "log")


def main(cache: str, cal_json: str, out_json: str) -> None:
    cache = Path(cache)
    cal = json.loads(Path(cal_json).read_text())
    meta = json.loads((cache / "meta-encoder.json").read_text())["clips"]
    corpus = np.array([c[1] for c in meta])
    speaker = np.array([c[2] for c in meta])
    y_all = np.array([EMOTIONS.index(c[3]) for c in meta])
    x8 = standardize_by_speaker(np.load(cache / "enc-8k.npy"), speaker)
    xt = standardize_by_speaker(np.load(cache / "enc-tel.npy")[:, 1536:2048], speaker)
    model = EncoderModel(ROOT / "models" / "ser-accurate")
    folds = load_folds(FOLDS_PATH)["ravdess"]["test"]
    fold_of = {f"ravdess:{a}": i for i, actors in enumerate(folds) for a in actors}

    def head(tr):
        return fit_head(np.vstack([x8[tr], xt[tr]]), np.tile(y_all[tr], 2), np.tile(corpus[tr], 2))

    def windows(test: str) -> dict:
        """Per-window CNN probabilities, encoder rows, labels, speakers of one corpus (cached)."""
        path = cache / f"windows-{test}.npz"
        if path.is_file():
            return dict(np.load(path))
        cnns = {}
        pc, rows, ys, spk = [], [], [], []
        for s in sorted(set(speaker[corpus == test])):
            sub = "" if test == "emovo" else "cv/loco" if test == "turev" else f"cv/fold-{fold_of[s]}"
            # at the served CNN's temperature, as the build scores them (a LOCO model keeps its own)
            cnn = cnns.setdefault(sub, unheard_predictor(ROOT / "models" / "ser-cnn", ROOT / "models" / "ser-cnn" / sub))
            clips = [Clip(m[0], m[1], m[2], m[3], "", "") for m in (meta[k] for k in np.flatnonzero(speaker == s))]
            f, r, lab = speaker_call_windows(clips, model.encoder, model.head.settings)
            pc.append(cnn.predict(f)), rows.append(r), ys.append(lab), spk.append(np.full(len(lab), s))
            print(test, s, len(lab), flush=True)
        d = {"cnn": np.concatenate(pc), "rows": np.concatenate(rows), "y": np.concatenate(ys),
             "speaker": np.concatenate(spk)}
        np.savez(path, **d)
        return d

    def head_probs(d: dict, excl: str | None = None) -> np.ndarray:
        """Each window's head probabilities, the head fitted without its fold's actors (RAVDESS)
        or its corpus, and without corpus ``excl``; each speaker's rows standardised together."""
        out = np.zeros((len(d["y"]), len(EMOTIONS)), np.float32)
        test = str(d["speaker"][0]).split(":")[0]
        if test == "ravdess":
            groups = [[f"ravdess:{a}" for a in actors] for actors in folds]
            masks = [~np.isin(speaker, spks) & (corpus != excl) for spks in groups]
        else:
            groups = [sorted(set(d["speaker"]))]
            masks = [(corpus != test) & (corpus != excl)]
        for spks, tr in zip(groups, masks):
            h = head(tr)
            for s in spks:
                m = d["speaker"] == s
                if m.sum():
                    out[m] = h.predict_speaker(d["rows"][m])
        return out

    data = {c: windows(c) for c in ("ravdess", "emovo", "turev")}
    rav = data["ravdess"]
    rav_fold = np.array([fold_of[s] for s in rav["speaker"]])
    rav_head = {ex: head_probs(rav, ex) for ex in (None, "emovo", "turev")}
    ece = lambda p, yy: calibration(p, yy)["ece"]  # noqa: E731
    out = {"method": __doc__.split("\n\n")[0].replace("\n", " "), "models_alone": {}, "rules": {}}
    heads = {"ravdess_cv": rav_head[None], "emovo": head_probs(data["emovo"]), "turev": head_probs(data["turev"])}
    for key, d in (("ravdess_cv", rav), ("emovo", data["emovo"]), ("turev", data["turev"])):
        out["models_alone"][key] = {"n_windows": int(len(d["y"])), "cnn_ece": ece(d["cnn"], d["y"]),
                                    "head_ece": ece(heads[key], d["y"])}
    for rule in RULES:
        f = lambda a, b, t=1.0: _fuse(a, b, CNN_WEIGHT, rule, t)  # noqa: E731
        fit_t = lambda a, b, yy: fit_fusion_temperature(a, b, yy, CNN_WEIGHT, rule)  # noqa: E731
        r = {}
        for key, d in (("ravdess_cv", rav), ("emovo", data["emovo"]), ("turev", data["turev"])):
            pc, ph, y = d["cnn"], heads[key], d["y"]
            before = f(pc, ph)
            k4 = np.isin(y, FOUR)
            res = {"ua4": float(balanced_accuracy_score(y[k4], np.array(FOUR)[before[k4][:, FOUR].argmax(1)])),
                   "ece_before": ece(before, y)}
            if key != "turev":
                res["ua7"] = float(balanced_accuracy_score(y, before.argmax(1)))
            if key == "ravdess_cv":
                after, after_clip_t, ts = np.empty_like(before), np.empty_like(before), []
                for k in range(len(folds)):
                    m = rav_fold == k
                    ts.append(fit_t(pc[~m], ph[~m], y[~m]))
                    after[m] = f(pc[m], ph[m], ts[-1])
                    after_clip_t[m] = f(pc[m], ph[m], cal["rules"][rule]["ravdess_cv"]["T_folds"][k])
                res.update(T_folds=ts, T_all_folds=fit_t(pc, ph, y), ece_after=ece(after, y),
                           ece_per_fold_after=[ece(after[rav_fold == k], y[rav_fold == k]) for k in range(len(folds))],
                           ece_with_clip_level_T=ece(after_clip_t, y))
            else:
                t = fit_t(rav["cnn"], rav_head[key], rav["y"])
                t_or = fit_t(pc, ph, y)
                res.update(T=t, ece_after=ece(f(pc, ph, t), y),
                           ece_with_clip_level_T=ece(f(pc, ph, cal["rules"][rule][key]["T"]), y),
                           T_oracle=t_or, ece_after_T_oracle=ece(f(pc, ph, t_or), y))
            r[key] = res
        out["rules"][rule] = r
        print(rule, json.dumps({k: {a: round(b, 3) for a, b in v.items() if isinstance(b, float)} for k, v in r.items()}),
              flush=True)
    Path(out_json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:4])
