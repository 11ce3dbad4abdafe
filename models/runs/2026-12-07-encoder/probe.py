"""Stage 2 of the encoder probe: small heads on the per-clip features of features.py, scored
leave-one-corpus-out (TurEV-DB 4 classes, EMOVO 7 and 4 classes) and on the RAVDESS actor folds.

Heads (scikit-learn): multinomial logistic regression (deterministic; C chosen on the training
corpora only, by leave-one-training-corpus-out 4-class UA) and a one-hidden-layer MLP (3 seeds).
Every (corpus, emotion) pair of the training set gets the same total sample weight (the
recipe's ``corpus_class`` weighting, training.fit.sample_weights). Features are standardised
on the training clips; with ``spk`` every speaker's clips are first standardised by that
speaker's own mean and std (transductive for a test speaker, as a call channel would be
normalised over its call).

Scores: clip UA (balanced accuracy) 7-class and 4-class (argmax over angry/happy/neutral/sad
of the 7 probabilities, the recipe's TurEV-DB rule), and the transfer AUCs of
training.cv.transfer_aucs (arousal: angry/happy/fear/surprise vs neutral/sad; anger vs rest;
negative vs not).

Usage (repository root): python models/runs/2026-12-07-encoder/probe.py CACHE_DIR OUT_JSON [screen|mlp|cv|all]
"""
from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from ser_lib.labels import EMOTIONS, NEGATIVE_EMOTIONS
from training.cv import FOLDS_PATH, HIGH_AROUSAL, LOW_AROUSAL, TUREV_CLASSES, load_folds

warnings.filterwarnings("ignore")
CS = (0.003, 0.03, 0.3)
FOUR = [EMOTIONS.index(e) for e in TUREV_CLASSES]


# --------------------------------------------------------------------------- data

def load(cache: Path):
    meta = json.loads((cache / "meta-acoustic.json").read_text())
    clips = meta["clips"]
    corpus = np.array([c[1] for c in clips])
    speaker = np.array([c[2] for c in clips])
    y = np.array([EMOTIONS.index(c[3]) for c in clips])
    feats, cnn = {}, {}
    for cond in ("wide", "tel"):
        a = np.load(cache / f"ac-{cond}.npz")
        e = np.load(cache / f"enc-{cond}.npy")
        blocks = {"acoustic": a["ac"], "enc": e[:, :512], "enc_mean": e[:, :256], "enc_l0": e[:, 512:1024],
                  "enc_l1": e[:, 1024:1536], "enc_l2": e[:, 1536:2048]}
        blocks["enc+acoustic"] = np.hstack([blocks["enc"], blocks["acoustic"]])
        blocks["enc_l1+acoustic"] = np.hstack([blocks["enc_l1"], blocks["acoustic"]])
        blocks["enc_mean+acoustic"] = np.hstack([blocks["enc_mean"], blocks["acoustic"]])
        blocks["enc_l2+acoustic"] = np.hstack([blocks["enc_l2"], blocks["acoustic"]])
        blocks["enc_l2_mean"] = e[:, 1536:1792]
        blocks["enc_l12"] = e[:, 1024:2048]
        feats[cond] = blocks
        cnn[cond] = {"final": a["cnn_final"], "loco": a["cnn_loco"]}
    return corpus, speaker, y, feats, cnn


def load_rows(cache: Path):
    """The cache's clips and the accurate recipe's training rows (the last LSTM layer, mean +
    std, raw): ``(meta [path, corpus, speaker, emotion] per clip, corpus, speaker, y, rows at the
    job's 8 kHz (n, 512), rows through G.711 (n, 512))``; for the later records that fit the
    shipped heads (``training.encoder_head.fit_heads``) on them."""
    meta = json.loads((Path(cache) / "meta-encoder.json").read_text())["clips"]
    corpus = np.array([c[1] for c in meta])
    speaker = np.array([c[2] for c in meta])
    y = np.array([EMOTIONS.index(c[3]) for c in meta])
    return (meta, corpus, speaker, y, np.load(Path(cache) / "enc-8k.npy"),
            np.load(Path(cache) / "enc-tel.npy")[:, 1536:2048])


def speaker_norm(x: np.ndarray, speaker: np.ndarray, scale: bool = True) -> np.ndarray:
    out = np.empty_like(x)
    for s in np.unique(speaker):
        m = speaker == s
        out[m] = (x[m] - x[m].mean(0)) / ((x[m].std(0) + 1e-6) if scale else 1.0)
    return out


def speaker_norm_skewed(x: np.ndarray, speaker: np.ndarray, y: np.ndarray, seed: int, other: float = 0.25
                        ) -> np.ndarray:
    """Per-speaker standardisation whose statistics come from a neutral-heavy subset of the
    speaker's clips (all neutral clips, ``other`` of the rest, drawn with ``seed``), applied to all
    of them: a call channel is mostly neutral, not the balanced emotions of an acted corpus."""
    rng = np.random.default_rng(seed)
    out = np.empty_like(x)
    neutral = EMOTIONS.index("neutral")
    for s in np.unique(speaker):
        m = np.flatnonzero(speaker == s)
        pick = m[(y[m] == neutral) | (rng.random(len(m)) < other)]
        out[m] = (x[m] - x[pick].mean(0)) / (x[pick].std(0) + 1e-6)
    return out


def normed(x: np.ndarray, speaker: np.ndarray, norm: str) -> np.ndarray:
    return {"global": lambda: x, "spk": lambda: speaker_norm(x, speaker),
            "spkmean": lambda: speaker_norm(x, speaker, scale=False)}[norm]()


def weights(corpus: np.ndarray, y: np.ndarray) -> np.ndarray:
    w = np.zeros(len(y))
    groups = {(c, k) for c, k in zip(corpus, y)}
    for c, k in groups:
        m = (corpus == c) & (y == k)
        w[m] = 1.0 / m.sum()
    return w * len(y) / w.sum()


# --------------------------------------------------------------------------- scores

def auc(y, s):
    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else None


def score(p: np.ndarray, y: np.ndarray) -> dict:
    idx = lambda names: [EMOTIONS.index(e) for e in names]  # noqa: E731
    hi, lo, neg = idx(HIGH_AROUSAL), idx(LOW_AROUSAL), idx(sorted(NEGATIVE_EMOTIONS))
    keep4 = np.isin(y, FOUR)
    out = {"n": int(len(y)),
           "ua4": float(balanced_accuracy_score(y[keep4], np.array(FOUR)[p[keep4][:, FOUR].argmax(1)])),
           "arousal_auc": auc(np.isin(y[np.isin(y, hi + lo)], hi).astype(int), p[np.isin(y, hi + lo)][:, hi].sum(1)),
           "anger_auc": auc((y == 0).astype(int), p[:, 0]),
           "negative_auc": auc(np.isin(y, neg).astype(int), p[:, neg].sum(1))}
    if len(np.unique(y)) > 4:
        out["ua7"] = float(balanced_accuracy_score(y, p.argmax(1)))
    return out


# --------------------------------------------------------------------------- heads

def fit_predict(kind: str, xtr, ytr, wtr, xte, C: float = 0.03, seed: int = 0) -> np.ndarray:
    sc = StandardScaler().fit(xtr)
    xtr, xte = sc.transform(xtr), sc.transform(xte)
    if kind == "lr":
        m = LogisticRegression(C=C, max_iter=3000)
        m.fit(xtr, ytr, sample_weight=wtr)
    else:
        m = MLPClassifier(hidden_layer_sizes=(128,), alpha=1.0, max_iter=300, early_stopping=False,
                          random_state=seed, learning_rate_init=1e-3, batch_size=128)
        m.fit(xtr, ytr, sample_weight=wtr)
    p = np.zeros((len(xte), len(EMOTIONS)))
    p[:, m.classes_] = m.predict_proba(xte)
    return p


def choose_c(x, y, corpus, w, grid=CS) -> tuple[float, dict]:
    """C by leave-one-training-corpus-out 4-class UA (mean over the training corpora)."""
    res = {}
    for C in grid:
        uas = []
        for c in np.unique(corpus):
            te = corpus == c
            p = fit_predict("lr", x[~te], y[~te], w[~te], x[te], C)
            uas.append(score(p, y[te])["ua4"])
        res[C] = float(np.mean(uas))
    return max(res, key=res.get), res


def run_loco(test_corpus, train_corpora, X, Xte, y, corpus, kind="lr", seeds=(0,), C=None, grid=CS):
    tr = np.isin(corpus, train_corpora)
    te = corpus == test_corpus
    w = weights(corpus[tr], y[tr])
    inner = None
    if kind == "lr" and C is None:
        C, inner = choose_c(X[tr], y[tr], corpus[tr], w, grid)
    runs = [score(fit_predict(kind, X[tr], y[tr], w, Xte[te], C, s), y[te]) for s in seeds]
    out = {"C": C, "C_grid_inner_ua4": inner, "runs": runs}
    for k in runs[0]:
        vals = [r[k] for r in runs if r[k] is not None]
        if vals and k != "n":
            out[k] = {"mean": float(np.mean(vals)), "min": float(np.min(vals)), "max": float(np.max(vals))}
    return out


def run_cv(X, y, corpus, speaker, C, kind="lr", seed=0):
    folds = load_folds(FOLDS_PATH)
    uas = []
    for test_actors in folds["ravdess"]["test"]:
        te = np.isin(speaker, [f"ravdess:{a}" for a in test_actors])
        w = weights(corpus[~te], y[~te])
        p = fit_predict(kind, X[~te], y[~te], w, X[te], C, seed)
        uas.append(float(balanced_accuracy_score(y[te], p.argmax(1))))
    return {"folds": uas, "mean": float(np.mean(uas)), "std": float(np.std(uas, ddof=1))}


# --------------------------------------------------------------------------- main

PROTOCOLS = {"turev": ["ravdess", "tess", "emovo"], "turev_no_emovo": ["ravdess", "tess"],
             "emovo": ["ravdess", "tess", "turev"]}


def main(cache: str, out_json: str, what: str = "screen") -> None:
    corpus, speaker, y, feats, cnn = load(Path(cache))
    out_path = Path(out_json)
    results = json.loads(out_path.read_text()) if out_path.is_file() else {}
    t0 = time.time()

    def save():
        results["wall_s_total"] = results.get("wall_s_total", 0) + time.time() - t0
        out_path.write_text(json.dumps(results, indent=1) + "\n")

    # the shipped CNN: TurEV-DB by its LOCO model, EMOVO by the shipped ensemble (never saw EMOVO)
    base = {}
    for cond in ("wide", "tel"):
        base[cond] = {"turev (cv/loco model)": score(cnn[cond]["loco"][corpus == "turev"], y[corpus == "turev"]),
                      "emovo (shipped model)": score(cnn[cond]["final"][corpus == "emovo"], y[corpus == "emovo"])}
    results["shipped_cnn"] = base
    save()

    if what in ("screen", "screen2", "all"):
        scr = results.setdefault("screen_lr", {})
        if what == "screen2":
            configs = [("wide", n, "spk") for n in ("enc_l2+acoustic", "enc_l2_mean", "enc_l12")] + \
                [("wide", n, "spkmean") for n in ("enc_l2", "enc", "enc+acoustic", "acoustic")] + \
                [(c, n, "spk") for c in ("tel", "wide->tel") for n in ("enc", "enc_l2", "enc_mean", "enc_l2+acoustic",
                                                                      "acoustic")]
        else:
            configs = [(cond, name, norm) for cond in ("wide", "tel", "wide->tel")
                       for name in (list(feats["wide"])[:9] if cond == "wide" else ["acoustic", "enc", "enc+acoustic"])
                       for norm in ("global", "spk") if cond == "wide" or norm == "global" or name == "enc+acoustic"]
        for cond, name, norm in configs:
            train_cond = "wide" if cond != "tel" else "tel"
            test_cond = "tel" if cond != "wide" else "wide"
            key = f"{cond}|{name}|{norm}"
            if key in scr:
                continue
            Xtr, Xte = normed(feats[train_cond][name], speaker, norm), normed(feats[test_cond][name], speaker, norm)
            scr[key] = {p: run_loco(p.split("_")[0], tc, Xtr, Xte, y, corpus) for p, tc in PROTOCOLS.items()}
            r = scr[key]
            print(f"{key:40s} turev ua4 {r['turev']['ua4']['mean']:.3f} (no emovo "
                  f"{r['turev_no_emovo']['ua4']['mean']:.3f}) arousal {r['turev']['arousal_auc']['mean']:.3f} | "
                  f"emovo ua7 {r['emovo']['ua7']['mean']:.3f} ua4 {r['emovo']['ua4']['mean']:.3f} arousal "
                  f"{r['emovo']['arousal_auc']['mean']:.3f}  [{time.time() - t0:.0f}s]", flush=True)
            save()
    if what in ("late", "all"):
        # late fusion, weights fixed in advance (no fitting, nothing chosen on test data): the mean of
        # the encoder head's probabilities and the shipped CNN's for clips that CNN never trained on
        lf = results.setdefault("late_fusion_with_cnn", {})
        folds_p = np.load(Path(cache) / "cnn-folds-wide.npy")
        for cond, name, norm in (("wide", "enc_l2", "spk"), ("tel", "enc_l2", "spk"), ("wide", "enc", "spk")):
            key = f"{cond}|{name}|{norm}"
            X = normed(feats[cond][name], speaker, norm)
            entry = {}
            for p, tc, cnn_p in (("turev", PROTOCOLS["turev"], cnn[cond]["loco"]),
                                 ("emovo", PROTOCOLS["emovo"], cnn[cond]["final"])):
                tr, te = np.isin(corpus, tc), corpus == p
                C = results["screen_lr"][key][p]["C"]
                pe = fit_predict("lr", X[tr], y[tr], weights(corpus[tr], y[tr]), X[te], C)
                entry[p] = {"C": C, **{f"w_cnn={wc}": score((1 - wc) * pe + wc * cnn_p[te], y[te])
                                       for wc in (0.0, 0.5, 1.0)}}
            if cond == "wide":
                cv = {f"w_cnn={wc}": [] for wc in (0.0, 0.5, 1.0)}
                C = results["ravdess_cv_lr"].get(key, {}).get("C", 0.003)
                for test_actors in load_folds(FOLDS_PATH)["ravdess"]["test"]:
                    te = np.isin(speaker, [f"ravdess:{a}" for a in test_actors])
                    pe = fit_predict("lr", X[~te], y[~te], weights(corpus[~te], y[~te]), X[te], C)
                    for wc in (0.0, 0.5, 1.0):
                        pf = (1 - wc) * pe + wc * folds_p[te]
                        cv[f"w_cnn={wc}"].append(float(balanced_accuracy_score(y[te], pf.argmax(1))))
                entry["ravdess_cv"] = {k: {"folds": v, "mean": float(np.mean(v)), "std": float(np.std(v, ddof=1))}
                                       for k, v in cv.items()}
            lf[key] = entry
            t, e = entry["turev"]["w_cnn=0.5"], entry["emovo"]["w_cnn=0.5"]
            print(f"LATE {key:30s} turev ua4 {t['ua4']:.3f} arousal {t['arousal_auc']:.3f} anger {t['anger_auc']:.3f} | "
                  f"emovo ua7 {e['ua7']:.3f} ua4 {e['ua4']:.3f} arousal {e['arousal_auc']:.3f} anger "
                  f"{e['anger_auc']:.3f}" + (f" | CV {entry['ravdess_cv']['w_cnn=0.5']['mean']:.3f} "
                                             f"(CNN folds {entry['ravdess_cv']['w_cnn=1.0']['mean']:.3f})"
                                             if "ravdess_cv" in entry else ""), flush=True)
            save()
    if what in ("cgrid", "all"):
        # the screen's C was mostly its smallest (0.003): the grid widened downwards
        cg = results.setdefault("screen_lr_wider_c_grid", {})
        for cond, name, norm in (("wide", "enc_l2", "spk"), ("wide", "enc_l2+acoustic", "spk"), ("wide", "enc", "spk"),
                                 ("wide", "acoustic", "global"), ("tel", "enc_l2", "spk"), ("wide", "enc_l2", "global")):
            key = f"{cond}|{name}|{norm}"
            if key in cg:
                continue
            X = normed(feats[cond][name], speaker, norm)
            cg[key] = {p: run_loco(p.split("_")[0], tc, X, X, y, corpus, grid=(0.0001, 0.0003, 0.001, 0.003))
                       for p, tc in PROTOCOLS.items()}
            r = cg[key]
            print(f"CGRID {key:34s} C {r['turev']['C']}/{r['emovo']['C']} turev ua4 {r['turev']['ua4']['mean']:.3f} "
                  f"arousal {r['turev']['arousal_auc']['mean']:.3f} | emovo ua7 {r['emovo']['ua7']['mean']:.3f} ua4 "
                  f"{r['emovo']['ua4']['mean']:.3f} arousal {r['emovo']['arousal_auc']['mean']:.3f}", flush=True)
            save()
    if what in ("skew", "all"):
        sk = results.setdefault("skewed_speaker_stats_lr", {})
        for name in ("enc_l2", "enc_l2+acoustic", "acoustic"):
            key = f"wide|{name}|spkskew"
            if key in sk:
                continue
            C = results["screen_lr"][f"wide|{name}|spk"]["emovo"]["C"]
            runs = {p: [] for p in ("turev", "emovo")}
            for seed in (0, 1, 2):
                X = speaker_norm_skewed(feats["wide"][name], speaker, y, seed)
                for p in runs:
                    runs[p].append(run_loco(p, PROTOCOLS[p], X, X, y, corpus, C=C)["runs"][0])
            sk[key] = {"C": C, **{p: {"runs": r, **{k: {"mean": float(np.mean([v[k] for v in r])),
                                                          "min": float(np.min([v[k] for v in r])),
                                                          "max": float(np.max([v[k] for v in r]))}
                                                      for k in r[0] if k != "n" and r[0][k] is not None}}
                                  for p, r in runs.items()}}
            print(f"SKEW {key:34s} turev ua4 {sk[key]['turev']['ua4']} | emovo ua7 {sk[key]['emovo']['ua7']} "
                  f"ua4 {sk[key]['emovo']['ua4']}", flush=True)
            save()
    if what in ("mlp", "all"):
        mlp = results.setdefault("mlp", {})
        for name, norm in (("acoustic", "global"), ("enc_l2", "spk"), ("enc_l2+acoustic", "spk"),
                           ("enc", "spk"), ("acoustic", "spk")):
                key = f"wide|{name}|{norm}"
                if key in mlp:
                    continue
                X = normed(feats["wide"][name], speaker, norm)
                mlp[key] = {p: run_loco(p.split("_")[0], tc, X, X, y, corpus, kind="mlp", seeds=(0, 1, 2))
                            for p, tc in PROTOCOLS.items() if p != "turev_no_emovo"}
                r = mlp[key]
                print(f"MLP {key:36s} turev ua4 {r['turev']['ua4']} | emovo ua7 {r['emovo']['ua7']} "
                      f"ua4 {r['emovo']['ua4']}  [{time.time() - t0:.0f}s]", flush=True)
                save()
    if what in ("cv", "all"):
        cvr = results.setdefault("ravdess_cv_lr", {})
        for name, norm in (("acoustic", "global"), ("enc_l2", "spk"), ("enc_l2+acoustic", "spk"), ("enc", "spk"),
                           ("enc", "global")):
            key = f"wide|{name}|{norm}"
            if key in cvr:
                continue
            X = normed(feats["wide"][name], speaker, norm)
            C = results.get("screen_lr", {}).get(key, {}).get("emovo", {}).get("C", 0.03)
            cvr[key] = {"C": C, **run_cv(X, y, corpus, speaker, C)}
            print(f"CV {key:36s} UA {cvr[key]['mean']:.3f} ± {cvr[key]['std']:.3f}  [{time.time() - t0:.0f}s]",
                  flush=True)
            save()


if __name__ == "__main__":
    main(*sys.argv[1:])
