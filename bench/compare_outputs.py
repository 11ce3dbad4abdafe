"""Before/after check of a refactor: the job's output on a fixed input, compared row for row.

    python -m bench.compare_outputs inputs DIR            # build a small deterministic input set
    python -m bench.compare_outputs run DIR OUT           # ser analyze DIR OUT (fixed run id and date)
    python -m bench.compare_outputs diff OUT_A OUT_B      # compare two outputs; exit 1 on a difference

``inputs`` writes ``DIR/demo`` (``ser make-calls`` synthetic calls: mono 16 kHz and stereo
8 kHz mu-law), ``DIR/speech`` (one short call per format from ``../shared/corpora`` test
speakers when present, else left out) and ``DIR/edge`` (a corrupt ``.wav``, an empty
``.wav``, a stereo ``.flac``, a text file, a hidden file and a zip archive holding a
recording, a corrupt member and a non-recording).

``run`` calls the ``ser`` next to the running interpreter (``.venv/bin/ser`` of the tree
under test) with ``--run-id compare --run-date 2026-01-01``, so two runs on the same
input agree on every id and date column.

``diff`` reads the committed ``segments``, ``calls``, ``episodes``, ``manifest`` and
``errors`` tables of both roots, drops the columns that name a run or a clock
(:data:`IGNORED`), sorts the rows by every remaining column and compares them exactly
(floats bit for bit, NaN equal to NaN). It prints one line per table and exits 1 when
any table differs.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

TABLES = ("segments", "calls", "episodes", "manifest", "errors")
#: columns that differ between two runs of the same input for reasons other than the code
IGNORED = {"run_id", "run_date", "output_run_id", "output_run_date", "modified", "source_modified",
           "committed_at", "wall_s"}
RUN_ID, RUN_DATE = "compare", "2026-01-01"


def build_inputs(root: str) -> None:
    """The fixed input set described in the module docstring (overwrites nothing already there)."""
    import soundfile as sf

    from jobs.demo_calls import build_calls
    from ser_lib.synth import speech_like
    out = Path(root)
    if not (out / "demo").exists():
        build_calls(str(out / "demo"), corpora=str(out / "no-corpora"), n_calls=2, minutes=1.0, seed=0)
    try:
        from training.corpora import default_corpora_root
        corpora = default_corpora_root()
    except ImportError:
        corpora = None
    if corpora is not None and Path(corpora).is_dir() and not (out / "speech").exists():
        build_calls(str(out / "speech"), corpora=str(corpora), n_calls=1, minutes=1.0, seed=0)
    edge = out / "edge"
    if edge.exists():
        return
    edge.mkdir(parents=True)
    rng = np.random.default_rng(0)
    (edge / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + rng.bytes(64))
    (edge / "empty.wav").write_bytes(b"")
    (edge / "notes.txt").write_text("not a recording\n")
    (edge / ".hidden.wav").write_bytes(b"")
    stereo = np.stack([speech_like(12.0, 16000, rng), speech_like(12.0, 16000, rng)], axis=1)
    sf.write(edge / "stereo.flac", stereo, 16000, subtype="PCM_16")
    mono = speech_like(7.5, 8000, rng)
    sf.write(edge / "mono8k.wav", mono, 8000, subtype="PCM_16")
    with zipfile.ZipFile(edge / "batch.zip", "w") as z:
        z.write(edge / "mono8k.wav", "calls/a.wav")
        z.writestr("calls/bad.wav", b"RIFF" + rng.bytes(40))
        z.writestr("readme.txt", "members that are not recordings are skipped\n")


def run(input_dir: str, out: str, conf: str | None = None) -> int:
    """``ser analyze input_dir out`` with the fixed run id and date; returns its exit code."""
    ser = Path(sys.executable).with_name("ser")
    cmd = [str(ser), "analyze", input_dir, out, "--run-id", RUN_ID, "--run-date", RUN_DATE]
    if conf:
        cmd += ["--conf", conf]
    return subprocess.call(cmd)


def read_table(root: str, table: str) -> pa.Table | None:
    """Every committed partition of ``table`` under ``root`` (staging left out), or None."""
    files = sorted(p for p in Path(root, table).glob("run_date=*/run_id=*/*.parquet"))
    if not files:
        return None
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


def _canonical(t: pa.Table) -> list[tuple]:
    cols = [c for c in t.column_names if c not in IGNORED]
    rows = t.select(cols).to_pylist()
    return sorted((tuple(_key(r[c]) for c in cols) for r in rows), key=repr)


def _key(v):
    """A value that compares exactly and sorts by ``repr``: floats by their bits, NaN as one value."""
    if isinstance(v, float):
        return ("nan",) if v != v else ("f", v.hex())
    if isinstance(v, list):
        return tuple(_key(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _key(x)) for k, x in v.items()))
    return v


def diff(a: str, b: str) -> int:
    """Print a line per table; return the number of tables that differ."""
    bad = 0
    for table in TABLES:
        ta, tb = read_table(a, table), read_table(b, table)
        if ta is None or tb is None:
            same = ta is None and tb is None
            print(f"{table}: {'absent in both' if same else 'absent in one output'}")
            bad += not same
            continue
        ca = [c for c in ta.column_names if c not in IGNORED]
        cb = [c for c in tb.column_names if c not in IGNORED]
        if ca != cb:
            print(f"{table}: columns differ: {ca} vs {cb}")
            bad += 1
            continue
        ra, rb = _canonical(ta), _canonical(tb)
        if ra == rb:
            print(f"{table}: identical ({len(ra)} rows, {len(ca)} columns compared)")
            continue
        n_diff = sum(x != y for x, y in zip(ra, rb)) + abs(len(ra) - len(rb))
        print(f"{table}: DIFFERENT ({len(ra)} vs {len(rb)} rows, {n_diff} rows differ)")
        bad += 1
    return bad


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("inputs").add_argument("dir")
    r = sub.add_parser("run")
    r.add_argument("dir")
    r.add_argument("out")
    r.add_argument("--conf", default=None)
    d = sub.add_parser("diff")
    d.add_argument("a")
    d.add_argument("b")
    a = p.parse_args(argv)
    if a.cmd == "inputs":
        build_inputs(a.dir)
        return 0
    if a.cmd == "run":
        return run(a.dir, a.out, a.conf)
    return 1 if diff(a.a, a.b) else 0


if __name__ == "__main__":
    sys.exit(main())
