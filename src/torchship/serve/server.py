"""Run the app under uvicorn: bind, serve, and drain on SIGTERM/SIGINT.

On the first signal uvicorn stops listening and closes idle connections; every request
already accepted runs to completion (the batcher keeps going), then the lifespan stops
the model instances and the process exits 0. Readiness turns 503 as soon as draining starts.
The request head is limited in size and time by ``serve/protocol.py``; the keep-alive
timeout comes from the serve config.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from torchship.errors import require
from torchship.serve.config import ServeConfig
from torchship.serve.security import Security


def serve(
    path: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    config: ServeConfig | None = None,
    security: Security | None = None,
    log_level: str = "info",
    drain_timeout_s: float = 60.0,
) -> None:
    """Serve the artifact or repository at ``path`` until SIGTERM or Ctrl-C, then drain."""
    uvicorn = require("uvicorn", "serve")
    from torchship.serve.app import create_app

    config = config or ServeConfig()
    app = create_app(path, config, security)  # a bad path fails here, before any handler is installed
    _configure_logging(log_level, config.access_log)
    logging.getLogger("torchship.serve").info(  # after create_app: a bad path is the only line
        "serving %s on http://%s:%s (v2 protocol; /metrics; drain with Ctrl-C or SIGTERM)", path, host, port)

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            app.state.serve.draining = True
            super().handle_exit(sig, frame)

    server = DrainingServer(uvicorn_config(app, config, host=host, port=port, log_level=log_level,
                                           drain_timeout_s=drain_timeout_s))
    server.run()
    if not server.started:
        sys.exit(1)


def uvicorn_config(app: Any, config: ServeConfig, *, host: str, port: int, log_level: str = "info",
                   drain_timeout_s: float = 60.0) -> Any:
    """The ``uvicorn.Config`` that runs ``app`` with the serve config's connection limits."""
    uvicorn = require("uvicorn", "serve")
    require("httptools", "serve")
    from torchship.serve.protocol import guarded_http_protocol

    return uvicorn.Config(
        app, host=host, port=port, log_level=log_level, access_log=False, lifespan="on",
        timeout_graceful_shutdown=drain_timeout_s, timeout_keep_alive=config.keep_alive_timeout_s,
        loop="auto", http=guarded_http_protocol(config.max_header_bytes, config.header_timeout_s),
    )


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (it may be replaced after start-up)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _configure_logging(level: str, access_log: bool) -> None:
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    access = logging.getLogger("torchship.serve.access")
    access.handlers[:] = [handler]
    access.propagate = False
    access.setLevel(logging.INFO if access_log else logging.WARNING)
    serve_log = logging.getLogger("torchship.serve")
    if not serve_log.handlers:
        text = _StderrHandler()
        text.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        serve_log.addHandler(text)
    serve_log.setLevel(level.upper())
