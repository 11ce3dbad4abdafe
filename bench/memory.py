"""Peak memory of the job's Python workers: a 5-minute vs a 2-hour stereo recording.

    .venv/bin/python -m bench.memory [--minutes 5 120] [--chunk-s 60] [--model models/ser-cnn]

For each length, a synthetic stereo call (8 kHz mu-law WAV, speech-like sound on both
channels, :mod:`ser_lib.synth`, generated a minute at a time) is analysed by the real
job (``jobs.analyze_calls.run``, ``local[1]``: one Python worker) in a fresh process, so
the worker's peak resident set (``VmHWM`` in ``/proc/<pid>/status``, the kernel's
high-water mark) belongs to that recording alone. Writes ``bench/results/memory-<date>.json``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_call(path: Path, minutes: float, sr: int = 8000, seed: int = 0) -> Path:
    import numpy as np
    import soundfile as sf

    from ser_lib.synth import silence, speech_like
    rng = np.random.default_rng(seed)
    with sf.SoundFile(path, "w", sr, 2, subtype="ULAW", format="WAV") as f:
        for i in range(int(round(minutes))):
            a = np.concatenate([speech_like(30, sr, rng), silence(30, sr, rng)])
            b = np.concatenate([silence(30, sr, rng), speech_like(30, sr, rng)])
            f.write(np.stack([a, b], axis=1))
    return path


def _peak_kb(pid: int, key: str = "VmHWM") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    kids = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int(Path(p, "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(p.name))
    out, todo = [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def measure_one(recording: str, out: str, model: str | None, chunk_s: float) -> dict:
    """Run the job on one recording in this process; report workers' and driver's peak RSS."""
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from jobs.analyze_calls import run
    conf = Path(out).with_suffix(".yaml")
    conf.write_text(f"input:\n  chunk_s: {chunk_s}\nspark:\n  settings:\n    spark.ui.enabled: false\n")
    t0 = time.time()
    summary = run(str(Path(recording).parent), out, str(conf), master="local[1]", model_path=model)
    wall = time.time() - t0
    workers = []
    for pid in _descendants(os.getpid()):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "pyspark" in cmd and ("daemon" in cmd or "worker" in cmd) or cmd.startswith(sys.executable) and "-m pyspark" in cmd:
            workers.append((pid, _peak_kb(pid)))
    return {"worker_peak_rss_mb": round(max((kb for _, kb in workers), default=0) / 1024, 1),
            "python_workers": len(workers), "driver_peak_rss_mb": round(_peak_kb(os.getpid()) / 1024, 1),
            "wall_s": round(wall, 1), "segments": summary["segments"], "processed": summary["processed"],
            "audio_hours": summary["audio_hours"], "model_version": summary["model_version"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, nargs="+", default=[5, 120])
    p.add_argument("--chunk-s", type=float, default=60.0)
    p.add_argument("--model", default=None)
    p.add_argument("--one", nargs=2, metavar=("RECORDING", "OUT"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.one:
        print("RESULT " + json.dumps(measure_one(a.one[0], a.one[1], a.model, a.chunk_s)))
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="ser-mem-") as tmp:
        for minutes in a.minutes:
            d = Path(tmp, f"in-{minutes:g}")
            d.mkdir()
            rec = make_call(d / f"call-{minutes:g}min.wav", minutes)
            cmd = [sys.executable, "-m", "bench.memory", "--chunk-s", str(a.chunk_s), "--one", str(rec),
                   str(Path(tmp, f"out-{minutes:g}"))] + (["--model", a.model] if a.model else [])
            res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
            line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
            if res.returncode or not line:
                print(res.stderr[-3000:], file=sys.stderr)
                return 1
            r = {"minutes": minutes, "channels": 2, "format": "WAV/ULAW 8 kHz", "file_mb": round(rec.stat().st_size / 2**20, 1),
                 **json.loads(line[0][7:])}
            print(json.dumps(r))
            results.append(r)
    out = REPO / "bench" / "results" / f"memory-{dt.date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"chunk_s": a.chunk_s, "cpu_count": os.cpu_count(), "results": results,
                               "command": "python -m bench.memory " + " ".join(argv or sys.argv[1:])}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
