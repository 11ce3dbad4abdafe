"""Stage 2: how should the accurate model score a channel with few speech windows?

The shipped rule standardises a channel's encoder rows by the channel's own mean and std, and
below 2 windows keeps the CNN's probabilities alone. A channel of one short clip (1-4
windows) then gets either the CNN alone or rows standardised over 2-4 windows of the same
utterance. Compared here, at clip level (a clip's mean window probability), on the clips
scored alone (``extract.py``) and on each speaker's clips streamed as one call channel
(``windows-<corpus>.npz`` of ``2026-12-07-accurate/window_calibration.py``):

- ``cnn``: the CNN alone;
- ``shipped``: the shipped rule;
- ``global``: a head fitted on rows *without* per-speaker standardisation (global
  standardisation only), fused with the CNN the same way;
- ``shrink-k``: the speaker-standardised head on rows standardised by shrunken channel
  statistics: ``mu = (n * mean + k * mu0) / (n + k)``, ``var = (n * var_ch + k * var0) / (n + k)``
  with ``mu0`` the mean of the training speakers' means and ``var0`` their mean within-speaker
  variance (a conjugate-prior / MAP estimate of the speaker's statistics, as in MAP speaker
  adaptation, Gauvain & Lee 1994);
- ``blend-k``: the speaker-standardised and the global head's log-probabilities mixed with
  weight ``n / (n + k)`` on the former;
- ``nap-m``: a head on rows with the top ``m`` directions of the training speakers' means
  projected out (nuisance attribute projection; 64 = all of them);
- ``blendnap-k``: as ``blend-k`` with the ``nap-64`` head in place of the global one;
- ``product``: ``blendnap-10`` as shipped (``training.encoder_head.fit_heads``,
  ``EncoderHead.predict_channel``); ``product-shipped-T``: with the shipped temperature.

Heads never trained on the evaluated corpus (RAVDESS: the fold's actors): the shipped recipe
(8 kHz + G.711 clip rows, C = 0.003, (corpus, emotion)-balanced), fusion log-space, CNN
weight 0.5, T = 1.107.

Usage: python models/runs/2026-12-07-short-channels/probe.py CACHE_DIR OUT_JSON
"""
from __future__ import annotations

import importlib.util
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from ser_lib.encoder_head import fuse
from ser_lib.labels import EMOTIONS
from training.cv import FOLDS_PATH, load_folds
from training.encoder_head import fit_head, fit_heads, standardize_by_speaker
from training.evaluate import calibration, fit_temperature

warnings.filterwarnings("ignore")
HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("probe", HERE.parent / "2026-12-07-encoder" / "probe.py")
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)
T = 1.107  # the temperature of the artifact this probe started from
#: the temperature of the shipped artifact (fitted on TurEV-DB and EMOVO windows: temperature.py)
_SHIPPED = json.loads((HERE.parents[1] / "ser-accurate" / "encoder_head.json").read_text())
T_SHIPPED = _SHIPPED["temperature"]
#: the shipped CNN weight of the fusion (0.5 when this probe ran; later artifacts derive it from the
#: CNN's temperature: training.encoder_head.fusion_weight)
W_SHIPPED = float(_SHIPPED.get("cnn_weight", 0.5))
KS = (1, 3, 10, 30, 100)
NAPS = (8, 16, 64)


def fit_t(z: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises the NLL of labels ``y`` under ``softmax(z / T)``
    (``training.evaluate.fit_temperature`` on ``softmax(z)``: the row constant cancels)."""
    e = np.exp(z - z.max(1, keepdims=True))
    return fit_temperature(e / e.sum(1, keepdims=True), y)


def oracle_t(p: np.ndarray, y: np.ndarray) -> float:
    """The temperature these windows want in place of :data:`T` (an oracle, not an estimate)."""
    return fit_t(T * np.log(np.maximum(p.astype(np.float64), 1e-12)), y)


def main(cache: str, out_json: str) -> None:
    cache = Path(cache)
    meta = json.loads((cache / "meta-encoder.json").read_text())["clips"]
    corpus = np.array([c[1] for c in meta])
    speaker = np.array([c[2] for c in meta])
    y_all = np.array([EMOTIONS.index(c[3]) for c in meta])
    raw8, rawt = np.load(cache / "enc-8k.npy"), np.load(cache / "enc-tel.npy")[:, 1536:2048]
    s8, st = standardize_by_speaker(raw8, speaker), standardize_by_speaker(rawt, speaker)
    folds = load_folds(FOLDS_PATH)["ravdess"]["test"]

    def train(tr):
        yy, cc = np.tile(y_all[tr], 2), np.tile(corpus[tr], 2)
        hs = fit_head(np.vstack([s8[tr], st[tr]]), yy, cc)
        hg = fit_head(np.vstack([raw8[tr], rawt[tr]]), yy, cc)
        spk = speaker[tr]
        means = np.array([raw8[tr][spk == s].mean(0) for s in np.unique(spk)])
        var0 = np.array([raw8[tr][spk == s].var(0) for s in np.unique(spk)]).mean(0)
        naps = {}
        for m in NAPS:  # nuisance attribute projection: the top m directions of the speaker means
            u = np.linalg.svd(means - means.mean(0), full_matrices=False)[2][:m]
            proj = lambda x, u=u: x - (x @ u.T) @ u  # noqa: E731
            naps[m] = (proj, fit_head(np.vstack([proj(raw8[tr]), proj(rawt[tr])]), yy, cc))
        product = fit_heads(np.vstack([raw8[tr], rawt[tr]]), yy, cc, speaker[tr], 2)
        return hs, hg, means.mean(0), var0, naps, product

    def channel(h, rows, cnn_p, rule):
        hs, hg, mu0, var0, naps, product = h
        n = len(rows)
        f = lambda ph: fuse(cnn_p, ph, 0.5, "log", T)  # noqa: E731
        if rule == "cnn":
            return cnn_p
        if rule == "shipped":
            return cnn_p if n < 2 else f(hs.predict_speaker(rows))
        if rule == "product":  # what serving runs: training.encoder_head.fit_heads, EncoderHead.predict_channel
            return fuse(cnn_p, product.predict_channel(rows), W_SHIPPED, "log", T)
        if rule == "product-shipped-T":  # ... with the shipped artifact's temperature
            return fuse(cnn_p, product.predict_channel(rows), W_SHIPPED, "log", T_SHIPPED)
        if rule == "global":
            return f(hg.predict(rows))
        if rule.startswith("nap"):
            proj, hn = naps[int(rule.split("-")[1])]
            return f(hn.predict(proj(rows)))
        kind, k = rule.split("-")
        k = float(k)
        if kind == "shrink":
            mu = (n * rows.mean(0) + k * mu0) / (n + k)
            var = (n * rows.var(0) + k * var0) / (n + k)
            return f(hs.predict((rows - mu) / np.sqrt(var + 1e-12)))
        w = n / (n + k) if n >= 2 else 0.0
        if kind == "blendnap":
            proj, hn = naps[max(NAPS)]
            lg = np.log(np.maximum(hn.predict(proj(rows)), 1e-12))
        else:
            lg = np.log(np.maximum(hg.predict(rows), 1e-12))
        ls = np.log(np.maximum(hs.predict_speaker(rows), 1e-12)) if n >= 2 else lg
        z = w * ls + (1 - w) * lg
        e = np.exp(z - z.max(1, keepdims=True))
        return f(e / e.sum(1, keepdims=True))

    rules = (["cnn", "shipped", "global"] + [f"{a}-{k}" for a in ("shrink", "blend", "blendnap") for k in KS]
             + [f"nap-{m}" for m in NAPS] + ["product", "product-shipped-T"])
    out = {"method": __doc__.split("\n\n")[1].replace("\n", " "), "results": {}}
    for test in ("turev", "emovo", "ravdess"):
        if test == "ravdess":
            groups = [[f"ravdess:{a}" for a in actors] for actors in folds]
            heads = [train(~np.isin(speaker, g)) for g in groups]
            head_of = {s: heads[i] for i, g in enumerate(groups) for s in g}
        else:
            h = train(corpus != test)
            head_of = {s: h for s in set(speaker[corpus == test])}
        single = dict(np.load(cache / f"clips-{test}.npz"))
        stream = dict(np.load(cache / f"windows-{test}.npz"))
        for proto, d, unit in (("single clip", single, "clip"), ("speaker stream", stream, "speaker")):
            res = {}
            for rule in rules:
                if proto == "single clip":
                    ps, ys, pw = [], [], np.zeros_like(d["cnn"])
                    for c in np.unique(d["clip"]):
                        m = d["clip"] == c
                        pw[m] = channel(head_of[d["speaker"][m][0]], d["rows"][m], d["cnn"][m], rule)
                        ps.append(pw[m].mean(0))
                        ys.append(y_all[c])
                    p, yy = np.array(ps), np.array(ys)
                else:  # window level: windows of a speaker's channel
                    p = np.zeros_like(d["cnn"])
                    for s in np.unique(d["speaker"]):
                        m = d["speaker"] == s
                        p[m] = channel(head_of[s], d["rows"][m], d["cnn"][m], rule)
                    yy = d["y"]
                    pw = p
                res[rule] = probe.score(p, yy)
                if rule in ("cnn", "shipped", "product", "product-shipped-T"):  # window level, 7 classes, 15 bins
                    res[rule]["window_ece"] = calibration(pw, d["y"])["ece"]
                if rule == "product":  # the temperature these windows would want (an oracle, not an estimate)
                    res[rule]["window_T_oracle"] = oracle_t(pw, d["y"])
                    np.savez(cache / f"product-{test}-{unit}.npz", p=pw, y=d["y"])
            out["results"][f"{test} / {proto}"] = res
            print(f"== {test} / {proto}")
            for rule, r in res.items():
                print(f"  {rule:10s} " + " ".join(f"{k} {v:.3f}" for k, v in r.items() if k != "n"), flush=True)
            Path(out_json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
