"""Read-only queries over a results root ``OUT`` (written by ``ser analyze``) for the web app.

Only committed runs count: the runs are the commit records of :func:`jobs.commit.records`
whose ``state`` is ``applied`` (what ``ser report`` reads too), and a table is read from
those runs' ``OUT/<table>/run_date=D/run_id=R/`` directories only, never by a glob that
could reach a run being committed. Queries go to the Parquet files through DuckDB with
projection and filters pushed down: run-date and run-id filters prune whole partitions
before DuckDB sees them, the other filters are evaluated in the Parquet scan, and a page
of calls is a top-N, so no request loads every row.
"""
from __future__ import annotations

import datetime as dt
import math
import os
import re
import threading
from dataclasses import dataclass, field

import duckdb

from jobs.commit import Store, records, table_dir
from ser_lib.errors import SERError
from ser_lib.labels import NEGATIVE_EMOTIONS

#: call ids are 16 hex digits (:func:`ser_lib.process.call_id`); anything else is not looked up
CALL_ID = re.compile(r"^[0-9a-f]{16}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

#: sort keys of the calls list -> SQL expression (a whitelist: nothing from the URL reaches SQL text)
SORTS = {
    "date": "run_date", "file": "source_path || coalesce('!' || member, '')", "duration": "duration_s",
    "speech": "speech_s", "negative": "{negative}", "emotion": "dominant_emotion", "status": "status",
}
MAX_PER_PAGE = 500


class NotResults(SERError):
    """The directory given is not a local results root written by ``ser analyze``."""


class BadQuery(ValueError):
    """A filter, sort or page parameter has an invalid value (the message says which)."""


@dataclass
class CallQuery:
    """Filters, sort and page of the calls list; :meth:`from_args` validates URL parameters.

    ``date_from``/``date_to``: run dates ``YYYY-MM-DD`` (inclusive); ``run_id``; ``status``
    ``ok``/``failed``; ``emotion``: a label, or ``none`` (analysed, no speech); ``channel``:
    match ``emotion`` against that channel's dominant emotion instead of the call's;
    ``q``: case-insensitive text in the path (``path!member`` for archive members).
    """

    date_from: str | None = None
    date_to: str | None = None
    run_id: str | None = None
    status: str | None = None
    emotion: str | None = None
    channel: str | None = None
    q: str | None = None
    sort: str = "date"
    order: str = "desc"
    page: int = 1
    per_page: int = 50
    args: dict = field(default_factory=dict)  # the non-default parameters, for links

    @classmethod
    def from_args(cls, args, labels: list[str]) -> "CallQuery":
        """Build from a ``request.args``-like mapping. Raises :class:`BadQuery`."""
        def get(name):
            v = args.get(name)
            return v.strip() if isinstance(v, str) and v.strip() else None

        q = cls()
        for name in ("date_from", "date_to"):
            v = get(name)
            if v is not None:
                if not _DATE.match(v):
                    raise BadQuery(f"{name} must be a date YYYY-MM-DD, got {v!r}")
                try:
                    dt.date.fromisoformat(v)
                except ValueError:
                    raise BadQuery(f"{name} is not a valid date: {v!r}") from None
            setattr(q, name, v)
        q.run_id, q.channel, q.q = get("run_id"), get("channel"), get("q")
        q.status = get("status")
        if q.status not in (None, "ok", "failed"):
            raise BadQuery(f"status must be ok or failed, got {q.status!r}")
        q.emotion = get("emotion")
        if q.emotion not in (None, "none", *labels):
            raise BadQuery(f"emotion must be one of {', '.join(labels)} or none, got {q.emotion!r}")
        q.sort = get("sort") or "date"
        if q.sort not in SORTS:
            raise BadQuery(f"sort must be one of {', '.join(SORTS)}, got {q.sort!r}")
        q.order = get("order") or ("asc" if q.sort in ("file", "status", "emotion") else "desc")
        if q.order not in ("asc", "desc"):
            raise BadQuery(f"order must be asc or desc, got {q.order!r}")
        for name, lo, hi in (("page", 1, 10**9), ("per_page", 1, MAX_PER_PAGE)):
            v = get(name)
            if v is not None:
                try:
                    n = int(v)
                except ValueError:
                    raise BadQuery(f"{name} must be an integer, got {v!r}") from None
                if not lo <= n <= hi:
                    raise BadQuery(f"{name} must be between {lo} and {hi}, got {n}")
                setattr(q, name, n)
        q.args = {k: getattr(q, k) for k in ("date_from", "date_to", "run_id", "status", "emotion", "channel", "q")
                  if getattr(q, k) is not None}
        return q


def _clean(v):
    """DuckDB values as JSON takes them: NaN -> None, dates -> ISO strings, nested values too."""
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    return v


def _rows(cur) -> list[dict]:
    names = [d[0] for d in cur.description]
    return [{n: _clean(v) for n, v in zip(names, row)} for row in cur.fetchall()]


class Results:
    """Queries over one local results root. Thread-safe (one DuckDB cursor per query).

    Args:
        out: the results root (``ser analyze``'s OUT), a local directory.

    Raises:
        NotResults: ``out`` is not a local directory holding ``_runs/`` (not a results root).
    """

    def __init__(self, out: str):
        if "://" in out and not out.startswith("file://"):
            raise NotResults(f"ser serve reads a local results root; {out} is not local (copy or mount it)")
        self.store = Store(out[len("file://"):] if out.startswith("file://") else out)
        if not os.path.isdir(self.store.base):
            raise NotResults(f"{self.store.base} is not a directory")
        if not os.path.isdir(self.store.p("_runs")):
            raise NotResults(f"{self.store.base} holds no _runs/: not a results root written by ser analyze")
        self.root = self.store.base
        self._con = duckdb.connect(":memory:")
        self._lock = threading.Lock()
        self._key = None
        self._runs: list[dict] = []
        self._files: dict = {}

    # ---------------------------------------------------------------- committed runs
    def _signature(self):
        with os.scandir(self.store.p("_runs")) as it:
            return tuple(sorted((e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in it))

    def runs(self) -> list[dict]:
        """Applied commit records, oldest first (:func:`jobs.commit.records`); cached until
        ``_runs/`` changes (a new, re-run or rolled-forward run)."""
        key = self._signature()
        with self._lock:
            if key != self._key:
                self._runs = [r for r in records(self.store) if r.get("state") == "applied"]
                self._files = {}
                self._key = key
            return self._runs

    def input_roots(self) -> list[str]:
        """The input roots (``IN``) that the committed runs recorded in their summaries: the
        only places the audio route reads recordings from (:func:`jobs.web.audio.under_roots`)."""
        return sorted({r["summary"]["input"] for r in self.runs()
                       if isinstance(r.get("summary"), dict) and isinstance(r["summary"].get("input"), str)})

    def files(self, table: str, date_from: str | None = None, date_to: str | None = None,
              run_id: str | None = None) -> list[str]:
        """Parquet files of ``table`` in the committed runs (optionally only runs of the
        given run dates / run id): partition pruning before any file is opened."""
        out = []
        for r in self.runs():
            if (date_from and r["run_date"] < date_from) or (date_to and r["run_date"] > date_to) \
                    or (run_id and r["run_id"] != run_id):
                continue
            k = (table, r["run_id"])
            with self._lock:
                names = self._files.get(k)
            if names is None:
                d = table_dir(table, r["run_date"], r["run_id"])
                names = [self.store.p(f"{d}/{n}") for n in self.store.listdir(d)
                         if n.endswith(".parquet") and not n.startswith((".", "_"))]
                with self._lock:
                    self._files[k] = names
            out += names
        return out

    def _query(self, sql: str, params) -> list[dict]:
        """Run ``sql`` with ``params()`` (a function, so that file lists are listed again):
        if a file vanished (a run replacing partitions meanwhile), forget the cached
        listings and try once more."""
        for attempt in (0, 1):
            cur = self._con.cursor()
            try:
                return _rows(cur.execute(sql, params()))
            except duckdb.IOException:
                if attempt:
                    raise
                with self._lock:
                    self._key = None
            finally:
                cur.close()
        raise AssertionError("unreachable")

    @staticmethod
    def _scan(files_param: str = "files") -> str:
        return (f"read_parquet(${files_param}, hive_partitioning = true, union_by_name = true, "
                "hive_types = {'run_date': VARCHAR, 'run_id': VARCHAR})")

    def columns(self, table: str) -> list[str]:
        """Column names of ``table`` over the committed runs (empty if it has no files)."""
        files = self.files(table)
        if not files:
            return []
        key = ("columns", table, tuple(files))
        with self._lock:
            if key in self._files:
                return self._files[key]
        cur = self._con.cursor()
        try:
            cols = [d[0] for d in cur.execute(f"SELECT * FROM {self._scan()} LIMIT 0", {"files": files}).description]
        finally:
            cur.close()
        with self._lock:
            self._files[key] = cols
        return cols

    def labels(self) -> list[str]:
        """Emotion labels of the committed calls (from their ``share_<label>`` columns)."""
        return [c[len("share_"):] for c in self.columns("calls") if c.startswith("share_")]

    def channels(self) -> list[str]:
        """Channel names seen in the committed calls (for the channel filter), sorted."""
        files = self.files("calls")
        if not files:
            return []
        key = ("channels", tuple(files))
        with self._lock:
            if key in self._files:
                return self._files[key]
        rows = self._query(f"SELECT DISTINCT unnest(map_keys(channel_dominant_emotion)) AS c FROM {self._scan()} "
                           "ORDER BY c", lambda: {"files": self.files("calls")})
        names = [r["c"] for r in rows if r["c"] is not None]
        with self._lock:
            self._files[key] = names
        return names

    # ---------------------------------------------------------------- calls
    def _negative(self) -> str:
        """SQL: share of speech time with a negative emotion (NULL without speech)."""
        neg = [f"share_{e}" for e in self.labels() if e in NEGATIVE_EMOTIONS]
        return f"(CASE WHEN speech_s > 0 THEN {' + '.join(neg)} END)" if neg else "CAST(NULL AS DOUBLE)"

    def _call_columns(self) -> str:
        negative = self._negative()
        return ("call_id, run_date, run_id, source_path, member, "
                "CASE WHEN member IS NULL THEN source_path ELSE source_path || '!' || member END AS source, "
                "status, error, duration_s, n_channels, speech_s, channel_speech_s, dominant_emotion, "
                f"channel_dominant_emotion, {negative} AS negative_share, model_version")

    def list_calls(self, q: CallQuery) -> tuple[int, list[dict]]:
        """One page of calls matching ``q`` and the number of matching calls.

        Returns:
            ``(total, rows)``: rows are dicts with ``call_id, run_date, run_id, source_path,
            member, source, status, error, duration_s`` (s), ``n_channels, speech_s`` (s),
            ``channel_speech_s`` ({channel: s}), ``dominant_emotion, channel_dominant_emotion``
            ({channel: label}), ``negative_share`` (0-1 of speech time; None without
            speech), ``model_version``.
        """
        if not self.files("calls", q.date_from, q.date_to, q.run_id):
            return 0, []
        where, params = [], {}
        if q.status:
            where.append("status = $status")
            params["status"] = q.status
        if q.emotion:
            target = "channel_dominant_emotion[$channel]" if q.channel else "dominant_emotion"
            if q.channel:
                params["channel"] = q.channel
            if q.emotion == "none":
                where.append(f"status = 'ok' AND {target} IS NULL")
            else:
                where.append(f"{target} = $emotion")
                params["emotion"] = q.emotion
        if q.q:
            where.append("contains(lower(CASE WHEN member IS NULL THEN source_path "
                         "ELSE source_path || '!' || member END), lower($q))")
            params["q"] = q.q
        cond = ("WHERE " + " AND ".join(where)) if where else ""

        def bind():
            return {**params, "files": self.files("calls", q.date_from, q.date_to, q.run_id)}
        total = self._query(f"SELECT count(*) AS n FROM {self._scan()} {cond}", bind)[0]["n"]
        if total == 0:
            return 0, []
        # Two steps: the page's keys first (a top-N over the sort column only), then the
        # full rows of those calls from their runs' files only, so that the map columns
        # are decoded for one page instead of every matching row.
        key = SORTS[q.sort].format(negative=self._negative())
        order = "DESC" if q.order == "desc" else "ASC"
        keys = self._query(f"SELECT run_id, call_id FROM {self._scan()} {cond} "
                           f"ORDER BY {key} {order} NULLS LAST, source_path, coalesce(member, ''), call_id "
                           f"LIMIT {int(q.per_page)} OFFSET {int((q.page - 1) * q.per_page)}", bind)
        if not keys:
            return int(total), []
        runs = {k["run_id"] for k in keys}
        rank = {(k["run_id"], k["call_id"]): i for i, k in enumerate(keys)}
        rows = self._query(f"SELECT {self._call_columns()} FROM {self._scan()} "
                           "WHERE call_id IN (SELECT unnest($ids))",
                           lambda: {"files": [f for r in sorted(runs) for f in self.files("calls", run_id=r)],
                                    "ids": [k["call_id"] for k in keys]})
        rows = [r for r in rows if (r["run_id"], r["call_id"]) in rank]
        return int(total), sorted(rows, key=lambda r: rank[(r["run_id"], r["call_id"])])

    def get_call(self, call_id: str) -> dict | None:
        """The committed ``calls`` row of ``call_id`` (all columns, ``timeline`` included)
        plus ``source`` (path or ``path!member``), or None. Ids that are not 16 hex digits
        are not looked up."""
        if not isinstance(call_id, str) or not CALL_ID.match(call_id):
            return None
        if not self.files("calls"):
            return None
        rows = self._query(f"SELECT *, CASE WHEN member IS NULL THEN source_path ELSE source_path || '!' || member "
                           f"END AS source FROM {self._scan()} WHERE call_id = $id LIMIT 1",
                           lambda: {"files": self.files("calls"), "id": call_id})
        return rows[0] if rows else None

    def segments(self, call: dict) -> list[dict]:
        """The call's ``segments`` rows (one per window and channel) in channel then time
        order; read from the call's own run partition only (a call's rows live in exactly
        one run, README "Output")."""
        if not self.files("segments", run_id=call["run_id"]):
            return []
        order = list(dict.fromkeys(e["channel"] for e in call.get("timeline") or []))
        rows = self._query(f"SELECT * EXCLUDE (run_date, run_id) FROM {self._scan()} WHERE call_id = $id "
                           "ORDER BY channel, segment_index",
                           lambda: {"files": self.files("segments", run_id=call["run_id"]), "id": call["call_id"]})
        rank = {c: i for i, c in enumerate(order)}
        rows.sort(key=lambda r: (rank.get(r["channel"], len(rank)), r["channel"] or "", r["segment_index"]))
        return rows

    def episodes(self, call: dict) -> list[dict]:
        """The call's ``episodes`` rows (channel, episode_index, emotion, start_s, end_s,
        duration_s, mean_confidence, peak_confidence) from its own run, channel then time
        order; empty without speech or for runs written before the table existed."""
        files = self.files("episodes", run_id=call["run_id"])
        if not files:
            return []
        order = {c: i for i, c in enumerate(dict.fromkeys(e["channel"] for e in call.get("timeline") or []))}
        rows = self._query(f"SELECT channel, episode_index, emotion, start_s, end_s, duration_s, mean_confidence, "
                           f"peak_confidence FROM {self._scan()} WHERE call_id = $id",
                           lambda: {"files": self.files("episodes", run_id=call["run_id"]), "id": call["call_id"]})
        rows.sort(key=lambda r: (order.get(r["channel"], len(order)), r["channel"] or "", r["start_s"]))
        return rows

    def turns(self, call: dict) -> list[dict]:
        """The call's ``turns`` rows (talk spurts: ``channel, turn_index, start_s, end_s``) from
        its own run partition, in channel then time order (none before the table existed)."""
        if not self.files("turns", run_id=call["run_id"]):
            return []
        return self._query(f"SELECT channel, turn_index, start_s, end_s FROM {self._scan()} WHERE call_id = $id "
                           "ORDER BY channel, turn_index",
                           lambda: {"files": self.files("turns", run_id=call["run_id"]), "id": call["call_id"]})

    # ---------------------------------------------------------------- runs
    def list_runs(self, max_errors: int = 1000) -> list[dict]:
        """Committed runs, newest first: ``run_id, run_date, committed_at, seq, summary``
        (the run summary of ``ser analyze``: files, processed, failed, skipped, audio_hours,
        wall_s, model_version, ...), ``n_errors`` and ``errors`` (at most ``max_errors``
        rows of ``source_path, member, error`` from ``OUT/errors``)."""
        runs = self.runs()
        errors: dict[str, list] = {}
        counts: dict[str, int] = {}
        if self.files("errors"):
            def bind():
                return {"files": self.files("errors")}
            for r in self._query(f"SELECT run_id, count(*) AS n FROM {self._scan()} GROUP BY run_id", bind):
                counts[r["run_id"]] = r["n"]
            for r in self._query(f"SELECT run_id, source_path, member, error FROM (SELECT *, row_number() OVER "
                                 f"(PARTITION BY run_id ORDER BY source_path, member) AS i FROM {self._scan()}) "
                                 f"WHERE i <= {int(max_errors)} ORDER BY run_id, source_path, member", bind):
                errors.setdefault(r.pop("run_id"), []).append(r)
        out = []
        for r in sorted(runs, key=lambda r: (r.get("seq", 0), r["run_id"]), reverse=True):
            out.append({"run_id": r["run_id"], "run_date": r["run_date"], "committed_at": r.get("committed_at"),
                        "seq": r.get("seq"), "summary": _clean(r.get("summary") or {}),
                        "n_errors": counts.get(r["run_id"], 0), "errors": errors.get(r["run_id"], [])})
        return out
