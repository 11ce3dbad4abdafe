"""Archive members streamed in place, with limits (no Spark)."""
from __future__ import annotations

import io
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
