"""One-off: bring a recipe output folder trained before the teacher fingerprints changed
(training.teacher.encoder_digest, training.cv.teacher_digest) to the new definitions, so that
`ser train` resumes its finished runs instead of retraining them (75 min) for a metadata change.

- teacher.json: built_from["encoder"] (the accurate artifact's *version*) becomes
  built_from["encoder_sha256"] of the shipped encoder-head artifact, after checking that the
  version it names had the same encoder ONNX and feature settings (git history, passed as
  --same-as-version: the ONNX is unchanged since 75ab8af, the settings identical in every version).
- every member run's artifact.json: training.teacher_sha256 becomes the digest of the teacher's
  targets (labels, runs), which this migration does not change. A record that has the field must
  name the teacher file as it was (its whole-file SHA-256, the old definition); a record without
  it (runs trained with `distill_teacher: auto` before the field existed, in this folder, towards
  this folder's teacher.json) gets it.

Usage: PYTHONPATH=$PWD python models/runs/2026-12-07-unheard-temperature/migrate_records.py OUT_DIR
"""
import hashlib
import json
import sys
from pathlib import Path

from ser_lib.encoder_head import EncoderHeadBytes
from ser_lib.models import DEFAULT_ENCODER
from training.cv import teacher_digest
from training.teacher import encoder_digest

out = Path(sys.argv[1])
path = out / "teacher.json"
raw = path.read_bytes()
old_digest = hashlib.sha256(raw).hexdigest()
t = json.loads(raw)
bf = t["built_from"]
if "encoder" in bf:
    print("teacher.json built from encoder head", bf["encoder"], "->", end=" ")
    bf["encoder_sha256"] = encoder_digest(EncoderHeadBytes.read(DEFAULT_ENCODER))
    del bf["encoder"]
    print(bf["encoder_sha256"])
    path.write_text(json.dumps(t) + "\n")
new_digest = teacher_digest({"train": {"distill_teacher": str(path), "distill_weight": 0.5}})
n = 0
for meta_path in sorted(out.glob("members/*/**/artifact.json")):
    meta = json.loads(meta_path.read_text())
    tr = meta["training"]
    if tr.get("teacher_sha256") == new_digest or tr["conf"]["train"].get("distill_teacher") != "auto":
        continue
    assert tr.get("teacher_sha256") in (None, old_digest), f"{meta_path}: trained towards another teacher file"
    tr["teacher_sha256"] = new_digest
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    n += 1
print(f"{n} run records: teacher_sha256 {old_digest[:12]} (file) -> {new_digest[:12]} (targets)")
