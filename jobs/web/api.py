"""JSON API: ``GET /api/calls``, ``GET /api/calls/<call_id>``, ``GET /api/runs``."""
from __future__ import annotations

from flask import Blueprint, abort, jsonify, request, url_for

from .common import services
from .results import BadQuery, CallQuery

bp = Blueprint("api", __name__)


@bp.get("/calls")
def calls():
    """Calls of the committed runs, filtered, sorted and paged as on the calls page:
    ``{"total": N, "page", "per_page", "calls": [...]}``; a bad parameter is 400."""
    res = services()["results"]
    try:
        q = CallQuery.from_args(request.args, res.labels())
    except BadQuery as err:
        return jsonify(error=str(err), status=400), 400
    total, rows = res.list_calls(q)
    return jsonify(total=total, page=q.page, per_page=q.per_page, calls=rows)


@bp.get("/calls/<call_id>")
def call(call_id: str):
    """The call's ``calls`` row (timeline included) with ``segments`` and ``audio_url``."""
    res = services()["results"]
    c = res.get_call(call_id)
    if c is None:
        abort(404, description=f"no committed call {call_id!r} in this results root")
    c["segments"] = res.segments(c) if c["status"] == "ok" else []
    c["audio_url"] = url_for("pages.audio", call_id=c["call_id"]) if c["status"] == "ok" else None
    return jsonify(c)


@bp.get("/runs")
def runs():
    """Committed runs, newest first, with their summaries and errors: ``{"runs": [...]}``."""
    return jsonify(runs=services()["results"].list_runs())
