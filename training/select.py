"""Model selection and promotion of a single-split run (``ser train --split``).

Families trained on the same windows are compared on the validation partition only
(:func:`choose`: a costlier family must beat the cheapest by ``select.min_gain_for_costlier``);
the chosen artifact replaces the shipped one only when its validation score is at least
as good on the same split (:func:`promote`), else it is left under ``.cache/rejected/``.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Sequence

from .dataset import CACHE_DIR


def comparison_table(runs: Sequence[dict]) -> str:
    """Markdown table of the families trained on the same windows."""
    def ua(res: dict, corpus: str, level: str = "clip") -> str:
        s = res.get(corpus, {}).get(level)
        return f"{s['ua']:.3f}" if s else "-"

    lines = ["| model | params | MFLOPs/window | windows/s (1 core) | val score | best epoch | fit s "
             "| test RAVDESS clip UA | test RAVDESS window UA | test pooled clip UA "
             "| telephone RAVDESS clip UA | telephone pooled clip UA |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        wps = r["windows_per_s_1core"]
        lines.append(
            f"| {r['family']} | {r['model_stats']['params']:,} | {r['model_stats']['flops'] / 1e6:.2f} "
            f"| {wps:.0f} | " if wps else f"| {r['family']} | {r['model_stats']['params']:,} "
            f"| {r['model_stats']['flops'] / 1e6:.2f} | - | ")
        lines[-1] += (f"{r['val_score']:.3f} | {r['best_epoch']} | {r['fit_s']:.0f} "
                      f"| {ua(r['test'], 'ravdess')} | {ua(r['test'], 'ravdess', 'window')} "
                      f"| {ua(r['test'], 'pooled')} | {ua(r['test_telephone'], 'ravdess')} "
                      f"| {ua(r['test_telephone'], 'pooled')} |")
    return "\n".join(lines)


def choose(runs: Sequence[dict], min_gain: float) -> dict:
    """Best validation score; a costlier (more FLOPs) model must beat the cheapest by ``min_gain``."""
    cheapest = min(runs, key=lambda r: r["model_stats"]["flops"])
    best = max(runs, key=lambda r: r["val_score"])
    return best if best is cheapest or best["val_score"] >= cheapest["val_score"] + min_gain else cheapest


def existing_score(out: Path, split_sha: str) -> float | None:
    try:
        meta = json.loads((out / "artifact.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("training", {}).get("split_sha256") != split_sha:
        return None  # not comparable: another split
    return meta.get("metrics", {}).get("selection", {}).get("val_score")


def promote(stage: Path, out: Path, val_score: float, split_sha: str, force: bool = False, echo=print) -> Path:
    """Copy the files of the artifact in ``stage`` to ``out`` unless ``out`` holds an artifact
    of the same split with a better validation score (then to ``.cache/rejected/<out name>``;
    ``force`` replaces it anyway). Returns the folder written."""
    old = existing_score(out, split_sha)
    if old is not None and not force and val_score < old:
        dest = CACHE_DIR.parent / "rejected" / out.name  # gitignored, never shipped by accident
        echo(f"existing artifact {out} has a better validation score ({old:.4f} > {val_score:.4f}); "
             f"kept it, new model written to {dest} (use --force to replace)")
    else:
        dest = out
    dest.mkdir(parents=True, exist_ok=True)
    for f in stage.iterdir():
        if f.is_file():
            shutil.copy2(f, dest / f.name)
    return dest
