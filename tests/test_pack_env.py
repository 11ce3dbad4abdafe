"""jobs/pack_env.py, the cluster recipe's packing step, on small environments made here: strip
keeps every shared object loadable, duplicates become links, the archive leaves out what the
executors never read. The recipe itself (a real environment from PyPI, run on a standalone
cluster) is tests/test_cluster.py."""
from __future__ import annotations

import ctypes  # noqa: F401  (the probes below load libraries with it)
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import click
import pytest

from jobs import pack_env

SITE = Path(__import__("numpy").__file__).resolve().parent.parent  # this environment's site-packages


def _lib(pattern: str) -> Path:
    found = sorted(SITE.glob(pattern))
    if not found:
        pytest.skip(f"no {pattern} in this environment")
    return found[0]


def _loads(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", f"import ctypes; ctypes.CDLL({str(path)!r})"],
                          capture_output=True, text=True)


def _fake_env(root: Path) -> Path:
    env = root / "env"
    (env / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    (env / "pyvenv.cfg").write_text("home = /usr/bin\n")
    return env


@pytest.mark.skipif(shutil.which("strip") is None, reason="needs GNU binutils' strip")
def test_strip_keeps_every_shared_object_loadable(tmp_path):
    plain = _lib("_soundfile_data/libsndfile*.so")  # built and linked as is
    patched = _lib("numpy.libs/libgfortran-*.so*")  # rewritten by auditwheel's patchelf
    # the check catches what a plain strip does to the patched library: the loader refuses it
    broken = tmp_path / patched.name
    subprocess.run(["strip", "--strip-unneeded", "-o", str(broken), str(patched)], check=True)
    assert not pack_env.elf_loadable(broken)
    assert "ELF load command" in _loads(broken).stderr

    env = _fake_env(tmp_path)
    site = env / "lib" / "python3.11" / "site-packages"
    (site / "a").mkdir()
    (site / "b.libs").mkdir()
    shutil.copy(plain, site / "a" / plain.name)
    for lib in patched.parent.glob("libquadmath-*"):  # libgfortran's own dependency, found next to it
        shutil.copy(lib, site / "b.libs" / lib.name)
    shutil.copy(patched, site / "b.libs" / patched.name)
    (site / "a" / "not_elf.so").write_bytes(b"not an ELF file")
    done = pack_env.strip_shared_objects(env)
    assert f"lib/python3.11/site-packages/b.libs/{patched.name}" in done["kept"], done
    assert "lib/python3.11/site-packages/a/not_elf.so" not in done["kept"] and done["stripped"] >= 1, done
    assert (site / "a" / plain.name).stat().st_size < plain.stat().st_size
    assert (site / "b.libs" / patched.name).read_bytes() == patched.read_bytes()
    for lib in (site / "a" / plain.name, site / "b.libs" / patched.name):
        assert pack_env.elf_loadable(lib)
        res = _loads(lib)
        assert res.returncode == 0, res.stderr
    assert not pack_env.elf_loadable(site / "a" / "not_elf.so")


def test_duplicates_become_relative_links_to_a_kept_copy(tmp_path):
    env = _fake_env(tmp_path)
    site = env / "lib" / "python3.11" / "site-packages"
    data = bytes(range(256)) * 64
    for rel in ("aaa/tests/lib.so", "pkg/lib.so", "pkg/lib.so.1", "other.libs/lib.so.1.0", "pkg/small"):
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data[:100] if rel.endswith("small") else data)
    (site / "pkg" / "small2").write_bytes(data[:100])
    done = pack_env.link_duplicates(env, pack_env.exclude_patterns())
    # aaa/tests/ sorts first but is left out of the archive: never a link, never a target
    assert not (site / "aaa" / "tests" / "lib.so").is_symlink()
    assert sorted(done["linked"]) == ["lib/python3.11/site-packages/pkg/lib.so", "lib/python3.11/site-packages/pkg/lib.so.1"]
    assert done["saved_bytes"] == 2 * len(data)
    for rel in ("pkg/lib.so", "pkg/lib.so.1"):
        link = site / rel
        assert link.is_symlink() and not Path(link.readlink()).is_absolute()
        assert link.resolve() == (site / "other.libs" / "lib.so.1.0").resolve() and link.read_bytes() == data
    assert not (site / "pkg" / "small2").is_symlink()  # below min_bytes


def test_exclude_patterns_and_options():
    default = pack_env.exclude_patterns()
    assert set(pack_env.EXCLUDE) <= set(default)
    for name, (patterns, _why) in pack_env.OPTIONAL.items():
        assert set(patterns) <= set(default)
        assert not set(patterns) & set(pack_env.exclude_patterns((name,)))
    with pytest.raises(click.ClickException, match="unknown optional"):
        pack_env.exclude_patterns(("tensorflow",))


def test_pack_leaves_out_what_executors_never_read(tmp_path):
    pytest.importorskip("venv_pack")
    env = tmp_path / "exec-env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    (site,) = env.glob("lib/python3*/site-packages")
    files = {
        "keep/__init__.py": b"x = 1\n",
        "keep/data.bin": bytes(range(256)) * 64,
        "keep/copy.bin": bytes(range(256)) * 64,
        "keep/__pycache__/__init__.cpython-311.pyc": b"\0" * 10,
        "keep/tests/test_x.py": b"assert True\n",
        "keep/stub.pyi": b"x: int\n",
        "onnxruntime/__init__.py": b"",
        "pyarrow/_s3fs.cpython-311-x86_64-linux-gnu.so": b"\0",
        "pyarrow/lib.py": b"",
        "pip/__init__.py": b"",
    }
    for rel, data in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data)
    out = tmp_path / "exec-env.tar.gz"
    done = pack_env.pack(env, out, compress_level=9, with_optional=("s3",))
    with tarfile.open(out) as tar:
        listed = tar.getmembers()
    members = {m.name: m for m in listed}
    prefix = str(site.relative_to(env))
    names = {n[len(prefix) + 1:] for n in members if n.startswith(prefix + "/")}
    assert {"keep/__init__.py", "keep/stub.pyi", "keep/data.bin", "keep/copy.bin", "pyarrow/lib.py",
            "pyarrow/_s3fs.cpython-311-x86_64-linux-gnu.so"} <= names, names
    assert not names & {"keep/__pycache__/__init__.cpython-311.pyc", "keep/tests/test_x.py",
                        "onnxruntime/__init__.py", "pip/__init__.py"}, names
    assert members[f"{prefix}/keep/data.bin"].issym() != members[f"{prefix}/keep/copy.bin"].issym()
    assert done["links"]["linked"] and done["packed_bytes"] == out.stat().st_size
    assert done["unpacked_bytes"] == sum(m.size for m in listed)

    try:
        import deflate  # noqa: F401
    except ImportError:
        with pytest.raises(click.ClickException, match="pip install deflate"):
            pack_env.pack(env, out, compress_level=12)
    else:
        pack_env.pack(env, out, compress_level=12)
        with tarfile.open(out) as tar:  # libdeflate's output is plain gzip
            assert f"{prefix}/keep/data.bin" in tar.getnames()
