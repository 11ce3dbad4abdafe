"""Ship a `ser train` output folder that was already copied into models/ser-cnn: set each artifact's
version to the UTC time its model was trained (these runs started before the recipe stamped the time
itself), export the final model's LiteRT file, and re-run recalibrate (idempotent: it re-scores the
folds and reproduces the run's table, now with the pooled ECE).

    python models/runs/2026-12-02-requant-full/ship.py .cache/recipe-requant   # this run
    python models/runs/2026-12-02-requant-full/ship.py .cache/recipe-e24       # ../2026-12-02-epochs24
"""
import datetime as dt
import json
import os
import sys
from pathlib import Path

M = Path("models/ser-cnn")


def stamp(p: Path) -> str:
    return dt.datetime.fromtimestamp(os.stat(p).st_mtime, dt.timezone.utc).strftime("%Y.%m.%d.%H%M")


if __name__ == "__main__":
    run = Path(sys.argv[1] if len(sys.argv) > 1 else ".cache/recipe-requant")
    for sub in ["", *[f"cv/{d.name}" for d in sorted((run / "cv").iterdir())]]:
        meta_p = M / sub / "artifact.json"
        m = json.loads(meta_p.read_text())
        suffix = m["version"][len("cnn1d-2026.12.02"):]    # "", "-fold<i>" or "-loco"
        m["version"] = f"cnn1d-{stamp(run / sub / 'model.keras')}{suffix}"
        meta_p.write_text(json.dumps(m, indent=2) + "\n")
        print(sub or "final", m["version"])
    from ser_lib.artifact import export_runtime
    print(export_runtime(M))
    from training.cv import recalibrate
    rec = recalibrate(M, ["../shared/corpora"], progress=False)
    print(rec["cv"]["table"]["mean"], rec["cv"]["table"]["pooled"])
