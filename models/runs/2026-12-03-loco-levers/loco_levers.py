"""Experiment (2026-12-03): per-speaker feature normalisation, judged on TurEV-DB LOCO.

The 2026-11-23 run (../2026-11-23-speaker-norm) judged it within RAVDESS only, where it
hurt. The field's main cross-corpus lever is speaker normalisation (Schuller et al. 2010,
"Cross-corpus acoustic emotion recognition: variances and strategies", IEEE TAC): this
checks it on the held-out corpus, exactly the LOCO run of the recipe otherwise.

Each speaker's level-normalised windows (all variants) are standardised by that
speaker's clean-window statistics, per feature; then the usual global standardisation.
TurEV-DB test windows use their own speaker's statistics (transductive, as a call channel
would be normalised over the call).

    python models/runs/2026-12-03-loco-levers/loco_levers.py <conf> <mode: spk|spkmean|spkf0|nof0abs|short|none> <out.json>

(run from the repository root; modes: see README.md)
"""
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]  # the repository root (its window cache, ../shared)
sys.path.insert(0, str(ROOT))
from ser_lib.features import FeatureConfig, level_normalize  # noqa: E402
from ser_lib.speech import SpeechConfig  # noqa: E402
from training.config import load_conf  # noqa: E402
from training.corpora import discover  # noqa: E402
from training.cv import TUREV_CLASSES, _partition, _select, extract, load_folds, subset_scores  # noqa: E402
from training.dataset import norm_stats  # noqa: E402
from training.fit import fit  # noqa: E402


def _short(task):
    """A RAVDESS clip cut to one short word-like span (0.3-0.9 s of its speech, with
    0.05-0.2 s of its own lead-in), as TurEV-DB's single words are; then the job's windows."""
    from training.dataset import clip_samples, speech_windows
    from training.augment import clip_seed, seed_key
    path, fd, sd, hop = task
    fcfg, scfg = FeatureConfig.from_dict(fd), SpeechConfig(**sd)
    y = clip_samples(path, fcfg.sample_rate)
    rng = np.random.default_rng(clip_seed(seed_key(path) + "#short", 1))
    hop_n = fcfg.sample_rate // 100
    n = len(y) // hop_n
    db = 10 * np.log10(np.mean(y[:n * hop_n].reshape(n, hop_n) ** 2, axis=1) + 1e-12)
    act = np.flatnonzero(db > db.max() - 30)
    length = int(rng.uniform(0.3, 0.9) * fcfg.sample_rate)
    lo, hi = act[0] * hop_n, max(act[0] * hop_n + 1, act[-1] * hop_n - length)
    s0 = int(rng.integers(lo, hi + 1))
    lead = int(rng.uniform(0.05, 0.2) * fcfg.sample_rate)
    return speech_windows(y[max(0, s0 - lead):s0 + length], fcfg, scfg, 0.5)[0]


def short_windows(clips, fcfg, scfg):
    import multiprocessing as mp
    from training.dataset import WindowSet
    from ser_lib.labels import label_index
    tasks = [(c.path, fcfg.to_dict(), vars(scfg), 0.5) for c in clips]
    with mp.get_context("spawn").Pool(2) as p:
        xs = p.map(_short, tasks, chunksize=16)
    k = np.array([len(x) for x in xs])
    lab = np.array([label_index(c.emotion) for c in clips])
    return WindowSet(np.concatenate(xs), np.repeat(lab, k), np.repeat(np.arange(len(clips)), k),
                     np.zeros(k.sum(), np.int64), np.array([c.path + "#short" for c in clips]), lab,
                     np.array([c.corpus for c in clips]), np.zeros(len(clips), bool), k)


def main():
    conf_path, mode, out = sys.argv[1], sys.argv[2], sys.argv[3]
    conf = load_conf(conf_path)
    fcfg, scfg = FeatureConfig(), SpeechConfig()
    pool = extract([str(ROOT.parent / "shared/corpora")], conf, fcfg, scfg, progress=False)
    folds = load_folds()
    paths = _partition(pool.clips, folds, "loco")
    spk_of = {c.path: c.speaker for c in pool.clips}
    if mode == "short":  # one short-word copy of every RAVDESS training clip
        from training.dataset import WindowSet
        rav = [c for c in pool.clips if c.corpus == "ravdess" and c.path in paths["train"]]
        sw = short_windows(rav, fcfg, scfg)
        print("short windows", len(sw), "from", len(rav), "clips", flush=True)
        pool.train = WindowSet.concat([pool.train, sw])
        pool.level = np.concatenate([pool.level, level_normalize(sw.x, fcfg)])
    src = pool.source_paths(pool.train)
    win_spk = np.array([spk_of[s] for s in src])[pool.train.clip]
    clean = (np.char.find(pool.train.clip_id.astype(str), "#") < 0)[pool.train.clip]
    x = pool.level
    f0col = fcfg.feature_names().index("f0_st")
    if mode == "nof0abs":  # no absolute F0 register at all (a speaker / gender cue)
        x[:, :, f0col] = 0.0
    elif mode == "spkf0":  # the F0 register relative to the speaker's clean-window mean only
        for s in np.unique(win_spk):
            m = win_spk == s
            x[m, :, f0col] -= np.float32(x[m & clean][:, :, f0col].mean(dtype=np.float64))
    elif mode != "none":
        for s in np.unique(win_spk):
            m = win_spk == s
            ref = x[m & clean]
            mu = ref.mean(axis=(0, 1), dtype=np.float64).astype(np.float32)
            if mode == "spk":
                sd = ref.std(axis=(0, 1), dtype=np.float64).astype(np.float32) + 1e-3
                x[m] = (x[m] - mu) / sd
            else:
                x[m] = x[m] - mu
    tr = _select(pool.train, src, paths["train"], clean_only=False)
    va = _select(pool.train, src, paths["val"], clean_only=True)
    te = _select(pool.train, src, paths["test"], clean_only=True)
    w = tr[pool.train.clip]
    mean, std = norm_stats(x[w])
    xtr = (x[w] - mean) / std
    val_ws = pool.train.subset_clips(va)
    xval = (x[va[pool.train.clip]] - mean) / std
    test_ws = pool.train.subset_clips(te)
    xte = (x[te[pool.train.clip]] - mean) / std
    train_ws = pool.train.subset_clips(tr)
    print(f"train {len(train_ws)} val {len(val_ws)} test {len(test_ws)}", flush=True)
    model, hist, best, fit_s = fit(conf["model"], train_ws, val_ws, xtr, xval, conf, int(conf["train"]["epochs"]),
                                   progress=False)
    probs = model.predict(xte, batch_size=512, verbose=0)
    res = subset_scores(test_ws, probs, TUREV_CLASSES)
    rec = {"mode": mode, "conf": conf_path, "fit_s": round(fit_s, 1), "turev_4class": res,
           "val_score_last": hist["val_score"][-1] if hist["val_score"] else None}
    Path(out).write_text(json.dumps(rec, indent=1, default=float))
    print(mode, "LOCO UA", res["ua"], "recall", res["recall"], flush=True)


if __name__ == "__main__":
    main()
