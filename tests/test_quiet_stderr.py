"""TensorFlow's native log lines stay off stderr at the default verbosity (cron mail reads stderr)."""
import os
import subprocess
import sys

import pytest

SCRIPT = """
import sys
import numpy as np
from ser_lib.runtime import Predictor
p = Predictor.from_path(sys.argv[1])
fc = p.meta.feature_config
print(p.predict(np.zeros((2, fc.frames_per_window, fc.n_features), np.float32)).shape)
"""


def _run(artifact, **env):
    e = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "SER_TF_LOGS")}
    return subprocess.run([sys.executable, "-c", SCRIPT, str(artifact)], capture_output=True, text=True,
                          env={**e, **env}, timeout=300)


@pytest.mark.parametrize("runtime", ["auto", "keras"])
def test_loading_and_running_a_model_writes_nothing_to_stderr(tiny_artifact, runtime):
    res = _run(tiny_artifact, SER_RUNTIME=runtime)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "(2, 7)"
    assert res.stderr == "", res.stderr


@pytest.mark.parametrize("runtime, marker", [("auto", "XNNPACK"), ("keras", "0000 ")])
def test_the_native_lines_are_there_when_asked_for(tiny_artifact, runtime, marker):
    """The test above can fail: LiteRT and TensorFlow do write to fd 2 while they load."""
    res = _run(tiny_artifact, SER_TF_LOGS="1", SER_RUNTIME=runtime)
    assert res.returncode == 0
    assert marker in res.stderr, res.stderr
