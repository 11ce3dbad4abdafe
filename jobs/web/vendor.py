"""Third-party browser code, served from the Python packages that ship it (no CDN).

plotly.js (MIT licence) comes inside the ``plotly`` Python package
(``plotly/package_data/plotly.min.js``); its licence text is served beside it.
"""
from __future__ import annotations

from importlib import metadata, resources

from flask import Blueprint, Response, abort, send_file

bp = Blueprint("vendor", __name__)


def plotly_js_path():
    return resources.files("plotly") / "package_data" / "plotly.min.js"


@bp.get("/plotly.min.js")
def plotly_js():
    path = plotly_js_path()
    if not path.is_file():
        abort(404, description="plotly.min.js is missing from the installed plotly package")
    return send_file(str(path), mimetype="text/javascript", max_age=86400, conditional=True)


@bp.get("/plotly-LICENSE.txt")
def plotly_licence():
    dist = metadata.distribution("plotly")
    for f in dist.files or []:
        if f.name.upper().startswith("LICENSE"):
            return Response(f.read_text(), mimetype="text/plain")
    return Response("plotly.js is distributed under the MIT licence (https://github.com/plotly/plotly.js)",
                    mimetype="text/plain")
