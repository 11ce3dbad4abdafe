"""A run's summary (printed, logged and stored in ``OUT/_runs/<run_id>.json``) and the lines
naming its failed inputs, from the run's manifest records (no Spark)."""
from __future__ import annotations

import os

import pandas as pd

from jobs import manifest
from jobs.commit import Store, table_dir
from ser_lib.process import INTERNAL


#: exit code of a committed run (``ser analyze``, ``spark-submit jobs/analyze_calls.py``) in
#: which some recordings failed on an unexpected error (``internal`` > 0; jobs/cli_errors.py)
EXIT_INTERNAL_INPUTS = 3


def exit_code(summary: dict) -> int:
    """The exit code of a committed run: 3 when any input failed on an unexpected error
    (``internal``), else 1 when any input failed (bad input), else 0."""
    if summary.get("internal"):
        return EXIT_INTERNAL_INPUTS
    return 1 if summary["failed"] else 0


def run_summary(records: list[dict], n_segments: int, run: dict, counters: dict) -> dict:
    """The counts of a run.

    Args:
        records: the run's manifest records (:data:`jobs.manifest.COLUMNS` keys).
        n_segments: segment rows written.
        run: ``run_id``, ``run_date``, ``input``, ``output``, ``model_version`` (copied first),
            ``wall_s`` and ``startup_s`` (seconds).
        counters: ``model_loads`` (distinct loads), ``model_batches`` (UDF batches) and
            ``stage_s`` (``{stage: seconds}`` summed over Python workers).
    """
    recs = pd.DataFrame(records, columns=manifest.COLUMNS)
    recording = recs["kind"].isin(["file", "member"]) & ~(recs["status"].eq("skipped") & recs["error"].notna())
    ok = recs["status"].eq("ok") & recording
    failed = recs["status"].eq("failed")
    n_failed = int(failed.sum())
    n_internal = int((failed & recs["error"].fillna("").str.startswith(INTERNAL + ":")).sum())
    n_skipped = int((recs["status"].eq("skipped") & recs["error"].isna() & recording).sum())
    audio_s = float(recs.loc[ok, "duration_s"].fillna(0).sum())
    wall = run["wall_s"]
    return {
        **{k: run[k] for k in ("run_id", "run_date", "input", "output", "model_version")},
        # absolute: ser serve plays recordings only from under the inputs of committed runs
        "input": run["input"] if "://" in run["input"] else os.path.abspath(run["input"]),
        # files = recordings and failed inputs this run accounted for: processed + skipped + failed
        "files": int(ok.sum()) + n_skipped + n_failed, "processed": int(ok.sum()), "skipped": n_skipped,
        # failed inputs, of which internal: an unexpected error (a bug, logged with its traceback),
        # not bad input; the rest are bad input (see failed_reasons)
        "failed": n_failed, "internal": n_internal,
        "ignored": int((recs["status"].eq("skipped") & recs["error"].notna()).sum()),  # not recordings
        "archives": int(recs["kind"].eq("archive").sum()), "inputs": len(recs),
        "failed_reasons": {k: int(v) for k, v in recs.loc[recs["status"].eq("failed"), "error"]
                           .str.split(":").str[0].value_counts().sort_index().items()},
        "segments": int(n_segments),
        "audio_hours": round(audio_s / 3600, 4), "wall_s": round(wall, 2), "startup_s": round(run["startup_s"], 2),
        "x_realtime": round(audio_s / wall, 1) if wall > 0 else None,
        "model_loads": counters["model_loads"], "model_batches": counters["model_batches"],
        # seconds summed over Python workers (they run in parallel, so the sum can exceed wall_s)
        "worker_stage_s": {k: round(v, 2) for k, v in sorted(counters["stage_s"].items())},
    }


def source_name(r: dict) -> str:
    """An input as one string: ``path`` or ``path!member``."""
    return r["source_path"] + (f"!{r['member']}" if isinstance(r.get("member"), str) else "")


def named_inputs(records: list[dict], warned: list[tuple[str, str]], show: int, store: Store, run_date: str,
                 run_id: str) -> dict:
    """Summary fields that name inputs: the first ``show`` failed inputs and recordings with
    warnings (in path order), their count, and a DuckDB query listing all of them."""
    failed = sorted((source_name(r), r["error"]) for r in records if r["status"] == "failed")
    out = {"warnings": len(warned),
           "failed_inputs": [{"input": i, "error": e} for i, e in failed[:max(0, show)]],
           "warned_inputs": [{"input": i, "warnings": w} for i, w in warned[:max(0, show)]]}
    if failed:
        out["failed_query"] = (f"SELECT source_path, member, error FROM read_parquet("
                               f"'{store.uri(table_dir('errors', run_date, run_id))}/*.parquet') ORDER BY ALL")
    if warned:
        out["warnings_query"] = (f"SELECT source_path, member, warnings FROM read_parquet("
                                 f"'{store.uri(table_dir('calls', run_date, run_id))}/*.parquet') "
                                 "WHERE warnings IS NOT NULL ORDER BY ALL")
    return out


def notice_lines(summary: dict) -> list[str]:
    """Human lines naming a run's failed inputs and recordings with warnings (for stderr)."""
    lines = []
    for n, what, shown, field, query in (
            (summary["failed"], "input(s) failed", summary.get("failed_inputs", []), "error", "failed_query"),
            (summary.get("warnings", 0), "recording(s) analysed with warnings", summary.get("warned_inputs", []),
             "warnings", "warnings_query")):
        if not n:
            continue
        lines.append(f"{n} {what}" + (f"; the first {len(shown)}:" if len(shown) < n else ":"))
        lines += [f"  {x['input']}: {x[field]}" for x in shown]
        lines.append(f"  all of them (DuckDB): {summary[query]}")
    return lines
