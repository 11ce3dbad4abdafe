"""Control teacher: each clip's teacher row replaced by the mean row of its (corpus, emotion)
group in the same run (/tmp/enc30/teacher.json -> /tmp/enc30/teacher-classmean.json).

It keeps what the teacher says about classes (which emotions it confuses, how sure it is per
corpus) and removes what it says about the individual clip, so distilling from it separates
"soft, class-structured targets" from "the teacher's per-clip knowledge". Run from the repo root:
PYTHONPATH=$PWD python models/runs/2026-12-07-distill/make_control.py
"""
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from training.corpora import discover

src = json.loads(Path("/tmp/enc30/teacher.json").read_text())
group = {c.path: (c.corpus, c.emotion) for c in discover(["/work/shared/corpora"]).clips}
runs = {}
for run, rows in src["runs"].items():
    by = defaultdict(list)
    for path, p in rows.items():
        by[group[path]].append(p)
    mean = {g: np.mean(v, axis=0) for g, v in by.items()}
    runs[run] = {path: [round(float(v), 5) for v in mean[group[path]] / mean[group[path]].sum()] for path in rows}
    print(run, len(runs[run]), "clips,", len(mean), "(corpus, emotion) groups")
Path("/tmp/enc30/teacher-classmean.json").write_text(json.dumps({
    "labels": src["labels"], "method": "control: " + src["method"] + "; each row replaced by its (corpus, emotion) "
    "group's mean row in the run", "runs": runs}))
