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
            and three wall times in seconds: ``wall_s``, the whole run from its start to the
            commit (Spark and model start, listing, planning, analysis, writing);
            ``startup_s``, its part before planning; ``processing_s``, planning to commit.
        counters: ``model_loads`` (distinct loads), ``model_batches`` (UDF batches) and
            ``stage_s`` (``{stage: seconds}`` summed over Python workers).
    """
    recs = pd.DataFrame(records, columns=manifest.COLUMNS)
    carried_failure = recs["status"].eq("skipped") & recs["error"].notna() & recs["output_run_id"].notna()
    ignored = recs["status"].eq("skipped") & recs["error"].notna() & recs["output_run_id"].isna()
    recording = recs["kind"].isin(["file", "member"]) & ~ignored
    ok = recs["status"].eq("ok") & recording
    failed = recs["status"].eq("failed")
    n_failed = int(failed.sum())
    n_internal = int((failed & recs["error"].fillna("").str.startswith(INTERNAL + ":")).sum())
    n_skipped = int((recs["status"].eq("skipped") & recs["error"].isna() & recording).sum())
    audio_s = float(recs.loc[ok, "duration_s"].fillna(0).sum())
    wall, processing = run["wall_s"], run.get("processing_s", run["wall_s"])
    return {
        **{k: run[k] for k in ("run_id", "run_date", "input", "output", "model_version")},
        # absolute: ser serve plays recordings only from under the inputs of committed runs
        "input": run["input"] if "://" in run["input"] else os.path.abspath(run["input"]),
        # files = recordings and failed inputs this run accounted for
        "files": int(ok.sum()) + n_skipped + n_failed + int(carried_failure.sum()), "processed": int(ok.sum()),
        "skipped": n_skipped,
        # failures met by this run (new or changed inputs, or retried): exit code 1; of which
        # internal: an unexpected error (a bug, logged with its traceback, exit code 3), not bad input
        "failed": n_failed, "internal": n_internal,
        "still_failed": int(carried_failure.sum()),  # failed before, unchanged, not retried (--reprocess failed)
        "ignored": int(ignored.sum()),  # not recordings, hidden, duplicates
        "archives": int(recs["kind"].eq("archive").sum()), "inputs": len(recs),
        "failed_reasons": {k: int(v) for k, v in recs.loc[recs["status"].eq("failed"), "error"]
                           .str.split(":").str[0].value_counts().sort_index().items()},
        "segments": int(n_segments),
        "audio_hours": round(audio_s / 3600, 4), "wall_s": round(wall, 2), "startup_s": round(run["startup_s"], 2),
        "processing_s": round(processing, 2),
        # audio analysed per second of processing (Spark and model start excluded)
        "x_realtime": round(audio_s / processing, 1) if processing > 0 else None,
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
