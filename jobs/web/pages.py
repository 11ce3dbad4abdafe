"""HTML pages over the results: calls list, one call (with its audio and CSV), runs."""
from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, abort, jsonify, render_template, request, send_file, url_for
from werkzeug.exceptions import HTTPException, SecurityError

from ser_lib.labels import is_probability_column

from .audio import AudioUnavailable
from .common import services, source_name, summary_of, view_model, wants_json
from .results import BadQuery, CallQuery

bp = Blueprint("pages", __name__)


@bp.get("/")
def calls():
    res = services()["results"]
    labels = res.labels()
    error = None
    try:
        q = CallQuery.from_args(request.args, labels)
        total, rows = res.list_calls(q)
    except BadQuery as err:
        error, q, total, rows = str(err), CallQuery(), 0, []
    pages = max(1, -(-total // q.per_page))
    return render_template("calls.html", q=q, total=total, rows=rows, pages=pages, labels=labels,
                           channels=res.channels(), runs=res.runs(), error=error), (400 if error else 200)


def _call_or_404(call_id: str) -> dict:
    # the id is only ever a key into OUT's calls table; unknown or malformed ids are 404
    call = services()["results"].get_call(call_id)
    if call is None:
        abort(404, description=f"no committed call {call_id!r} in this results root")
    return call


@bp.get("/calls/<call_id>")
def call(call_id: str):
    c = _call_or_404(call_id)
    ok = c["status"] == "ok"
    segments = services()["results"].segments(c) if ok else []
    episodes = services()["results"].episodes(c) if ok else []
    turns = services()["results"].turns(c) if ok else []
    audio_url = url_for("pages.audio", call_id=c["call_id"]) if ok else None
    return render_template("call.html", call=c, name=source_name(c), summary=summary_of(c),
                           data=view_model(c, segments, audio_url, episodes, turns), upload=False)


@bp.get("/calls/<call_id>/audio")
def audio(call_id: str):
    c = _call_or_404(call_id)
    try:
        p = services()["audio"].playable(c, services()["results"].input_roots())
    except AudioUnavailable as err:
        abort(404, description=str(err))
    # conditional: Range requests, so the player can seek
    return send_file(p.path, mimetype=p.mimetype, conditional=True, max_age=0,
                     download_name=f"{c['call_id']}{p.path[p.path.rfind('.'):] if '.' in p.path else ''}")


SEGMENT_CSV_COLUMNS = ["call_id", "source_path", "member", "channel", "segment_index", "start_s", "end_s", "is_speech",
                       "emotion", "confidence", "emotion_smoothed", "arousal", "valence", "level_db", "level_rel_db"]


@bp.get("/calls/<call_id>/segments.csv")
def segments_csv(call_id: str):
    c = _call_or_404(call_id)
    rows = services()["results"].segments(c) if c["status"] == "ok" else []
    probs = [k for k in (rows[0] if rows else {}) if is_probability_column(k)]
    cols = SEGMENT_CSV_COLUMNS + probs + ["model_version", "run_id", "run_date"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({**r, "member": c.get("member"), "run_id": c["run_id"], "run_date": c["run_date"],
                    "model_version": r.get("model_version") or c.get("model_version")})
    return Response(buf.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename={c['call_id']}-segments.csv"})


@bp.get("/runs")
def runs():
    return render_template("runs.html", runs=services()["results"].list_runs())


def register_errors(app) -> None:
    """Errors as a page (or JSON for the API / JSON clients), never a traceback."""
    @app.errorhandler(HTTPException)
    def _http(err: HTTPException):
        msg = err.description or err.name
        if err.code == 413:
            limit = services()["max_upload_bytes"]
            msg = f"the upload is larger than the limit of {limit / 2**20:.0f} MB"
        if isinstance(err, SecurityError):  # untrusted Host header: no URL can be built for it
            return Response(f"{err.code} {err.name}: {msg}\n", err.code, mimetype="text/plain")
        if request.path.startswith("/api/") or wants_json():
            return jsonify(error=msg, status=err.code), err.code
        return render_template("error.html", code=err.code, name=err.name, message=msg), err.code

    @app.errorhandler(Exception)
    def _internal(err: Exception):
        app.logger.exception("error serving %s", request.path)
        msg = "internal error; the server's log has the details"
        if request.path.startswith("/api/") or wants_json():
            return jsonify(error=msg, status=500), 500
        return render_template("error.html", code=500, name="Internal error", message=msg), 500
