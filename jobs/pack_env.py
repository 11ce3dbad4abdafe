"""Pack the executors' Python environment for ``spark-submit --archives`` (docs/cluster.md).

Run with the environment's own Python (it carries this module, venv-pack and deflate)::

    dist/exec-env/bin/python -m jobs.pack_env dist/exec-env dist/exec-env.tar.gz

Steps, each measured by ``bench/exec_env.py`` (``bench/results/exec-env-2026-12-07.json``):

1. **Strip** the shared objects (``strip --strip-unneeded``, GNU binutils): symbol tables no
   process reads at run time. A stripped copy replaces a file only when its loadable segments
   still satisfy the dynamic loader's alignment rule, ``(p_vaddr - p_offset) % page == 0``
   (glibc ``_dl_map_segments``: "ELF load command address/offset not page-aligned"): libraries
   that auditwheel rewrote with ``patchelf`` (numpy.libs, scipy.libs, numba's thread pools)
   break when stripped and are kept as they are.
2. **Link duplicates**: files with the same bytes (pyarrow's ``libarrow_python.so``,
   ``.so.2600`` and ``.so.2600.1.0``, which wheels cannot ship as links; numpy's and scipy's
   copies of one libgfortran) become relative symbolic links to one of them.
3. **Leave out** (``venv-pack --exclude``) what no executor reads: the installers, the
   packers, packages' test suites, bytecode caches, C headers and Cython sources,
   pyarrow's Flight RPC, LiteRT's GPU/NPU plugins and tools, the wheel's copy of the default
   model (the driver reads it), scikit-learn (librosa imports it only in ``librosa.segment`` /
   ``librosa.decompose``, which the job never calls); and, unless asked for with ``--with``,
   onnxruntime (the pretrained speech encoder's runtime, :mod:`ser_lib.encoder`; the default
   model runs on LiteRT) and pyarrow's S3 file system (recordings under ``s3://`` URIs).
   :data:`EXCLUDE` and :data:`OPTIONAL` give each pattern with its reason.
4. **Pack**: venv-pack writes the tar; ``--compress-level`` 10-12 gzip it with libdeflate
   (the ``deflate`` package; 12, the default, is about 4 % smaller than zlib's 9), 0-9 with
   zlib. The archive is built once and unpacked on every executor of every run, and
   ``--archives`` unpacks gzip (``.tar.gz``) only.

Steps 1 and 2 change the files of ``ENV`` in place: it is a build folder (the recipe's
``dist/exec-env``). Without the bytecode caches each executor's Python compiles the modules
it imports on first use and writes the caches into its unpacked copy (the application's
work folder), once per executor.
"""
from __future__ import annotations

import fnmatch
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
#: Type stubs (``*.pyi``) stay: librosa's lazy_loader reads ``librosa/__init__.pyi`` at import.
EXCLUDE: dict[str, str] = {
    f"{SITE}/pip/*": "the installer",
    f"{SITE}/pip-*.dist-info/*": "the installer",
    f"{SITE}/setuptools/*": "the installer",
    f"{SITE}/setuptools-*.dist-info/*": "the installer",
    f"{SITE}/_distutils_hack/*": "the installer",
    f"{SITE}/distutils-precedence.pth": "the installer",
    f"{SITE}/pkg_resources/*": "the installer (setuptools' pkg_resources)",
    f"{SITE}/venv_pack/*": "the packer",
    f"{SITE}/venv_pack-*.dist-info/*": "the packer",
    "bin/venv-pack": "the packer",
    f"{SITE}/deflate*": "the packer (libdeflate)",
    "*/tests/*": "packages' test suites",
    "*/__pycache__/*": "bytecode caches: each executor writes its own on first import",
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
    f"{SITE}/ser_lib/accurate_model/*": "the accurate model's encoder and head: read on the driver, broadcast like the CNN",
    f"{SITE}/sklearn/*": "librosa imports scikit-learn only in librosa.segment / librosa.decompose (not used)",
    f"{SITE}/scikit_learn-*.dist-info/*": "see sklearn/",
    f"{SITE}/scikit_learn.libs/*": "see sklearn/",
}

#: name -> (patterns, why): left out unless ``--with NAME``.
OPTIONAL: dict[str, tuple[tuple[str, ...], str]] = {
    "onnxruntime": ((f"{SITE}/onnxruntime/*", f"{SITE}/onnxruntime-*.dist-info/*", "bin/onnxruntime_test"),
                    "the pretrained speech encoder's runtime (ser_lib/encoder.py); the default model runs on LiteRT"),
    "s3": ((f"{SITE}/pyarrow/libarrow_s3.so*", f"{SITE}/pyarrow/_s3fs.*"),
           "pyarrow's S3 file system: executors read recordings under s3:// URIs with it"),
}

_ELF_MAGIC = b"\x7fELF"


def elf_loadable(path: str | os.PathLike) -> bool:
    """Whether the dynamic loader can map ``path``'s ``PT_LOAD`` segments: for each,
    ``(p_vaddr - p_offset)`` is a multiple of the page size and of ``p_align`` (glibc
    ``_dl_map_object_from_fd``: "ELF load command address/offset not page-aligned" / "not
    properly aligned").

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
        p_type, _flags, p_offset, p_vaddr, _paddr, _filesz, _memsz, p_align = struct.unpack_from(
            "<IIQQQQQQ", table, i * phentsize)
        if p_type == 1 and ((p_vaddr - p_offset) % page or (p_align > 1 and (p_vaddr - p_offset) % p_align)):
            return False  # a PT_LOAD segment glibc refuses to map
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


def _excluded(rel: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(rel, p) for p in patterns)  # as venv-pack's Env.exclude


def link_duplicates(env: str | os.PathLike, exclude: list[str], min_bytes: int = 4096) -> dict:
    """Replace files of ``env``'s site-packages that repeat another's bytes (sha256; at least
    ``min_bytes``) by relative symbolic links to the first of them in path order, in place.
    Files matching an ``exclude`` pattern are neither linked nor link targets.

    Returns:
        ``{"linked": [relative paths], "saved_bytes": n}``.
    """
    import hashlib

    env = Path(env)
    first: dict[tuple[int, str], Path] = {}
    linked, saved = [], 0
    for site in env.glob(SITE):
        for path in sorted(p for p in site.rglob("*") if p.is_file() and not p.is_symlink()):
            size = path.stat().st_size
            if size < min_bytes or _excluded(str(path.relative_to(env)), exclude):
                continue
            key = (size, hashlib.sha256(path.read_bytes()).hexdigest())
            if key not in first:
                first[key] = path
                continue
            target = os.path.relpath(first[key], path.parent)
            path.unlink()
            path.symlink_to(target)
            linked.append(str(path.relative_to(env)))
            saved += size
    return {"linked": linked, "saved_bytes": saved}


def pack(env: str | os.PathLike, output: str | os.PathLike, compress_level: int = 12, strip: bool = True,
         with_optional: tuple[str, ...] = ()) -> dict:
    """Strip and link duplicates (unless ``strip`` is False), then venv-pack ``env`` into
    ``output`` (``.tar.gz``) without :func:`exclude_patterns`, gzip level ``compress_level``
    (10-12: libdeflate, 0-9: zlib).

    Returns:
        ``packed_bytes``, ``unpacked_bytes`` (the archive's members), ``files``, ``strip``
        (:func:`strip_shared_objects`) and ``links`` (:func:`link_duplicates`), None when not run.

    Raises:
        click.ClickException: ``env`` is not a virtual environment, strip is missing, or a
            level above 9 without the ``deflate`` package.
    """
    import tarfile

    import venv_pack

    env, output = Path(env), Path(output)
    if not (env / "pyvenv.cfg").is_file():
        raise click.ClickException(f"{env} is not a virtual environment (no pyvenv.cfg)")
    if compress_level > 9:
        try:
            import deflate
        except ImportError:
            raise click.ClickException(f"--compress-level {compress_level} needs libdeflate: pip install deflate "
                                       "(or pass --compress-level 9)") from None
    patterns = exclude_patterns(with_optional)
    stripped = strip_shared_objects(env) if strip else None
    links = link_duplicates(env, patterns) if strip else None
    for site in env.glob(SITE):  # a link kept in the archive must point at a file kept in it
        for link in (p for p in site.rglob("*") if p.is_symlink()):
            target = Path(os.path.normpath(link.parent / os.readlink(link)))
            if (not _excluded(str(link.relative_to(env)), patterns) and target.is_relative_to(env)
                    and _excluded(str(target.relative_to(env)), patterns)):
                raise click.ClickException(f"{link} links to {target}, which this packing leaves out: {env} was "
                                           "packed before with other --with options; build it afresh")
    filters = [("exclude", p) for p in patterns]
    if compress_level <= 9:
        venv_pack.pack(prefix=str(env), output=str(output), force=True, compress_level=compress_level, filters=filters)
    else:
        with tempfile.TemporaryDirectory(dir=output.parent) as tmp:
            tar = Path(tmp) / "env.tar"
            venv_pack.pack(prefix=str(env), output=str(tar), force=True, filters=filters)
            output.write_bytes(deflate.gzip_compress(tar.read_bytes(), compress_level))
    with tarfile.open(output) as tar:
        members = tar.getmembers()
    return {"packed_bytes": output.stat().st_size, "unpacked_bytes": sum(m.size for m in members),
            "files": sum(m.isfile() for m in members), "strip": stripped, "links": links}


@click.command()
@click.argument("env", type=click.Path(exists=True, file_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--with", "with_optional", multiple=True, type=click.Choice(sorted(OPTIONAL)),
              help="keep an optional part: onnxruntime (a model that runs the pretrained speech encoder), "
                   "s3 (recordings under s3:// URIs); repeatable")
@click.option("--compress-level", type=click.IntRange(0, 12), default=12, show_default=True,
              help="gzip level: 10-12 libdeflate (needs the deflate package), 0-9 zlib; unpacking is as fast "
                   "at any level")
@click.option("--no-strip", is_flag=True,
              help="leave the environment's files as they are: no stripping (no binutils needed), no links")
def main(env: str, output: str, with_optional: tuple[str, ...], compress_level: int, no_strip: bool) -> None:
    """Pack the virtual environment ENV into OUTPUT (.tar.gz) for spark-submit --archives:
    shared objects stripped, duplicates linked, files executors never read left out
    (docs/cluster.md). Changes ENV's files in place."""
    done = pack(env, output, compress_level, strip=not no_strip, with_optional=with_optional)
    click.echo(f"{output}: {done['packed_bytes'] / 1e6:.1f} MB packed, "
               f"{done['unpacked_bytes'] / 1e6:.1f} MB unpacked, {done['files']} files", err=True)


if __name__ == "__main__":
    sys.exit(main())
