"""The shipped default CNN before and after distillation, side by side, from the two recipe
records (``cv.json`` of ``ser train``; the unseen corpus and transfer AUCs as ``ser evaluate
--write`` stores them).

Usage: python models/runs/2026-12-07-distilled-default/compare.py BEFORE_CV_JSON AFTER_CV_JSON [OUT_JSON]
"""
from __future__ import annotations

import json
import sys


def numbers(rec: dict) -> dict:
    """The card's headline numbers of one ``cv.json``: ``{name: float or None}``."""
    mean, pooled = rec["cv"]["table"]["mean"], rec["cv"]["table"]["pooled"]
    loco = rec.get("loco", {})
    em = rec.get("unseen", {}).get("emovo", {})
    out = {
        "RAVDESS CV clip UA7": mean["ua"], "RAVDESS CV telephone UA7": mean["telephone_ua"],
        "RAVDESS CV macro-F1": mean["macro_f1"], "RAVDESS CV window ECE (pooled)": pooled["ece"],
        "TurEV-DB LOCO UA4": loco.get("turev_4class", {}).get("ua"),
        "TurEV-DB LOCO window ECE": loco.get("scores", {}).get("ece"),
        "EMOVO unseen UA7": em.get("emovo_7class", {}).get("ua"),
        "EMOVO unseen UA4": em.get("emovo_4class", {}).get("ua"),
    }
    for name, tr in (("TurEV-DB LOCO", loco.get("transfer", {})), ("EMOVO unseen", em.get("transfer", {}))):
        for k in ("arousal", "anger", "negative"):
            out[f"{name} {k} AUC"] = tr.get(k)
    cv_tr = [r.get("scores", {}).get("transfer", {}).get("ravdess", {}) for r in rec["cv"].get("runs", [])]
    for k in ("arousal", "anger", "negative"):
        vals = [t[k] for t in cv_tr if t.get(k) is not None]
        out[f"RAVDESS CV {k} AUC (fold mean)"] = sum(vals) / len(vals) if vals else None
    out["temperature"] = rec["final"]["temperature"]
    return out


def main(before: str, after: str, out: str | None = None) -> None:
    a, b = numbers(json.load(open(before))), numbers(json.load(open(after)))
    print(f"| {'':40s} | before | after | change |\n|---|---|---|---|")
    for k in a:
        x, y = a[k], b[k]
        fmt = lambda v: "-" if v is None else f"{v:.3f}"
        d = "-" if x is None or y is None else f"{y - x:+.3f}"
        print(f"| {k:40s} | {fmt(x)} | {fmt(y)} | {d} |")
    if out:
        with open(out, "w") as f:
            json.dump({"before": a, "after": b}, f, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
