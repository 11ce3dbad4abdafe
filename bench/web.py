"""Response time of ``ser serve`` over a results root with 100,000 calls.

    .venv/bin/python -m bench.web [--calls 100000] [--runs 100] [--out .cache/bench/web-out] [--repeat 20]

Builds (once; reused while ``--calls``/``--runs``/``--seed`` match) a results root in the
job's layout and schema without audio: ``--templates`` synthetic calls (stereo agent /
customer, some mono, 2 % failed; 60-600 s; per window an emotion or no speech, in runs)
are scored into segments and summarised with the job's own code
(:func:`ser_lib.timeline.summarize_call`, :func:`jobs.call_tables.calls_table`), then
replicated under new call ids and paths into ``--runs`` nightly runs of ``calls/``,
``segments/`` and ``errors/``, each committed with :mod:`jobs.commit` like a real run.

Then starts ``ser serve`` on it (a subprocess, as a user does) and times HTTP requests
(first request after start, then ``--repeat`` more: median, p95, max) for the calls page
and API with typical filters, sorts and a deep page, one call's page and API, and the runs
page. Writes ``bench/results/web-<date>.json``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
LABELS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
MODEL = "bench-synthetic-1"


def template_calls(n: int, rng: np.random.Generator):
    """``n`` synthetic calls: (facts, summary, segments DataFrame or None) each."""
    from ser_lib.timeline import summarize_call
    out = []
    for i in range(n):
        if rng.random() < 0.02:
            out.append(({"status": "failed", "error": "corrupt: cannot decode: Error in WAV file. No 'data' chunk marker.",
                         "duration_s": None, "sample_rate": None, "n_channels": None, "audio_format": None}, None, None))
            continue
        dur = float(rng.uniform(60, 600))
        names = ["agent", "customer"] if rng.random() < 0.8 else ["mono"]
        bias = rng.dirichlet(np.full(len(LABELS), 0.6))  # each call leans to some emotions
        frames = []
        for ch in names:
            n_win = int(dur) - 1
            start = np.arange(n_win, dtype=np.float64)
            end = np.minimum(start + 2.0, dur)
            # runs of equal state: no speech, or one emotion, lasting a few seconds
            speech, emo = [], []
            while len(speech) < n_win:
                k = int(rng.geometric(1 / 6))
                sp = rng.random() < 0.65
                e = LABELS[rng.choice(len(LABELS), p=bias)] if sp else None
                speech += [sp] * k
                emo += [e] * k
            speech, emo = np.array(speech[:n_win]), np.array(emo[:n_win], dtype=object)
            conf = np.where(speech, rng.uniform(0.3, 1.0, n_win), np.nan).astype(np.float32)
            probs = np.full((n_win, len(LABELS)), np.nan, np.float32)
            rest = rng.dirichlet(np.ones(len(LABELS) - 1), n_win).astype(np.float32)
            for j, lab in enumerate(LABELS):
                others = [k for k in range(len(LABELS)) if k != j]
                m = speech & (emo == lab)
                probs[m, j] = conf[m]
                probs[np.ix_(m, others)] = rest[m] * (1 - conf[m])[:, None]
            f = pd.DataFrame({"channel": ch, "segment_index": np.arange(n_win, dtype=np.int32), "start_s": start,
                              "end_s": end, "is_speech": speech, "emotion": emo, "confidence": conf})
            for j, lab in enumerate(LABELS):
                f[f"p_{lab}"] = probs[:, j]
            frames.append(f)
        seg = pd.concat(frames, ignore_index=True)
        summary = summarize_call(seg, LABELS)
        facts = {"status": "ok", "error": None, "duration_s": dur, "sample_rate": 8000 if len(names) == 2 else 16000,
                 "n_channels": len(names), "audio_format": "WAV/ULAW" if len(names) == 2 else "WAV/PCM_16"}
        out.append((facts, summary, seg))
    return out


def build(out: Path, n_calls: int, n_runs: int, n_templates: int, seed: int) -> dict:
    from pyspark.sql.pandas.types import to_arrow_schema

    from jobs import manifest, schemas
    from jobs.call_tables import calls_table
    from jobs.commit import TABLES, Store, commit, new_staging, table_dir
    from ser_lib.process import call_id
    rng = np.random.default_rng(seed)
    t0 = time.time()
    templates = template_calls(n_templates, rng)
    facts = [{**f, "call_id": f"t{i:015d}", "source_path": f"/t/{i}.wav", "member": None}
             for i, (f, _, _) in enumerate(templates)]
    summaries = {f"t{i:015d}": s for i, (_, s, _) in enumerate(templates) if s is not None}
    tcalls = calls_table(facts, summaries, LABELS, MODEL)
    seg_schema = pa.schema([f for f in to_arrow_schema(schemas.segment_rows(LABELS))
                            if f.name in ["call_id", "source_path", "channel", "segment_index", "start_s", "end_s",
                                          "is_speech", "emotion", "confidence"] + [f"p_{e}" for e in LABELS]]
                           + [pa.field("model_version", pa.string())])
    seg_cols = [f.name for f in seg_schema]
    tseg_tables = [None if s is None else pa.Table.from_pandas(s.assign(call_id="", source_path="", model_version=MODEL)
                                                               [seg_cols], schema=seg_schema, preserve_index=False)
                   for _, _, s in templates]
    seg_all = pa.concat_tables([t for t in tseg_tables if t is not None])
    offsets, o = [], 0
    for t in tseg_tables:
        offsets.append((o, 0 if t is None else t.num_rows))
        o += 0 if t is None else t.num_rows
    t_templates = time.time() - t0

    if out.exists():
        shutil.rmtree(out)
    store = Store(str(out))
    per_run = -(-n_calls // n_runs)
    first = dt.date(2026, 1, 1)
    made = 0
    for r in range(n_runs):
        k = min(per_run, n_calls - made)
        if k <= 0:
            break
        run_date = (first + dt.timedelta(days=r)).isoformat()
        run_id = run_date.replace("-", "") + "-bench0000"
        pick = rng.integers(0, n_templates, k)
        paths = np.array([f"/data/calls/{run_date}/queue-{(made + j) % 37:02d}/call-{made + j:06d}.wav"
                          for j in range(k)], dtype=object)
        ids = np.array([call_id(p) for p in paths], dtype=object)  # sha1 prefixes, as the job's
        calls = tcalls.take(pa.array(pick))
        calls = calls.set_column(calls.schema.get_field_index("call_id"), "call_id", pa.array(ids, pa.string()))
        calls = calls.set_column(calls.schema.get_field_index("source_path"), "source_path", pa.array(paths, pa.string()))
        idx = np.concatenate([np.arange(offsets[p][0], offsets[p][0] + offsets[p][1]) for p in pick])
        counts = np.array([offsets[p][1] for p in pick])
        seg = seg_all.take(pa.array(idx))
        seg = seg.set_column(0, "call_id", pa.array(np.repeat(ids, counts), pa.string()))
        seg = seg.set_column(1, "source_path", pa.array(np.repeat(paths, counts), pa.string()))
        failed = np.array([calls["status"][j].as_py() == "failed" for j in range(k)])
        errors = manifest.to_arrow([{"source_path": paths[j], "member": None, "kind": "file", "call_id": ids[j],
                                     "status": "failed", "error": templates[pick[j]][0]["error"],
                                     "output_run_id": run_id, "output_run_date": run_date, "model_version": MODEL}
                                    for j in np.flatnonzero(failed)])
        staging = new_staging(run_id)
        store.mkdirs(staging.table("segments", run_date))
        pq.write_table(seg, store.p(f"{staging.table('segments', run_date)}/part-00000.parquet"))
        manifest.write(store, staging.table("calls", run_date), calls)
        written = {"segments", "calls"}
        if errors.num_rows:
            manifest.write(store, staging.table("errors", run_date), errors)
            written.add("errors")
        actions = [{"src": staging.table(t, run_date), "dst": table_dir(t, run_date, run_id)} if t in written
                   else {"src": None, "dst": table_dir(t, run_date, run_id)} for t in TABLES]
        ok = ~failed
        audio_s = float(np.nansum(np.array([calls["duration_s"][j].as_py() or 0 for j in range(k)])))
        summary = {"run_id": run_id, "run_date": run_date, "input": f"/data/calls/{run_date}", "output": str(out),
                   "model_version": MODEL, "files": k, "processed": int(ok.sum()), "skipped": 0,
                   "failed": int(failed.sum()), "segments": seg.num_rows, "audio_hours": round(audio_s / 3600, 4),
                   "wall_s": 0.0, "synthetic": True}
        commit(store, staging, run_date, actions, summary)
        made += k
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    info = {"calls": made, "runs": n_runs, "templates": n_templates, "seed": seed, "bytes_on_disk": size,
            "segments_rows": int(sum(pq.ParquetFile(p).metadata.num_rows for p in (out / "segments").rglob("*.parquet"))),
            "build_s": round(time.time() - t0, 1), "templates_s": round(t_templates, 1)}
    (out / "_bench.json").write_text(json.dumps(info))
    return info


def timed(url: str, repeat: int) -> dict:
    def one():
        t = time.perf_counter()
        with urllib.request.urlopen(url, timeout=120) as r:
            body = r.read()
            status = r.status
        return (time.perf_counter() - t) * 1000, len(body), status
    first, size, status = one()
    warm = [one()[0] for _ in range(repeat)]
    q = statistics.quantiles(warm, n=20) if len(warm) >= 2 else warm
    return {"status": status, "bytes": size, "first_ms": round(first, 1), "median_ms": round(statistics.median(warm), 1),
            "p95_ms": round(q[-1], 1), "max_ms": round(max(warm), 1), "n": repeat}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=100, help="nightly runs the calls are spread over")
    p.add_argument("--templates", type=int, default=400, help="distinct synthetic calls replicated")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(REPO / ".cache" / "bench" / "web-out"))
    p.add_argument("--repeat", type=int, default=20, help="timed requests per URL after the first")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--results", default=None, help="JSON path [default: bench/results/web-<date>.json]")
    a = p.parse_args(argv)

    out = Path(a.out)
    marker = out / "_bench.json"
    info = json.loads(marker.read_text()) if marker.is_file() else None
    if not info or (info["calls"], info["runs"], info["templates"], info["seed"]) != (a.calls, a.runs, a.templates,
                                                                                       a.seed):
        print(f"building {a.calls:,} calls in {a.runs} runs under {out} ...", flush=True)
        info = build(out, a.calls, a.runs, a.templates, a.seed)
    print(json.dumps(info), flush=True)

    from jobs.web.results import CallQuery, Results
    from jobs.web.server import free_port
    some = Results(str(out)).list_calls(CallQuery(status="ok", per_page=1))[1][0]  # a call to open
    port = a.port or free_port()
    proc = subprocess.Popen([sys.executable, "-m", "jobs.cli", "serve", str(out), "--port", str(port)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    t0 = time.time()
    while True:
        try:
            urllib.request.urlopen(base + "/vendor/plotly-LICENSE.txt", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() - t0 > 60:
                proc.kill()
                print(proc.stdout.read(), file=sys.stderr)
                return 1
            time.sleep(0.2)
    startup = time.time() - t0
    day = some["run_date"]
    urls = {
        "calls page (default: newest first, 50 rows)": "/",
        "calls page, customer angry": "/?emotion=angry&channel=customer",
        "calls page, text in path + status ok": "/?q=queue-07&status=ok",
        "calls page, most negative first, 200 rows": "/?sort=negative&order=desc&per_page=200",
        "calls page, page 1000 (offset 49,950)": "/?page=1000",
        "calls page, one run date": f"/?date_from={day}&date_to={day}",
        "GET /api/calls": "/api/calls",
        "GET /api/calls customer angry": "/api/calls?emotion=angry&channel=customer",
        "call page (timeline + segments)": f"/calls/{some['call_id']}",
        "GET /api/calls/<id>": f"/api/calls/{some['call_id']}",
        "runs page": "/runs",
        "GET /api/runs": "/api/runs",
    }
    load = os.getloadavg()
    results = {}
    try:
        for name, path in urls.items():
            results[name] = {"url": path, **timed(base + path, a.repeat)}
            r = results[name]
            print(f"{name:48s} first {r['first_ms']:8.1f} ms   median {r['median_ms']:8.1f} ms   "
                  f"p95 {r['p95_ms']:8.1f} ms   {r['bytes']:>9,} B", flush=True)
    finally:
        proc.terminate()
        proc.wait(10)
    from importlib.metadata import version
    doc = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m bench.web " + " ".join(argv if argv is not None else sys.argv[1:]),
        "dataset": info, "server_startup_s": round(startup, 2), "requests": results,
        "machine": {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version(),
                    "duckdb": version("duckdb"), "flask": version("flask"), "waitress": version("waitress")},
        "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True).stdout.strip(),
    }
    dest = Path(a.results) if a.results else REPO / "bench" / "results" / f"web-{dt.date.today().isoformat()}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"results: {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
