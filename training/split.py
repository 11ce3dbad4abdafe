"""The fixed, published train / val / test split of the training corpora.

Every training run, evaluation and report uses the split stored in ``split.json``
next to this file, so results are comparable and no test speaker is ever trained on.
Regenerate it (deterministically) with ``python -m training.split --write``; run
``python -m training.split`` to print per-partition clip counts of the corpora found
under ``$SER_CORPORA`` (default ``<repo>/../shared/corpora``).

Rules
-----
* **RAVDESS** (24 actors, Livingstone & Russo 2018): test actors 03, 04, 11, 12
  (two male, two female), val actors 07, 08, all other actors train.
* **CREMA-D** (actors 1001-1091, Cao et al. 2014): test if ``(id - 1001) % 5 == 0``,
  val if ``(id - 1001) % 10 == 1``, else train.
* **SAVEE** (Haq & Jackson 2009): test KL, val JK, train DC and JE.
* **TurEV-DB** (Canpolat et al. 2020): test speaker 1984, val 1157, the other four train.
* **TESS** (Pichora-Fuller & Dupuis 2020) has only two speakers, both needed for
  training, so its split is *word*-disjoint, not speaker-independent: from the sorted
  list of the 200 words, ``rng = random.Random(20261122)``; test words =
  ``sorted(rng.sample(words, 40))`` (20 %), then val words =
  ``sorted(rng.sample([w for w in words if w not in test], 20))`` (10 %); every other
  word is train. Both speakers' clips follow their word.

Every pair of partitions is disjoint in its unit (speakers, or TESS words).

``split.json`` format (version 1)
---------------------------------
::

    {
      "version": 1,
      "description": "...",
      "partitions": ["train", "val", "test"],
      "ravdess": {"unit": "speaker", "rule": "...",
                  "train": ["01", ...], "val": ["07", "08"], "test": ["03", "04", "11", "12"]},
      "cremad":  {"unit": "speaker", "rule": "...", "train": [...], "val": [...], "test": [...]},
      "savee":   {"unit": "speaker", "rule": "...", "train": ["DC", "JE"], "val": ["JK"], "test": ["KL"]},
      "tess":    {"unit": "text", "rule": "...", "seed": 20261122, "speakers_shared": true,
                  "note": "...", "train": [<140 words>], "val": [<20 words>], "test": [<40 words>]}
    }

``unit`` says which :class:`~training.corpora.Clip` field decides the partition:
``"speaker"`` (the id without the ``"<corpus>:"`` prefix) or ``"text"`` (the TESS word).
The lists are explicit and complete: a clip whose unit is in none of them is an error
(:func:`assign` raises), so a new speaker or word can never land silently in training.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from training.corpora import CORPORA, Clip, default_corpora_root, discover, load_tess

__all__ = [
    "PARTITIONS",
    "SPLIT_PATH",
    "TESS_SEED",
    "assign",
    "build_split",
    "check_disjoint",
    "dumps_split",
    "load_split",
    "partition",
    "write_split",
]

#: Partition names, in report order.
PARTITIONS: tuple[str, ...] = ("train", "val", "test")
#: Default location of the published split.
SPLIT_PATH: Path = Path(__file__).resolve().with_name("split.json")
#: Seed of the TESS word draw.
TESS_SEED = 20261122
TESS_TEST_FRACTION = 0.2
TESS_VAL_FRACTION = 0.1

_RAVDESS_TEST = ("03", "04", "11", "12")
_RAVDESS_VAL = ("07", "08")
_UNITS = {"ravdess": "speaker", "cremad": "speaker", "savee": "speaker", "tess": "text"}

Split = dict[str, Any]


# Longer than 80 lines on purpose: most of it is the literal record written to split.json,
# each corpus's rule in words next to its lists; one place reads as the published split.
def build_split(tess_words: Iterable[str]) -> Split:
    """Build the split dict from the rules in the module docstring.

    Args:
        tess_words: the TESS words (any order, duplicates ignored; normally the 200
            words found in the TESS folder).

    Returns:
        the split as stored in ``split.json`` (a JSON-serialisable dict).

    Raises:
        ValueError: fewer than 10 distinct TESS words (too few to draw from).
    """
    words = sorted({w.lower() for w in tess_words})
    if len(words) < 10:
        raise ValueError(f"need at least 10 TESS words to draw the split, got {len(words)}")
    rng = random.Random(TESS_SEED)
    n_test = round(TESS_TEST_FRACTION * len(words))
    n_val = round(TESS_VAL_FRACTION * len(words))
    test_words = sorted(rng.sample(words, n_test))
    rest = [w for w in words if w not in set(test_words)]
    val_words = sorted(rng.sample(rest, n_val))
    train_words = [w for w in rest if w not in set(val_words)]

    ravdess_all = [f"{i:02d}" for i in range(1, 25)]
    cremad_all = list(range(1001, 1092))
    cremad_test = [str(i) for i in cremad_all if (i - 1001) % 5 == 0]
    cremad_val = [str(i) for i in cremad_all if (i - 1001) % 10 == 1]
    cremad_train = [str(i) for i in cremad_all if str(i) not in set(cremad_test) | set(cremad_val)]

    return {
        "version": 1,
        "description": (
            "Fixed speaker-independent train/val/test split of the SER training corpora "
            "(TESS: word-disjoint). Generated by `python -m training.split --write`; "
            "see training/split.py for the rules and format."
        ),
        "partitions": list(PARTITIONS),
        "ravdess": {
            "unit": "speaker",
            "rule": "test actors 03 04 11 12 (2 male, 2 female), val actors 07 08, other actors train",
            "train": [a for a in ravdess_all if a not in _RAVDESS_TEST + _RAVDESS_VAL],
            "val": list(_RAVDESS_VAL),
            "test": list(_RAVDESS_TEST),
        },
        "cremad": {
            "unit": "speaker",
            "rule": "actors 1001-1091: test if (id-1001) % 5 == 0, val if (id-1001) % 10 == 1, else train",
            "train": cremad_train,
            "val": cremad_val,
            "test": cremad_test,
        },
        "tess": {
            "unit": "text",
            "rule": (
                f"sorted words; rng = random.Random({TESS_SEED}); test = sorted(rng.sample(words, "
                f"{n_test})); val = sorted(rng.sample([w for w in words if w not in test], {n_val})); "
                "other words train"
            ),
            "seed": TESS_SEED,
            "speakers_shared": True,
            "note": (
                "TESS has only two speakers (OAF, YAF), both in train, val and test: TESS results "
                "are word-disjoint, not speaker-independent."
            ),
            "train": train_words,
            "val": val_words,
            "test": test_words,
        },
        "savee": {
            "unit": "speaker",
            "rule": "test KL, val JK, train DC JE",
            "train": ["DC", "JE"],
            "val": ["JK"],
            "test": ["KL"],
        },
        "turev": {
            "unit": "speaker",
            "rule": "test 1984, val 1157, train 1234 1358 6783 7895",
            "train": ["1234", "1358", "6783", "7895"],
            "val": ["1157"],
            "test": ["1984"],
        },
        "emovo": {
            "unit": "speaker",
            "rule": "test m3, val f3, train f1 f2 m1 m2",
            "train": ["f1", "f2", "m1", "m2"],
            "val": ["f3"],
            "test": ["m3"],
        },
    }


def _validate(split: Mapping[str, Any], source: str) -> None:
    if split.get("version") != 1:
        raise ValueError(f"{source}: unsupported split version {split.get('version')!r} (expected 1)")
    for corpus in CORPORA:
        section = split.get(corpus)
        if not isinstance(section, Mapping):
            raise ValueError(f"{source}: missing section {corpus!r}")
        if section.get("unit") not in ("speaker", "text"):
            raise ValueError(f"{source}: {corpus}.unit must be 'speaker' or 'text'")
        seen: dict[str, str] = {}
        for part in PARTITIONS:
            items = section.get(part)
            if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
                raise ValueError(f"{source}: {corpus}.{part} must be a list of strings")
            for item in items:
                if item in seen:
                    raise ValueError(f"{source}: {corpus} {item!r} is in both {seen[item]} and {part}")
                seen[item] = part


def load_split(path: str | Path | None = None) -> Split:
    """Read and validate a split file (default: ``split.json`` next to this module).

    Returns:
        the split dict (format in the module docstring).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: bad JSON, wrong version, a missing section or list, or an item
            listed in two partitions.
    """
    path = Path(path) if path is not None else SPLIT_PATH
    try:
        split = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(split, dict):
        raise ValueError(f"{path}: top level must be an object")
    _validate(split, str(path))
    return split


def _unit_value(clip: Clip, unit: str) -> str:
    if unit == "text":
        return clip.text
    return clip.speaker.split(":", 1)[1] if ":" in clip.speaker else clip.speaker


_Index = dict[str, tuple[str, dict[str, str]]]


def _index(split: Mapping[str, Any]) -> _Index:
    """corpus -> (unit, {speaker or word: partition})."""
    index: _Index = {}
    for corpus, section in split.items():
        if isinstance(section, Mapping) and "unit" in section:
            lookup = {item: part for part in PARTITIONS for item in section.get(part, ())}
            index[corpus] = (section["unit"], lookup)
    return index


def _assign(clip: Clip, index: _Index) -> str:
    if clip.corpus not in index:
        raise ValueError(f"split has no section for corpus {clip.corpus!r}")
    unit, lookup = index[clip.corpus]
    value = _unit_value(clip, unit)
    try:
        return lookup[value]
    except KeyError:
        raise ValueError(
            f"{clip.corpus} {unit} {value!r} of {clip.path} is in no partition of the split"
        ) from None


def assign(clip: Clip, split: Mapping[str, Any] | None = None) -> str:
    """Return the partition (``"train"``, ``"val"`` or ``"test"``) of ``clip``.

    Args:
        clip: a clip from :mod:`training.corpora`.
        split: a split dict from :func:`load_split` (default: the published one).

    Raises:
        ValueError: the clip's corpus has no section in the split, or its speaker
            (TESS: word) is listed in no partition.
    """
    return _assign(clip, _index(split if split is not None else load_split()))


def partition(clips: Iterable[Clip], split: Mapping[str, Any] | None = None) -> dict[str, list[Clip]]:
    """Split ``clips`` into partitions.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}`` (all three keys, input order
        kept inside each list).

    Raises:
        ValueError: as :func:`assign`, for the first clip outside the split.
    """
    index = _index(split if split is not None else load_split())
    parts: dict[str, list[Clip]] = {p: [] for p in PARTITIONS}
    for clip in clips:
        parts[_assign(clip, index)].append(clip)
    return parts


def check_disjoint(
    parts: Mapping[str, Sequence[Clip]],
    split: Mapping[str, Any] | None = None,
    *,
    include_train_val: bool = False,
) -> None:
    """Check that no speaker (TESS: no word) is shared between train and test or val and test.

    Args:
        parts: partition name -> clips, as from :func:`partition`.
        split: used only for each corpus's unit; by default TESS is word-disjoint and
            the other corpora speaker-disjoint.
        include_train_val: also require train and val to be disjoint.

    Returns:
        None.

    Raises:
        ValueError: naming the corpus, the partitions and the shared speakers/words.
    """
    units = dict(_UNITS)
    if split is not None:
        for corpus, section in split.items():
            if isinstance(section, Mapping) and "unit" in section:
                units[corpus] = section["unit"]
    seen: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for name, clips in parts.items():
        for clip in clips:
            seen[clip.corpus][name].add(_unit_value(clip, units.get(clip.corpus, "speaker")))
    pairs = [("train", "test"), ("val", "test")] + ([("train", "val")] if include_train_val else [])
    problems = []
    for corpus in sorted(seen):
        for a, b in pairs:
            shared = seen[corpus][a] & seen[corpus][b]
            if shared:
                unit = units.get(corpus, "speaker")
                problems.append(f"{corpus}: {unit}s in both {a} and {b}: {sorted(shared)}")
    if problems:
        raise ValueError("split is not disjoint: " + "; ".join(problems))


def write_split(path: str | Path | None = None, tess_root: str | Path | None = None) -> Split:
    """Regenerate the split file from the rules.

    The TESS words are read from ``tess_root`` (default ``<corpora>/tess``); when that
    folder does not exist, the words already listed in the existing split file are used,
    so the file can be regenerated on a machine without the corpus.

    Returns:
        the split that was written.

    Raises:
        FileNotFoundError: neither the TESS folder nor an existing split file is there.
        ValueError: as :func:`build_split`.
    """
    path = Path(path) if path is not None else SPLIT_PATH
    tess_dir = Path(tess_root) if tess_root is not None else default_corpora_root() / "tess"
    if tess_dir.is_dir():
        words = {clip.text for clip in load_tess(tess_dir).clips}
    elif path.exists():
        old = load_split(path)
        words = {w for p in PARTITIONS for w in old["tess"][p]}
    else:
        raise FileNotFoundError(f"no TESS folder at {tess_dir} and no split file at {path}")
    split = build_split(words)
    path.write_text(dumps_split(split), encoding="utf-8")
    return split


def dumps_split(split: Mapping[str, Any]) -> str:
    """Serialise a split as written to ``split.json``: indented, each list on one line."""
    text = json.dumps(split, indent=2, ensure_ascii=False)
    text = re.sub(r"\[\s*\n\s*((?:\"[^\"\n]*\",?\s*)*)\]",
                  lambda m: "[" + ", ".join(re.findall(r'"[^"\n]*"', m.group(1))) + "]", text)
    return text + "\n"


def _counts_table(parts: Mapping[str, Sequence[Clip]]) -> str:
    corpora = sorted({c.corpus for clips in parts.values() for c in clips},
                     key=lambda c: (CORPORA.index(c) if c in CORPORA else len(CORPORA), c))
    lines = [f"{'corpus':<10}" + "".join(f"{p:>8}" for p in PARTITIONS) + f"{'total':>8}"
             + "   speakers (train/val/test)"]
    for corpus in corpora + ["total"]:
        counts = [sum(1 for c in parts[p] if corpus in ("total", c.corpus)) for p in PARTITIONS]
        spk = [len({c.speaker for c in parts[p] if corpus in ("total", c.corpus)}) for p in PARTITIONS]
        lines.append(f"{corpus:<10}" + "".join(f"{n:>8}" for n in counts) + f"{sum(counts):>8}"
                     + "   " + "/".join(map(str, spk)))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.split", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="regenerate split.json from the rules")
    parser.add_argument("--split", type=Path, default=None, help="split file (default: training/split.json)")
    parser.add_argument("--corpora", type=Path, action="append", default=None,
                        help="corpus folder or parent folder (repeatable; default: $SER_CORPORA "
                             "or <repo>/../shared/corpora)")
    args = parser.parse_args(argv)
    roots = args.corpora or [default_corpora_root()]

    if args.write:
        tess_root = next((r / "tess" for r in roots if (r / "tess").is_dir()), None)
        split = write_split(args.split, tess_root)
        print(f"wrote {args.split or SPLIT_PATH}: "
              + ", ".join(f"{c} " + "/".join(str(len(split[c][p])) for p in PARTITIONS) for c in CORPORA)
              + " (train/val/test units)")
        return 0

    split = load_split(args.split)
    missing = [r for r in roots if not Path(r).is_dir()]
    if missing:
        print(f"corpora folder not found: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    result = discover(roots)
    parts = partition(result.clips, split)
    print(_counts_table(parts))
    if result.skipped:
        print("skipped files: " + ", ".join(f"{k} {v}" for k, v in result.skipped.items()))
    check_disjoint(parts, split, include_train_val=True)
    print("disjoint: ok (train/val/test share no speaker; TESS: no word)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
