"""Set the shipped epochs-24 artifacts' versions (UTC time each was trained: the run started before the recipe
stamped them itself) and re-run recalibrate (idempotent; it reproduced the run's table). The run's final artifact
already had its model.tflite (training.cv.publish_final copies it now); exporting again is harmless."""
import json, os, datetime as dt
from pathlib import Path
R, M = Path(".cache/recipe-e24"), Path("models/ser-cnn")
def stamp(p): return dt.datetime.fromtimestamp(os.stat(p).st_mtime, dt.timezone.utc).strftime("%Y.%m.%d.%H%M")
if __name__ == "__main__":
    for sub in ["", *[f"cv/{d.name}" for d in sorted((R / "cv").iterdir())]]:
        meta_p = M / sub / "artifact.json"
        m = json.loads(meta_p.read_text())
        suffix = m["version"][len("cnn1d-2026.12.02"):]
        m["version"] = f"cnn1d-{stamp(R / sub / 'model.keras')}{suffix}"
        meta_p.write_text(json.dumps(m, indent=2) + "\n")
        print(sub or "final", m["version"])
    from ser_lib.artifact import export_runtime
    print(export_runtime(M))
    from training.cv import recalibrate
    rec = recalibrate(M, ["../shared/corpora"], progress=False)
    print(rec["cv"]["table"]["mean"], rec["cv"]["table"]["pooled"])
