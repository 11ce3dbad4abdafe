"""Experiment (2026-11-23): per-speaker feature normalisation before the usual global one.

Ran against commit 31b148c (2026-11-23). The training code has changed since: training.train no longer has _normalise, _val_score and load_conf (configuration is training.config now), so this script does not run on today's code; to rerun it, `git worktree add /tmp/2026-11-23-speaker-norm 31b148c` and run it there.

Each partition's windows are standardised per speaker (mean and std of every frame
feature over all of that speaker's windows in the partition, augmented copies included;
the telephone test set on its own), then the cnn1d of conf/train.yaml is trained and
scored exactly as `ser train` does. In serving this would be per call channel.

Run from the repository root (window cache shared with `ser train`):

    python models/runs/2026-11-23-speaker-norm/speaker_norm.py spk      # mean and std
    python models/runs/2026-11-23-speaker-norm/speaker_norm.py spkmean  # mean only

Results (result-*.json, logs train-*.log; clip UA):

    variant                  val score  val RAVDESS  test RAVDESS  telephone RAVDESS
    none (compare run)       0.876      0.753        0.603         0.533
    spk (mean and std)       0.863      0.726        0.552         0.496
    spkmean (mean only)      0.848      0.696        0.560         0.505

No gain on validation (nor on test); not adopted.
"""
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from training.dataset import norm_stats  # noqa: E402 (after the path insert)
from training.evaluate import clip_speakers, evaluate_probs  # noqa: E402
from training.train import _normalise, _val_score, fit, load_conf, prepare  # noqa: E402


def main():
    mode = sys.argv[1]  # spk | spkmean
    conf = load_conf("conf/train.yaml")
    data = prepare(["../shared/corpora"], conf, progress=False)
    spk_of = {c.path: c.speaker for cl in data.parts.values() for c in cl}

    def spknorm(ws, tag):
        spk = clip_speakers(ws, spk_of)[ws.clip]
        for s in np.unique(spk):
            m = spk == s
            x = ws.x[m]
            mu = x.mean(axis=(0, 1), dtype=np.float64).astype(np.float32)
            if mode == "spk":
                sd = x.std(axis=(0, 1), dtype=np.float64).astype(np.float32) + 1e-3
                ws.x[m] = (x - mu) / sd
            else:
                ws.x[m] = x - mu
        print(tag, "speakers", len(np.unique(spk)), flush=True)

    for tag in ("train", "val", "test", "test_tel"):
        spknorm(getattr(data, tag), tag)
    mean, std = norm_stats(data.train.x)
    conf = {**conf, "_norm_mean": mean, "_norm_std": std}
    xtr = _normalise(data.train.x, mean, std, out=data.train.x)
    xval = _normalise(data.val.x, mean, std)
    model, hist, best, fit_s = fit("cnn1d", data, xtr, xval, conf, 40, progress=False)
    out = {"mode": mode, "best_epoch": best, "fit_s": fit_s}
    for tag in ("val", "test", "test_tel"):
        ws = getattr(data, tag)
        x = xval if tag == "val" else _normalise(ws.x, mean, std)
        res = evaluate_probs(ws, model.predict(x, batch_size=512, verbose=0))
        out[tag] = {k: round(v["clip"]["ua"], 4) for k, v in res.items()}
        out[tag + "_score"] = round(_val_score(res), 4)
    print(json.dumps(out))
    Path(__file__).with_name(f"result-{mode}.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
