"""Recordings inside archives (``.zip``, ``.tar``, ``.tar.gz``/``.tgz``), read in place.

Members are streamed out of the archive one at a time, never extracted to disk: a tar
(compressed or not) is read in stream mode (``tarfile`` mode ``r|*``), so a ``.tar.gz``
is decompressed exactly once, front to back; a zip is read through its central
directory. A member's name is only ever used as an identifier (it goes into
``call_id`` and the ``member`` column); nothing is written under it, so ``../`` or
absolute names are harmless.

Limits (``archives`` in ``conf/job.yaml``) protect executors from zip bombs and junk:

* ``max_members``: members (regular files) read; more → the archive gets a failed row
  ``too_many_members`` after the first ``max_members``.
* ``max_member_bytes``: uncompressed bytes of one member; the bytes are *counted while
  reading* (a zip's declared size can lie), a bigger member is a failed member row
  ``too_large`` and is not analysed.
* ``max_total_bytes``: uncompressed bytes read from one archive; beyond → failed archive
  row ``too_large``, reading stops.
* ``max_ratio``: uncompressed / compressed bytes (per member for zip, running total for a
  compressed tar, checked once more than 1 MiB is out); beyond → failed ``compression_ratio``.

A member is copied out of the archive once, into a spooled temporary file
(:data:`SPOOL_BYTES` in memory, the rest on the executor's local disk, ``TMPDIR``), and
decoded from there in chunks: an executor holds at most ``SPOOL_BYTES`` of a member,
whatever ``max_member_bytes`` allows, and needs that much free temporary disk space.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator

from .errors import SERError

#: Archive file name suffixes (lower case) and the reader each needs.
ARCHIVE_KINDS = {".zip": "zip", ".tar": "tar", ".tar.gz": "tar", ".tgz": "tar"}
_RATIO_MIN_BYTES = 1 << 20


class ArchiveError(SERError):
    """The archive as a whole is unusable (or a limit stopped reading it); ``reason`` as in AudioError."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.reason}: {self.args[0]}"


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int = 10000
    max_member_bytes: int = 2 << 30
    max_total_bytes: int = 50 << 30
    max_ratio: float = 200.0


#: Bytes of a member held in memory; the rest of a larger member goes to a temporary file.
SPOOL_BYTES = 64 << 20


@dataclass
class Member:
    """One entry of an archive.

    ``status`` is ``read`` (``data``: its bytes as a seekable binary file at position 0, a
    :class:`tempfile.SpooledTemporaryFile` the caller should close; ``sha256`` their hash),
    ``failed`` (``error`` = ``reason: text``) or ``skipped`` (not a recording: ``error``
    says why).
    """

    name: str
    size: int
    mtime: dt.datetime | None
    status: str
    data: BinaryIO | None = None
    sha256: str | None = None
    error: str | None = None


def archive_kind(name: str) -> str | None:
    """``zip``, ``tar`` or None, from the file name's suffix (case-insensitive, :data:`ARCHIVE_KINDS`)."""
    n = name.lower()
    return next((kind for suffix, kind in ARCHIVE_KINDS.items() if n.endswith(suffix)), None)


def _read_capped(f: BinaryIO, cap: int, ratio_cap: int | None = None, spool_bytes: int = SPOOL_BYTES):
    """Copy ``f`` to a spooled temporary file, never more than ``cap`` (or ``ratio_cap``) bytes.

    Returns:
        ``((file at position 0, bytes, sha256 hex), None)``, or ``(None, reason)`` when a
        limit was passed (``too_large``, ``compression_ratio``; nothing is kept).
    """
    out = tempfile.SpooledTemporaryFile(max_size=spool_bytes)
    digest, n = hashlib.sha256(), 0
    limit = cap if ratio_cap is None else min(cap, ratio_cap)
    while True:
        b = f.read(min(1 << 20, limit + 1 - n))
        if not b:
            out.seek(0)
            return (out, n, digest.hexdigest()), None
        out.write(b)
        digest.update(b)
        n += len(b)
        if n > limit:
            out.close()
            if ratio_cap is not None and ratio_cap < cap and n > ratio_cap:
                return None, "compression_ratio"
            return None, "too_large"


def _member_row(name, mtime, copied) -> Member:
    data, size, sha = copied
    return Member(name, size, mtime, "read", data, sha)


def iter_members(fileobj: BinaryIO, kind: str, limits: ArchiveLimits,
                 is_recording: Callable[[str], bool], spool_bytes: int = SPOOL_BYTES) -> Iterator[Member]:
    """Yield the archive's members in archive order.

    Args:
        fileobj: the archive, opened for binary reading (seekable for zip).
        kind: ``zip`` or ``tar`` (see :func:`archive_kind`).
        is_recording: name → whether the member should be analysed (by extension);
            other members are yielded as ``skipped`` without reading their bytes.
        spool_bytes: bytes of a member kept in memory (the rest in a temporary file).

    Raises:
        ArchiveError: the archive cannot be read (``corrupt``), or a limit stopped it
            (``too_many_members``, ``too_large``, ``compression_ratio``); members before
            that point have been yielded.
    """
    budget = _Budget(limits)
    if kind == "zip":
        yield from _zip_members(fileobj, limits, is_recording, budget, spool_bytes)
    else:
        yield from _tar_members(fileobj, limits, is_recording, budget, spool_bytes)


class _Budget:
    """Members and uncompressed bytes read from one archive so far, against its limits."""

    def __init__(self, limits: ArchiveLimits):
        self.limits, self.count, self.total = limits, 0, 0

    def member(self) -> None:
        self.count += 1
        if self.count > self.limits.max_members:
            raise ArchiveError("too_many_members", f"more than max_members={self.limits.max_members} members; "
                                                   f"stopped after {self.limits.max_members}")

    def account(self, n_bytes: int) -> None:
        self.total += n_bytes
        if self.total > self.limits.max_total_bytes:
            raise ArchiveError("too_large",
                               f"archive expands to more than max_total_bytes={self.limits.max_total_bytes}")


#: ``ZipInfo.create_system`` values whose names ``unzip`` reads as OEM code page 437
#: (MS-DOS/FAT, OS/2 HPFS, NTFS, VFAT); any other host's names are taken as the bytes they are.
_OEM_HOSTS = {0, 6, 11, 14}
_UNICODE_PATH = 0x7075  # Info-ZIP Unicode Path extra field


def zip_member_name(info: zipfile.ZipInfo) -> str:
    """A zip member's name, decoded the way Info-ZIP ``unzip`` 6.0 does (APPNOTE.TXT 4.4.4, 4.6.9).

    1. General purpose bit 11 set: the name is UTF-8 (``zipfile`` already decoded it).
    2. Else an Info-ZIP Unicode Path extra field (0x7075) whose CRC-32 matches the header
       name: its UTF-8 name.
    3. Else a name written on MS-DOS/Windows (``create_system`` 0, 6, 11, 14): OEM code page
       437, as ``zipfile`` decodes it.
    4. Else (Unix, macOS, ...: Linux ``zip`` writes raw UTF-8 bytes without the flag): the
       bytes as UTF-8 if they are valid UTF-8, else code page 437.

    Returns:
        the name (``str``); never raises for any bytes.
    """
    if info.flag_bits & 0x800:
        return info.filename
    raw = info.orig_filename.encode("cp437")  # zipfile decoded the header bytes as cp437: lossless
    extra, i = info.extra or b"", 0
    while i + 4 <= len(extra):
        tag, size = int.from_bytes(extra[i:i + 2], "little"), int.from_bytes(extra[i + 2:i + 4], "little")
        body = extra[i + 4:i + 4 + size]
        if tag == _UNICODE_PATH and len(body) > 5 and body[0] == 1 \
                and int.from_bytes(body[1:5], "little") == zlib.crc32(raw):
            try:
                return body[5:].decode("utf-8").replace("\\", "/")
            except UnicodeDecodeError:
                break
        i += 4 + size
    if info.create_system in _OEM_HOSTS:
        return info.filename
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return info.filename


def _zip_members(fileobj: BinaryIO, limits: ArchiveLimits, is_recording, budget: _Budget,
                 spool_bytes: int = SPOOL_BYTES) -> Iterator[Member]:
    """:func:`iter_members` of a zip: read through its central directory."""
    account = budget.account
    try:
        zf = zipfile.ZipFile(fileobj)
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as err:
        raise ArchiveError("corrupt", f"cannot read zip archive: {err}") from err
    with zf:
        for info in infos:
            if info.is_dir():
                continue
            budget.member()
            mtime = dt.datetime(*info.date_time, tzinfo=dt.timezone.utc) if info.date_time[0] >= 1980 else None
            name = zip_member_name(info)
            if not is_recording(name):
                yield Member(name, info.file_size, mtime, "skipped", error="not_audio: member is not a recording (extension)")
                continue
            if info.file_size > limits.max_member_bytes:
                yield Member(name, info.file_size, mtime, "failed",
                             error=f"too_large: member declares {info.file_size} bytes > max_member_bytes={limits.max_member_bytes}")
                continue
            ratio_cap = int(max(info.compress_size, 1) * limits.max_ratio) if limits.max_ratio else None
            ratio_cap = max(ratio_cap, _RATIO_MIN_BYTES) if ratio_cap is not None else None
            try:
                with zf.open(info) as mf:
                    data, why = _read_capped(mf, limits.max_member_bytes, ratio_cap, spool_bytes)
            except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as err:
                reason = "encrypted" if "encrypted" in str(err) or "password" in str(err) else "corrupt"
                yield Member(name, info.file_size, mtime, "failed", error=f"{reason}: cannot read member: {err}")
                continue
            if data is None:
                detail = (f"expands past max_ratio={limits.max_ratio} x its {info.compress_size} compressed bytes"
                          if why == "compression_ratio" else f"more than max_member_bytes={limits.max_member_bytes}")
                yield Member(name, info.file_size, mtime, "failed", error=f"{why}: member {detail}")
                account(min(limits.max_member_bytes, ratio_cap or limits.max_member_bytes))
                continue
            account(data[1])
            yield _member_row(name, mtime, data)


def _tar_members(fileobj: BinaryIO, limits: ArchiveLimits, is_recording, budget: _Budget,
                 spool_bytes: int = SPOOL_BYTES) -> Iterator[Member]:
    """:func:`iter_members` of a tar, plain or compressed, in stream mode: one pass, decompressed once."""
    account = budget.account
    raw = fileobj
    try:
        tf = tarfile.open(fileobj=raw, mode="r|*")
    except (tarfile.TarError, OSError, EOFError, ValueError) as err:
        raise ArchiveError("corrupt", f"cannot read tar archive: {err}") from err
    compressed = tf.fileobj is not raw  # gzip/bz2/xz stream wraps the raw file
    try:
        with tf:
            for m in tf:
                if m.isdir():
                    continue
                budget.member()
                mtime = dt.datetime.fromtimestamp(m.mtime, dt.timezone.utc) if m.mtime else None
                if not m.isfile():
                    yield Member(m.name, 0, mtime, "skipped", error="not_a_file: link or special file member")
                    continue
                if not is_recording(m.name):
                    yield Member(m.name, m.size, mtime, "skipped", error="not_audio: member is not a recording (extension)")
                    continue
                if m.size > limits.max_member_bytes:
                    yield Member(m.name, m.size, mtime, "failed",
                                 error=f"too_large: member has {m.size} bytes > max_member_bytes={limits.max_member_bytes}")
                    continue
                account(m.size)
                data, why = _read_capped(tf.extractfile(m), limits.max_member_bytes, spool_bytes=spool_bytes)
                if data is None:  # pragma: no cover - tar sizes are exact
                    yield Member(m.name, m.size, mtime, "failed", error=f"{why}: member too large")
                    continue
                if data[1] < m.size:
                    data[0].close()
                    yield Member(m.name, m.size, mtime, "failed", error=f"corrupt: member truncated ({data[1]} of {m.size} bytes)")
                    continue
                total = budget.total
                if compressed and limits.max_ratio and total > _RATIO_MIN_BYTES:
                    try:
                        consumed = raw.tell()
                    except (OSError, AttributeError):
                        consumed = None
                    if consumed and total / consumed > limits.max_ratio:
                        raise ArchiveError("compression_ratio", f"archive expands {total / consumed:.0f}x > max_ratio={limits.max_ratio}")
                yield _member_row(m.name, mtime, data)
    except ArchiveError:
        raise
    except (tarfile.TarError, OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise ArchiveError("corrupt", f"cannot read tar archive: {type(err).__name__}: {err}") from err
