"""Run the throughput benchmark and write ``bench/results/<date>.json`` + the table in ``bench/README.md``.

    python -m bench.run [--scales 1,4,16] [--skip-baseline] [--baseline-scales 1]
                        [--wait-idle 1800] [--no-readme]

On the same audio (see :mod:`bench.dataset`), in one invocation:

1. **STFT floor** (:mod:`bench.stft_floor`) for every scale, 2 processes.
2. **Seed-style baseline** (:mod:`bench.seed_baseline`, a subprocess with TensorFlow's
   default threads) on ``--baseline-scales`` (default 1x only: it runs at a few x
   realtime, so 16x would take the better part of an hour; its cost is per window, linear
   by construction).
3. **The job** through local Spark (``local[*]``, the shipped model and ``conf/job.yaml``
   unless ``--conf``/``--model`` say otherwise): the SparkSession is built first and
   timed (JVM start); then a *cold* run on 1x (the first run of a session: Python workers
   start, import TensorFlow and deserialise the model) and a *warm* run per scale, each
   end to end from the files to committed Parquet in a fresh output directory.

While everything runs a background thread samples the process tree (psutil) for the
peak RSS of the driver (this process), the JVM, the Python workers, the baseline and
the floor's processes. Other CPU-heavy processes on the machine make timings invalid:
they are detected before and after every phase and recorded (``contended``), and
``--wait-idle`` waits for them to finish first.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from bench import dataset

REPO = dataset.REPO
RESULTS = REPO / "bench" / "results"
OUT = dataset.CACHE / "out"
README = REPO / "bench" / "README.md"  # the results table lives with the method
START, END = "<!-- bench:start -->", "<!-- bench:end -->"

TARGETS = {"job_x_realtime": 1000.0, "job_vs_baseline": 20.0, "features_vs_stft": 3.0, "startup_s": 30.0}
HEAVY_PATTERNS = ("training.train", "training/train", "training.cli", "ser train")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- machine state
def _own_pids() -> set[int]:
    import psutil
    me = psutil.Process()
    return {me.pid} | {c.pid for c in me.children(recursive=True)}


def heavy_processes(sample_s: float = 1.0, cpu_threshold: float = 20.0) -> list[dict]:
    """Processes outside this benchmark's tree that use CPU (> ``cpu_threshold`` % of a
    core over ``sample_s``) or match a known heavy job (``training.train``)."""
    import psutil
    own = _own_pids()
    procs = []
    for p in psutil.process_iter(["pid", "cmdline", "name"]):
        if p.pid in own:
            continue
        try:
            p.cpu_percent(None)
            procs.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    time.sleep(sample_s)
    out = []
    for p in procs:
        try:
            cpu = p.cpu_percent(None)
            cmd = " ".join(p.info["cmdline"] or [p.info["name"] or ""])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if cpu > cpu_threshold or any(s in cmd for s in HEAVY_PATTERNS):
            out.append({"pid": p.pid, "cpu_percent": round(cpu, 1), "cmd": cmd[:160]})
    return out


def wait_idle(max_wait_s: float, poll_s: float = 30.0) -> list[dict]:
    """Wait (up to ``max_wait_s``) until no heavy process runs; returns what still runs."""
    t0 = time.time()
    while True:
        heavy = heavy_processes()
        if not heavy or time.time() - t0 >= max_wait_s:
            return heavy
        log(f"waiting for {len(heavy)} heavy process(es) to finish: "
            + "; ".join(f"{h['pid']} {h['cpu_percent']}% {h['cmd'][:60]}" for h in heavy))
        time.sleep(poll_s)


class RSSSampler(threading.Thread):
    """Peak RSS per (phase, process class) of this process and its descendants.

    Sampling is kept cheap (it runs beside what it measures): RSS every ``interval_s``,
    the process tree (a scan of /proc) re-read only every ``tree_s``.
    """

    def __init__(self, interval_s: float = 0.25, tree_s: float = 1.0):
        super().__init__(daemon=True)
        import psutil
        self.psutil = psutil
        self.me = psutil.Process()
        self.interval_s, self.tree_s = interval_s, tree_s
        self.phase = "setup"
        self.peaks: dict[str, dict[str, dict]] = {}
        self._procs: dict[int, tuple] = {}   # pid -> (Process, class)
        self._tree_at = 0.0
        self._stop_evt = threading.Event()

    @staticmethod
    def classify(cmd: str, name: str, is_me: bool) -> str:
        if is_me:
            return "driver"
        if "java" in name or "/java" in cmd:
            return "jvm"
        if "pyspark.daemon" in cmd or "pyspark.worker" in cmd or "pyspark/daemon" in cmd:
            return "python_workers"
        if "bench.seed_baseline" in cmd:
            return "baseline"
        if "multiprocessing" in cmd:
            return "floor_workers"
        return "other"

    def _refresh_tree(self) -> None:
        ps = self.psutil
        try:
            procs = [self.me] + self.me.children(recursive=True)
        except ps.Error:
            return
        fresh = {}
        for p in procs:
            try:  # classified on every refresh: spark-submit's shell exec()s into the JVM under the same pid
                fresh[p.pid] = (p, self.classify(" ".join(p.cmdline()), p.name(), p.pid == self.me.pid))
            except ps.Error:
                continue
        self._procs = fresh
        self._tree_at = time.monotonic()

    def sample(self) -> None:
        ps = self.psutil
        if time.monotonic() - self._tree_at >= self.tree_s:
            self._refresh_tree()
        sums: dict[str, int] = {}
        single: dict[str, int] = {}
        count: dict[str, int] = {}
        for p, cls in list(self._procs.values()):
            try:
                rss = p.memory_info().rss
            except ps.Error:
                continue
            sums[cls] = sums.get(cls, 0) + rss
            single[cls] = max(single.get(cls, 0), rss)
            count[cls] = count.get(cls, 0) + 1
        ph = self.peaks.setdefault(self.phase, {})
        for cls in sums:
            e = ph.setdefault(cls, {"max_process_mb": 0.0, "max_sum_mb": 0.0, "max_processes": 0})
            e["max_process_mb"] = max(e["max_process_mb"], round(single[cls] / 2**20, 1))
            e["max_sum_mb"] = max(e["max_sum_mb"], round(sums[cls] / 2**20, 1))
            e["max_processes"] = max(e["max_processes"], count[cls])

    def run(self) -> None:
        while not self._stop_evt.is_set():
            self.sample()
            self._stop_evt.wait(self.interval_s)

    def stop(self) -> None:
        self._stop_evt.set()
        self.join(timeout=5)


# ---------------------------------------------------------------- pipelines
def run_floor(files: list[str]) -> dict:
    from bench import stft_floor
    return stft_floor.run(files, processes=os.cpu_count() or 2)


def run_baseline(files: list[str], scale: int) -> dict:
    out = OUT / f"baseline-x{scale}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO))
    for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OPENBLAS_NUM_THREADS"):
        env.pop(var, None)  # the notebooks run TensorFlow with its defaults (all cores)
    cmd = [sys.executable, "-m", "bench.seed_baseline", "--json", str(out), *files]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"baseline failed ({proc.returncode}): {proc.stderr[-2000:]}")
    res = json.loads(out.read_text())
    res["process_wall_s"] = round(time.perf_counter() - t0, 2)
    return res


def _ui_get(spark, path: str):
    sc = spark.sparkContext
    url = sc.uiWebUrl
    if not url:
        return None
    try:
        with urllib.request.urlopen(f"{url}/api/v1/applications/{sc.applicationId}/{path}", timeout=30) as r:
            return json.load(r)
    except Exception:  # UI disabled or unreachable: the breakdown just has fewer parts
        return None


def spark_actions(spark, group: str) -> list[dict] | None:
    """The Spark SQL executions (DataFrame actions) of job group ``group``, in order:
    ``{"id", "description", "s", "jobs", "udf"}`` (``udf``: its plan runs the analysis
    UDF rather than reading its cached result). From the Spark UI's REST API; None when
    the UI is off."""
    jobs = _ui_get(spark, "jobs")
    sql = _ui_get(spark, "sql?details=true&planDescription=true&length=100000")
    if jobs is None or sql is None:
        return None
    mine = {j["jobId"] for j in jobs if j.get("jobGroup") == group}
    out = []
    for e in sql:
        ids = set(e.get("successJobIds") or []) | set(e.get("failedJobIds") or []) | set(e.get("runningJobIds") or [])
        if not ids or not ids <= mine:
            continue
        plan = e.get("planDescription") or ""
        out.append({"id": e["id"], "description": (e.get("description") or "")[:80],
                    "s": round((e.get("duration") or 0) / 1000, 3), "jobs": sorted(ids),
                    "udf": "MapInPandas" in plan or "MapInArrow" in plan})
    out.sort(key=lambda x: x["id"])
    # the rows are cached: the first action whose plan holds the UDF runs it, later ones read the cache
    first = next((x for x in out if x["udf"]), None)
    for x in out:
        x["udf"] = x is first
    if first is not None:
        first["udf_stage"] = udf_stage(spark, jobs, first["jobs"])
    return out


def udf_stage(spark, jobs: list[dict], job_ids: list[int]) -> dict | None:
    """Task statistics of the analysis action's busiest stage: how evenly the recordings
    kept the Python workers busy (``utilization`` = task seconds / (slots x stage wall))."""
    stage_ids = [sid for j in jobs if j["jobId"] in job_ids for sid in j.get("stageIds", [])]
    best = None
    for sid in stage_ids:
        for st in _ui_get(spark, f"stages/{sid}") or []:
            if st.get("status") == "COMPLETE" and (best is None or st["executorRunTime"] > best["executorRunTime"]):
                best = st
    if best is None:
        return None
    tasks = _ui_get(spark, f"stages/{best['stageId']}/{best['attemptId']}/taskList?length=100000") or []
    durs = sorted(t.get("duration", 0) / 1000 for t in tasks if t.get("status") == "SUCCESS")

    def ts(x):
        return dt.datetime.strptime(x.replace("GMT", ""), "%Y-%m-%dT%H:%M:%S.%f")

    wall = (ts(best["completionTime"]) - ts(best["firstTaskLaunchedTime"])).total_seconds()
    slots = spark.sparkContext.defaultParallelism
    return {"stage_id": best["stageId"], "tasks": len(durs), "wall_s": round(wall, 3),
            "task_s": {"sum": round(sum(durs), 3), "min": durs[0] if durs else None,
                       "median": durs[len(durs) // 2] if durs else None, "max": durs[-1] if durs else None},
            "executor_run_s": round(best["executorRunTime"] / 1000, 3),
            "executor_cpu_s": round(best["executorCpuTime"] / 1e9, 3),
            "jvm_gc_s": round(best.get("jvmGcTime", 0) / 1000, 3),
            "utilization": round(sum(durs) / (slots * wall), 3) if wall > 0 else None}


def run_job(spark, input_dir: str, label: str, conf: str | None, model: str | None, parallelism: int) -> dict:
    """One end-to-end job run into a fresh output directory; returns timings and breakdown.

    Breakdown (seconds of wall clock): the workers' stage seconds divided by the number of
    parallel workers (decode, windows + features, model, content hash, model load); the
    analysis action's remaining time (task scheduling, Arrow transfer, building result
    rows); the Parquet writes; other Spark actions; and the driver's own time outside
    Spark actions (listing, manifest, calls table, commit).
    The last three with the analysis remainder are the "Spark overhead".
    """
    from jobs.analyze_calls import run
    out = OUT / f"job-{label}"
    if out.exists():
        shutil.rmtree(out)
    sc = spark.sparkContext
    group = f"bench-{label}-{int(time.time() * 1000)}"
    sc.setLocalProperty("spark.jobGroup.id", group)  # no description: actions keep their call sites
    try:
        t0 = time.perf_counter()
        summary = run(input_dir, str(out), conf, None, model, spark=spark)
        e2e = time.perf_counter() - t0
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    audio_s = float(summary.get("audio_hours") or 0) * 3600
    st = {k: float(v) for k, v in (summary.get("worker_stage_s") or {}).items()}
    compute_wall = sum(st.get(k, 0.0) for k in ("hash_s", "decode_s", "features_s", "model_s", "summary_s")) / parallelism
    load_wall = st.get("model_load_s", 0.0) / parallelism
    actions = spark_actions(spark, group)
    bd = {
        "decode": round(st.get("decode_s", 0.0) / parallelism, 3),
        "windows_features": round(st.get("features_s", 0.0) / parallelism, 3),
        "model": round(st.get("model_s", 0.0) / parallelism, 3),
        "summary": round(st.get("summary_s", 0.0) / parallelism, 3),
        "hash": round(st.get("hash_s", 0.0) / parallelism, 3),
        "model_load": round(load_wall, 3),
    }
    if actions is not None:
        udf_s = sum(a["s"] for a in actions if a["udf"])
        write_s = sum(a["s"] for a in actions if not a["udf"] and "parquet" in a["description"])
        other_s = sum(a["s"] for a in actions) - udf_s - write_s
        bd["write"] = round(write_s, 3)
        bd["analysis_action_rest"] = round(udf_s - compute_wall - load_wall, 3)
        bd["other_spark_actions"] = round(other_s, 3)
        bd["driver"] = round(e2e - udf_s - write_s - other_s, 3)
        bd["spark_overhead"] = round(bd["analysis_action_rest"] + other_s + bd["driver"], 3)
    else:  # no UI: write is not separable
        bd["write"] = None
        bd["spark_overhead"] = round(e2e - compute_wall - load_wall, 3)
    return {
        "label": label, "input": input_dir, "e2e_s": round(e2e, 3), "audio_s": round(audio_s, 1),
        "x_realtime": round(audio_s / e2e, 1) if e2e > 0 else None,
        "files": summary.get("files"), "processed": summary.get("processed"), "failed": summary.get("failed"),
        "segments": summary.get("segments"), "model_version": summary.get("model_version"),
        "summary_wall_s": summary.get("wall_s"), "summary_x_realtime": summary.get("x_realtime"),
        "model_loads": summary.get("model_loads"), "model_batches": summary.get("model_batches"),
        "worker_stage_s": {k: round(v, 3) for k, v in st.items()},
        "parallelism": parallelism,
        "breakdown_s": bd,
        "spark_actions": actions,
    }


def linear_fit(points: list[tuple[float, float]]) -> dict | None:
    """Least-squares ``wall = fixed_s + audio_s / marginal_x`` over (audio_s, wall_s) points."""
    if len(points) < 2:
        return None
    import numpy as np
    a = np.array([p[0] for p in points])
    w = np.array([p[1] for p in points])
    slope, icpt = np.polyfit(a, w, 1)
    pred = icpt + slope * a
    resid = np.abs(pred - w) / w
    per_audio = w / a
    return {"fixed_s": round(float(icpt), 3), "s_per_audio_s": float(slope),
            "marginal_x_realtime": round(1.0 / slope, 1) if slope > 0 else None,
            "max_rel_residual": round(float(resid.max()), 4),
            "wall_per_audio_s": [round(float(x), 6) for x in per_audio],
            "hour_of_audio_s": round(float(icpt + slope * 3600), 2)}


def summarize_profile(raw_path: Path, top: int = 25) -> dict:
    """Aggregate a ``py-spy record --format raw`` file: samples per process class, and per
    class the functions with the most samples, inclusive (on the stack) and self (on top)."""
    import collections
    per_class: collections.Counter = collections.Counter()
    incl: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    self_: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in raw_path.read_text().splitlines():
        if not line.strip():
            continue
        stack, _, n = line.rpartition(" ")
        try:
            n = int(n)
        except ValueError:
            continue
        frames = stack.split(";")
        procs = [i for i, f in enumerate(frames) if f.startswith("process ")]
        proc = frames[procs[-1]] if procs else ""
        cls = ("python_worker" if "pyspark.daemon" in proc or "pyspark.worker" in proc
               else "driver" if "bench.run" in proc or "bench/run" in proc else "other")
        body = frames[(procs[-1] + 1) if procs else 0:]
        if not body:
            continue
        if cls == "python_worker" and body[-1].startswith(("manager ", "worker ")) and "daemon.py" in body[-1]:
            continue  # the daemon waiting for work
        per_class[cls] += n

        def name(f):
            m = re.match(r"(.*?) \((.*?)(?::\d+)?\)$", f)
            return f"{m.group(1)} ({m.group(2).split('/site-packages/')[-1].replace('/work/main/', '')})" if m else f

        for f in {name(f) for f in body}:
            incl[cls][f] += n
        self_[cls][name(body[-1])] += n
    return {cls: {"samples": per_class[cls],
                  "inclusive": [[f, c] for f, c in incl[cls].most_common(top)],
                  "self": [[f, c] for f, c in self_[cls].most_common(top)]} for cls in per_class}


def profiled_run(spark, input_dir: str, label: str, conf, model, parallelism: int, rate: int = 100) -> dict:
    """A warm job run under ``py-spy record --subprocesses`` (driver and Python workers;
    the JVM is not Python and shows only through the Spark actions' times)."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    raw = OUT / f"profile-{label}.txt"
    raw.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([exe, "record", "--subprocesses", "--rate", str(rate), "--format", "raw",
                             "--output", str(raw), "--pid", str(os.getpid())],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(3)  # let py-spy attach
    try:
        res = run_job(spark, input_dir, label, conf, model, parallelism)
    finally:
        time.sleep(0.5)
        proc.send_signal(2)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            err = "py-spy did not stop"
    if not raw.is_file():
        res["profile"] = {"error": (err or "")[-500:]}
        return res
    res["profile"] = {"raw": str(raw), "rate_hz": rate, "summary": summarize_profile(raw)}
    return res


def effective_conf(conf: str | None, spark_settings: list[str], variant: str | None = None) -> str | None:
    """``conf`` (default conf/job.yaml) with ``--spark KEY=VALUE`` settings merged into
    ``spark.settings`` and ``--variant`` as ``model.variant``, written under the cache;
    ``conf`` itself when there are none."""
    if not spark_settings and not variant:
        return conf
    import hashlib

    import yaml
    from ser_lib.config import DEFAULT_JOB_CONF
    src = Path(conf) if conf else DEFAULT_JOB_CONF
    d = yaml.safe_load(src.read_text()) if src.is_file() else {}
    d = d or {}
    if variant:
        d.setdefault("model", {})["variant"] = variant
    settings = d.setdefault("spark", {}).setdefault("settings", {})
    for kv in spark_settings:
        k, sep, v = kv.partition("=")
        if not sep:
            raise SystemExit(f"--spark wants KEY=VALUE, got {kv!r}")
        settings[k.strip()] = v.strip()
    text = yaml.safe_dump(d, sort_keys=False)
    path = dataset.CACHE / f"job-{hashlib.sha1(text.encode()).hexdigest()[:8]}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


# ---------------------------------------------------------------- provenance
def provenance(model_dir: Path) -> dict:
    import hashlib

    def ver(mod):
        try:
            import importlib.metadata as md
            return md.version(mod)
        except Exception:
            return None

    git = {}
    try:
        git["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        st = subprocess.run(["git", "status", "--porcelain", "ser_lib", "jobs", "conf", "bench"], cwd=REPO,
                            capture_output=True, text=True).stdout
        git["modified"] = [ln[3:] for ln in st.splitlines()]
    except OSError:
        pass
    meta = json.loads((model_dir / "artifact.json").read_text())
    model_file = model_dir / "model.keras"
    cpu = ""
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "git": git,
        "model": {"dir": str(model_dir), "version": meta.get("version"),
                  "sha256": hashlib.sha256(model_file.read_bytes()).hexdigest(),
                  "mtime": dt.datetime.fromtimestamp(model_file.stat().st_mtime, dt.timezone.utc).isoformat()},
        "machine": {"cpus": os.cpu_count(), "cpu_model": cpu, "platform": platform.platform(),
                    "python": platform.python_version()},
        "versions": {m: ver(m) for m in ("pyspark", "tensorflow", "keras", "numpy", "librosa", "scipy", "soxr",
                                         "soundfile", "pyarrow")},
    }


# ---------------------------------------------------------------- report
def evaluate(res: dict) -> dict:
    """Targets met / missed, from the measured numbers."""
    t = {}
    warm = res["job"]["warm"]
    base = res.get("baseline") or {}
    base_x = min((b["x_realtime"] for b in base.values()), default=None) if base else None
    floors = res["stft_floor"]
    fit = res["job"].get("fit")
    t["job_x_realtime"] = {
        "target": f">= {TARGETS['job_x_realtime']:g}x realtime end to end, JVM start excluded",
        "per_scale": {s: r["x_realtime"] for s, r in warm.items()},
        "hour_of_audio_s": fit["hour_of_audio_s"] if fit else None,
        # the issue states it as "an hour of audio in 3.6 s": judged on inputs of an hour or
        # more (and the fitted hour); a shorter input can't amortise the run's fixed cost
        "judged_on": "scales with >= 1 h of audio, and the linear fit's hour",
        "met": bool(fit) and fit["hour_of_audio_s"] <= 3600 / TARGETS["job_x_realtime"]
        and all(r["x_realtime"] >= TARGETS["job_x_realtime"] for r in warm.values() if r["audio_s"] >= 3600)
        and any(r["audio_s"] >= 3600 for r in warm.values()),
    }
    if base_x:
        ratios = {s: round(r["x_realtime"] / base_x, 1) for s, r in warm.items()}
        t["job_vs_baseline"] = {"target": f">= {TARGETS['job_vs_baseline']:g}x the baseline's x-realtime",
                                "baseline_x_realtime": base_x, "per_scale": ratios,
                                "met": all(v >= TARGETS["job_vs_baseline"] for v in ratios.values())}
    ratios = {}
    for s, r in warm.items():
        f = floors.get(s)
        if f and f["stft_s"] > 0:
            ratios[s] = round(r["worker_stage_s"].get("features_s", 0.0) / f["stft_s"], 2)
    t["features_vs_stft"] = {"target": f"windows + features <= {TARGETS['features_vs_stft']:g}x the bare STFT pass "
                                       "(worker seconds, same audio)",
                             "per_scale": ratios, "met": bool(ratios) and all(v <= TARGETS["features_vs_stft"]
                                                                             for v in ratios.values())}
    if fit:
        t["linear"] = {"target": "cost linear in audio duration (fit wall = fixed + audio / x; residuals <= 10 %)",
                       "fixed_s": fit["fixed_s"], "marginal_x_realtime": fit["marginal_x_realtime"],
                       "max_rel_residual": fit["max_rel_residual"], "met": fit["max_rel_residual"] <= 0.10}
    su = res["job"]["startup"]
    t["startup"] = {"target": f"start-up overhead (JVM + model load) < {TARGETS['startup_s']:g} s",
                    "startup_s": su["startup_s"], "cold_start_s": su.get("cold_start_s"),
                    "met": su["startup_s"] < TARGETS["startup_s"]}
    t["valid"] = not res["contended"]
    return t


def _fmt(x, nd=1):
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:,.{nd}f}"
    return str(x)


def _nz(x):
    """-0.0 (a difference of equal timings) prints as 0.00."""
    return x + 0.0 if isinstance(x, float) else x


def readme_section(res: dict) -> str:
    warm, cold, su = res["job"]["warm"], res["job"]["cold"], res["job"]["startup"]
    floors, base = res["stft_floor"], res.get("baseline") or {}
    ev = res["targets"]
    L = []
    prov = res["provenance"]
    L.append(f"Measured {res['date']} by `python -m bench.run --scales {','.join(map(str, res['scales']))}` on "
             f"{prov['machine']['cpus']} cores ({prov['machine']['cpu_model'] or 'unknown CPU'}), model "
             f"`{prov['model']['version']}` (model.keras sha256 {prov['model']['sha256'][:12]}…), default `conf/job.yaml`, Spark `{res['master']}`; audio: "
             f"{res['datasets'][res['scales'][0]]['source']} call-like recordings (half mono 16 kHz PCM, half stereo "
             f"8 kHz mu-law; 1x = {res['datasets'][res['scales'][0]]['n_files']} files, "
             f"{res['datasets'][res['scales'][0]]['audio_s'] / 60:.1f} min). Raw numbers: "
             f"`bench/results/{res['date']}.json`; method: `bench/README.md`.")
    if res["contended"]:
        L.append("")
        L.append("**Not valid: other CPU-heavy processes ran during the measurement** ("
                 + "; ".join(sorted({h['cmd'][:50] for h in res['contention_seen']})) + ").")
    L.append("")
    L.append("x-realtime = audio seconds / wall seconds (higher is better). Job: end to end from files to committed "
             "Parquet, SparkSession (JVM) start excluded, Python workers already up (warm); the cold row is the "
             "first run of a session.")
    L.append("")
    L.append("| pipeline | " + " | ".join(f"{s}x ({res['datasets'][s]['audio_s'] / 60:.0f} min)" for s in res["scales"])
             + " |")
    L.append("|---|" + "---|" * len(res["scales"]))
    L.append("| job, warm (`local[*]`) | " + " | ".join(
        f"**{_fmt(warm[s]['x_realtime'])}x** ({_fmt(warm[s]['e2e_s'], 2)} s)" if s in warm else "–"
        for s in res["scales"]) + " |")
    L.append("| job, cold (first run of the session) | " + " | ".join(
        f"{_fmt(cold['x_realtime'])}x ({_fmt(cold['e2e_s'], 2)} s)" if s == cold.get("scale") else "–"
        for s in res["scales"]) + " |")
    L.append("| seed-style baseline | " + " | ".join(
        f"{_fmt(base[s]['x_realtime'], 2)}x ({_fmt(base[s]['wall_s'])} s)" if s in base else "– (1x only: cost per window)"
        for s in res["scales"]) + " |")
    L.append("| bare STFT pass (decode + STFT, 2 processes) | " + " | ".join(
        f"{_fmt(floors[s]['x_realtime'])}x ({_fmt(floors[s]['wall_s'], 2)} s)" if s in floors else "–"
        for s in res["scales"]) + " |")
    L.append("| bare STFT alone (2 processes) | " + " | ".join(
        f"{_fmt(floors[s]['x_realtime_stft_only'])}x" if s in floors else "–" for s in res["scales"]) + " |")
    L.append("")
    L.append("Job time per stage (warm runs; seconds of wall clock: worker seconds / "
             f"{res['job']['parallelism']} parallel Python workers for the first five). *Spark overhead* is "
             "everything else but the segments write: the analysis action beyond the workers' own work (task "
             "scheduling, Arrow transfer, result rows), other Spark actions and the driver outside Spark actions "
             "(listing, manifest and calls table written with pyarrow, commit):")
    L.append("")
    keys = [("decode", "decode + resample"), ("windows_features", "windows + features"), ("model", "model"),
            ("summary", "call summaries + timelines"), ("hash", "content hash (manifest)"),
            ("write", "write (segments, Spark)"),
            ("spark_overhead", "Spark overhead"), ("analysis_action_rest", "&nbsp;&nbsp;of which analysis action"),
            ("other_spark_actions", "&nbsp;&nbsp;of which other Spark actions"),
            ("driver", "&nbsp;&nbsp;of which driver")]
    ws = [s for s in res["scales"] if s in warm]
    L.append("| stage | " + " | ".join(f"{s}x" for s in ws) + " |")
    L.append("|---|" + "---|" * len(ws))
    for k, name in keys:
        if all(warm[s]["breakdown_s"].get(k) is None for s in ws):
            continue
        L.append(f"| {name} | " + " | ".join(_fmt(_nz(warm[s]["breakdown_s"].get(k)), 2) for s in ws) + " |")
    L.append("| **end to end** | " + " | ".join(f"**{_fmt(warm[s]['e2e_s'], 2)}**" for s in ws) + " |")
    def util(s):
        us = next((a.get("udf_stage") for a in (warm[s].get("spark_actions") or []) if a.get("udf")), None)
        return f"{us['utilization'] * 100:.0f} % ({us['tasks']} tasks)" if us and us.get("utilization") else "–"
    L.append("| *analysis stage: worker slots busy* | " + " | ".join(util(s) for s in ws) + " |")
    L.append("| *bare STFT alone, same audio* | " + " | ".join(
        _fmt(floors[s]["stft_s"] / res["job"]["parallelism"], 2) if s in floors else "–" for s in ws) + " |")
    L.append("")
    fit = res["job"].get("fit")
    L.append(f"Start-up, reported apart: JVM + SparkSession {_fmt(su['jvm_start_s'], 1)} s, model load "
             f"{_fmt(su['model_load_s'], 1)} s (per Python worker, in parallel: model runtime import and model load): "
             f"**start-up {_fmt(su['startup_s'], 1)} s**. The first run of a session costs "
             f"{_fmt(su['first_run_extra_s'], 1)} s more than a warm one (that model load, Python worker start and "
             f"imports, the JVM's first not yet JIT-compiled jobs): a cold start of "
             f"{_fmt(su.get('cold_start_s'), 1)} s in all."
             + (f" Growth with input: wall = {fit['fixed_s']:.2f} s + audio / {fit['marginal_x_realtime']:,.0f} "
                f"(max residual {fit['max_rel_residual'] * 100:.1f} %), i.e. one hour of audio in "
                f"{fit['hour_of_audio_s']:.1f} s." if fit else "")
             + (f" Warm runs: {res['repeat']} rounds over the scales, fastest kept; all rounds (s): "
                + "; ".join(f"{s}x " + ", ".join(f"{v:.2f}" for v in warm[s].get("rounds_e2e_s", []))
                            for s in ws) + "." if res.get("repeat", 1) > 1 else ""))
    ff = {s: floors[s].get("frame_features_vs_stft") for s in ws if s in floors}
    if any(v is not None for v in ff.values()):
        L.append("")
        L.append("For scale: `ser_lib.features.frame_features` alone (no windows, speech flags or streaming) on the "
                 "same channels in the floor's processes takes "
                 + ", ".join(f"{v}x" for v in ff.values() if v is not None)
                 + " the bare STFT's time; the job's *windows + features* stage adds the streaming windower "
                   "(`ser_lib/stream.py`) and runs beside the JVM.")
    L.append("")
    rss = res["rss_mb"]
    L.append("Peak RSS (MB): " + "; ".join(
        f"{name} {_fmt(v.get('max_process_mb'), 0)}" + (f" (x{v['max_processes']}, sum {_fmt(v['max_sum_mb'], 0)})"
                                                        if v.get("max_processes", 1) > 1 else "")
        for name, v in rss.items() if v) + ".")
    L.append("")
    L.append("| target | measured | met |")
    L.append("|---|---|---|")
    jx = ev["job_x_realtime"]
    L.append(f"| job ≥ {TARGETS['job_x_realtime']:g}x realtime, i.e. 1 h of audio in "
             f"{3600 / TARGETS['job_x_realtime']:g} s (JVM start excluded; judged on inputs ≥ 1 h) | "
             + ", ".join(f"{s}x: {_fmt(v)}x" for s, v in jx["per_scale"].items())
             + (f"; 1 h of audio in {jx['hour_of_audio_s']} s" if jx.get("hour_of_audio_s") else "")
             + f" | {'yes' if jx['met'] else '**no**'} |")
    if "job_vs_baseline" in ev:
        jb = ev["job_vs_baseline"]
        L.append(f"| job ≥ {TARGETS['job_vs_baseline']:g}x the baseline | "
                 + ", ".join(f"{s}x: {v:,.0f}x" for s, v in jb["per_scale"].items())
                 + f" (baseline {jb['baseline_x_realtime']}x) | {'yes' if jb['met'] else '**no**'} |")
    fs = ev["features_vs_stft"]
    L.append(f"| windows + features ≤ {TARGETS['features_vs_stft']:g}x bare STFT | "
             + ", ".join(f"{s}x: {v}" for s, v in fs["per_scale"].items()) + f" | {'yes' if fs['met'] else '**no**'} |")
    if "linear" in ev:
        ln = ev["linear"]
        L.append(f"| cost linear in audio | fixed {ln['fixed_s']} s + audio / {_fmt(ln['marginal_x_realtime'], 0)}, "
                 f"max residual {ln['max_rel_residual'] * 100:.1f} % | {'yes' if ln['met'] else '**no**'} |")
    sv = ev["startup"]
    L.append(f"| start-up (JVM + model load) < {TARGETS['startup_s']:g} s | {sv['startup_s']} s"
             + (f" (whole cold-start penalty: {sv['cold_start_s']} s)" if sv.get("cold_start_s") else "")
             + f" | {'yes' if sv['met'] else '**no**'} |")
    notes = res.get("notes")
    if notes:
        L.append("")
        L.append(notes)
    return "\n".join(L)


def update_readme(section: str) -> bool:
    """Replace the text between the START and END marker lines (markers alone on their line:
    the README's prose names them too)."""
    import re
    text = README.read_text()
    pat = re.compile(rf"^{re.escape(START)}$.*?^{re.escape(END)}$", flags=re.M | re.S)
    if not pat.search(text):
        log("README has no bench markers; not updated")
        return False
    README.write_text(pat.sub(lambda _: START + "\n" + section.strip() + "\n" + END, text, count=1))
    return True


# ---------------------------------------------------------------- main
def _int_keys(d: dict) -> dict:
    """JSON turns the per-scale dict keys into strings; turn them back."""
    return {int(k) if isinstance(k, str) and k.isdigit() else k: v for k, v in d.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="throughput benchmark: job vs seed-style baseline vs bare STFT")
    p.add_argument("--scales", default="1,4,16", help="audio scales (1x ~ 18 min), comma-separated")
    p.add_argument("--skip-baseline", action="store_true", help="do not run the seed-style baseline")
    p.add_argument("--baseline-scales", default="1", help="scales the baseline runs on (default 1)")
    p.add_argument("--corpora", default=None, help="corpus root (default $SER_CORPORA or ../shared/corpora)")
    p.add_argument("--conf", default=None, help="job configuration (default conf/job.yaml)")
    p.add_argument("--model", default=None, help="model artifact (default: the shipped models/ser-cnn)")
    p.add_argument("--variant", default=None, choices=["default", "accurate"],
                   help="model.variant for the job (default: the configuration's); bench.accurate compares both")
    p.add_argument("--master", default="local[*]")
    p.add_argument("--wait-idle", type=float, default=0.0,
                   help="wait up to this many seconds for other CPU-heavy processes to finish before measuring")
    p.add_argument("--no-readme", action="store_true", help="do not update the README table")
    p.add_argument("--out", default=None, help="results file (default bench/results/<date>.json)")
    p.add_argument("--notes", default=None, help="text appended under the README table (e.g. a profile summary)")
    p.add_argument("--spark", action="append", default=[], metavar="KEY=VALUE",
                   help="extra Spark setting for the job (repeatable), merged into the configuration")
    p.add_argument("--repeat", type=int, default=2,
                   help="warm rounds over all scales; the fastest run per scale is reported (default 2)")
    p.add_argument("--profile", action="store_true",
                   help="one more warm run at the largest scale under py-spy; its summary goes into the results")
    p.add_argument("--render", default=None, metavar="RESULTS_JSON",
                   help="only re-render the README table from a results file (with --notes), no measuring")
    a = p.parse_args(argv)
    if a.render:
        res = json.loads(Path(a.render).read_text(), object_hook=_int_keys)
        res["targets"] = evaluate(res)  # the rules may have changed since the measurement
        if a.notes is not None:
            res["notes"] = a.notes
        Path(a.render).write_text(json.dumps(res, indent=1, default=str) + "\n")
        section = readme_section(res)
        print(section)
        if not a.no_readme and update_readme(section):
            log("README table updated")
        return 0
    scales = sorted({int(s) for s in a.scales.split(",") if s.strip()})
    if not any(kv.startswith("spark.ui.enabled=") for kv in a.spark):
        # the per-stage times come from the Spark UI's REST API, which a local run turns off
        # by default (jobs.analyze_calls.LOCAL_SPARK_DEFAULTS)
        a.spark.append("spark.ui.enabled=true")
    a.conf = effective_conf(a.conf, a.spark, a.variant)
    base_scales = [] if a.skip_baseline else sorted({int(s) for s in a.baseline_scales.split(",") if s.strip()})
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from ser_lib import artifact as art
    from ser_lib.config import JobConfig
    model_dir = Path(a.model or JobConfig.load(a.conf).model_path or art.DEFAULT_ARTIFACT)

    log(f"datasets for scales {scales}")
    datasets = {s: dataset.scale_set(s, a.corpora, log) for s in sorted(set(scales) | set(base_scales))}
    seen: list[dict] = []

    def check(phase: str) -> None:
        heavy = heavy_processes()
        if heavy:
            log(f"CONTENDED during {phase}: " + "; ".join(f"{h['cpu_percent']}% {h['cmd'][:70]}" for h in heavy))
            for h in heavy:
                seen.append({**h, "phase": phase})

    if a.wait_idle > 0:
        left = wait_idle(a.wait_idle)
        if left:
            log("still contended after waiting; measuring anyway (results will be marked invalid)")
    check("start")
    sampler = RSSSampler()
    sampler.start()
    res: dict = {"date": dt.date.today().isoformat(), "started": dt.datetime.now(dt.timezone.utc).isoformat(),
                 "scales": scales, "master": a.master, "conf": a.conf or "conf/job.yaml", "spark_overrides": a.spark,
                 "repeat": a.repeat,
                 "datasets": {s: {k: v for k, v in d.items() if k != "files"} for s, d in datasets.items()},
                 "provenance": provenance(model_dir), "stft_floor": {}, "baseline": {}}
    try:
        # 1. the floor
        for s in scales:
            sampler.phase = "stft_floor"
            log(f"STFT floor x{s}")
            res["stft_floor"][s] = run_floor(datasets[s]["files"])
            log(f"  {res['stft_floor'][s]}")
        check("stft_floor")
        # 2. the baseline
        for s in base_scales:
            sampler.phase = "baseline"
            log(f"seed-style baseline x{s} ({datasets[s]['n_files']} files, {datasets[s]['audio_s'] / 60:.1f} min)")
            res["baseline"][s] = run_baseline(datasets[s]["files"], s)
            log(f"  {res['baseline'][s]}")
            check("baseline")
        # 3. the job
        from jobs.analyze_calls import build_spark
        from jobs.spark_config import SparkConfig
        sampler.phase = "job"
        log("SparkSession start")
        t0 = time.perf_counter()
        spark = build_spark(SparkConfig.load(a.conf), a.master)
        jvm_s = time.perf_counter() - t0
        spark.sparkContext.setLogLevel("ERROR")
        par = spark.sparkContext.defaultParallelism
        log(f"  JVM + session {jvm_s:.1f} s, parallelism {par}")
        cold_scale = scales[0]
        log(f"job cold x{cold_scale}")
        cold = run_job(spark, datasets[cold_scale]["dir"], f"cold-x{cold_scale}", a.conf, a.model, par)
        cold["scale"] = cold_scale
        log(f"  {cold['x_realtime']}x in {cold['e2e_s']} s; {cold['breakdown_s']}")
        check("job_cold")
        warm = {}
        for r in range(a.repeat):  # rounds over all scales; per scale the fastest round is kept
            for s in scales:
                log(f"job warm x{s} (round {r + 1}/{a.repeat})")
                one = run_job(spark, datasets[s]["dir"], f"warm-x{s}", a.conf, a.model, par)
                log(f"  {one['x_realtime']}x in {one['e2e_s']} s; {one['breakdown_s']}")
                check(f"job_x{s}")
                rounds = (warm[s]["rounds_e2e_s"] if s in warm else []) + [one["e2e_s"]]
                if s not in warm or one["e2e_s"] < warm[s]["e2e_s"]:
                    warm[s] = one
                warm[s]["rounds_e2e_s"] = rounds
        if a.profile:
            s = scales[-1]
            log(f"job warm x{s} under py-spy")
            prof = profiled_run(spark, datasets[s]["dir"], f"profile-x{s}", a.conf, a.model, par)
            log(f"  {prof['x_realtime']}x in {prof['e2e_s']} s (profiled)")
        spark.stop()
        loads = max(cold.get("model_loads") or 0, 1)
        model_load = cold["worker_stage_s"].get("model_load_s", 0.0) / loads
        extra = cold["e2e_s"] - warm[cold_scale]["e2e_s"]
        res["job"] = {
            "parallelism": par, "cold": cold, "warm": warm,
            "startup": {"jvm_start_s": round(jvm_s, 2),
                        # per Python worker (they load in parallel): model runtime import and model load
                        "model_load_s": round(model_load, 2),
                        # the start-up overhead: JVM + model load
                        "startup_s": round(jvm_s + model_load, 2),
                        # everything the first run of a session costs over a warm run: Python worker
                        # start and imports, model load, the JVM's first (not yet JIT-compiled) jobs
                        "first_run_extra_s": round(extra, 2),
                        "cold_start_s": round(jvm_s + extra, 2)},
            "fit": linear_fit([(warm[s]["audio_s"], warm[s]["e2e_s"]) for s in scales]),
        }
        if a.profile:
            res["job"]["profile"] = prof
    finally:
        sampler.stop()
    res["rss_mb"] = {
        "driver": sampler.peaks.get("job", {}).get("driver"),
        "jvm": sampler.peaks.get("job", {}).get("jvm"),
        "python_workers": sampler.peaks.get("job", {}).get("python_workers"),
        "baseline": sampler.peaks.get("baseline", {}).get("baseline"),
        "stft_floor_workers": sampler.peaks.get("stft_floor", {}).get("floor_workers"),
    }
    res["rss_by_phase"] = sampler.peaks
    res["contention_seen"] = seen
    res["contended"] = bool(seen)
    res["notes"] = a.notes
    res["targets"] = evaluate(res)
    res["finished"] = dt.datetime.now(dt.timezone.utc).isoformat()

    out = Path(a.out) if a.out else RESULTS / f"{res['date']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=str) + "\n")
    log(f"wrote {out}")
    section = readme_section(res)
    print(section)
    if not a.no_readme:
        if update_readme(section):
            log("README table updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
