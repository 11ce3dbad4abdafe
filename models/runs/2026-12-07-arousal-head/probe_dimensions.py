"""Dedicated arousal and valence heads on the frozen speech encoder, against the arousal and
valence read off a 7-class model's probabilities; and which band the encoder should hear.

Reuses the per-clip features of ``../2026-12-07-encoder/features.py`` (CACHE_DIR): the last
LSTM layer's state, mean+std pooled (512), standardised per speaker; the shipped CNN's clip
probabilities (TurEV-DB: its leave-TurEV-out model). Conditions: ``wide`` (16 kHz corpus audio)
and ``tel`` (``training.augment.telephone``: 8 kHz, 300-3400 Hz band-pass, G.711) and ``8k`` (the job's
path: resampled to 8 kHz, ``../2026-12-07-accurate/features8k.py``'s ``enc-8k.npy``; the
shipped accurate head is trained on ``8k`` + ``tel``).

For each left-out corpus (TurEV-DB, EMOVO), head trained on the other three corpora in the
training condition(s), scored in each test condition:
- 7-class LR head (C 0.003, as ``training.encoder_head``), fused 0.5/0.5 with the CNN: UA7, UA4
  and the transfer AUCs of the fused probabilities (``training.cv.transfer_aucs`` grouping);
- binary LR heads: arousal (angry/fear/happy/surprise vs neutral/sad; disgust left out) and
  negative (angry/disgust/fear/sad vs the rest); C chosen by leave-one-*training*-corpus-out AUC
  over 0.0001/0.001/0.01/0.1 (never on the left-out corpus); scored alone and averaged with the CNN's
  summed probabilities.
Every (corpus, class) pair gets the same total sample weight.

Usage (repository root): python models/runs/2026-12-07-arousal-head/probe_dimensions.py CACHE_DIR OUT_JSON
"""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "2026-12-07-encoder"))
from probe import load, speaker_norm  # noqa: E402

from ser_lib.labels import EMOTIONS, NEGATIVE_EMOTIONS  # noqa: E402
from training.cv import HIGH_AROUSAL, LOW_AROUSAL, TUREV_CLASSES  # noqa: E402

warnings.filterwarnings("ignore")
E = np.array(EMOTIONS)
IDX = lambda names: [EMOTIONS.index(e) for e in names]  # noqa: E731
HI, NEG, FOUR = IDX(HIGH_AROUSAL), IDX(sorted(NEGATIVE_EMOTIONS)), IDX(TUREV_CLASSES)
CS = (0.0001, 0.001, 0.01, 0.1)


def weights(groups: np.ndarray, y: np.ndarray) -> np.ndarray:
    w = np.zeros(len(y))
    for g in np.unique(groups):
        for k in np.unique(y):
            m = (groups == g) & (y == k)
            if m.any():
                w[m] = 1.0 / m.sum()
    return w * len(y) / w.sum()


def fit(x, y, groups, c):
    sc = StandardScaler().fit(x)
    lr = LogisticRegression(C=c, max_iter=3000).fit(sc.transform(x), y, sample_weight=weights(groups, y))
    return lambda z: lr.predict_proba(sc.transform(z)), lr.classes_


def pick_c(x, y, groups):
    """C by leave-one-training-corpus-out AUC (mean over the training corpora)."""
    best = None
    for c in CS:
        aucs = []
        for g in np.unique(groups):
            tr, te = groups != g, groups == g
            if len(np.unique(y[te])) < 2:
                continue
            f, _ = fit(x[tr], y[tr], groups[tr], c)
            aucs.append(roc_auc_score(y[te], f(x[te])[:, 1]))
        m = float(np.mean(aucs))
        if best is None or m > best[1]:
            best = (c, m)
    return best[0]


def main(cache: Path, out: Path) -> None:
    corpus, speaker, y, feats, cnn = load(cache)
    x = {c: speaker_norm(feats[c]["enc_l2"], speaker) for c in ("wide", "tel")}
    # the job's path: 8 kHz (soxr), ../2026-12-07-accurate/features8k.py; the CNN hears 8 kHz either way
    x["8k"] = speaker_norm(np.load(cache / "enc-8k.npy"), speaker)
    cnn["8k"] = cnn["wide"]
    arousal_known = np.isin(E[y], HIGH_AROUSAL + LOW_AROUSAL)
    is_high = np.isin(E[y], HIGH_AROUSAL).astype(int)
    is_neg = np.isin(E[y], sorted(NEGATIVE_EMOTIONS)).astype(int)
    results = {}
    for train in (("wide",), ("tel",), ("wide", "tel"), ("8k", "tel")):
        for left_out in ("turev", "emovo"):
            tr = corpus != left_out
            xt = np.vstack([x[c][tr] for c in train])
            rep = lambda a: np.concatenate([a[tr]] * len(train))  # noqa: E731
            yt, gt, kt = rep(y), rep(corpus), rep(arousal_known)
            f7, classes = fit(xt, yt, gt, 0.003)
            c_ar = pick_c(xt[kt], rep(is_high)[kt], gt[kt])
            c_neg = pick_c(xt, rep(is_neg), gt)
            f_ar, _ = fit(xt[kt], rep(is_high)[kt], gt[kt], c_ar)
            f_neg, _ = fit(xt, rep(is_neg), gt, c_neg)
            for test in (("8k", "tel") if "8k" in train else ("wide", "tel")):
                te = corpus == left_out
                head = np.zeros((te.sum(), len(EMOTIONS)))
                head[:, classes] = f7(x[test][te])
                c7 = cnn[test]["loco" if left_out == "turev" else "final"][te]
                fused = 0.5 * head + 0.5 * c7
                yy, k = y[te], arousal_known[te]
                m4 = np.isin(E[yy], TUREV_CLASSES)
                ar_head, neg_head = f_ar(x[test][te])[:, 1], f_neg(x[test][te])[:, 1]
                auc = lambda lab, s: round(float(roc_auc_score(lab, s)), 3)  # noqa: E731
                results[f"train={'+'.join(train)}|out={left_out}|test={test}"] = {
                    "fused_ua7": round(float(balanced_accuracy_score(yy, fused.argmax(1))), 3),
                    "fused_ua4": round(float(balanced_accuracy_score(
                        yy[m4], np.array(FOUR)[fused[m4][:, FOUR].argmax(1)])), 3),
                    "arousal_auc": {
                        "cnn_sum": auc(is_high[te][k], c7[k][:, HI].sum(1)),
                        "fused_sum": auc(is_high[te][k], fused[k][:, HI].sum(1)),
                        "head": auc(is_high[te][k], ar_head[k]),
                        "head+cnn": auc(is_high[te][k], 0.5 * ar_head[k] + 0.5 * c7[k][:, HI].sum(1)),
                        "C": c_ar},
                    "negative_auc": {
                        "cnn_sum": auc(is_neg[te], c7[:, NEG].sum(1)),
                        "fused_sum": auc(is_neg[te], fused[:, NEG].sum(1)),
                        "head": auc(is_neg[te], neg_head),
                        "head+cnn": auc(is_neg[te], 0.5 * neg_head + 0.5 * c7[:, NEG].sum(1)),
                        "C": c_neg},
                    "anger_auc_fused": auc((yy == EMOTIONS.index("angry")).astype(int),
                                           fused[:, EMOTIONS.index("angry")]),
                }
                print(json.dumps({k: results[k] for k in list(results)[-1:]}), flush=True)
    out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
