"""Scoring an uploaded recording: the code ``ser predict`` runs, with one loaded model.

An upload is written to a file under the app's temporary directory (never under a name
it brings), checked by content (libsndfile must recognise it as audio; extensions are
not trusted), scored by :func:`ser_lib.one_recording.predict_source` and deleted when the answer
is ready, unless a keep directory was configured. At most ``max_concurrent`` uploads are
scored at a time; more get :class:`Busy` at once instead of queueing behind long calls.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import threading
import uuid

import soundfile as sf

from ser_lib import artifact as art
from ser_lib.archive import archive_kind
from ser_lib.config import JobConfig
from ser_lib.errors import SERError
from ser_lib.models import read_bundle


class UploadError(Exception):
    """The upload is not a recording the service can score; the message says why."""


class Busy(Exception):
    """Every scoring slot is taken; try again shortly."""


class Scorer:
    """Scores uploads with one model loaded on first use.

    Args:
        cfg: the job configuration (windows, speech rule, channel names, chunk size).
        model_path: CNN artifact directory (None: ``cfg.model_path`` or the shipped one);
            ``cfg.model_variant`` says whether the encoder head is fused in (:mod:`ser_lib.models`).
        tmpdir: the app's temporary directory.
        max_concurrent: uploads scored at the same time.
        keep_dir: where to keep uploaded files (None: deleted after the answer).

    Raises:
        ArtifactError: the artifact's metadata is missing or invalid (checked at once;
            the model itself is loaded on the first upload).
    """

    def __init__(self, cfg: JobConfig, model_path: str | None, tmpdir: str, max_concurrent: int = 2,
                 keep_dir: str | None = None):
        self.cfg = cfg
        self.model_path = str(model_path or cfg.model_path or art.DEFAULT_ARTIFACT)
        # model.variant of cfg picks the CNN alone or the accurate fusion (its own version)
        self.meta = read_bundle(cfg.model_variant, self.model_path, cfg.encoder_path).meta
        self.dir = os.path.join(tmpdir, "uploads")
        os.makedirs(self.dir, exist_ok=True)
        self.keep_dir = keep_dir
        self._slots = threading.BoundedSemaphore(max(1, int(max_concurrent)))
        self._load_lock = threading.Lock()
        self._predictor = None

    @property
    def model_version(self) -> str:
        return self.meta.version

    def predictor(self):
        with self._load_lock:
            if self._predictor is None:
                from ser_lib.one_recording import load_predictor  # the model runtime: on the first upload only
                self._predictor = load_predictor(self.cfg, self.model_path)
            return self._predictor

    def score(self, stream, filename: str | None = None) -> dict:
        """Score one upload.

        Args:
            stream: a readable binary stream (the multipart part's); read to the end.
            filename: the name the client gave (only reported back, never used as a path).

        Returns:
            ``ser predict --json``'s dict (:func:`ser_lib.one_recording.predict_file`).

        Raises:
            Busy: ``max_concurrent`` uploads are being scored.
            UploadError: empty, an archive, not audio by content, or not decodable.
        """
        if not self._slots.acquire(blocking=False):
            raise Busy("the server is scoring other uploads; try again in a moment")
        path = os.path.join(self.dir, uuid.uuid4().hex)
        try:
            with open(path, "wb") as f:
                shutil.copyfileobj(stream, f, 1 << 20)
            try:
                self._check(path, filename)
                from ser_lib.one_recording import predict_source
                try:
                    return predict_source(path, self.cfg, self.predictor())
                except SERError as err:
                    raise UploadError(f"cannot analyse this recording: {err}") from err
            except UploadError as err:  # the messages of libsndfile and the decoder name the temp file
                raise UploadError(self._scrub(str(err), path, filename)) from err.__cause__
        finally:
            self._slots.release()
            self._dispose(path, filename)

    def _scrub(self, message: str, path: str, filename: str | None) -> str:
        """``message`` with no server path in it: the upload's temp file reads as the
        client's file name, any other path under the upload directory as ``upload``."""
        shown = os.path.basename(filename or "") or "upload"
        message = message.replace(path, shown).replace(os.path.realpath(path), shown)
        for d in {self.dir, os.path.realpath(self.dir)}:
            message = message.replace(d + os.sep, "").replace(d, "upload")
        return message

    @staticmethod
    def _check(path: str, filename: str | None) -> None:
        if os.path.getsize(path) == 0:
            raise UploadError("the file is empty")
        try:
            sf.info(path)  # libsndfile identifies the format from the bytes, not the name
        except (sf.LibsndfileError, RuntimeError, TypeError) as err:
            if filename and archive_kind(filename):
                raise UploadError("archives are analysed by ser analyze; upload one recording "
                                  "(WAV, FLAC, OGG/Opus or MP3)") from err
            raise UploadError("not a recording this service can read (checked by its content, not its name): "
                              f"{err}") from err

    def _dispose(self, path: str, filename: str | None) -> None:
        if not os.path.exists(path):
            return
        if self.keep_dir:
            os.makedirs(self.keep_dir, exist_ok=True)
            stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in os.path.basename(filename or "upload"))
            shutil.move(path, os.path.join(self.keep_dir, f"{stamp}-{uuid.uuid4().hex[:6]}-{safe[-80:]}"))
        else:
            os.remove(path)
