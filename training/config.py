"""Training configuration (``conf/train.yaml``): dataclass defaults, strict loading.

The dataclasses below hold the default of every key; ``conf/train.yaml`` documents the
keys and sets them to these defaults (``tests/test_training.py`` checks that the two
agree). :func:`load_conf` reads a YAML file over the defaults and rejects keys it does
not know, as the job's configuration does (:class:`ser_lib.config.JobConfig`), so a
misspelt key is an error instead of a silently ignored setting. The result is a plain
nested ``dict`` (what the training code and the artifact's ``training.conf`` record use).
"""
from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ser_lib.errors import ConfigError

from .augment import AugmentConfig

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONF = REPO / "conf" / "train.yaml"


@dataclass(frozen=True)
class FitConfig:
    """The ``train:`` section: optimisation, regularisation and the sample-weight rule."""

    epochs: int = 24  # 16 -> 24: 6-fold CV clip UA +0.018 (models/runs/2026-12-02-epochs24)
    batch_size: int = 64
    learning_rate: float = 2e-3
    warmup_epochs: int = 1
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    patience: int = 6
    class_weights: Any = "corpus_class"  # corpus_class | true | false
    time_masks: int = 2
    time_mask_frames: int = 20
    feature_masks: int = 2
    feature_mask_width: int = 8
    mixup_alpha: float = 0.2
    # teacher-student distillation (Hinton et al. 2015): "auto" (the recipe builds the accurate
    # model's encoder head per run as teacher, training/teacher.py), a teacher JSON of per-clip
    # probabilities (training/distill.py) or None (off); each training window's target becomes
    # (1 - distill_weight) * one-hot(label) + distill_weight * teacher(source clip, run)
    distill_teacher: str | None = "auto"
    distill_weight: float = 0.5


@dataclass(frozen=True)
class SelectConfig:
    """The ``select:`` section: checkpoint and model-family selection (validation only)."""

    min_gain_for_costlier: float = 0.01
    smooth_epochs: int = 3
    checkpoint: str = "last"  # last | best_smoothed


def _augment_defaults() -> dict:
    # The recipe's augmentation is AugmentConfig's with a wider gain range whose copies are
    # all rounded to 16-bit PCM: quiet 16-bit calls carry a fixed quantisation noise, and this
    # gave the 6-fold CV telephone UA +0.025 (wideband +0.004); models/runs/2026-12-02-requant-full
    return {"copies": 1, **AugmentConfig(p_gain=0.6, gain_db=(-45.0, 6.0), p_requantize=1.0).to_dict()}


def _model_defaults() -> dict:
    # architecture arguments per family: training/models.py's builders hold their defaults
    return {"cnn1d": {}, "cnn2d": {}}


@dataclass(frozen=True)
class TrainConfig:
    """Every key of ``conf/train.yaml`` with its default (sections as nested mappings)."""

    # the CNN's training corpora: every supported one except EMOVO, which the shipped CNN never
    # heard (its unseen-language test; the accurate model's head trains on it). Adding EMOVO
    # left the TurEV-DB LOCO where it was (models/runs/2026-12-07-encoder, 3 seeds)
    corpora: list = field(default_factory=lambda: ["ravdess", "cremad", "tess", "savee", "turev"])
    seed: int = 20261122
    # a seed ensemble of two (models/runs/2026-12-03-seed-ensemble); None = one model
    ensemble_seeds: list | None = field(default_factory=lambda: [20261122, 20261203])
    model: str = "cnn1d"
    split: str | None = None
    hop_s: float = 0.5
    augment: dict = field(default_factory=_augment_defaults)
    telephone_test_seed: int = 7
    # what the shipped temperature is fitted on (:data:`TEMPERATURE_RULES`); a post-hoc setting:
    # changing it retrains nothing (:data:`POST_HOC_KEYS`)
    calibration: str = "unheard_corpora"
    train: FitConfig = FitConfig()
    models: dict = field(default_factory=_model_defaults)
    select: SelectConfig = SelectConfig()

    def to_dict(self) -> dict:
        return asdict(self)


#: the defaults as the nested dict :func:`load_conf` returns (a fresh copy per call there)
DEFAULTS: dict[str, Any] = TrainConfig().to_dict()
#: sections whose keys are open: one entry per model family, each the family's own arguments
_OPEN = {"models": set(_model_defaults())}


def merge(base: dict, over: dict | None, strict: bool = True, where: str = "") -> dict:
    """``over`` merged into a copy of ``base``, section by section.

    Raises:
        ConfigError: with ``strict``, a key ``base`` does not have (its dotted path named),
            or a mapping given where a value is expected (or the reverse).
    """
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        path = f"{where}{k}"
        if k not in base:
            if strict:
                raise ConfigError(f"unknown training configuration key {path!r}")
            out[k] = v
            continue
        if isinstance(base[k], dict):
            if not isinstance(v, dict):
                if strict:
                    raise ConfigError(f"training configuration key {path!r} must be a mapping, got {v!r}")
                out[k] = v
                continue
            if where == "" and k in _OPEN:  # open map: known names, values as given
                unknown = set(v) - _OPEN[k]
                if strict and unknown:
                    raise ConfigError(f"unknown training configuration key {path}.{sorted(unknown)[0]!r}; "
                                      f"known: {sorted(_OPEN[k])}")
                out[k] = {**out[k], **v}
            else:
                out[k] = merge(base[k], v, strict, f"{path}.")
        elif strict and isinstance(v, dict):
            raise ConfigError(f"training configuration key {path!r} takes a value, not a mapping")
        else:
            out[k] = v
    return out


def load_conf(path: str | os.PathLike | None) -> dict:
    """Read a training YAML over :data:`DEFAULTS` (None = defaults only).

    Returns:
        the configuration as a nested dict with every key of :class:`TrainConfig`.

    Raises:
        FileNotFoundError: the file does not exist.
        ConfigError: the file is not a YAML mapping, or has a key the defaults do not
            (a misspelling, or a setting that was removed), named by its dotted path.
    """
    if path is None:
        return merge(DEFAULTS, {})
    data = yaml.safe_load(Path(path).read_text())
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a YAML mapping")
    try:
        conf = merge(DEFAULTS, data or {})
        distillation(conf, resolve=False)
        temperature_rule(conf)
        check_corpora(conf)
        return conf
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


#: ``calibration`` values: what the shipped model's softmax temperature is fitted on.
#: ``unheard_corpora``: the leave-one-corpus-out runs' test windows (a language, speakers and
#: recordings the run never trained on: what the job hears); ``validation_speakers``: the
#: median of the CV folds' temperatures, each fitted on its validation speakers (RAVDESS actors
#: and a TurEV-DB speaker of corpora it trained on), which leaves unheard voices over-confident
#: (window ECE 0.24-0.25 against 0.04-0.05, models/runs/2026-12-07-distilled-default).
TEMPERATURE_RULES = ("unheard_corpora", "validation_speakers")

#: top-level keys that act after training (the trained weights do not depend on them), so a
#: finished run is resumed across a change of them (:func:`training.cv.finished_run`)
POST_HOC_KEYS = ("calibration",)


def temperature_rule(conf: dict) -> str:
    """The ``calibration`` setting, checked (an older record without it: ``validation_speakers``,
    the rule it was calibrated with).

    Raises:
        ConfigError: a value not in :data:`TEMPERATURE_RULES`.
    """
    rule = conf.get("calibration", "validation_speakers")
    if rule not in TEMPERATURE_RULES:
        raise ConfigError(f"calibration must be one of {', '.join(TEMPERATURE_RULES)}, got {rule!r}")
    return rule


def recorded(conf: dict) -> dict:
    """``conf`` as records and artifacts keep it: without the runtime keys (names starting
    with ``_``: the teacher path ``_teacher``, normalisation arrays), which describe one run's
    machine state, not the configuration."""
    return {k: v for k, v in conf.items() if not k.startswith("_")}


#: ``train.distill_teacher`` value that has ``ser train`` build the teacher itself
#: (:func:`training.teacher.build_teacher`, into ``<out>/teacher.json``)
AUTO_TEACHER = "auto"


def distillation(conf: dict, resolve: bool = True) -> tuple[Path | None, float]:
    """The ``train.distill_teacher`` / ``train.distill_weight`` settings, checked.

    ``distill_teacher: auto`` stands for the teacher the recipe builds into its output folder
    (:func:`training.cv.run_recipe` records its path under the runtime key ``_teacher``).

    Args:
        resolve: return the teacher file's path (``False``: only check the settings, as
            :func:`load_conf` does before anything is built).

    Returns:
        ``(teacher JSON path or None when distillation is off, weight lambda in [0, 1])``
        (with ``resolve=False`` the path is ``None`` for ``auto``).

    Raises:
        ConfigError: ``distill_teacher`` is neither null, ``auto`` nor a non-empty string, or
            names a file that does not exist (``auto``: not built yet, when resolving);
            ``distill_weight`` is not a number in [0, 1].
    """
    tc = conf["train"]
    teacher, weight = tc.get("distill_teacher"), tc.get("distill_weight", 0.5)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= float(weight) <= 1.0:
        raise ConfigError(f"train.distill_weight must be a number in [0, 1], got {weight!r}")
    if teacher is None:
        return None, float(weight)
    if not isinstance(teacher, (str, os.PathLike)) or not str(teacher):
        raise ConfigError(f"train.distill_teacher must be null, {AUTO_TEACHER!r} or the path of a teacher JSON, "
                          f"got {teacher!r}")
    if str(teacher) == AUTO_TEACHER:
        if not resolve:
            return None, float(weight)
        if not conf.get("_teacher"):
            raise ConfigError(f"train.distill_teacher: {AUTO_TEACHER!r} is built by the cross-validated recipe "
                              "(ser train); here no teacher was built")
        teacher = conf["_teacher"]
    path = Path(teacher)
    if not path.is_file():
        raise ConfigError(f"train.distill_teacher: no such file {str(path)!r}")
    return path, float(weight)


def check_corpora(conf: dict) -> None:
    """Check the ``corpora`` setting (``None``: every corpus found).

    Raises:
        ConfigError: ``corpora`` is not a list, or names a corpus the loaders do not know.
    """
    from .corpora import CORPORA

    wanted = conf.get("corpora")
    if wanted is None:
        return
    if not isinstance(wanted, (list, tuple)):
        raise ConfigError(f"corpora must be a list of corpus names, got {wanted!r}")
    unknown = sorted(set(wanted) - set(CORPORA))
    if unknown:
        raise ConfigError(f"corpora: unknown corpus {', '.join(map(repr, unknown))}; known: {', '.join(CORPORA)}")


def training_clips(clips: list, conf: dict, echo=None) -> list:
    """The clips of the configuration's training corpora (``corpora``; an older record
    without the key: all of them), saying with ``echo`` which corpora found are left out.

    Raises:
        ConfigError: as :func:`check_corpora`.
    """
    check_corpora(conf)
    wanted = conf.get("corpora")
    if wanted is None:
        return list(clips)
    kept = [c for c in clips if c.corpus in wanted]
    left = sorted({c.corpus for c in clips} - set(wanted))
    if left and echo is not None:
        echo("not training corpora (conf corpora), left out: "
             + ", ".join(f"{c} ({sum(k.corpus == c for k in clips)} clips)" for c in left))
    return kept


def found_training_clips(roots, conf: dict, echo=None) -> list:
    """:func:`training_clips` of the clips found under ``roots`` (:func:`training.corpora.discover`).

    Raises:
        ConfigError: as :func:`check_corpora`.
        ValueError: no clip of the training corpora under ``roots``.
    """
    from .corpora import discover

    clips = training_clips(discover(roots).clips, conf, echo)
    if not clips:
        raise ValueError(f"no clips of the training corpora ({', '.join(conf.get('corpora') or ['any'])}) found under "
                         f"{', '.join(map(str, roots))}")
    return clips


def augmentation(conf: dict) -> tuple[int, AugmentConfig]:
    """The ``augment:`` section as ``(copies per training clip, AugmentConfig)``."""
    aug_conf = dict(conf["augment"])
    copies = int(aug_conf.pop("copies", 0))
    return copies, AugmentConfig.from_dict(aug_conf)


def stored_conf(conf: dict | None) -> dict:
    """An artifact's recorded ``training.conf`` over :data:`DEFAULTS`, leniently: an artifact
    trained by an older version may hold keys since removed, and must stay evaluable."""
    return merge(DEFAULTS, conf or {}, strict=False)
