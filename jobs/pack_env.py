"""Pack the executors' Python environment for ``spark-submit --archives`` (docs/cluster.md).

Run with the environment's own Python (it carries this module and venv-pack)::

    dist/exec-env/bin/python -m jobs.pack_env dist/exec-env dist/exec-env.tar.gz

Steps, each measured by ``bench/exec_env.py`` (``bench/results/exec-env-2026-12-07.json``):

1. **Strip** the shared objects (``strip --strip-unneeded``, GNU binutils): symbol tables no
   process reads at run time. A stripped copy replaces a file only when its loadable segments
   still satisfy the dynamic loader's alignment rule, ``(p_vaddr - p_offset) % page == 0``
   (glibc ``_dl_map_segments``: "ELF load command address/offset not page-aligned"): libraries
   that auditwheel rewrote with ``patchelf`` (numpy.libs, scipy.libs, numba's thread pools)
   break when stripped and are kept as they are. This changes the files of ``ENV`` in place
   (a build folder: the cluster recipe's ``dist/exec-env``).
2. **Leave out** (``venv-pack --exclude``) what no executor reads: the installers, the
   packer itself, packages' test suites, bytecode caches, type stubs, C headers, pyarrow's
   Flight RPC libraries, LiteRT's WebGPU accelerator, scikit-learn (librosa imports it only
   in ``librosa.segment``/``librosa.decompose``, which the job never calls) and, unless
   ``--with-onnxruntime``, onnxruntime (the pretrained-encoder runtime, :mod:`ser_lib.encoder`;
   the default model ``models/ser-cnn`` runs on LiteRT). :data:`EXCLUDE` and
   :data:`OPTIONAL` list each pattern with its reason.
3. **Pack** with venv-pack at gzip ``--compress-level`` (default 9: the archive is built once
   and unpacked on every executor of every run; gzip is what ``--archives`` unpacks).

Without the bytecode caches each executor's Python compiles the modules it imports on first
use and writes the caches into its unpacked copy (the application's work folder), once per
executor.
"""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import click

SITE = "lib/python3*/site-packages"

#: venv-pack ``--exclude`` pattern (fnmatch on paths relative to the environment, ``*``
#: crosses ``/``) -> why executors never read it. Checked against a real run: the shared
#: objects the executors' Python workers load (``LD_DEBUG=libs``) include none of these.
EXCLUDE: dict[str, str] = {
    f"{SITE}/pip/*": "the installer",
    f"{SITE}/pip-*.dist-info/*": "the installer",
    f"{SITE}/setuptools/*": "the installer",
    f"{SITE}/setuptools-*.dist-info/*": "the installer",
    f"{SITE}/_distutils_hack/*": "the installer",
    f"{SITE}/distutils-precedence.pth": "the installer",
    f"{SITE}/venv_pack/*": "the packer",
    f"{SITE}/venv_pack-*.dist-info/*": "the packer",
    "bin/venv-pack": "the packer",
    "*/tests/*": "packages' test suites",
    "*/__pycache__/*": "bytecode caches: each executor writes its own on first import",
    "*.pyi": "type stubs",
    "*.pyx": "Cython sources (compiled into the shared objects)",
    "*.pxd": "Cython declarations",
    "*.pxi": "Cython includes",
    f"{SITE}/*.dist-info/RECORD": "pip's list of installed files (for uninstalling; the environment has no pip)",
    "include/*": "C headers",
    f"{SITE}/*/include/*": "C headers (numpy, pyarrow)",
    f"{SITE}/pyarrow/*flight*": "Arrow Flight RPC (pyarrow.flight): never imported; Spark moves Arrow batches itself",
    f"{SITE}/pyarrow/_pyarrow_cpp_tests*": "pyarrow's C++ test hooks",
    f"{SITE}/ai_edge_litert/libLiteRtWebGpuAccelerator.so": "LiteRT's WebGPU accelerator: executors run on CPU",
    f"{SITE}/ai_edge_litert/vendors/*": "LiteRT's NPU plugins (Google Tensor, Qualcomm, MediaTek, Samsung, OpenVINO)",
    f"{SITE}/ai_edge_litert/aot/*": "LiteRT's ahead-of-time compilation for NPUs",
    f"{SITE}/ai_edge_litert/tools/*": "LiteRT's model tools (benchmark, plugin applier)",
    "bin/litert-benchmark": "LiteRT's model tools (benchmark, plugin applier)",
    f"{SITE}/ser_lib/default_model/*": "the model is read on the driver only; executors get its bytes by broadcast",
    f"{SITE}/sklearn/*": "librosa imports scikit-learn only in librosa.segment / librosa.decompose (not used)",
    f"{SITE}/scikit_learn-*.dist-info/*": "see sklearn/",
    f"{SITE}/scikit_learn.libs/*": "see sklearn/",
}

#: name -> (patterns, why): left out unless ``--with-NAME``.
OPTIONAL: dict[str, tuple[tuple[str, ...], str]] = {
    "onnxruntime": ((f"{SITE}/onnxruntime/*", f"{SITE}/onnxruntime-*.dist-info/*", "bin/onnxruntime_test"),
                    "the pretrained speech encoder's runtime (ser_lib/encoder.py); the default model runs on LiteRT"),
}

_ELF_MAGIC = b"\x7fELF"


def elf_loadable(path: str | os.PathLike) -> bool:
    """Whether the dynamic loader can map ``path``'s ``PT_LOAD`` segments: for each,
    ``(p_vaddr - p_offset)`` is a multiple of the page size (glibc ``_dl_map_segments``).

    Reads the ELF64 little-endian program headers only (the wheels' x86-64 / aarch64 objects);
    any other file answers False, so it is never replaced by a stripped copy.
    """
    page = os.sysconf("SC_PAGE_SIZE")
    with open(path, "rb") as f:
        head = f.read(64)
        if len(head) < 64 or head[:4] != _ELF_MAGIC or head[4] != 2 or head[5] != 1:
            return False
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    if len(table) < phentsize * phnum:
        return False
    for i in range(phnum):
        p_type, _flags, p_offset, p_vaddr = struct.unpack_from("<IIQQ", table, i * phentsize)
        if p_type == 1 and (p_vaddr - p_offset) % page:  # PT_LOAD
            return False
    return True


def strip_shared_objects(env: str | os.PathLike, strip: str = "strip") -> dict:
    """``strip --strip-unneeded`` every shared object under ``env``'s site-packages, in place,
    keeping a file unchanged where the stripped copy fails :func:`elf_loadable` (or strip fails).

    Returns:
        ``{"stripped": n, "kept": [relative paths], "saved_bytes": n}``.

    Raises:
        click.ClickException: ``strip`` (GNU binutils) is not on PATH.
    """
    exe = shutil.which(strip)
    if exe is None:
        raise click.ClickException(f"{strip!r} not found: install GNU binutils, or pass --no-strip")
    env = Path(env)
    stripped, kept, saved = 0, [], 0
    for site in env.glob(SITE):
        for path in sorted(site.rglob("*.so*")):
            if path.is_symlink() or not path.is_file() or not elf_loadable(path):
                continue
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
                pass
            try:
                res = subprocess.run([exe, "--strip-unneeded", "-o", tmp.name, str(path)], capture_output=True)
                if res.returncode != 0 or not elf_loadable(tmp.name):
                    kept.append(str(path.relative_to(env)))
                    continue
                before, after = path.stat().st_size, os.path.getsize(tmp.name)
                shutil.copymode(path, tmp.name)
                os.replace(tmp.name, path)
                stripped += 1
                saved += before - after
            finally:
                if os.path.exists(tmp.name):
                    os.unlink(tmp.name)
    return {"stripped": stripped, "kept": kept, "saved_bytes": saved}


def exclude_patterns(with_optional: tuple[str, ...] = ()) -> list[str]:
    """The venv-pack exclude patterns: :data:`EXCLUDE` plus :data:`OPTIONAL` not asked for.

    Raises:
        click.ClickException: an unknown name in ``with_optional``.
    """
    unknown = set(with_optional) - set(OPTIONAL)
    if unknown:
        raise click.ClickException(f"unknown optional package(s) {sorted(unknown)}; known: {sorted(OPTIONAL)}")
    out = list(EXCLUDE)
    for name, (patterns, _why) in OPTIONAL.items():
        if name not in with_optional:
            out.extend(patterns)
    return out


def pack(env: str | os.PathLike, output: str | os.PathLike, compress_level: int = 9, strip: bool = True,
         with_optional: tuple[str, ...] = ()) -> dict:
    """Strip (optional), then venv-pack ``env`` into ``output`` (``.tar.gz``) without
    :func:`exclude_patterns`. Returns what was done: ``packed_bytes``, ``unpacked_bytes``
    (the archive's members), ``files``, ``strip`` (see :func:`strip_shared_objects`).

    Raises:
        click.ClickException: ``env`` is not a virtual environment, or strip is missing.
    """
    import tarfile

    import venv_pack

    env = Path(env)
    if not (env / "pyvenv.cfg").is_file():
        raise click.ClickException(f"{env} is not a virtual environment (no pyvenv.cfg)")
    stripped = strip_shared_objects(env) if strip else None
    venv_pack.pack(prefix=str(env), output=str(output), force=True, compress_level=compress_level,
                   filters=[("exclude", p) for p in exclude_patterns(with_optional)])
    with tarfile.open(output) as tar:
        members = tar.getmembers()
    return {"packed_bytes": os.path.getsize(output), "unpacked_bytes": sum(m.size for m in members),
            "files": sum(m.isfile() for m in members), "strip": stripped}


@click.command()
@click.argument("env", type=click.Path(exists=True, file_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--compress-level", type=click.IntRange(0, 9), default=9, show_default=True,
              help="gzip level of the archive (9: smallest; unpacking is as fast at any level)")
@click.option("--no-strip", is_flag=True, help="leave the shared objects unstripped (no binutils needed)")
@click.option("--with-onnxruntime", is_flag=True,
              help="keep onnxruntime: executors of a model that runs the pretrained speech encoder need it")
def main(env: str, output: str, compress_level: int, no_strip: bool, with_onnxruntime: bool) -> None:
    """Pack the virtual environment ENV into OUTPUT (.tar.gz) for spark-submit --archives:
    shared objects stripped, files executors never read left out (docs/cluster.md)."""
    done = pack(env, output, compress_level, strip=not no_strip,
                with_optional=("onnxruntime",) if with_onnxruntime else ())
    click.echo(f"{output}: {done['packed_bytes'] / 1e6:.0f} MB packed, "
               f"{done['unpacked_bytes'] / 1e6:.0f} MB unpacked, {done['files']} files", err=True)


if __name__ == "__main__":
    sys.exit(main())
