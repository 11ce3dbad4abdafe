"""Write the distillation teacher /tmp/enc30/teacher.json (format: training/distill.py).

The accurate model's encoder head (training/encoder_head.fit_head on the resemblyzer encoder's
last-LSTM-layer clip rows, speaker-standardised, 8 kHz + G.711 rows), fitted per LOCO run on
that run's training corpora only (``loco``: RAVDESS, TESS, EMOVO; ``loco-emovo``: RAVDESS,
TESS, TurEV-DB) and predicted out of fold by speaker group (the RAVDESS CV folds' test actors;
every other speaker on its own), so no clip's probabilities come from a head that heard its
speaker, and no run's teacher heard the run's left-out corpus.

Reads the encoder-feature cache /tmp/enc30/feats (meta-encoder.json, enc-8k.npy, enc-tel.npy)
written by ../2026-12-07-encoder/features.py (meta, enc-tel.npy) and
../2026-12-07-accurate/features8k.py (enc-8k.npy); run from the repo root:
PYTHONPATH=$PWD python models/runs/2026-12-07-distill/make_teacher.py
"""
import json, numpy as np
from pathlib import Path
from training.encoder_head import fit_head, standardize_by_speaker
from training.cv import FOLDS_PATH, load_folds
from ser_lib.labels import EMOTIONS
cache = Path("/tmp/enc30/feats")
meta = json.loads((cache / "meta-encoder.json").read_text())["clips"]
corpus = np.array([c[1] for c in meta]); speaker = np.array([c[2] for c in meta])
y = np.array([EMOTIONS.index(c[3]) for c in meta])
x8 = standardize_by_speaker(np.load(cache / "enc-8k.npy"), speaker)
xt = standardize_by_speaker(np.load(cache / "enc-tel.npy")[:, 1536:2048], speaker)
rav_folds = [[f"ravdess:{a}" for a in actors] for actors in load_folds(FOLDS_PATH)["ravdess"]["test"]]
runs = {"loco": ["ravdess", "tess", "emovo"], "loco-emovo": ["ravdess", "tess", "turev"]}
out = {}
for run, train_corpora in runs.items():
    use = np.isin(corpus, train_corpora)
    groups = rav_folds + [[s] for c in train_corpora if c != "ravdess" for s in sorted(set(speaker[corpus == c]))]
    probs = {}
    for g in groups:
        te = np.isin(speaker, g)
        tr = use & ~te
        h = fit_head(np.vstack([x8[tr], xt[tr]]), np.tile(y[tr], 2), np.tile(corpus[tr], 2))
        for k, pp in zip(np.flatnonzero(te), h.predict(x8[te])):
            probs[meta[k][0]] = [round(float(v), 5) for v in pp]
    pr = np.array([probs[meta[k][0]] for k in np.flatnonzero(use)])
    print(run, len(probs), "clips; OOF acc", round(float((pr.argmax(1) == y[use]).mean()), 3))
    out[run] = probs
Path("/tmp/enc30/teacher.json").write_text(json.dumps({"labels": EMOTIONS, "method": "encoder head of the accurate recipe (last LSTM layer, speaker-standardised, 8 kHz + G.711 clip rows, C=0.003, balanced weights), out of fold by speaker group (RAVDESS CV folds, each other speaker), trained only on the run's training corpora (never the run's left-out corpus)", "runs": out}))
