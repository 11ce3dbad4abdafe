"""Experiment (2026-11-23): RAVDESS held-out UA against the number of RAVDESS training actors.

Ran against commit 332eee4 (2026-11-23). The training code has changed since: training.train no longer has _normalise, _val_score and load_conf (configuration is training.config now), so this script does not run on today's code; to rerun it, `git worktree add /tmp/2026-11-23-learning-curve 332eee4` and run it there.

The question: is the missed UA target (0.70) a matter of how many speakers the model
learns from? The cnn1d of conf/train.yaml is trained exactly as `ser train` does, on
the published split, but with only the first k RAVDESS training actors (k/2 male,
k/2 female, in actor order; TESS training clips all kept), then scored on the unchanged
validation and test partitions.

Run from the repository root (window cache shared with `ser train`):

    python models/runs/2026-11-23-learning-curve/learning_curve.py 4 8 12

Results: result-k<k>.json (one per k), train.log (the three runs in order); summary in README
("The model").
"""
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from training.dataset import norm_stats  # noqa: E402 (after the path insert)
from training.evaluate import clip_speakers, evaluate_probs  # noqa: E402
from training.train import _normalise, _val_score, fit, load_conf, prepare  # noqa: E402


def actors(speakers, k: int) -> list[str]:
    """The first k/2 male (odd) and k/2 female (even) RAVDESS actors, in actor order."""
    male = sorted(s for s in speakers if int(s.split(":")[-1]) % 2 == 1)
    female = sorted(s for s in speakers if int(s.split(":")[-1]) % 2 == 0)
    return male[:k // 2] + female[:k - k // 2]


def main(ks: list[int]) -> None:
    conf = load_conf("conf/train.yaml")
    full = prepare(["../shared/corpora"], conf, progress=False)
    spk_of = {c.path: c.speaker for cl in full.parts.values() for c in cl}
    clip_spk = clip_speakers(full.train, spk_of)
    rav = sorted({s for s, c in zip(clip_spk, full.train.clip_corpus) if c == "ravdess"})
    print("RAVDESS training actors:", rav, flush=True)
    for k in ks:
        chosen = actors(rav, k)
        keep = np.array([c != "ravdess" or s in chosen for s, c in zip(clip_spk, full.train.clip_corpus)])
        data = dataclasses.replace(full, train=full.train.subset_clips(keep))
        mean, std = norm_stats(data.train.x)
        c = {**conf, "_norm_mean": mean, "_norm_std": std}
        xtr = _normalise(data.train.x, mean, std)
        xval = _normalise(data.val.x, mean, std)
        model, _, best, fit_s = fit("cnn1d", data, xtr, xval, c, int(conf["train"]["epochs"]), progress=False)
        out = {"k": k, "actors": chosen, "train_windows": len(data.train), "best_epoch": best,
               "fit_s": round(fit_s, 1)}
        for tag, ws in (("val", data.val), ("test", data.test), ("test_telephone", data.test_tel)):
            x = xval if tag == "val" else _normalise(ws.x, mean, std)
            res = evaluate_probs(ws, model.predict(x, batch_size=512, verbose=0))
            out[tag] = {name: round(r["clip"]["ua"], 4) for name, r in res.items()}
            out[tag + "_score"] = round(_val_score(res), 4)
        print(json.dumps(out), flush=True)
        Path(__file__).with_name(f"result-k{k}.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [4, 8, 12])
