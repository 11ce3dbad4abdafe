"""Balanced analysis tasks: which input each Spark task reads.

The analysis runs one Spark task per core (``spark.tasks_per_core``), so a run lasts as long
as its busiest task. Hash partitioning by path handed the two cores of the benchmark's 4x
input 1.26 s and 1.80 s of work (bench/results/2026-12-02.json): a 16 kHz mono PCM call and
an 8 kHz stereo mu-law call of equal length differ 2x in bytes but 1:2 in work. Here every
input gets an estimated cost in channel-seconds, and the inputs are packed into the tasks
by the longest-processing-time-first rule (Graham 1969, "Bounds on multiprocessing timing
anomalies": the busiest task gets at most 4/3 of the optimum).
"""
from __future__ import annotations

import heapq
import os
import stat

#: Bytes per second of audio assumed where the header can't be read (remote stores, archives,
#: non-audio files): 16-bit PCM at 16 kHz, mono.
FALLBACK_BYTES_PER_S = 32_000.0


def task_cost(task: dict) -> float:
    """Estimated analysis work of a task, in channel-seconds of audio (>= 0).

    A local regular file whose header ``soundfile.info`` reads: duration (s) x channels. Else
    (archives, remote URIs, unreadable or non-audio files; their error rows cost next to
    nothing): ``size_bytes`` / :data:`FALLBACK_BYTES_PER_S`. Never raises: a header is only
    a hint, the executor that reads the file reports what is wrong with it.

    Args:
        task: a task dict of :func:`jobs.manifest.plan` (``task_kind``, ``source_path``,
            ``size_bytes``).
    """
    size = float(task.get("size_bytes") or 0)
    path = task["source_path"]
    if task["task_kind"] == "file" and "://" not in path:
        try:
            # S_ISREG first: opening a pipe that replaced a listed file would block the driver
            if stat.S_ISREG(os.stat(path).st_mode):
                import soundfile as sf
                info = sf.info(path)
                if info.samplerate > 0 and info.frames > 0:
                    return info.frames / info.samplerate * max(1, info.channels)
        except Exception:  # noqa: BLE001 - any failure falls back to the size
            pass
    return size / FALLBACK_BYTES_PER_S


def balanced_bins(costs: list[float], n_bins: int) -> list[list[int]]:
    """Pack items into ``n_bins`` bins of near-equal total cost (longest processing time first).

    Args:
        costs: the cost of each item (any non-negative unit).
        n_bins: number of bins, >= 1.

    Returns:
        ``min(n_bins, len(costs))`` non-empty lists of item indices (each index exactly once),
        each list in ascending index order; the largest item goes into the first bin.

    Raises:
        ValueError: ``n_bins`` < 1.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    n = min(n_bins, len(costs))
    bins: list[list[int]] = [[] for _ in range(n)]
    heap = [(0.0, b) for b in range(n)]  # (load, bin): the least loaded bin pops first
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        load, b = heapq.heappop(heap)
        bins[b].append(i)
        heapq.heappush(heap, (load + costs[i], b))
    return [sorted(b) for b in bins]
