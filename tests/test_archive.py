"""Archive members streamed in place, with limits (no Spark)."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import zipfile

import numpy as np
import pytest

from ser_lib.archive import ArchiveError, ArchiveLimits, archive_kind, iter_members

IS_REC = lambda n: n.lower().endswith((".wav", ".flac"))  # noqa: E731


def _tar(members: dict[str, bytes], mode="w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize("kind,build", [("tar", _tar), ("tar", lambda m: _tar(m, "w")), ("zip", _zip)])
def test_members_and_names_are_identifiers_only(kind, build):
    data = build({"a.wav": b"x" * 100, "../../etc/evil.wav": b"y" * 10, "notes.txt": b"hi"})
    got = list(iter_members(io.BytesIO(data), kind, ArchiveLimits(), IS_REC))
    assert [(m.name, m.status) for m in got] == [("a.wav", "read"), ("../../etc/evil.wav", "read"),
                                                ("notes.txt", "skipped")]
    assert got[0].data.read() == b"x" * 100 and len(got[0].sha256) == 64


def test_limits():
    lim = ArchiveLimits(max_members=2, max_member_bytes=1000, max_total_bytes=10_000, max_ratio=50)
    got = []
    with pytest.raises(ArchiveError) as e:
        for m in iter_members(io.BytesIO(_tar({f"{i}.wav": b"x" for i in range(4)})), "tar", lim, IS_REC):
            got.append(m)
    assert e.value.reason == "too_many_members" and len(got) == 2
    big = list(iter_members(io.BytesIO(_zip({"big.wav": b"\0" * 5000})), "zip", lim, IS_REC))
    assert big[0].status == "failed" and big[0].error.startswith("too_large")
    # the compression ratio is checked on the bytes actually read, not on declared sizes
    lim2 = ArchiveLimits(max_member_bytes=3 << 20, max_ratio=50)
    bomb = list(iter_members(io.BytesIO(_zip({"bomb.wav": b"\0" * (2 << 20)})), "zip", lim2, IS_REC))
    assert bomb[0].status == "failed" and bomb[0].error.startswith("compression_ratio")
    with pytest.raises(ArchiveError) as e:
        list(iter_members(io.BytesIO(_tar({"z.wav": b"\0" * (3 << 20)})), "tar", lim2, IS_REC))
    assert e.value.reason == "compression_ratio"


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_corrupt_archive(kind):
    with pytest.raises(ArchiveError) as e:
        list(iter_members(io.BytesIO(b"this is not an archive" * 10), kind, ArchiveLimits(), IS_REC))
    assert e.value.reason == "corrupt"


@pytest.mark.parametrize("name,kind", [("a.ZIP", "zip"), ("b.tar", "tar"), ("c.Tar.Gz", "tar"), ("d.tgz", "tar"),
                                       ("e.wav", None), ("f.gz", None), ("zip", None), ("g.zip.wav", None)])
def test_archive_kind_from_the_name_suffix(name, kind):
    assert archive_kind(name) == kind


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_a_member_larger_than_the_spool_is_copied_to_disk_not_held_in_memory(kind):
    """The memory cost of a member is bounded by spool_bytes, not by max_member_bytes."""
    import hashlib
    import tracemalloc
    big = np.random.default_rng(0).integers(0, 256, size=24 << 20, dtype=np.uint8).tobytes()  # 24 MiB, incompressible
    data = _tar({"big.wav": big}, "w") if kind == "tar" else _zip({"big.wav": big})
    tracemalloc.start()
    got = list(iter_members(io.BytesIO(data), kind, ArchiveLimits(), IS_REC, spool_bytes=1 << 20))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    (m,) = got
    assert m.status == "read" and m.size == len(big) and m.sha256 == hashlib.sha256(big).hexdigest()
    assert peak < 8 << 20, f"{peak / 2**20:.1f} MiB traced while copying a 24 MiB member with a 1 MiB spool"
    assert m.data.read() == big
    m.data.close()


# ---------------------------------------------------------------- member names
NAME = "Müşteri çağrı 01 – ñ.wav"


def _patch_zip(data: bytes, utf8_flag: bool, host: int) -> bytes:
    """Clear (or keep) general purpose bit 11 in every local and central header and set the
    central directory's host system (``version made by``, high byte)."""
    b = bytearray(data)
    for sig, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = b.find(sig)
        while i >= 0:
            flags = int.from_bytes(b[i + flag_at:i + flag_at + 2], "little")
            flags = flags | 0x800 if utf8_flag else flags & ~0x800
            b[i + flag_at:i + flag_at + 2] = flags.to_bytes(2, "little")
            if sig == b"PK\x01\x02":
                b[i + 5] = host
            i = b.find(sig, i + 4)
    return bytes(b)


def _names(data: bytes) -> list[str]:
    return [m.name for m in iter_members(io.BytesIO(data), "zip", ArchiveLimits(), lambda n: True)]


def test_zip_member_names_are_decoded_as_unzip_does(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:  # Python sets the UTF-8 flag for a non-ASCII name
        z.writestr(NAME, b"x")
    flagged = buf.getvalue()
    assert _names(flagged) == [NAME]
    # the same UTF-8 bytes without the flag, written on Unix (Linux zip): UTF-8
    assert _names(_patch_zip(flagged, False, 3)) == [NAME]
    # ... written on MS-DOS/Windows: code page 437, as unzip reads it
    assert _names(_patch_zip(flagged, False, 0)) == [NAME.encode("utf-8").decode("cp437")]
    # bytes that are not UTF-8 from a Unix host (a Latin-1 name): cp437, never an error
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("caf\u00e9.wav", b"x")
    latin = _patch_zip(buf.getvalue().replace("café".encode("utf-8"), b"caf\xe9~"), False, 3)
    assert _names(latin) == ["caf\u0398~.wav"]  # 0xE9 in cp437 is Θ


def test_zip_member_name_from_the_unicode_path_extra_field():
    import struct
    import zlib
    raw = NAME.encode("cp1254", errors="replace")  # what a Windows tool might put in the header
    info = zipfile.ZipInfo(raw.decode("cp437"))
    info.create_system = 0
    info.flag_bits = 0
    info.extra = struct.pack("<HHBI", 0x7075, 5 + len(NAME.encode()), 1, zlib.crc32(raw)) + NAME.encode()
    from ser_lib.archive import zip_member_name
    info.orig_filename = info.filename
    assert zip_member_name(info) == NAME
    info.extra = struct.pack("<HHBI", 0x7075, 5 + len(NAME.encode()), 1, 12345) + NAME.encode()  # stale CRC
    assert zip_member_name(info) == raw.decode("cp437")


@pytest.mark.skipif(not shutil.which("zip"), reason="needs Info-ZIP zip (apt-get install zip)")
def test_a_zip_made_by_linux_zip_keeps_its_member_names(tmp_path):
    (tmp_path / NAME).write_bytes(b"RIFF")
    subprocess.run(["zip", "-q", "calls.zip", NAME], cwd=tmp_path, check=True,
                   env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"})
    assert _names((tmp_path / "calls.zip").read_bytes()) == [NAME]
