"""Assemble a seed ensemble from recipe outputs that were trained one seed at a time.

    python models/runs/2026-12-03-seed-ensemble/assemble.py OUT MEMBER_DIR [MEMBER_DIR ...]

Each MEMBER_DIR is the output of `ser train ../shared/corpora --conf <conf/train.yaml with
seed S> --out MEMBER_DIR` (the seed is read from its cv.json). They are linked as
OUT/members/seed-<S>/ and combined by training.cv.assemble_ensemble, exactly the last step
of `ser train` with `ensemble_seeds: [S1, S2, ...]`; so the result is what that command
writes, without training the members again. The ensemble's recorded configuration is
member 0's with `ensemble_seeds` set (the shipped 2-seed ensemble was assembled with
conf/train.yaml's, the same recipe).
"""
import json
import sys
from pathlib import Path

from training.corpora import default_corpora_root
from training.cv import MEMBERS_DIR, assemble_ensemble


def main(out: str, members: list[str]) -> None:
    out = Path(out)
    seeds = []
    for m in members:
        m = Path(m).resolve()
        seed = int(json.loads((m / "cv.json").read_text())["conf"]["seed"])
        link = out / MEMBERS_DIR / f"seed-{seed}"
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():
            link.unlink()
        link.symlink_to(m)
        seeds.append(seed)
    # member 0's recorded configuration (its recipe: e.g. var_pool), as an ensemble of these seeds
    conf = json.loads((Path(members[0]).resolve() / "cv.json").read_text())["conf"]
    conf["ensemble_seeds"] = seeds
    rec = assemble_ensemble([str(default_corpora_root())], conf, out)
    t = rec["cv"]["table"]
    print(json.dumps({"seeds": seeds, "mean": t["mean"], "std": t.get("std"),
                      "pooled_ece": rec["cv"]["calibration_pooled"]["ece"],
                      "loco": {k: rec.get("loco", {}).get("turev_4class", {}).get(k) for k in ("ua", "wa", "macro_f1")}},
                     indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
