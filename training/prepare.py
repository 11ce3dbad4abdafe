"""Steps 1-3 of a training run: discover the corpora, partition them with the split, extract windows.

:func:`prepare` gives everything one single-split run needs (:class:`Data`); the
cross-validated recipe (:mod:`training.cv`) and ``ser evaluate`` use :func:`partitions` and
:func:`test_windows` to cut their test sets exactly as the single split does.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ser_lib.features import FeatureConfig
from ser_lib.speech import SpeechConfig

from .config import augmentation, training_clips
from .corpora import Clip, discover, summarize
from .dataset import CACHE_DIR, WindowSet, build_windows
from .split import SPLIT_PATH, check_disjoint, load_split, partition


def split_sha256(path: Path) -> str:
    """sha256 (hex) of a split file: which split a model was trained with."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Data:
    """Everything extracted for one training run."""

    parts: dict[str, list[Clip]]
    train: WindowSet
    val: WindowSet
    test: WindowSet
    test_tel: WindowSet
    fcfg: FeatureConfig
    scfg: SpeechConfig
    provenance: dict


def prepare(roots: Sequence[str | os.PathLike], conf: dict, *, processes: int = 2, cache: bool = True,
            progress: bool = True, echo=print) -> Data:
    """Discover, split and extract the windows of a run (steps 1-3 of the module docstring).

    Raises:
        ValueError: no clips found, a clip outside the split, a partition without
            clips, or a split that is not speaker-disjoint.
    """
    parts, found = partitions(roots, conf, echo)
    split_path = Path(conf["split"]) if conf.get("split") else SPLIT_PATH
    fcfg, scfg = FeatureConfig(), SpeechConfig()
    seed, hop = int(conf["seed"]), float(conf["hop_s"])
    copies, aug = augmentation(conf)
    kw = dict(cache_dir=CACHE_DIR if cache else None, processes=processes, progress=progress)
    t0 = time.time()
    train = build_windows(parts["train"], fcfg, scfg, hop, ["clean"] + [f"aug{k}" for k in range(copies)],
                          aug, seed, desc="train", **kw)
    val = build_windows(parts["val"], fcfg, scfg, hop, desc="val", **kw)
    test, tel = test_windows(parts["test"], conf, fcfg, scfg, **kw)
    extract_s = time.time() - t0
    for name, ws in (("train", train), ("val", val), ("test", test), ("test_telephone", tel)):
        echo(f"{name}: {len(ws)} speech windows from {ws.n_clips} clips "
             f"({ws.n_fallback} clips without a speech window kept their loudest)")

    summ = summarize([c for cl in parts.values() for c in cl]).reset_index().to_dict(orient="records")
    provenance = {
        "corpora_roots": [str(Path(r).resolve()) for r in roots],
        "corpora": {r["corpus"]: {k: int(v) for k, v in r.items() if k != "corpus"} for r in summ},
        "skipped_files": found.skipped,
        "split_file": str(split_path), "split_sha256": split_sha256(split_path),
        "partitions": {p: {c: sum(1 for x in cl if x.corpus == c) for c in sorted({x.corpus for x in cl})}
                       for p, cl in parts.items()},
        "windows": {n: {"windows": len(w), "clips": w.n_clips, "fallback_clips": w.n_fallback}
                    for n, w in (("train", train), ("val", val), ("test", test), ("test_telephone", tel))},
        "hop_s": hop, "augment": {"copies": copies, **aug.to_dict()},
        "all_silent_clip_rule": "a clip with no speech window keeps its single loudest window (max mean rms_db)",
        "feature_extraction_s": round(extract_s, 1),
    }
    return Data(parts, train, val, test, tel, fcfg, scfg, provenance)


def partitions(roots: Sequence[str | os.PathLike], conf: dict, echo=print):
    """Discover the corpora under ``roots`` and partition them with the configured split
    (steps 1-2), printing what was found.

    Returns:
        ``(partition name -> clips, the discovery's LoadResult)``.

    Raises:
        ValueError: as :func:`prepare`.
    """
    found = discover(roots)
    if not found.clips:
        raise ValueError(f"no corpus clips found under {', '.join(map(str, roots))}")
    echo("corpora found: " + ", ".join(sorted({c.corpus for c in found.clips})))
    kept = training_clips(found.clips, conf, echo)
    table = summarize(kept)
    echo("clips per label:\n" + table.to_string())
    if found.skipped:
        echo("skipped files: " + ", ".join(f"{k} {v}" for k, v in found.skipped.items()))

    split_path = Path(conf["split"]) if conf.get("split") else SPLIT_PATH
    split = load_split(split_path)
    parts = partition(kept, split)
    check_disjoint(parts, split, include_train_val=True)
    for name, clips in parts.items():
        if not clips:
            raise ValueError(f"the {name} partition has no clips")
        per = {c: sum(1 for x in clips if x.corpus == c) for c in sorted({x.corpus for x in clips})}
        echo(f"{name}: {len(clips)} clips " + str(per))
    return parts, found


def test_windows(clips: Sequence[Clip], conf: dict, fcfg: FeatureConfig, scfg: SpeechConfig,
                  **kw) -> tuple[WindowSet, WindowSet]:
    """The wideband and the telephone-degraded test windows (the latter seeded by
    ``telephone_test_seed``, so every run degrades every test clip the same way)."""
    hop = float(conf["hop_s"])
    test = build_windows(clips, fcfg, scfg, hop, desc="test", **kw)
    tel = build_windows(clips, fcfg, scfg, hop, ["telephone"], seed=int(conf["telephone_test_seed"]),
                        desc="test_telephone", **kw)
    return test, tel
