"""Teacher-student distillation targets for the CNN recipe (``train.distill_teacher``).

Knowledge distillation (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural
Network"): the student is trained on a mix of the true label and a teacher's class
probabilities. Here the teacher is any model whose per-clip probabilities were written to a
JSON file beforehand (e.g. the accurate model's encoder head, out of fold by speaker):

.. code-block:: json

    {"labels": ["angry", ...],             # must be ser_lib.labels.EMOTIONS, in that order
     "method": "free text",
     "runs": {"loco": {"/abs/clip/path.flac": [p_angry, ..., p_surprise], ...},
              "loco-emovo": {...}}}

A run of the recipe (``"loco"``, ``"loco-emovo"``, a fold index as ``"0"``, ``"final"``)
reads only its own entry, so a teacher that never heard the run's held-out speakers or
corpus can be given per run. The clip paths are :attr:`training.corpora.Clip.path`.

Target of a training window of source clip ``c`` with label ``y``::

    t = (1 - weight) * onehot(y) + weight * teacher[run][c]

Every window of a clip, and every augmented copy (``clip_id`` ``path#aug<k>``), gets its
source clip's teacher row. Validation and test targets are not touched (they stay the hard
labels), so checkpoint selection, the temperature and the scores mean what they meant.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ser_lib.errors import ConfigError
from ser_lib.labels import EMOTIONS

from .dataset import WindowSet

#: How far a teacher row's sum may be from 1 (the file rounds probabilities to a few decimals).
SUM_TOLERANCE = 1e-3


def load_teacher(path: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """Read a teacher JSON (module docstring).

    Returns:
        ``{run name: {clip path: float32 (len(EMOTIONS),) probabilities}}``, each row
        renormalised to sum to exactly 1.

    Raises:
        ConfigError: unreadable JSON, ``labels`` other than :data:`EMOTIONS` in order, no
            ``runs`` mapping, or a row that is not ``len(EMOTIONS)`` finite non-negative
            numbers summing to 1 (within :data:`SUM_TOLERANCE`); the file, run and clip are named.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"distillation teacher {path}: cannot read it as JSON ({err})") from None
    if not isinstance(data, dict) or list(data.get("labels") or []) != list(EMOTIONS):
        got = data.get("labels") if isinstance(data, dict) else None
        raise ConfigError(f"distillation teacher {path}: 'labels' must be {list(EMOTIONS)}, got {got!r}")
    runs = data.get("runs")
    if not isinstance(runs, dict) or not runs:
        raise ConfigError(f"distillation teacher {path}: no 'runs' mapping of run name -> {{clip path: probabilities}}")
    out: dict[str, dict[str, np.ndarray]] = {}
    for run, rows in runs.items():
        if not isinstance(rows, dict):
            raise ConfigError(f"distillation teacher {path}: run {run!r} is not a mapping of clip path -> probabilities")
        table = {}
        for clip, p in rows.items():
            a = np.asarray(p, dtype=np.float64)
            if a.shape != (len(EMOTIONS),) or not np.all(np.isfinite(a)) or np.any(a < 0) \
                    or abs(a.sum() - 1.0) > SUM_TOLERANCE:
                raise ConfigError(f"distillation teacher {path}: run {run!r}, clip {clip!r}: expected "
                                  f"{len(EMOTIONS)} non-negative probabilities summing to 1, got {p!r}")
            table[clip] = (a / a.sum()).astype(np.float32)
        out[str(run)] = table
    return out


def soft_targets(ws: WindowSet, teacher: dict[str, dict[str, np.ndarray]], run: int | str, weight: float,
                 n_cls: int = len(EMOTIONS)) -> np.ndarray:
    """The distillation targets of training windows (module docstring).

    Args:
        ws: the run's training windows (``clip_id`` the source path, ``#<variant>`` for a copy).
        teacher: :func:`load_teacher`'s result.
        run: the recipe run (its ``str`` is looked up in ``teacher``).
        weight: the teacher's share lambda, in [0, 1].

    Returns:
        ``float32 (len(ws), n_cls)``, each row sums to 1; ``weight = 0`` is the one-hot labels.

    Raises:
        ConfigError: ``run`` is not in the teacher file, or a training clip has no teacher row
            in the run (the first few missing source paths are named).
    """
    if str(run) not in teacher:
        raise ConfigError(f"distillation teacher has no probabilities for run {str(run)!r} (it has: "
                          f"{sorted(teacher)}); train only those runs (ser train --only ...) or extend the teacher")
    rows = teacher[str(run)]
    sources = np.array([str(c).split("#", 1)[0] for c in ws.clip_id])
    missing = sorted({s for s in sources if s not in rows})
    if missing:
        raise ConfigError(f"distillation teacher run {str(run)!r} has no probabilities for {len(missing)} training "
                          f"clip(s), e.g. {missing[:3]}")
    onehot = np.eye(n_cls, dtype=np.float32)[ws.y]
    per_clip = np.stack([rows[s] for s in sources]) if len(sources) else np.zeros((0, n_cls), np.float32)
    return ((1.0 - weight) * onehot + weight * per_clip[ws.clip]).astype(np.float32)
