"""Serving benchmark: start-up, throughput, install size and driver memory, in one run.

    .venv/bin/python -m bench.serving [--model models/ser-cnn] [--calls 1000,20000]
                                      [--skip-install] [--wait-idle SECONDS] [--out FILE]

Reports (and writes to ``bench/results/serving-<date>.json``):

* ``ser predict`` on a 5 s recording: wall of the command, fresh process (median of 3);
* the Spark floor (:mod:`bench.spark_floor`): a cold local session as the job builds it, the
  smallest query of the job's shape and a Parquet write -- what any Spark run pays here;
* ``ser analyze`` on one 5 s recording, cold: wall of the command, JVM start included;
* ``ser analyze`` on an hour of audio (6 x 10 min stereo 8 kHz mu-law calls), cold;
* marginal throughput: (3600 s - 5 s) / (wall of the hour - wall of the 5 s run): the
  cost of more audio with every fixed cost (JVM, workers, model load) cancelled;
* the serving install's size: ``pip install .`` (no extra) into a fresh venv, size of its
  site-packages, and whether TensorFlow is in it (``--skip-install`` to skip);
* driver peak RSS (the ``ser analyze`` Python process, and its JVM) for 1,000 and 20,000
  short calls (2 s mono 8 kHz WAV each), sampled every 0.2 s.

Audio is synthetic (:mod:`ser_lib.synth`), built once under ``.cache/bench/serving/``.
Other CPU-heavy processes (e.g. a training run) are detected before and after: if any
ran, the results are marked not valid (``--wait-idle`` waits for them first).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "bench" / "serving"
SER = str(REPO / ".venv" / "bin" / "ser")
TARGETS = {"predict_5s_wall_s": 1.5, "analyze_5s_cold_wall_s": 10.0, "analyze_hour_cold_wall_s": 12.0,
           "marginal_x_realtime": 2300.0, "driver_rss_ratio": 1.5}


def log(msg: str) -> None:
    print(f"[serving {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------ audio
def _write(path: Path, y, sr: int, subtype: str = "PCM_16") -> None:
    import soundfile as sf
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, sr, subtype=subtype)


def five_seconds() -> Path:
    import numpy as np

    from ser_lib.synth import silence, speech_like
    d = CACHE / "five"
    f = d / "call_5s.wav"
    if not f.exists():
        rng = np.random.default_rng(5)
        _write(f, np.concatenate([speech_like(3.5, 8000, rng), silence(1.5, 8000, rng)]), 8000)
    return d


def hour() -> Path:
    from bench.memory import make_call
    d = CACHE / "hour"
    d.mkdir(parents=True, exist_ok=True)
    for i in range(6):
        f = d / f"call_{i}.wav"
        if not f.exists():
            make_call(f.with_suffix(".tmp"), 10, seed=i).rename(f)
    return d


def short_calls(n: int) -> Path:
    """``n`` distinct 2 s recordings (distinct content: the manifest skips duplicates)."""
    import numpy as np

    from ser_lib.synth import silence, speech_like
    d = CACHE / f"short-{n}"
    done = d / ".complete"
    if done.exists():
        return d
    rng = np.random.default_rng(n)
    base = np.concatenate([speech_like(1.5, 8000, rng), silence(0.5, 8000, rng)])
    for i in range(n):
        y = base + (rng.standard_normal(len(base)) * 1e-3).astype(base.dtype)
        _write(d / f"{i // 1000:03d}" / f"c{i:05d}.wav", y, 8000)
    done.touch()
    return d


# ------------------------------------------------------------------ measuring
def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "SPARK_"))}
    env.pop("SER_RUNTIME", None)
    return env


class TreeRSS(threading.Thread):
    """Peak RSS of a process and of its JVM child (spark-submit's java), MB."""

    def __init__(self, pid: int, interval_s: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.interval_s = pid, interval_s
        self.peak = {"driver_python_mb": 0.0, "driver_jvm_mb": 0.0}
        self.stop = threading.Event()

    def run(self):
        import psutil
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self.stop.is_set():
            try:
                self.peak["driver_python_mb"] = max(self.peak["driver_python_mb"], root.memory_info().rss / 2**20)
                for c in root.children(recursive=False):
                    if c.name() == "java":
                        self.peak["driver_jvm_mb"] = max(self.peak["driver_jvm_mb"], c.memory_info().rss / 2**20)
            except psutil.NoSuchProcess:
                return
            except psutil.AccessDenied:
                pass
            time.sleep(self.interval_s)


def timed(cmd: list[str], sample_rss: bool = False, timeout: float = 3600) -> dict:
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    sampler = TreeRSS(p.pid) if sample_rss else None
    if sampler:
        sampler.start()
    out, err = p.communicate(timeout=timeout)
    wall = time.perf_counter() - t0
    if sampler:
        sampler.stop.set()
        sampler.join()
    if p.returncode not in (0,):
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {err[-2000:]}")
    res = {"wall_s": round(wall, 2), "stdout": out}
    if sampler:
        res.update({k: round(v, 1) for k, v in sampler.peak.items()})
    return res


def analyze(inp: Path, model: str | None, sample_rss: bool = False) -> dict:
    with tempfile.TemporaryDirectory(prefix="ser-bench-") as out:
        cmd = [SER, "analyze", str(inp), f"{out}/results"] + (["--model", model] if model else [])
        res = timed(cmd, sample_rss)
    summary = json.loads(res.pop("stdout"))
    keep = ("processed", "failed", "audio_hours", "wall_s", "startup_s", "x_realtime", "model_load_s")
    res["summary"] = {k: summary.get(k) for k in keep}
    return res


def install_size() -> dict:
    with tempfile.TemporaryDirectory(prefix="ser-serving-venv-") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        src = Path(tmp) / "src"
        shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".venv", ".git", "out", ".cache", "build", "dist",
                                                                 "*.egg-info", "__pycache__", "models"))
        t0 = time.perf_counter()
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(src)],
                       check=True)
        install_s = time.perf_counter() - t0
        sp = next((venv / "lib").glob("python3*/site-packages"))
        sizes = {}
        for p in sp.iterdir():
            if p.is_dir() and not p.name.endswith((".dist-info", "__pycache__")):
                sizes[p.name] = sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())
        total = sum(f.stat().st_size for f in sp.rglob("*") if f.is_file() and not f.is_symlink())
        top = sorted(sizes.items(), key=lambda kv: -kv[1])[:8]
        return {"site_packages_mb": round(total / 2**20), "install_s": round(install_s, 1),
                "tensorflow_installed": (sp / "tensorflow").exists() or (sp / "keras").exists(),
                "largest_mb": {k: round(v / 2**20) for k, v in top}}


# ------------------------------------------------------------------ main
def table(res: dict) -> str:
    m = res["measures"]
    lines = ["| measure | result | target |", "|---|---|---|",
             f"| `ser predict` on a 5 s file, wall | {m['predict_5s_wall_s']} s | <= 1.5 s |",
             f"| `ser analyze` on one 5 s file, cold, wall | {m['analyze_5s_cold_wall_s']} s | <= 10 s |",
             f"| an hour of audio (6 x 10 min), cold, wall | {m['analyze_hour_cold_wall_s']} s | <= 12 s |",
             f"| marginal throughput (fixed costs cancelled) | {m['marginal_x_realtime']}x realtime | >= 2,300x |"]
    if "spark_floor" in res:
        f = res["spark_floor"]
        lines.insert(4, f"| Spark floor: session + two trivial Python queries + Parquet write, cold (median of 3) | "
                        f"{f['total_s']} s (session {f['session_s']}, first query {f['first_query_s']}, "
                        f"write {f['parquet_write_s']}) | |")
    if "install" in res:
        i = res["install"]
        lines.append(f"| serving install (site-packages) | {i['site_packages_mb']} MB, TensorFlow: "
                     f"{'yes' if i['tensorflow_installed'] else 'no'} | no TensorFlow |")
    for n, r in res.get("driver_rss", {}).items():
        lines.append(f"| driver peak RSS, {n} short calls | Python {r['driver_python_mb']} MB, "
                     f"JVM {r['driver_jvm_mb']} MB, wall {r['wall_s']} s | |")
    if "driver_rss_ratio" in m:
        lines.append(f"| driver peak RSS ratio, most / fewest calls | Python {m['driver_rss_ratio']}x, "
                     f"JVM {m['driver_jvm_rss_ratio']}x | <= 1.5x |")
    lines.append(f"\nvalid (no other CPU-heavy process before/after): {res['valid']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="model artifact (default: the shipped models/ser-cnn)")
    p.add_argument("--calls", default="1000,20000", help="short-call counts for the driver memory runs")
    p.add_argument("--skip-install", action="store_true", help="do not measure the serving install")
    p.add_argument("--wait-idle", type=float, default=0.0, help="wait up to SECONDS for other heavy processes")
    p.add_argument("--out", default=None, help="results file (default bench/results/serving-<date>.json)")
    a = p.parse_args(argv)
    import bench.run
    from bench.run import heavy_processes, wait_idle
    # training runs of any recipe count as heavy even while they idle between folds
    bench.run.HEAVY_PATTERNS = tuple(bench.run.HEAVY_PATTERNS) + ("recipe.py", "training.cv", "training/cv")

    heavy_before = wait_idle(a.wait_idle) if a.wait_idle else heavy_processes()
    if heavy_before:
        log(f"other heavy processes run: results will be marked not valid: {heavy_before}")
    log("building audio (cached)")
    five, hr = five_seconds(), hour()
    counts = [int(c) for c in a.calls.split(",") if c]
    shorts = {n: short_calls(n) for n in counts}

    res: dict = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "model": a.model,
                 "measures": {}}
    m = res["measures"]
    log("ser predict x3")
    runs = [timed([SER, "predict"] + (["--model", a.model] if a.model else []) + [str(five / "call_5s.wav")])
            for _ in range(3)]
    m["predict_5s_wall_s"] = statistics.median(r["wall_s"] for r in runs)
    log("Spark floor (bench.spark_floor) x3")
    floors = []
    for _ in range(3):
        fr = subprocess.run([sys.executable, "-m", "bench.spark_floor"], cwd=REPO, capture_output=True, text=True,
                            check=True)
        floors.append(json.loads(fr.stdout.strip().splitlines()[-1]))
    res["spark_floor"] = sorted(floors, key=lambda f: f["total_s"])[1]  # the median run
    m["spark_floor_s"] = res["spark_floor"]["total_s"]
    log("ser analyze, 5 s, cold")
    r5 = analyze(five, a.model)
    m["analyze_5s_cold_wall_s"] = r5["wall_s"]
    log("ser analyze, an hour, cold")
    rh = analyze(hr, a.model)
    m["analyze_hour_cold_wall_s"] = rh["wall_s"]
    audio_s = rh["summary"]["audio_hours"] * 3600
    m["marginal_x_realtime"] = round((audio_s - 5.0) / max(rh["wall_s"] - r5["wall_s"], 1e-3))
    res["runs"] = {"analyze_5s": r5, "analyze_hour": rh}
    if not a.skip_install:
        log("serving install into a fresh venv")
        res["install"] = install_size()
    res["driver_rss"] = {}
    for n, d in shorts.items():
        log(f"ser analyze, {n} short calls (driver RSS)")
        res["driver_rss"][n] = analyze(d, a.model, sample_rss=True)
    if len(counts) >= 2:
        lo, hi = res["driver_rss"][min(counts)], res["driver_rss"][max(counts)]
        m["driver_rss_ratio"] = round(hi["driver_python_mb"] / lo["driver_python_mb"], 2)
        m["driver_jvm_rss_ratio"] = round(hi["driver_jvm_mb"] / max(lo["driver_jvm_mb"], 1e-3), 2)
    heavy_after = heavy_processes()
    res["heavy_processes"] = {"before": heavy_before, "after": heavy_after}
    res["valid"] = not heavy_before and not heavy_after
    out = Path(a.out) if a.out else REPO / "bench" / "results" / f"serving-{dt.date.today():%Y-%m-%d}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(table(res))
    log(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
