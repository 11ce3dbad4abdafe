"""Job configuration keys that do nothing are refused, not ignored."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ser_lib.config import JobConfig
from tests.conftest import config_leaves
from ser_lib.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_output_partition_by_is_refused_with_what_to_do(tmp_path):
    conf = tmp_path / "job.yaml"
    conf.write_text("output:\n  partition_by: [run_date]\n")
    with pytest.raises(ConfigError, match=r"output.partition_by was removed.*run_date=D/run_id=R.*delete"):
        JobConfig.load(conf)


def test_the_shipped_configuration_has_no_output_section():
    assert "output" not in yaml.safe_load((REPO / "conf" / "job.yaml").read_text())


def test_spark_settings_are_read_by_the_runner_not_the_library(tmp_path):
    from jobs.spark_config import SparkConfig
    conf = tmp_path / "job.yaml"
    conf.write_text("spark:\n  master: local[3]\n  tasks_per_core: 2\n  settings: {spark.x: true}\n")
    assert not hasattr(JobConfig.load(conf), "master")
    s = SparkConfig.load(conf)
    assert (s.master, s.app_name, s.tasks_per_core, s.settings) == ("local[3]", "speech-emotion-calls", 2,
                                                                     {"spark.x": "true"})
    assert SparkConfig.load(None) == SparkConfig.load(REPO / "conf" / "job.yaml")
    conf.write_text("spark:\n  mastr: local[3]\n")
    with pytest.raises(ConfigError, match="unknown configuration key spark.'mastr'"):
        SparkConfig.load(conf)
    conf.write_text("spark:\n  tasks_per_core: 0\n")
    with pytest.raises(ConfigError, match="tasks_per_core must be >= 1"):
        SparkConfig.load(conf)
    conf.write_text("sparks: {}\n")
    with pytest.raises(ConfigError, match="unknown configuration key 'sparks'"):
        JobConfig.load(conf)


def test_conf_job_yaml_sets_every_library_default_to_its_code_value():
    """conf/job.yaml documents the defaults; the dataclasses and DEFAULTS hold them: they agree."""
    from ser_lib.config import DEFAULTS, RUNNER_SECTIONS
    shipped = {k: v for k, v in yaml.safe_load((REPO / "conf" / "job.yaml").read_text()).items()
               if k not in RUNNER_SECTIONS}
    assert dict(config_leaves(shipped)) == dict(config_leaves(DEFAULTS))
