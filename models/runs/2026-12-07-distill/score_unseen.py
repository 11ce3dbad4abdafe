"""Score EMOVO (never trained on in the shipping configuration: conf/train.yaml corpora) with
each LOCO model of the given recipe output folders (their ``cv/loco``, trained without TurEV-DB
and without EMOVO), as ``ser evaluate`` scores an unseen corpus (training.cv.unseen_record).

Usage: python models/runs/2026-12-07-distill/score_unseen.py OUT_JSON RECIPE_OUT [RECIPE_OUT ...]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ser_lib.features import FeatureConfig
from ser_lib.runtime import Predictor
from ser_lib.speech import SpeechConfig
from training.corpora import discover
from training.cv import CACHE_DIR, build_windows, score_run, unseen_record


def main(out_json: str, dirs: list[str]) -> None:
    fcfg, scfg = FeatureConfig(), SpeechConfig()
    clips = [c for c in discover(["/work/shared/corpora"]).clips if c.corpus == "emovo"]
    res = {}
    for d in dirs:
        rec = json.loads((Path(d) / "cv.json").read_text())
        ws = build_windows(clips, fcfg, scfg, float(rec["conf"]["hop_s"]), desc="emovo", cache_dir=CACHE_DIR,
                           processes=1, progress=False)
        r = unseen_record("emovo", score_run(Predictor.from_path(Path(d) / "cv" / "loco", expected=fcfg), ws, None))
        res[d] = {"turev_4class_ua": rec["loco"]["turev_4class"]["ua"], "turev_transfer": rec["loco"].get("transfer"),
                  "emovo": r, "distill": rec["conf"]["train"].get("distill_teacher"), "seed": rec["conf"]["seed"]}
        print(d, round(res[d]["turev_4class_ua"], 3), "emovo ua7", round(r["emovo_7class"]["ua"], 3),
              "ua4", round(r["emovo_4class"]["ua"], 3), "arousal", round(r["transfer"]["arousal"], 3), flush=True)
    Path(out_json).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
