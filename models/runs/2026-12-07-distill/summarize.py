"""Per-seed and mean (min-max) LOCO table of the distilled CNN against the baseline CNN.

Reads the cv.json records copied here (cnn-distill-loco-seed<seed>.json; the class-mean
control teacher's cnn-control-loco-seed<seed>.json) and the baseline's
(../2026-12-07-encoder/cnn-loco-seed<seed>.json); prints Markdown. Run from the repo root:
python models/runs/2026-12-07-distill/summarize.py
"""
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BASE = HERE.parent / "2026-12-07-encoder"
COLS = [("TurEV-DB UA4", ("loco", "turev_4class", "ua")), ("TurEV arousal AUC", ("loco", "transfer", "arousal")),
        ("TurEV anger AUC", ("loco", "transfer", "anger")), ("EMOVO UA7", ("loco_emovo", "emovo_7class", "ua")),
        ("EMOVO UA4", ("loco_emovo", "emovo_4class", "ua")), ("EMOVO arousal AUC", ("loco_emovo", "transfer", "arousal")),
        ("EMOVO anger AUC", ("loco_emovo", "transfer", "anger"))]


def row(rec):
    out = []
    for _, (a, b, c) in COLS:
        out.append(rec[a][b][c])
    return out


def table(pattern, folder, name):
    files = sorted(folder.glob(pattern))
    rows = [(f.stem.rsplit("seed", 1)[1], row(json.loads(f.read_text()))) for f in files]
    lines = [f"| {name} seed | " + " | ".join(c for c, _ in COLS) + " |", "|---" * (len(COLS) + 1) + "|"]
    for seed, r in rows:
        lines.append(f"| {seed} | " + " | ".join(f"{v:.3f}" for v in r) + " |")
    if rows:
        a = np.array([r for _, r in rows])
        lines.append(f"| **mean (min-max), {len(rows)} seeds** | " + " | ".join(
            f"**{m:.3f}** ({lo:.3f}-{hi:.3f})" for m, lo, hi in zip(a.mean(0), a.min(0), a.max(0))) + " |")
    return "\n".join(lines), {s: r for s, r in rows}


def paired(name, b, d):
    common = sorted(set(b) & set(d))
    if not common:
        return ""
    diff = np.array([np.subtract(d[s], b[s]) for s in common])
    lines = [f"| {name}, seed | " + " | ".join(c for c, _ in COLS) + " |", "|---" * (len(COLS) + 1) + "|"]
    lines += [f"| {s} | " + " | ".join(f"{v:+.3f}" for v in r) + " |" for s, r in zip(common, diff)]
    lines.append(f"| **mean, {len(common)} seeds** | " + " | ".join(f"**{v:+.3f}**" for v in diff.mean(0)) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    base, b = table("cnn-loco-seed*.json", BASE, "baseline")
    dist, d = table("cnn-distill-loco-seed*.json", HERE, "distilled")
    ctrl, c = table("cnn-control-loco-seed*.json", HERE, "class-mean control")
    print(base + "\n\n" + dist + ("\n\n" + ctrl if c else ""))
    for name, x, y in (("distilled - baseline", b, d), ("control - baseline", b, c), ("distilled - control", c, d)):
        t = paired(name, x, y)
        if t:
            print("\n" + t)
