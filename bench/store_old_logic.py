"""Examples the store state machine needs to find the loss bug on the old store logic
(run ids reused per night, a rerun planning without its own earlier record)."""
import sys, logging
logging.disable(logging.CRITICAL)
sys.path.insert(0, '/work/main')
from hypothesis import settings, Phase, HealthCheck
from hypothesis.stateful import run_state_machine_as_test
import jobs.runner as runner, jobs.manifest as manifest
import tests.test_store_machine as t
OLD = "--old" in sys.argv
cur = {}
orig_read = manifest.read_state
if OLD:
    def resolve(store, run_date, input_path, run_id):
        cur["id"] = runner.check_run_id(run_id or runner.default_run_id(run_date, input_path)); return cur["id"]
    runner.resolve_run_id = resolve
    manifest.read_state = lambda store, exclude_run=None: orig_read(store, exclude_run=cur.get("id"))
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
