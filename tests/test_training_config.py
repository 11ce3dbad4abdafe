"""Training configuration: dataclass defaults, conf/train.yaml documenting them, strict loading."""
from __future__ import annotations

import inspect

import pytest
import yaml

from ser_lib.errors import ConfigError
from training import models
from tests.conftest import config_leaves
from training.config import DEFAULT_CONF, DEFAULTS, FitConfig, TrainConfig, load_conf, stored_conf


def test_conf_train_yaml_sets_every_default_to_its_dataclass_value():
    shipped = yaml.safe_load(DEFAULT_CONF.read_text())
    want = {k: v for k, v in config_leaves(TrainConfig().to_dict()) if not k.startswith("models.")}
    got = {k: v for k, v in config_leaves(shipped) if not k.startswith("models.")}
    assert got == want  # every key documented, none missing, none with another value
    for family, args in shipped["models"].items():  # the architecture defaults live in the builders
        params = inspect.signature(getattr(models, f"build_{family}")).parameters
        for name, value in args.items():
            default = params[name].default
            assert (list(default) if isinstance(default, tuple) else default) == value, (family, name)


@pytest.mark.parametrize("text, key", [
    ("seeed: 1\n", "'seeed'"),
    ("train:\n  epoch: 3\n", "'train.epoch'"),
    ("augment:\n  p_noize: 0.1\n", "'augment.p_noize'"),
    ("models:\n  cnn3d: {}\n", "'cnn3d'"),
    ("select: last\n", "'select' must be a mapping"),
    ("seed: {a: 1}\n", "'seed' takes a value"),
    # values checked when the file is loaded, before anything is discovered or trained
    ("corpora: [ravdess, italian]\n", "unknown corpus 'italian'"),
    ("corpora: ravdess\n", "corpora must be a list"),
    ("calibration: test_corpora\n", "calibration must be one of unheard_corpora, validation_speakers"),
])
def test_unknown_or_misplaced_keys_are_rejected_naming_the_key(tmp_path, text, key):
    p = tmp_path / "train.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=key) as err:
        load_conf(p)
    assert str(p) in str(err.value)


def test_a_file_overrides_only_what_it_names_and_results_are_independent_copies(tmp_path):
    p = tmp_path / "train.yaml"
    p.write_text("train:\n  epochs: 3\nmodels:\n  cnn1d: {dense: 8}\n")
    conf = load_conf(p)
    assert conf["train"]["epochs"] == 3 and conf["train"]["batch_size"] == DEFAULTS["train"]["batch_size"]
    assert conf["models"] == {"cnn1d": {"dense": 8}, "cnn2d": {}}
    conf["train"]["epochs"] = 99
    conf["models"]["cnn2d"]["dense"] = 4
    assert load_conf(None)["train"]["epochs"] == FitConfig().epochs != 99 and DEFAULTS["models"]["cnn2d"] == {}
    p.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a YAML mapping"):
        load_conf(p)


def test_an_artifacts_recorded_conf_is_read_leniently():
    conf = stored_conf({"train": {"epochs": 5, "removed_key": 1}, "old_section": {}})
    assert conf["train"]["epochs"] == 5 and conf["train"]["removed_key"] == 1 and conf["seed"] == DEFAULTS["seed"]


def test_training_clips_keep_the_configured_corpora_and_say_what_is_left_out():
    from training.config import training_clips
    from training.corpora import Clip

    clips = [Clip(f"/c/{corpus}/{i}.wav", corpus, f"{corpus}:{i % 2}", "angry", "", "")
             for corpus in ("ravdess", "emovo", "turev") for i in range(3)]
    said = []
    kept = training_clips(clips, load_conf(None), said.append)
    # the shipped recipe: every corpus but EMOVO, the default CNN's unseen-language test
    assert [c.corpus for c in kept] == ["ravdess"] * 3 + ["turev"] * 3
    assert said == ["not training corpora (conf corpora), left out: emovo (3 clips)"]
    assert training_clips(clips, {"corpora": ["emovo"]}) == clips[3:6]
    # a record from before the key trained on every corpus found
    assert training_clips(clips, {}) == clips
    with pytest.raises(ConfigError, match="'italian'"):
        training_clips(clips, {"corpora": ["ravdess", "italian"]})
