import importlib.util, json, warnings, numpy as np
from pathlib import Path
from sklearn.metrics import balanced_accuracy_score
from training.encoder_head import fit_head, standardize_by_speaker
from training.cv import FOLDS_PATH, load_folds
from ser_lib.labels import EMOTIONS
from ser_lib.encoder_head import fuse
warnings.filterwarnings("ignore")
spec = importlib.util.spec_from_file_location("probe", "models/runs/2026-12-07-encoder/probe.py")
probe = importlib.util.module_from_spec(spec); spec.loader.exec_module(probe)
cache = Path("/tmp/enc30/feats")
corpus, speaker, y, _f, cnn = probe.load(cache)
lv = np.load(cache / "levels.npy")
raw8, rawt = np.load(cache / "enc-8k.npy"), np.load(cache / "enc-tel.npy")[:, 1536:2048]
folds_p = np.load(cache / "cnn-folds-wide.npy")
def run(cols):
    L = lv[:, cols] if cols else np.zeros((len(y), 0))
    x8 = standardize_by_speaker(np.hstack([raw8, L]), speaker); xt = standardize_by_speaker(np.hstack([rawt, L]), speaker)
    res = {}
    for p, tc, cp in (("turev", probe.PROTOCOLS["turev"], cnn["wide"]["loco"]), ("emovo", probe.PROTOCOLS["emovo"], cnn["wide"]["final"])):
        tr, te = np.isin(corpus, tc), corpus == p
        h = fit_head(np.vstack([x8[tr], xt[tr]]), np.tile(y[tr], 2), np.tile(corpus[tr], 2))
        ph = h.predict(x8[te])
        res[p] = probe.score(fuse(cp[te], ph, 0.5, "log", 1.0), y[te]); res[p + "_head"] = probe.score(ph, y[te])
    ua = []
    for actors in load_folds(FOLDS_PATH)["ravdess"]["test"]:
        te = np.isin(speaker, [f"ravdess:{a}" for a in actors])
        h = fit_head(np.vstack([x8[~te], xt[~te]]), np.tile(y[~te], 2), np.tile(corpus[~te], 2))
        ua.append(balanced_accuracy_score(y[te], fuse(folds_p[te], h.predict(x8[te]), 0.5, "log", 1.0).argmax(1)))
    return res, float(np.mean(ua))
for name, cols in (("no level", []), ("active level", [0]), ("3 level stats", [0, 1, 2])):
    r, cv = run(cols)
    print(f"{name:14s} fused: turev ua4 {r['turev']['ua4']:.3f} ar {r['turev']['arousal_auc']:.3f} anger {r['turev']['anger_auc']:.3f} | emovo ua7 {r['emovo']['ua7']:.3f} ua4 {r['emovo']['ua4']:.3f} ar {r['emovo']['arousal_auc']:.3f} anger {r['emovo']['anger_auc']:.3f} | CV {cv:.3f} || head: turev ar {r['turev_head']['arousal_auc']:.3f} emovo ar {r['emovo_head']['arousal_auc']:.3f}", flush=True)

print("--- arousal = LR on [logit fused high-arousal prob, speaker-standardised level]")
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
hi = [EMOTIONS.index(e) for e in ("angry", "happy", "fear", "surprise")]; lo = [EMOTIONS.index(e) for e in ("neutral", "sad")]
x8 = standardize_by_speaker(raw8, speaker); xt = standardize_by_speaker(rawt, speaker)
zl = standardize_by_speaker(lv[:, :1], speaker)[:, 0]
def fused_probs(tr_mask, te_mask, cnn_p):
    h = fit_head(np.vstack([x8[tr_mask], xt[tr_mask]]), np.tile(y[tr_mask], 2), np.tile(corpus[tr_mask], 2))
    return fuse(cnn_p[te_mask], h.predict(x8[te_mask]), 0.5, "log", 1.0)
for p, tc, cp in (("turev", probe.PROTOCOLS["turev"], cnn["wide"]["loco"]), ("emovo", probe.PROTOCOLS["emovo"], cnn["wide"]["final"])):
    te = corpus == p
    # out-of-fold fused probabilities on the training corpora (by corpus) to fit the combiner
    tr_idx = np.isin(corpus, tc)
    oof = np.zeros((len(y), 7))
    for c in tc:
        m = corpus == c
        inner = np.isin(corpus, [k for k in tc if k != c])
        cp_c = cnn["wide"]["final"] if c != "turev" else cnn["wide"]["loco"]
        oof[m] = fused_probs(inner, m, cp_c)
    def feats(pp, mask):
        s = np.clip(pp[:, hi].sum(1), 1e-6, 1 - 1e-6)
        return np.column_stack([np.log(s / (1 - s)), zl[mask]])
    trm = tr_idx & np.isin(y, hi + lo)
    lr = LogisticRegression(C=1.0).fit(feats(oof[trm], trm), np.isin(y[trm], hi))
    pt = fused_probs(tr_idx, te, cp)
    tm = np.isin(y[te], hi + lo)
    t = np.isin(y[te][tm], hi)
    base = roc_auc_score(t, pt[tm][:, hi].sum(1))
    comb = roc_auc_score(t, lr.decision_function(feats(pt, te)[tm]))
    print(p, "arousal AUC: prob sum", round(base, 3), "with level", round(comb, 3), "coef", lr.coef_.round(2), "level alone", round(roc_auc_score(t, zl[te][tm]), 3))
