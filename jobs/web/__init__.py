"""``ser serve``: a read-only web app over a results root written by ``ser analyze``.

Pages: calls (``/``), one call (``/calls/<call_id>``: timeline per channel, audio player,
segments, CSV), runs (``/runs``), upload (``/upload``); JSON API under ``/api``. Built by
:func:`create_app` (application factory, one blueprint per area); served by
:func:`jobs.web.server.serve`.
"""
from __future__ import annotations

import atexit
import dataclasses
import shutil
import tempfile

from flask import Flask

from ser_lib.config import JobConfig
from ser_lib.errors import ConfigError, SERError
from ser_lib.models import VARIANTS

#: default upload size limit, bytes
DEFAULT_MAX_UPLOAD = 200 * 1024 * 1024
_LOOPBACK = ["127.0.0.1", "localhost", "::1", "[::1]"]


def create_app(out: str, model_path: str | None = None, conf_path: str | None = None,
               max_upload_bytes: int = DEFAULT_MAX_UPLOAD, max_concurrent: int = 2,
               keep_uploads: str | None = None, trusted_hosts: list[str] | None = _LOOPBACK,
               tmpdir: str | None = None, variant: str | None = None) -> Flask:
    """The Flask app over the results root ``out``.

    Args:
        out: local results root (``OUT`` of ``ser analyze``); read only.
        model_path, conf_path: model artifact and job configuration for uploads (as
            ``ser predict``'s ``--model`` / ``--conf``).
        max_upload_bytes: upload size limit (larger requests get 413).
        max_concurrent: uploads scored at the same time (more get 503).
        keep_uploads: directory where uploads are kept (default: deleted after the answer).
        trusted_hosts: ``Host`` header values accepted (default: loopback names, which
            defeats DNS rebinding while bound to 127.0.0.1); None accepts any.
        tmpdir: the app's scratch directory (default: a new one under the system's
            temporary directory, removed at exit). Nothing is written anywhere else.
        variant: the model that scores uploads, ``default`` or ``accurate`` (as ``ser
            predict --variant``; None: ``model.variant`` of the configuration).

    Raises:
        NotResults: ``out`` is not a local results root.
        ConfigError: a bad job configuration or ``variant``.
        ArtifactError: ``model_path``'s metadata is missing or invalid (the default
            model being unreadable only disables uploads: ``scorer_error`` says why).
    """
    from .audio import AudioCache
    from .results import Results
    from .uploads import Scorer

    results = Results(out)
    cfg = JobConfig.load(conf_path)
    if variant is not None:
        if variant not in VARIANTS:
            raise ConfigError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        cfg = dataclasses.replace(cfg, model_variant=variant)
    if tmpdir is None:
        tmpdir = tempfile.mkdtemp(prefix="ser-serve-")
        atexit.register(shutil.rmtree, tmpdir, True)
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=int(max_upload_bytes))
    app.json.sort_keys = False  # columns in table order
    if trusted_hosts:
        app.config["TRUSTED_HOSTS"] = list(trusted_hosts)
    try:
        scorer, scorer_error = Scorer(cfg, model_path, tmpdir, max_concurrent, keep_uploads), None
    except SERError as err:
        if model_path is not None:  # asked for this model: a bad one is an error
            raise
        # the default model is only needed for uploads: browsing works without it
        scorer, scorer_error = None, f"uploads are unavailable: the model cannot be read ({err})"
    app.extensions["ser"] = {
        "results": results,
        "audio": AudioCache(tmpdir, cfg.archive_limits),
        "scorer": scorer,
        "scorer_error": scorer_error,
        "max_upload_bytes": int(max_upload_bytes),
        "tmpdir": tmpdir,
    }

    from . import api, pages, upload, vendor
    from .common import register_filters
    register_filters(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(upload.bp)
    app.register_blueprint(api.bp, url_prefix="/api")
    app.register_blueprint(vendor.bp, url_prefix="/vendor")
    pages.register_errors(app)

    @app.context_processor
    def _globals():
        return {"out_root": results.root}

    @app.after_request
    def _headers(resp):
        # everything is served from here: no third-party script, frame or connection
        resp.headers.setdefault("Content-Security-Policy",
                                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                "img-src 'self' data: blob:; media-src 'self' blob:; frame-ancestors 'none'")
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        return resp

    return app
