"""Examples the store state machine needs to find the loss bug on the old store logic
(run ids reused per night, a rerun planning without its own earlier record).

    python bench/store_old_logic.py SEARCHES EXAMPLES [--old]

``--old`` puts the two old rules back over today's store: the default run id of a night
is reused, and planning reads the latest committed manifest records except the run's own
(as ``read_state(store, exclude_run=...)`` did). Prints, per search, whether the state
machine failed and after how many generated sequences.
"""
import logging
import sys
from pathlib import Path

import pandas as pd

logging.disable(logging.CRITICAL)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hypothesis import settings, Phase, HealthCheck
from hypothesis.stateful import run_state_machine_as_test
import jobs.manifest as manifest  # noqa: E402
import jobs.runner as runner  # noqa: E402
import tests.test_store_machine as t  # noqa: E402
from jobs import state as st  # noqa: E402
OLD = "--old" in sys.argv
cur = {}


def old_read_state(store, paths=None):
    """The old planning state: every run's manifest but the run's own, latest per input."""
    df = st.from_manifests(store, exclude_run=cur.get("id"))
    if paths is not None and len(df):
        df = df[df["source_path"].isin(set(paths))]
    return df.assign(key_member=df["member"].fillna("")) if len(df) else pd.DataFrame(columns=list(df.columns) + ["key_member"])


if OLD:
    def resolve(store, run_date, input_path, run_id):
        cur["id"] = runner.check_run_id(run_id or runner.default_run_id(run_date, input_path)); return cur["id"]
    runner.resolve_run_id = resolve
    manifest.read_state = old_read_state
n = {"c": 0}
orig = t.StoreMachine.setup
def setup(self):
    n["c"] += 1
    return orig(self)
t.StoreMachine.setup = t.initialize()(setup)
res = []
for s in range(int(sys.argv[1])):
    n["c"] = 0
    try:
        run_state_machine_as_test(t.StoreMachine, settings=settings(max_examples=int(sys.argv[2]), stateful_step_count=25, deadline=None,
                          phases=[Phase.generate], database=None, suppress_health_check=list(HealthCheck)))
        res.append(("passed", n["c"]))
    except BaseException as e:
        res.append((type(e).__name__, str(e).splitlines()[0][:100], n["c"]))
print(res)
