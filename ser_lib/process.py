"""One task (a file, or an archive and its members) → the job's rows, without Spark.

:func:`process_task` is the one path from an input to rows: hash the file, skip it when
its content is unchanged, else decode and score it (:func:`ser_lib.scoring.score_recording`)
and build its segment rows (:func:`segment_columns`) and its input row with the call
summary; an archive is streamed member by member (:func:`ser_lib.archive.iter_members`)
with the same rules per member. The Spark job's ``mapInPandas`` function turns these rows
into record batches; ``ser predict`` and the web upload page use :func:`segment_columns`
and :func:`segment_records` through :mod:`ser_lib.one_recording`.

Rows come in two shapes:

* :class:`Segments`: one channel's windows as columns (numpy arrays, scalars repeated);
* a ``dict``: one ``row_kind='input'`` row (a file, an archive or a member) with its
  manifest facts (``status`` ok / failed / skipped, ``error``) and, for an analysed
  recording, its call summary (:func:`ser_lib.scoring.summarize`).

Every task yields exactly one input row per input it saw.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from .archive import ArchiveError, archive_kind, iter_members
from .config import JobConfig
from .dimensions import arousal, valence
from .errors import ArtifactError, SERError
from .labels import is_probability_column, probability_column
from .scoring import ScoredChannel, score_recording, summarize

log = logging.getLogger("ser.process")
#: ``error`` prefix of an input that failed on an unexpected exception (a bug, not bad input)
INTERNAL = "internal"


def internal_error(fields: dict, err: Exception) -> str:
    """Log ``err`` with its traceback (the executor's log; ``ser predict``'s stderr) and
    return the failed row's error text ``internal: Type: message``: counted apart from bad
    input (the run summary's ``internal``, its own exit code)."""
    where = fields.get("source_path", "?") + (f"!{fields['member']}" if fields.get("member") else "")
    log.error("internal error analysing %s", where, exc_info=err)
    return f"{INTERNAL}: {type(err).__name__}: {err}"


def call_id(source_path: str, member: str | None = None) -> str:
    """Stable call identifier: the first 16 hex digits of SHA-1 over the source
    path (and archive member, if any). The same file analysed again gets the same id."""
    key = source_path if member is None else f"{source_path}!{member}"
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


def check_model(cfg: JobConfig, meta) -> None:
    """Raise :class:`ArtifactError` (or ``ConfigError``) when the model ``meta``
    (:class:`ser_lib.artifact.ArtifactMeta`) cannot score ``cfg``'s windows: another window
    length, or a hop off the model's frame grid."""
    meta.check_compatible()
    if abs(meta.feature_config.window_s - cfg.window_s) > 1e-9:
        raise ArtifactError(f"windows.window_s={cfg.window_s} s but model {meta.version} was trained "
                            f"on {meta.feature_config.window_s} s windows")
    meta.feature_config.grid(cfg.hop_s)  # validates hop_s against the frame grid


# ---------------------------------------------------------------- segment rows
def segment_columns(ch: ScoredChannel, labels: list[str]) -> dict:
    """The ``segments`` columns of one scored channel: ``channel`` (str), ``segment_index``
    (int32), ``start_s``/``end_s`` (float64 seconds), ``is_speech`` (bool), ``emotion``
    (object, None where not speech), ``confidence`` (float32, NaN where not speech),
    ``emotion_smoothed``, ``arousal`` and ``valence`` (float32 in [0, 1] from the window's raw
    probabilities, :func:`ser_lib.dimensions.arousal` / :func:`~ser_lib.dimensions.valence`;
    NaN where not speech), ``level_db`` and ``level_rel_db`` (float32 dB, the window's active
    level and that against the channel's median, :mod:`ser_lib.vocal_level`; NaN where not
    speech) and one float32 ``p_<label>`` column per label
    (:func:`ser_lib.labels.probability_column`), in that order; arrays of ``len(ch)``."""
    cols = {"channel": ch.channel, "segment_index": np.arange(len(ch), dtype=np.int32), "start_s": ch.start_s,
            "end_s": ch.end_s, "is_speech": ch.speech, "emotion": ch.emotion, "confidence": ch.confidence,
            "emotion_smoothed": ch.emotion_smoothed,
            "arousal": arousal(ch.probs, labels).astype(np.float32),
            "valence": valence(ch.probs, labels).astype(np.float32),
            **dict(zip(("level_db", "level_rel_db"), ch.levels()))}
    for j, lab in enumerate(labels):
        cols[probability_column(lab)] = ch.probs[:, j]
    return cols


def segment_records(cols: dict) -> list[dict]:
    """:func:`segment_columns` as one dict of Python values per window (JSON-ready):
    ``confidence``, ``arousal``, ``valence``, the levels and the probabilities are None where
    ``is_speech`` is False (and a level is None where NaN: a speech window without an active frame)."""
    speech = cols["is_speech"]
    out = []
    for i in range(len(speech)):
        s = bool(speech[i])
        row = {}
        for k, v in cols.items():
            if not isinstance(v, np.ndarray):
                row[k] = v
            elif k in ("confidence", "arousal", "valence") or is_probability_column(k):
                row[k] = float(v[i]) if s else None
            elif k in ("level_db", "level_rel_db"):
                row[k] = float(v[i]) if s and np.isfinite(v[i]) else None
            elif v.dtype == object:
                row[k] = v[i]
            else:
                row[k] = v[i].item()
        out.append(row)
    return out


@dataclass
class Segments:
    """Segment rows of one channel of one call: ``columns`` (:func:`segment_columns` plus
    ``row_kind``, ``call_id``, ``source_path``, ``status``), ``n`` rows."""

    columns: dict
    n: int


# ---------------------------------------------------------------- tasks
@dataclass(frozen=True)
class Task:
    """One input an executor reads (see :func:`jobs.manifest.plan`).

    Attributes:
        kind: ``file`` or ``archive``.
        source_path: local path or URI.
        size_bytes, modified_us: the listing's size and mtime (microseconds since the epoch).
        prior: JSON of the baseline that lets an unchanged input be skipped: for a file
            ``{sha, out_run, out_date, model, duration_s}`` or null, for an archive
            ``{member: baseline}``.
    """

    kind: str
    source_path: str
    size_bytes: int | None
    modified_us: int | None
    prior: str | None


def open_source(uri: str):
    """Something soundfile can read: local paths as they are, other file systems' files as
    seekable pyarrow file objects (read in chunks, never whole).

    Raises:
        OSError: an ``s3://`` URI where pyarrow has no S3 file system (an executors'
            environment packed without ``--with s3``), or the file cannot be opened.
    """
    if "://" not in uri:
        return uri
    from pyarrow import fs  # HDFS, S3, GCS ... as configured on the cluster
    if uri.lower().startswith("s3://") and "S3FileSystem" in getattr(fs, "_not_imported", ()):
        # pyarrow's own error would be "Unrecognized filesystem type in URI"
        raise OSError(f"this Python's pyarrow has no S3 file system, needed for {uri}: an executors' "
                      "environment packed without it (python -m jobs.pack_env ... --with s3, docs/cluster.md)")
    filesystem, path = fs.FileSystem.from_uri(uri)
    return filesystem.open_input_file(path)


def file_sha256(uri: str, block: int = 1 << 20) -> str:
    """sha256 (hex) of a file's bytes, local path or URI, read in ``block``-byte pieces.

    Raises:
        OSError: the file cannot be read.
    """
    h = hashlib.sha256()
    with (open(uri, "rb") if "://" not in uri else open_source(uri)) as f:
        while True:
            b = f.read(block)
            if not b:
                return h.hexdigest()
            h.update(b)


def us(t) -> int | None:
    """A timestamp (datetime, pandas Timestamp or None) as microseconds since the epoch."""
    return None if t is None else int(pd.Timestamp(t).value // 1000)


def process_task(task: Task, predictor, cfg: JobConfig, timings: dict | None = None,
                 on_recording: Callable[[float], None] | None = None) -> Iterator[Segments | dict]:
    """The rows of one task: :class:`Segments` and input-row dicts (see the module docstring).

    Args:
        predictor: a :class:`ser_lib.runtime.Predictor` (its feature configuration and labels),
            or the accurate model (:class:`ser_lib.models.AccuratePredictor`).
        cfg: windows, speech rule, channels, chunk size, smoothing, episodes, extensions and
            archive limits.
        timings: if given, wall seconds are added under ``hash_s``, ``decode_s``,
            ``features_s``, ``model_s`` and ``summary_s``.
        on_recording: called with the seconds of audio of each recording analysed.

    Never raises for a bad input: decode, archive and read errors become failed rows
    (``reason: details``). An unexpected exception is a bug, not bad input: it is logged
    with its traceback (logger ``ser.process``) and its row's error is
    ``internal: Type: message`` (:func:`internal_error`).
    """
    timings = {} if timings is None else timings
    work = _Work(predictor, cfg, timings, on_recording or (lambda s: None))
    return work.archive(task) if task.kind == "archive" else work.file(task)


class _Work:
    """:func:`process_task`'s steps, sharing the model, the configuration and the timings."""

    def __init__(self, predictor, cfg: JobConfig, timings: dict, on_recording):
        self.predictor, self.cfg, self.timings, self.on_recording = predictor, cfg, timings, on_recording
        self.labels = list(predictor.labels)
        self.exts = tuple("." + e.lower() for e in cfg.extensions)

    @staticmethod
    def input_row(fields: dict, status: str, error: str | None = None, **more) -> dict:
        return {**fields, **more, "row_kind": "input", "status": status, "error": error}

    def skipped(self, fields: dict, base: dict) -> dict:
        """The row of an input whose content equals its baseline: its rows stay in ``out_run``."""
        return self.input_row(fields, "skipped", duration_s=base.get("duration_s"), output_run_id=base["out_run"],
                              output_run_date=base["out_date"], output_model_version=base["model"])

    def recording(self, source, fields: dict) -> list[Segments | dict]:
        """Score one recording: its segment rows, then its input row (or only a failed row)."""
        cfg, t = self.cfg, self.timings
        try:
            rec = score_recording(source, self.predictor, self.predictor.meta.feature_config, cfg.hop_s, cfg.speech,
                                  cfg.channel_names, cfg.chunk_s, t, cfg.timeline, cfg.talk)
        except SERError as err:
            return [self.input_row(fields, "failed", str(err))]
        except Exception as err:  # never lose a file to an unexpected failure; log it as the bug it is
            return [self.input_row(fields, "failed", internal_error(fields, err))]
        out: list[Segments | dict] = []
        for ch in rec.channels:
            cols = {"row_kind": "segment", "call_id": fields["call_id"], "source_path": fields["source_path"],
                    "status": "ok", **segment_columns(ch, self.labels)}
            out.append(Segments(cols, len(ch)))
        # the task holds the whole call: summarise it here rather than shuffle its windows
        t1 = time.perf_counter()
        summary = summarize(rec, self.labels, cfg.episodes, cfg.talk)
        t["summary_s"] = t.get("summary_s", 0.0) + time.perf_counter() - t1
        info = rec.info
        self.on_recording(rec.duration_s)
        out.append(self.input_row(fields, "ok", duration_s=rec.duration_s, sample_rate=info.sample_rate,
                                  n_channels=info.n_channels, audio_format=f"{info.format}/{info.subtype}",
                                  warnings=info.warnings, **summary))
        return out

    def file(self, task: Task) -> Iterator[Segments | dict]:
        """A plain file: skipped when its sha256 equals the baseline's, else scored."""
        path = task.source_path
        fields = {"source_path": path, "kind": "file", "call_id": call_id(path), "size_bytes": task.size_bytes,
                  "modified_us": task.modified_us, "source_size": task.size_bytes,
                  "source_modified_us": task.modified_us}
        base = json.loads(task.prior) if task.prior else None
        t1 = time.perf_counter()
        try:
            sha = file_sha256(path)
        except OSError as err:
            yield self.input_row(fields, "failed", f"unreadable: cannot read {path}: {err.strerror or err}")
            return
        finally:
            self.timings["hash_s"] = self.timings.get("hash_s", 0.0) + time.perf_counter() - t1
        fields["content_sha256"] = sha
        if base and base["sha"] == sha:  # touched, not changed
            yield self.skipped(fields, base)
            return
        yield from self.recording(open_source(path), fields)

    def archive(self, task: Task) -> Iterator[Segments | dict]:
        """An archive: a row per member (skipped, failed, unchanged or scored), then the archive's row."""
        path = task.source_path
        src = {"source_path": path, "source_size": task.size_bytes, "source_modified_us": task.modified_us}
        arch = {**src, "kind": "archive", "size_bytes": task.size_bytes, "modified_us": task.modified_us}
        base = json.loads(task.prior) if task.prior else {}
        seen: set[str] = set()
        try:
            handle = open(path, "rb") if "://" not in path else open_source(path)
            with handle:
                for m in iter_members(handle, archive_kind(path), self.cfg.archive_limits,
                                      lambda nm: nm.lower().endswith(self.exts)):
                    mf = {**src, "kind": "member", "member": m.name, "size_bytes": m.size,
                          "modified_us": us(m.mtime), "content_sha256": m.sha256}
                    if m.status == "skipped":
                        yield self.input_row(mf, "skipped", m.error)
                        continue
                    if m.name in seen:
                        yield self.input_row(mf, "failed", "duplicate_member: the archive holds this name more "
                                                           "than once; only the first is analysed")
                        continue
                    seen.add(m.name)
                    mf["call_id"] = call_id(path, m.name)
                    if m.status == "failed":
                        yield self.input_row(mf, "failed", m.error)
                        continue
                    b = base.get(m.name)
                    if b and b["sha"] == m.sha256:
                        yield self.skipped(mf, b)
                        continue
                    data, m.data = m.data, None
                    try:
                        yield from self.recording(data, mf)
                    finally:
                        data.close()
        except ArchiveError as err:
            yield self.input_row(arch, "failed", str(err))
            return
        except OSError as err:
            yield self.input_row(arch, "failed", f"unreadable: cannot read {path}: {err.strerror or err}")
            return
        except Exception as err:
            yield self.input_row(arch, "failed", internal_error(arch, err))
            return
        yield self.input_row(arch, "ok")
