"""What the executors' packed environment holds, and what each packing step saves.

Builds the cluster recipe's environment (docs/cluster.md) in a temporary folder -- the
project's wheel and venv-pack into a fresh ``python3 -m venv`` -- or copies ``--env``,
then packs it step by step, each step adding one lever to the previous ones:

* ``recipe-before``: the recipe before ``jobs/pack_env.py`` (venv-pack ``--compress-level 1``
  leaving out ``*/tests/*``, pip, setuptools);
* ``b-clutter``: + installers, packers, bytecode caches, C headers, Cython
  sources, ``RECORD`` files, the wheel's copy of the default model;
* ``c-strip``: + ``strip --strip-unneeded`` of the shared objects (where still loadable);
* ``c-link-duplicates``: + files with equal bytes as links to one copy;
* ``d-pyarrow-flight``: + pyarrow's Flight libraries and C++ test hooks;
* ``e-litert-plugins``: + LiteRT's WebGPU accelerator, NPU plugins and tools;
* ``e-sklearn``: + scikit-learn (librosa imports it lazily; the job never does);
* ``e-onnxruntime``: + onnxruntime (the default model runs on LiteRT);
* ``e-s3``: + pyarrow's S3 file system;
* ``f-zlib-6`` / ``f-zlib-9``: the same files at zlib's gzip level 6 / 9;
* ``f-libdeflate-12``: libdeflate's level 12: ``jobs.pack_env``'s default, packed by it;
* ``with-s3`` / ``with-onnxruntime``: ``--with s3`` / ``--with onnxruntime`` at level 12.

Each step's figures are the real archive's size (``packed_mb``) and the sum of its members'
sizes (``unpacked_mb``). Per distribution (files attributed by the dist-info ``RECORD``
files; ``(other)`` is the rest: ``bin/``, ``pyvenv.cfg``, ...) it reports unpacked MB and
zlib-compressed MB of each file (level 1 before, level 9 after), before (``recipe-before``) and
after (``f-libdeflate-12``); the per-file sum is within a few % of the tar.gz. PySpark is not in
the environment (executors import their Spark's own); its size is reported from the
driver's install for reference.

    PYTHONPATH=$PWD .venv/bin/python -m bench.exec_env [--env PATH] [--out FILE]

Sizes only, no timings: the load of the machine does not change them.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zlib
from pathlib import Path

from jobs import pack_env

REPO = Path(__file__).resolve().parents[1]
OLD_EXCLUDE = ["*/tests/*", "lib/python3*/site-packages/pip/*", "lib/python3*/site-packages/setuptools/*"]
LEVERS = {  # step -> EXCLUDE patterns (by substring) it adds
    "d-pyarrow-flight": ("pyarrow/",),
    "e-litert-plugins": ("ai_edge_litert/", "litert-benchmark"),
    "e-sklearn": ("sklearn", "scikit_learn"),
}


def build_env(work: Path) -> Path:
    """The recipe's first two lines: the wheel, a fresh venv with it and venv-pack."""
    dist = work / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(REPO)], check=True)
    (wheel,) = dist.glob("ser_calls-*.whl")
    env = dist / "exec-env"
    subprocess.run(["python3", "-m", "venv", str(env)], check=True)
    subprocess.run([str(env / "bin" / "pip"), "install", "-q", str(wheel), "venv-pack", "deflate"], check=True)
    return env


def owners(env: Path) -> dict[str, str]:
    """Relative path (from ``env``) -> distribution name, from every ``RECORD``."""
    out = {}
    for site in env.glob(pack_env.SITE):
        for record in site.glob("*.dist-info/RECORD"):
            name = record.parent.name.split("-")[0].lower()
            for line in record.read_text().splitlines():
                rel = line.split(",")[0]
                if rel:
                    out[os.path.normpath(str((site / rel).relative_to(env)))] = name
    return out


def by_distribution(env: Path, archive: Path, level: int) -> dict[str, dict]:
    """Per distribution: files, unpacked MB, zlib MB at ``level`` of the archive's members."""
    own = owners(env)
    out: dict[str, dict] = {}
    with tarfile.open(archive) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
    for name in names:
        src = env / name
        if not src.is_file():  # venv-pack's own additions (activate scripts)
            continue
        data = src.read_bytes()
        row = out.setdefault(own.get(os.path.normpath(name), "(other)"), {"files": 0, "unpacked_mb": 0.0,
                                                                           "packed_mb": 0.0})
        row["files"] += 1
        row["unpacked_mb"] += len(data) / 1e6
        row["packed_mb"] += len(zlib.compress(data, level)) / 1e6
    return {k: {"files": v["files"], "unpacked_mb": round(v["unpacked_mb"], 1), "packed_mb": round(v["packed_mb"], 1)}
            for k, v in sorted(out.items(), key=lambda kv: -kv[1]["packed_mb"])}


def _sizes(archive: Path) -> dict:
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
    return {"packed_mb": round(archive.stat().st_size / 1e6, 1),
            "unpacked_mb": round(sum(m.size for m in members) / 1e6, 1), "files": sum(m.isfile() for m in members)}


def venv_pack(env: Path, out: Path, level: int, patterns: list[str]) -> dict:
    import venv_pack
    venv_pack.pack(prefix=str(env), output=str(out), force=True, compress_level=level,
                   filters=[("exclude", p) for p in patterns])
    return _sizes(out)


def pack_env_cli(env: Path, out: Path, *args: str) -> dict:
    """``python -m jobs.pack_env`` of this checkout, run by the environment's Python (it has
    libdeflate), files left as they are (``--no-strip``: the steps above did that)."""
    subprocess.run([str(env / "bin" / "python"), "-m", "jobs.pack_env", str(env), str(out), "--no-strip", *args],
                   check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    return _sizes(out)


def pyspark_size() -> dict:
    """The driver's PySpark install (jars included): unpacked MB, zlib-1 MB."""
    import pyspark
    root = Path(pyspark.__file__).parent
    raw = packed = 0
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            data = p.read_bytes()
            raw += len(data)
            packed += len(zlib.compress(data, 1))
    return {"version": pyspark.__version__, "unpacked_mb": round(raw / 1e6, 1), "packed_mb_level1": round(packed / 1e6, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--env", type=Path, help="an environment built as the recipe does (copied, not changed)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / f"exec-env-{dt.date.today()}.json")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="exec-env-") as tmp:
        work = Path(tmp)
        if args.env:
            env = work / "exec-env"
            shutil.copytree(args.env, env, symlinks=True)
        else:
            env = build_env(work)
        archive = work / "exec-env.tar.gz"
        steps: dict[str, dict] = {}
        steps["recipe-before"] = venv_pack(env, archive, 1, OLD_EXCLUDE)
        before = by_distribution(env, archive, 1)
        lever_patterns = {p for subs in LEVERS.values() for p in pack_env.EXCLUDE if any(s in p for s in subs)}
        patterns = OLD_EXCLUDE + [p for p in pack_env.EXCLUDE if p not in lever_patterns]
        steps["b-clutter"] = venv_pack(env, archive, 1, patterns)
        stripped = pack_env.strip_shared_objects(env)
        steps["c-strip"] = venv_pack(env, archive, 1, patterns)
        links = pack_env.link_duplicates(env, pack_env.exclude_patterns())
        steps["c-link-duplicates"] = venv_pack(env, archive, 1, patterns)
        for step, subs in LEVERS.items():
            patterns += [p for p in pack_env.EXCLUDE if any(s in p for s in subs)]
            steps[step] = venv_pack(env, archive, 1, patterns)
        for name in ("onnxruntime", "s3"):
            patterns += list(pack_env.OPTIONAL[name][0])
            steps[f"e-{name}"] = venv_pack(env, archive, 1, patterns)
        assert set(patterns) == set(OLD_EXCLUDE + pack_env.exclude_patterns()), "levers != pack_env"
        steps["f-zlib-6"] = venv_pack(env, archive, 6, patterns)
        steps["f-zlib-9"] = venv_pack(env, archive, 9, patterns)
        steps["with-onnxruntime"] = pack_env_cli(env, archive, "--with", "onnxruntime")
        steps["with-s3"] = pack_env_cli(env, archive, "--with", "s3")
        steps["f-libdeflate-12"] = pack_env_cli(env, archive)
        after = by_distribution(env, archive, 9)
    result = {
        "date": str(dt.date.today()),
        "python": platform.python_version(), "machine": platform.machine(),
        "steps": steps,
        "strip": {"stripped": stripped["stripped"], "saved_mb": round(stripped["saved_bytes"] / 1e6, 1),
                  "kept_unstripped (stripping breaks their ELF alignment)": stripped["kept"]},
        "links": {"saved_mb": round(links["saved_bytes"] / 1e6, 1), "linked": links["linked"]},
        "by_distribution_before": before,
        "by_distribution_after": after,
        "pyspark_not_in_env (driver's install, for reference)": pyspark_size(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for step, row in steps.items():
        print(f"{step:28s} {row['packed_mb']:7.1f} MB packed {row['unpacked_mb']:7.1f} MB unpacked {row['files']:6d} files")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
