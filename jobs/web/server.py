"""Serve the app with waitress (a production WSGI server, threads, no debugger)."""
from __future__ import annotations

import ipaddress
import logging
import socket

LOOPBACK_NAMES = {"localhost"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (name or address) only accepts connections from this machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(out: str, host: str = "127.0.0.1", port: int = 8050, model_path: str | None = None,
          conf_path: str | None = None, max_upload_mb: float = 200, max_concurrent: int = 2,
          keep_uploads: str | None = None, threads: int = 8, echo=print, variant: str | None = None) -> None:
    """Build the app over ``out`` and serve it until interrupted.

    Raises:
        ConfigError, ArtifactError: see :func:`jobs.web.create_app`.
        OSError: the address is in use or cannot be bound.
    """
    from waitress import create_server

    from . import create_app

    loopback = is_loopback(host)
    app = create_app(out, model_path, conf_path, max_upload_bytes=int(max_upload_mb * 2**20),
                     max_concurrent=max_concurrent, keep_uploads=keep_uploads, variant=variant,
                     trusted_hosts=["127.0.0.1", "localhost", "::1", "[::1]", host] if loopback else None)
    server = create_server(app, host=host, port=port, threads=threads,
                           max_request_body_size=int(max_upload_mb * 2**20) + (1 << 20),
                           ident="ser-serve")
    bound = server.effective_port if hasattr(server, "effective_port") else port
    shown = f"[{host}]" if ":" in host else host
    echo(f"Serving {out} at http://{shown}:{bound}/ (read-only)")
    if loopback:
        echo("Only this machine can connect (--host 0.0.0.0 to expose it to the network). Ctrl+C stops.")
    else:
        echo(f"WARNING: listening on {host}: anyone who can reach this machine on port {bound} can browse the "
             f"results, listen to the calls and upload recordings (no authentication). Ctrl+C stops.")
    logging.getLogger("waitress").setLevel(logging.WARNING)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free now (for tests and benchmarks)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
