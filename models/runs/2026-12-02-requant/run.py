"""Experiment: wider gain augmentation + 16-bit requantisation of the augmented copies.

    python models/runs/2026-12-02-requant/run.py [--folds 0,1] [--out .cache/exp-requant]

Trains CV folds with conf/train.yaml's recipe but ``augment.gain_db: [-45, 6]``,
``p_gain: 0.6`` and ``p_requantize: 1.0`` (every augmented copy rounded to 16-bit PCM after
the gain), then measures each fold model's clip UA (wideband, telephone) and the 16-bit /
24-bit gain invariance of bench.robustness on calls of that fold's test actors, next to the
shipped fold model (models/ser-cnn/cv/fold-<i>).
"""
import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from bench.robustness import build_call, gain_invariance  # noqa: E402
from ser_lib.config import JobConfig  # noqa: E402
from ser_lib.features import FeatureConfig  # noqa: E402
from ser_lib.runtime import Predictor  # noqa: E402
from ser_lib.speech import SpeechConfig  # noqa: E402
from training.corpora import default_corpora_root  # noqa: E402
from training.cv import FOLDS_PATH, assign, extract, load_folds, train_run  # noqa: E402
from training.config import load_conf  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--folds", default="0,1")
    ap.add_argument("--out", default=str(REPO / ".cache" / "exp-requant"))
    args = ap.parse_args()
    conf = load_conf(None)
    conf["augment"].update({"gain_db": [-45, 6], "p_gain": 0.6, "p_requantize": 1.0})
    fcfg, scfg = FeatureConfig(), SpeechConfig()
    folds = load_folds(FOLDS_PATH)
    pool = extract([str(default_corpora_root())], conf, fcfg, scfg, processes=2)
    results = {"conf_augment": conf["augment"], "folds": {}}
    cfg = JobConfig.load(None)
    for i in map(int, args.folds.split(",")):
        rec = train_run(i, pool, folds, conf, fcfg, scfg, Path(args.out) / f"fold-{i}", progress=False)
        rng = random.Random(20261202 + i)
        test = [c for c in pool.clips if c.corpus == "ravdess" and assign(c, folds, i) == "test"]
        calls = [build_call([c for c in test if c.speaker == a], rng) for a in sorted({c.speaker for c in test})[:2]]
        row = {}
        for name, d in (("shipped", REPO / "models" / "ser-cnn" / "cv" / f"fold-{i}"), ("requant", Path(args.out) / f"fold-{i}")):
            pred = Predictor.from_path(d, expected=fcfg)
            with tempfile.TemporaryDirectory() as tmp:
                inv = {st: gain_invariance([(y, pred) for y in calls], cfg, Path(tmp), subtype=st) for st in ("PCM_16", "PCM_24")}
            row[name] = {"gain": inv}
        row["requant"]["scores"] = {k: rec["scores"][k] for k in ("summary",) if k in rec["scores"]} or rec["scores"].get("test", {}).get("ravdess", {}).get("clip", {})
        row["requant"]["line"] = {"ua": rec["scores"]["test"]["ravdess"]["clip"]["ua"],
                                  "telephone_ua": rec["scores"]["test_telephone"]["ravdess"]["clip"]["ua"]}
        results["folds"][i] = row
        print(json.dumps({i: {n: {"ua": r.get("line"), "pcm16": {g: round(v["either_changed"], 3) for g, v in r["gain"]["PCM_16"].items()},
                                  "pcm24": {g: round(v["either_changed"], 3) for g, v in r["gain"]["PCM_24"].items()}}
                              for n, r in row.items()}}, indent=1), flush=True)
    (Path(__file__).parent / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
