"""Upload page: ``GET /upload`` (form), ``POST /upload`` (multipart field ``file``) → the
recording's timeline page, or with ``Accept: application/json`` ``ser predict --json``'s JSON."""
from __future__ import annotations

import json

from flask import Blueprint, Response, make_response, render_template, request

from .common import services, summary_of, view_model, wants_json
from .uploads import Busy, UploadError

bp = Blueprint("upload", __name__)


def _form(error: str | None = None, code: int = 200) -> Response:
    s = services()
    if wants_json():
        return Response(json.dumps({"error": error, "status": code}), code, mimetype="application/json")
    return make_response(render_template("upload.html", error=error or s["scorer_error"],
                                         model_version=s["scorer"].model_version if s["scorer"] else None,
                                         limit_mb=s["max_upload_bytes"] / 2**20), code)


@bp.get("/upload")
def form():
    return _form()


@bp.post("/upload")
def post():
    if services()["scorer"] is None:
        return _form(services()["scorer_error"], 503)
    f = request.files.get("file")
    if f is None or not f.filename:
        return _form("choose a recording to upload (multipart field 'file')", 400)
    try:
        result = services()["scorer"].score(f.stream, f.filename)
    except Busy as err:
        resp = _form(str(err), 503)
        resp.headers["Retry-After"] = "10"
        return resp
    except UploadError as err:
        return _form(str(err), 400)
    if wants_json():
        return Response(json.dumps(result), mimetype="application/json")  # exactly ser predict --json's content
    row = {**result, "call_id": None}
    return render_template("call.html", call=row, name=f.filename or "upload", summary=summary_of(row),
                           data=view_model(row, result["segments"], None), upload=True)
