"""A call's original recording as something a browser plays, for the call page's player.

The recording is found only through the call's ``calls`` row (``source_path`` and
``member`` written by the job): nothing from a URL is ever turned into a path. And the
row is not trusted either: a ``source_path`` is read only when it lies under an input
root (``IN``) that a committed run recorded in its summary (:func:`under_roots`,
symbolic links resolved), so an ``OUT`` written by someone else cannot make the server
read an arbitrary file. Plain files
in a format browsers decode are served as they are; archive members are read with the
job's archive reader (:func:`ser_lib.archive.iter_members`, the configured zip-bomb limits
apply) and other encodings (mu-law / A-law WAV, 8-bit, ...) are decoded with the job's
decoder (soundfile) and re-encoded as 16-bit PCM WAV, block by block. What is prepared is
written only under the app's temporary directory and kept there for a few calls (LRU).
"""
from __future__ import annotations

import io
import os
import shutil
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import soundfile as sf

from ser_lib.archive import ArchiveError, ArchiveLimits, archive_kind, iter_members

#: ``audio_format`` values (``FORMAT/SUBTYPE``) that browsers (Chromium, Firefox) play natively
_NATIVE = {"WAV/PCM_16", "FLAC/PCM_16", "FLAC/PCM_24", "FLAC/PCM_S8", "OGG/VORBIS", "OGG/OPUS",
           "MP3/MPEG_LAYER_III", "MPEG/MPEG_LAYER_III"}
_MIME = {"WAV": "audio/wav", "FLAC": "audio/flac", "OGG": "audio/ogg", "MP3": "audio/mpeg", "MPEG": "audio/mpeg"}
_BLOCK = 1 << 16  # frames re-encoded at a time


class AudioUnavailable(Exception):
    """The call's recording cannot be played (gone, unreadable, or failed to decode); the
    message says why, for the page."""


@dataclass
class Playable:
    """A file to send: ``path`` (under the temp dir, or the original recording) and its MIME type."""

    path: str
    mimetype: str


def under_roots(path: str, roots: list[str]) -> bool:
    """Whether ``path`` (a recording's ``source_path``) lies under one of ``roots``.

    Local paths are compared after resolving symbolic links and ``..`` (a link inside IN
    to a file elsewhere does not count); URIs (``hdfs://``, ``s3://``) by prefix after
    normalising ``..``. A relative root (recorded by runs before input roots were stored
    absolute) matches a path that has it as a whole-folder part: ``in`` matches
    ``/work/in/a.wav``, not ``/work/bin/a.wav``.
    """
    if "://" in path:
        if ".." in path.split("/"):
            return False
        return any("://" in r and path.startswith(r.rstrip("/") + "/") for r in roots)
    real = os.path.realpath(path)
    for root in roots:
        if "://" in root:
            continue
        if os.path.isabs(root):
            r = os.path.realpath(root)
            if real == r or real.startswith(r.rstrip(os.sep) + os.sep):
                return True
        else:
            rel = os.path.normpath(root)
            if rel in (".", "..") or rel.startswith(".." + os.sep):
                continue  # the run's working folder is unknown here: nothing to anchor to
            norm = os.path.normpath(path)
            for p in (norm, real):  # both the path as listed and where it leads
                if not (os.sep + rel + os.sep in p or p.endswith(os.sep + rel)):
                    break
            else:
                return True
    return False


class AudioCache:
    """Prepares and caches playable audio of calls under ``tmpdir``.

    Args:
        tmpdir: the app's temporary directory (created by the caller, removed at exit).
        limits: archive limits of the job configuration.
        keep: prepared files kept (least recently used dropped first).
    """

    def __init__(self, tmpdir: str, limits: ArchiveLimits, keep: int = 8):
        self.dir = os.path.join(tmpdir, "audio")
        os.makedirs(self.dir, exist_ok=True)
        self.limits = limits
        self.keep = keep
        self._lru: OrderedDict[str, Playable] = OrderedDict()
        self._lock = threading.Lock()
        self._busy: dict[str, threading.Lock] = {}

    def playable(self, call: dict, roots: list[str] | None = None) -> Playable:
        """Playable audio of a ``calls`` row (``call_id, source_path, member, audio_format``).

        Args:
            roots: the input roots of the committed runs (:meth:`Results.input_roots`); the
                recording must lie under one of them. None: not checked (library use).

        Raises:
            AudioUnavailable: the recording is not under ``roots``, is gone, or cannot be
                read or decoded.
        """
        cid = call["call_id"]
        if roots is not None and not under_roots(call["source_path"], roots):
            raise AudioUnavailable("the recording is not under the input folders of the committed runs "
                                   "(its calls row may have been edited); it is not served")
        with self._lock:
            hit = self._lru.get(cid)
            if hit is not None and os.path.exists(hit.path):
                self._lru.move_to_end(cid)
                return hit
            lock = self._busy.setdefault(cid, threading.Lock())
        with lock:  # one preparation per call at a time
            with self._lock:
                hit = self._lru.get(cid)
            if hit is not None and os.path.exists(hit.path):
                return hit
            p = self._prepare(call)
            with self._lock:
                self._lru[cid] = p
                self._lru.move_to_end(cid)
                while len(self._lru) > self.keep:
                    _, old = self._lru.popitem(last=False)
                    if old.path.startswith(self.dir + os.sep):
                        try:
                            os.remove(old.path)
                        except OSError:
                            pass
            return p

    def _prepare(self, call: dict) -> Playable:
        fmt = call.get("audio_format") or ""
        container = fmt.split("/")[0]
        mime = _MIME.get(container, "application/octet-stream")
        member, path, cid = call.get("member"), call["source_path"], call["call_id"]
        native = fmt in _NATIVE
        if member is not None:
            data = self._member_bytes(path, member)
            if not native:
                return self._transcode(cid, io.BytesIO(data))
            dst = os.path.join(self.dir, f"{cid}.{container.lower()}")
            self._write_atomic(dst, lambda f: f.write(data))
            return Playable(dst, mime)
        if "://" in path:  # HDFS, S3 ...: copied here first (a browser seeks, remote reads would not)
            dst = os.path.join(self.dir, f"{cid}.src")
            self._write_atomic(dst, lambda f: self._copy(path, f))
            return self._transcode(cid, dst) if not native else Playable(dst, mime)
        if not os.path.isfile(path):
            raise AudioUnavailable(f"the recording is no longer at {path}")
        return Playable(path, mime) if native else self._transcode(cid, path)

    def _member_bytes(self, path: str, member: str) -> bytes:
        """The member's bytes, read with the job's archive reader and limits."""
        kind = archive_kind(path)
        if kind is None:
            raise AudioUnavailable(f"{path} is not an archive the job reads")
        try:
            with self._open(path) as f:
                for m in iter_members(f, kind, self.limits, lambda name: name == member):
                    if m.name != member:
                        continue
                    if m.status != "read":
                        raise AudioUnavailable(f"cannot read member {member}: {m.error}")
                    with m.data as data:  # played back whole: bounded by max_member_bytes
                        return data.read()
        except ArchiveError as err:
            raise AudioUnavailable(f"cannot read archive {path}: {err}") from err
        except OSError as err:
            raise AudioUnavailable(f"cannot read {path}: {err.strerror or err}") from err
        raise AudioUnavailable(f"member {member} is no longer in {path}")

    def _copy(self, uri: str, out) -> None:
        try:
            with self._open(uri) as f:
                shutil.copyfileobj(f, out, 1 << 20)
        except OSError as err:
            raise AudioUnavailable(f"cannot read {uri}: {err}") from err

    @staticmethod
    def _open(path: str):
        if "://" not in path:
            if not os.path.isfile(path):
                raise AudioUnavailable(f"the recording is no longer at {path}")
            return open(path, "rb")
        from pyarrow import fs  # HDFS, S3 ... as the job reads them
        filesystem, p = fs.FileSystem.from_uri(path)
        return filesystem.open_input_file(p)

    def _transcode(self, cid: str, source) -> Playable:
        """Decode with soundfile (the job's decoder) and write 16-bit PCM WAV, block by block."""
        dst = os.path.join(self.dir, f"{cid}.wav")

        def write(tmp_path: str) -> None:
            with sf.SoundFile(source) as src, sf.SoundFile(tmp_path, "w", src.samplerate, src.channels,
                                                           "PCM_16", format="WAV") as out:
                for block in src.blocks(blocksize=_BLOCK, dtype="float32", always_2d=True):
                    out.write(block)
        try:
            self._write_atomic(dst, write, by_path=True)
        except (sf.LibsndfileError, RuntimeError, TypeError, OSError) as err:
            raise AudioUnavailable(f"cannot decode the recording: {err}") from err
        return Playable(dst, "audio/wav")

    @staticmethod
    def _write_atomic(dst: str, fill, by_path: bool = False) -> None:
        tmp = f"{dst}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            if by_path:
                fill(tmp)
            else:
                with open(tmp, "wb") as f:
                    fill(f)
            os.replace(tmp, dst)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
