"""Per-recording CPU time of several commits, interleaved: an A/B that a shared machine does not spoil.

``python -m bench.cpu_ab --rev before=316110c --rev after=HEAD [--rounds 5] [--files GLOB] [--out FILE]``
exports each revision (``git archive``) into a temporary directory and, round after round,
runs one fresh Python process per revision that loads that revision's shipped model and
``conf/job.yaml``, scores every file of ``--files`` once to warm up and then three more
times through :func:`ser_lib.one_recording.predict_source` (decode, features, speech
decisions, model, summary: the job's per-recording work without Spark), timing each pass in
CPU seconds of the process (``time.process_time``). Interleaving the revisions round by round
and comparing CPU time rather than wall time keeps other processes on the machine from
favouring one side; the passes still vary by ~10 % under load, so the result reports the
median and the minimum of all passes per revision and their ratios to the first revision.
The default files are ``bench.run``'s 1x set (``.cache/bench/sets/corpora-x1``, built by
``python -m bench.run``). Results: ``bench/results/cpu-ab-<date>.json``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

WORKER = r"""
import glob, json, sys, time
root, pattern = sys.argv[1], sys.argv[2]
sys.path.insert(0, root)
from ser_lib.config import JobConfig
from ser_lib.one_recording import load_predictor, predict_source
cfg = JobConfig.load(None)
pred = load_predictor(cfg)
files = sorted(glob.glob(pattern, recursive=True))
def one_pass():
    for f in files:
        predict_source(f, cfg, pred)
one_pass()
cpu = []
for _ in range(3):
    t0 = time.process_time()
    one_pass()
    cpu.append(time.process_time() - t0)
print(json.dumps({"cpu": cpu, "files": len(files)}))
"""


def export(rev: str, into: Path) -> Path:
    """``git archive`` of ``rev`` unpacked under ``into``; returns that directory."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rev", action="append", required=True, metavar="NAME=REV",
                   help="a revision to time (git rev), repeatable; the first is the reference")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--files", default=str(REPO / ".cache" / "bench" / "sets" / "corpora-x1" / "**" / "*.wav"))
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    revs = dict(r.split("=", 1) for r in a.rev)
    if not glob.glob(a.files, recursive=True):
        p.error(f"no files match {a.files} (python -m bench.run builds bench.run's sets)")
    cpu: dict[str, list[float]] = {name: [] for name in revs}
    with tempfile.TemporaryDirectory() as tmp:
        roots = {name: export(rev, Path(tmp) / name) for name, rev in revs.items()}
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        for r in range(a.rounds):
            for name, root in roots.items():
                res = subprocess.run([sys.executable, "-c", WORKER, str(root), a.files], capture_output=True, text=True,
                                     env={**env, "PYTHONPATH": str(root)}, cwd=root, check=True)
                cpu[name] += json.loads(res.stdout.strip().splitlines()[-1])["cpu"]
                print(f"round {r} {name}: {[round(x, 3) for x in cpu[name][-3:]]}", flush=True)
    ref = next(iter(revs))
    med = {k: float(np.median(v)) for k, v in cpu.items()}
    low = {k: float(np.min(v)) for k, v in cpu.items()}
    res = {"date": dt.date.today().isoformat(), "revisions": revs, "files": a.files, "rounds": a.rounds,
           "load_average": os.getloadavg(), "cpu_s_per_pass": cpu, "median_s": med, "min_s": low,
           "median_vs_first": {k: med[k] / med[ref] for k in med}, "min_vs_first": {k: low[k] / low[ref] for k in low}}
    print(json.dumps({k: res[k] for k in ("median_s", "min_s", "median_vs_first", "min_vs_first")}, indent=2))
    out = Path(a.out or REPO / "bench" / "results" / f"cpu-ab-{res['date']}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
