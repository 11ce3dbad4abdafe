"""Experiment (2026-11-23): retrain on the training + validation speakers.

Ran against commit fe25238 (2026-11-23). The training code has changed since: training.train no longer has _normalise, _val_score and load_conf (configuration is training.config now), so this script does not run on today's code; to rerun it, `git worktree add /tmp/2026-11-23-train-plus-val fe25238` and run it there.

The question: does the obvious last step, retraining on all 14 non-test RAVDESS actors
(12 training + 2 validation) after the configuration has been selected, reach the UA
target (0.70)? The learning curve (../2026-11-23-learning-curve/) fits ~0.61 for 14 actors.

The cnn1d of conf/train.yaml is trained exactly as `ser train` does on the published
split, except that the validation clips join the training clips with the same
augmentation (clean + conf's copies), and the normalisation statistics come from that
union. The validation partition then no longer measures anything unseen, so its score is
not meaningful; `fit` still picks the epoch on it (it reached 0.99-1.00 from epoch 23 on
and picked epoch 33 of 40, where the cosine learning rate is down to 8 % of its peak;
the shipped run's selected epoch was 40/40), and early stopping is switched off. The model is scored on the unchanged test and
telephone-test actors.

Run from the repository root (window cache shared with `ser train`):

    python models/runs/2026-11-23-train-plus-val/train_plus_val.py

Results: result.json and train.log beside this file; summary in README ("The model").
"""
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from ser_lib.features import FeatureConfig  # noqa: E402 (after the path insert)
from ser_lib.speech import SpeechConfig  # noqa: E402
from training.augment import AugmentConfig  # noqa: E402
from training.dataset import CACHE_DIR, WindowSet, build_windows, norm_stats  # noqa: E402
from training.evaluate import evaluate_probs  # noqa: E402
from training.train import _normalise, _val_score, fit, load_conf, prepare  # noqa: E402


def main() -> None:
    conf = load_conf("conf/train.yaml")
    data = prepare(["../shared/corpora"], conf, progress=False)
    aug_conf = dict(conf["augment"])
    copies = int(aug_conf.pop("copies", 0))
    val_aug = build_windows(data.parts["val"], FeatureConfig(), SpeechConfig(), float(conf["hop_s"]),
                            ["clean"] + [f"aug{k}" for k in range(copies)], AugmentConfig.from_dict(aug_conf),
                            int(conf["seed"]), desc="val as training", cache_dir=CACHE_DIR, progress=False)
    train = WindowSet.concat([data.train, val_aug])
    print(f"train + val: {len(train)} windows from {train.n_clips} clips", flush=True)
    data = dataclasses.replace(data, train=train)
    mean, std = norm_stats(train.x)
    c = {**conf, "_norm_mean": mean, "_norm_std": std,
         "train": {**conf["train"], "patience": 10 ** 6}}
    xtr = _normalise(train.x, mean, std)
    xval = _normalise(data.val.x, mean, std)
    epochs = int(conf["train"]["epochs"])
    model, history, best, fit_s = fit("cnn1d", data, xtr, xval, c, epochs, progress=False)
    out = {"train_windows": len(train), "epochs": epochs, "selected_epoch_on_seen_val": best, "fit_s": round(fit_s, 1)}
    for tag, ws in (("test", data.test), ("test_telephone", data.test_tel)):
        res = evaluate_probs(ws, model.predict(_normalise(ws.x, mean, std), batch_size=512, verbose=0))
        out[tag] = {name: round(r["clip"]["ua"], 4) for name, r in res.items()}
        out[tag + "_score"] = round(_val_score(res), 4)
    print(json.dumps(out), flush=True)
    Path(__file__).with_name("result.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
