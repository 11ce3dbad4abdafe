"""Build the distillation teacher of the CNN recipe (``train.distill_teacher``,
:mod:`training.distill`): per recipe run, the probabilities of every *training* clip of that
run under the accurate model's encoder head, out of fold.

The teacher is the head of ``training.encoder_head`` (the last LSTM layer's state of the
pretrained speech encoder, mean + std pooled, standardised per speaker, a logistic regression
with C = 0.003 and every (corpus, emotion) pair weighted alike) on the clips as the job hears
them (8 kHz and through G.711). For each run of the recipe (the RAVDESS folds ``"0"`` ...,
the leave-one-corpus-out runs, ``"final"``) it is fitted on that run's training clips only,
never on its validation or test clips, and every training clip's probabilities come from a
head fitted without the clip's speaker group (the RAVDESS fold's actors; the other corpora's
speakers in up to :data:`OTHER_GROUPS` groups): a teacher that has heard the clip's speaker
would mostly repeat the label. Only the configuration's training corpora (``corpora``) are
used, so a corpus the CNN never hears (EMOVO by default) does not reach it through the
teacher either.

Needs the shipped accurate artifact's encoder (``models/ser-accurate/encoder.onnx``) and
scikit-learn (the ``[train]`` install). About 4 minutes of encoding on 2 cores for the four
corpora, then a few seconds per fit.

Usage: ``python -m training.teacher OUT_JSON [CORPUS_ROOT ...] [--conf conf/train.yaml]``
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ser_lib.labels import EMOTIONS

from .config import DEFAULT_CONF, found_training_clips, load_conf, training_clips
from .corpora import Clip, default_corpora_root, discover
from .cv import FOLDS_PATH, assign, load_folds, loco_runs
from .encoder_head import CONDITIONS, clip_features, fit_head, standardize_conditions

#: speaker groups per corpus other than RAVDESS (whose groups are the fold file's actor sets)
OTHER_GROUPS = 3


def speaker_groups(clips: Sequence[Clip], folds: dict) -> list[list[str]]:
    """The out-of-fold groups of speakers: each RAVDESS fold's test actors, then each other
    corpus's speakers, sorted, dealt round-robin into at most :data:`OTHER_GROUPS` groups.
    Every speaker of ``clips`` is in exactly one group."""
    groups = [[f"ravdess:{a}" for a in actors] for actors in folds["ravdess"]["test"]]
    for corpus in sorted({c.corpus for c in clips} - {"ravdess"}):
        spk = sorted({c.speaker for c in clips if c.corpus == corpus})
        n = min(OTHER_GROUPS, len(spk))
        groups += [spk[i::n] for i in range(n)]
    return [g for g in groups if g]


def recipe_runs(clips: Sequence[Clip], folds: dict) -> list[str]:
    """The recipe's run names (as :mod:`training.distill` reads them) that train here: the
    folds, the LOCO runs whose corpus is among ``clips``, ``"final"``."""
    corpora = {c.corpus for c in clips}
    runs = [str(i) for i in range(len(folds["ravdess"]["test"]))]
    runs += [r for r, corpus in loco_runs(folds).items() if corpus in corpora]
    return runs + ["final"]


def teacher_probs(clips: Sequence[Clip], raw: np.ndarray, folds: dict, runs: Sequence[str]) -> dict:
    """``{run: {clip path: 7 probabilities}}`` (module docstring).

    Args:
        clips: the ``n`` training-corpus clips; raw: ``(n_conditions * n, 512)`` encoder rows,
            condition-major (the first condition's rows are the ones scored).
    """
    n = len(clips)
    reps = len(raw) // n
    speaker = np.array([c.speaker for c in clips])
    corpus = np.array([c.corpus for c in clips])
    y = np.array([EMOTIONS.index(c.emotion) for c in clips])
    x = standardize_conditions(raw, speaker, reps)
    groups = speaker_groups(clips, folds)
    out = {}
    for run in runs:
        key = int(run) if run.isdigit() else run  # fold runs are indices in training.cv
        train = np.array([assign(c, folds, key) == "train" for c in clips])
        rows = {}
        for g in groups:
            held = train & np.isin(speaker, g)
            fit = train & ~np.isin(speaker, g)
            if not held.any():
                continue
            if len(np.unique(y[fit])) < 2:
                raise ValueError(f"teacher run {run!r}: fewer than 2 emotions left to fit without {g}")
            m = np.tile(fit, reps)
            head = fit_head(x[m], np.tile(y, reps)[m], np.tile(corpus, reps)[m])
            for k, p in zip(np.flatnonzero(held), head.predict(x[:n][held])):
                rows[clips[k].path] = [round(float(v), 6) for v in p]
        out[run] = rows
    return out


def encoder_digest(model) -> str:
    """SHA-256 (hex) of what a teacher takes from an encoder-head artifact ``model`` (a
    :class:`ser_lib.encoder_head.EncoderHeadBytes`): the ONNX encoder's bytes and the head's
    feature ``settings``. Not the artifact's version: the accurate model is rebuilt on every
    new CNN (its fusion), which changes neither, and the teacher is fitted afresh per run."""
    import hashlib

    settings = json.loads(model.head_json).get("settings", {})
    return hashlib.sha256(model.encoder_onnx + json.dumps(settings, sort_keys=True).encode()).hexdigest()


def built_from(clips: Sequence[Clip], folds_path: str | os.PathLike, encoder_sha256: str) -> dict:
    """What a teacher is built from: a fingerprint of the training clips (paths and labels),
    the fold file and the encoder (:func:`encoder_digest`). :func:`training.cv.with_teacher`
    refuses to reuse a teacher file built from anything else."""
    import hashlib

    h = hashlib.sha256()
    for c in sorted(clips, key=lambda c: c.path):
        h.update(f"{c.path}\t{c.speaker}\t{c.emotion}\n".encode())
    return {"clips": len(clips), "clips_sha256": h.hexdigest(),
            "folds_sha256": hashlib.sha256(Path(folds_path).read_bytes()).hexdigest(), "encoder_sha256": encoder_sha256}


def build_teacher(out: str | os.PathLike, roots: Sequence[str | os.PathLike], conf: dict | None = None,
                  folds_path: str | os.PathLike = FOLDS_PATH, encoder_path: str | os.PathLike | None = None,
                  progress: bool = True) -> Path:
    """Encode the training corpora's clips, fit the out-of-fold heads of every recipe run and
    write the teacher JSON (:func:`training.distill.load_teacher` reads it).

    Raises:
        ValueError: no clips of the training corpora under ``roots``.
    """
    from ser_lib.encoder_head import EncoderHeadBytes, EncoderModel
    from ser_lib.models import DEFAULT_ENCODER

    conf = conf or load_conf(DEFAULT_CONF)
    clips = found_training_clips(roots, conf, print if progress else None)
    folds = load_folds(folds_path)
    data = EncoderHeadBytes.read(encoder_path or DEFAULT_ENCODER)
    model = EncoderModel(data)
    raw = np.vstack([clip_features(clips, model.encoder, model.head.settings, progress, cond) for cond in CONDITIONS])
    runs = recipe_runs(clips, folds)
    probs = teacher_probs(clips, raw, folds, runs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "labels": list(EMOTIONS),
        "method": "training.teacher: the accurate model's encoder head (training.encoder_head recipe) fitted per "
                  "run on its training clips, each clip scored by a head fitted without its speaker group",
        "encoder": model.version, "corpora": sorted({c.corpus for c in clips}), "conditions": list(CONDITIONS),
        "built_from": built_from(clips, folds_path, encoder_digest(data)), "runs": probs}) + "\n")
    return out


def stale_reason(path: str | os.PathLike, roots: Sequence[str | os.PathLike], conf: dict,
                 folds_path: str | os.PathLike = FOLDS_PATH, encoder_path: str | os.PathLike | None = None) -> str | None:
    """Why the teacher file at ``path`` does not match what :func:`build_teacher` would build
    now from ``roots`` and ``conf`` (other clips or labels, fold file or encoder head, or no
    record of what it was built from), or ``None`` when it matches."""
    from ser_lib.encoder_head import EncoderHeadBytes
    from ser_lib.models import DEFAULT_ENCODER

    try:
        had = json.loads(Path(path).read_text()).get("built_from")
    except (OSError, ValueError):
        return "it cannot be read"
    if not had:
        return "it does not say what it was built from"
    now = built_from(training_clips(discover(roots).clips, conf), folds_path,
                     encoder_digest(EncoderHeadBytes.read(encoder_path or DEFAULT_ENCODER)))
    diff = [k for k in now if had.get(k) != now[k]]
    return f"its {', '.join(diff)} differ from now" if diff else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.teacher", description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="the teacher JSON to write")
    ap.add_argument("roots", nargs="*", help="corpus roots (default: $SER_CORPORA or ../shared/corpora)")
    ap.add_argument("--conf", default=str(DEFAULT_CONF), help="training configuration (its corpora)")
    a = ap.parse_args(argv)
    print(build_teacher(a.out, a.roots or [default_corpora_root()], load_conf(a.conf)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
