"""Job configuration keys that do nothing are refused, not ignored."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ser_lib.config import JobConfig
from ser_lib.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_output_partition_by_is_refused_with_what_to_do(tmp_path):
    conf = tmp_path / "job.yaml"
    conf.write_text("output:\n  partition_by: [run_date]\n")
    with pytest.raises(ConfigError, match=r"output.partition_by was removed.*run_date=D/run_id=R.*delete"):
        JobConfig.load(conf)


def test_the_shipped_configuration_has_no_output_section():
    assert "output" not in yaml.safe_load((REPO / "conf" / "job.yaml").read_text())
