"""Run the app under uvicorn: bind, serve, and drain on SIGTERM/SIGINT.

On the first signal uvicorn stops listening and closes idle connections; every request
already accepted runs to completion (the batcher keeps going), then the lifespan stops
the model instances and the process exits 0. Readiness turns 503 as soon as draining starts.
The request head is limited in size and time by ``serve/protocol.py``; the keep-alive
timeout comes from the serve config.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

from torchship.errors import require
from torchship.serve.config import ServeConfig
from torchship.serve.security import Security

HTTP_PORT = 8000
DRAIN_TIMEOUT_S = 60.0  # longest wait for accepted HTTP requests after SIGTERM (deploy/ sizes pods by it)
GRPC_PORT = 8001  # Triton's default
# How long a thread waiting for the interpreter lock waits before the holder must hand it over
# (Python's default: 5 ms). A model instance thread needs the lock for a moment after every batch
# (split the outputs, hand them to the loop, take the next batch) while a busy event loop holds it:
# with 5 ms the model sat idle for up to 5 ms per batch, a third of a small model's batch time.
# Measured, docs/benchmarks.md ("The interpreter lock between batches").
SWITCH_INTERVAL_S = 0.0005


def serve(
    path: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = HTTP_PORT,
    config: ServeConfig | None = None,
    security: Security | None = None,
    log_level: str = "info",
    drain_timeout_s: float = DRAIN_TIMEOUT_S,
    grpc_port: int | None = None,
    workers: int = 1,
) -> None:
    """Serve the artifact or repository at ``path`` until SIGTERM or Ctrl-C, then drain.

    ``grpc_port`` also serves the v2 gRPC service on ``host``; None (the default here, so
    library callers never contend for a fixed port) serves HTTP only. The CLI's default is
    ``GRPC_PORT``. ``workers`` > 1 runs that many server processes behind one port
    (``serve/workers.py``); ``default_workers()`` is the CLI's default.
    """
    require("uvicorn", "serve")
    from torchship.serve.app import create_app

    config = config or ServeConfig()
    if workers > 1:
        from torchship.serve.workers import run_workers

        run_workers(
            path,
            workers,
            host=host,
            port=port,
            config=config,
            security=security,
            log_level=log_level,
            drain_timeout_s=drain_timeout_s,
            grpc_port=grpc_port,
        )
        return
    grpc_address = None
    if grpc_port is not None:
        from torchship.serve.grpc_service import check_port_free, require_grpc
        from torchship.serve.grpc_service import grpc_address as address

        require_grpc()  # a missing grpcio/tritonclient says which extra to install, before anything starts
        check_port_free(host, grpc_port)
        grpc_address = address(host, grpc_port)
    app = create_app(path, config, security, grpc_address)  # a bad path fails here, before any signal handler
    _configure_logging(log_level, config.access_log)
    logging.getLogger("torchship.serve").info(  # after create_app: a bad path is the only line
        "serving %s on http://%s:%s%s (v2 protocol; /metrics; drain with Ctrl-C or SIGTERM)",
        path,
        host,
        port,
        f" and gRPC {grpc_address}" if grpc_address else "",
    )
    run_uvicorn(app, config, host=host, port=port, log_level=log_level, drain_timeout_s=drain_timeout_s)


def run_uvicorn(
    app: Any,
    config: ServeConfig,
    *,
    host: str,
    port: int,
    log_level: str,
    drain_timeout_s: float,
    sockets: list[Any] | None = None,
) -> None:
    """Run ``app`` under uvicorn on ``host:port`` (or on bound ``sockets``) until a signal drains it."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    server = uvicorn_server(
        app, config, host=host, port=port, log_level=log_level, drain_timeout_s=drain_timeout_s
    )
    server.run(sockets=sockets)
    if not server.started:
        sys.exit(1)


def uvicorn_server(app: Any, config: ServeConfig, **kwargs: Any) -> Any:
    """A ``uvicorn.Server`` for ``app`` (``kwargs`` as ``uvicorn_config``'s): readiness turns false
    on the first signal, and with ``max_connections`` its listeners stop accepting at the limit."""
    import uvicorn

    from torchship.serve.protocol import GatedListener

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            app.state.serve.draining = True
            super().handle_exit(sig, frame)

        async def startup(self, sockets: list[Any] | None = None) -> None:
            gate = self.config.http_protocol_class.gate
            if gate is None:
                await super().startup(sockets)
                return
            # uvicorn's startup, with listeners that stop accepting at the connection limit
            await self.lifespan.startup()
            if self.lifespan.should_exit:
                self.should_exit = True
                return
            if sockets is None:
                sockets = [self.config.bind_socket()]  # logs the address, as uvicorn does

            def create_protocol() -> Any:
                return self.config.http_protocol_class(
                    config=self.config, server_state=self.server_state, app_state=self.lifespan.state
                )

            # the workers' private Unix socket is the supervisor's channel: never gated
            self.servers = [
                GatedListener(sock, create_protocol, gate)
                if sock.family != socket.AF_UNIX
                else await asyncio.get_running_loop().create_server(create_protocol, sock=sock)
                for sock in sockets
            ]
            self.started = True

    return Server(uvicorn_config(app, config, **kwargs))


def default_workers(threads: int | None = None, cgroup: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """Worker processes for ``--workers``' default: the usable cores divided by each model's threads.

    Usable cores: this process's CPU affinity, capped by a cgroup v2 CPU quota (a container's
    CPU limit, which the affinity does not show).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = cgroup.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, -(-int(quota) // int(period))))  # 1.5 CPUs: 2 workers
    except (OSError, ValueError):
        pass  # no cgroup v2 limit visible: the affinity is the limit
    return max(1, cores // (threads or 1))


def uvicorn_config(
    app: Any,
    config: ServeConfig,
    *,
    host: str,
    port: int,
    log_level: str = "info",
    drain_timeout_s: float = 60.0,
) -> Any:
    """The ``uvicorn.Config`` that runs ``app`` with the serve config's connection limits."""
    uvicorn = require("uvicorn", "serve")
    require("httptools", "serve")
    from torchship.serve.protocol import ConnectionGate, guarded_http_protocol

    state = getattr(getattr(app, "state", None), "serve", None)
    limit = config.max_connections
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=drain_timeout_s,
        timeout_keep_alive=config.keep_alive_timeout_s,
        loop="auto",
        # uvicorn trusts 127.0.0.1's X-Forwarded-* by default, parsing the peer's address on every
        # request (about 4 % of the event loop's time, docs/benchmarks.md); only when asked here
        proxy_headers=bool(config.trusted_proxies),
        forwarded_allow_ips=config.trusted_proxies or None,
        http=guarded_http_protocol(
            config.max_header_bytes,
            config.header_timeout_s,
            admit=head_admission(state) if state is not None else None,
            gate=ConnectionGate(limit) if limit is not None else None,
        ),
    )


def head_admission(state: Any) -> Any:
    """The protocol's ``admit``: an inference request's place in its model's queue, from its head.

    Decided from the request head alone (method, path, authorization). While the queue has
    room, the request holds a place (``ServedModel.admit``) that the app releases once the
    request is queued or has failed, so heads arriving together cannot overshoot the queue's
    limit while their bodies are read. When it is full, the answer is a 503 at once: an
    overloaded server spends no body reading, decoding or ASGI work on requests it will
    refuse. Anything else (another route, an unknown or loading model, a full queue with a
    bad token) goes on to the app, which answers it as usual; an unauthenticated client never
    learns a model is overloaded.
    """
    import httptools

    from torchship.serve.app import infer_params
    from torchship.serve.errors import error_parts
    from torchship.serve.protocol import raw_response
    from torchship.serve.v2 import ServeError

    def admit(method: bytes, url: bytes, headers: list[tuple[bytes, bytes]]) -> Any:
        if method != b"POST" or not url.endswith(b"/infer") or state.draining:
            return None
        path = httptools.parse_url(url).path.decode("latin-1")
        params = infer_params(path)
        if params is None:
            return None
        try:
            model = state.repository.get(params["model"], params.get("version"))
            try:
                return model.admit()
            except ServeError:
                pass  # full: refused below, once the client has shown it may know
            authorization = next((v for k, v in headers if k == b"authorization"), None)
            state.security.check_inference(authorization.decode("latin-1") if authorization else None)
        except ServeError:
            return None  # 404, 401, loading...: the app says so in full
        model.record(503, 0.0)
        status, body, extra = error_parts(model.overloaded(), "POST", path)
        return raw_response(status, "Service Unavailable", body, extra)

    return admit


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (it may be replaced after start-up)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _configure_logging(level: str, access_log: bool, access_format: logging.Formatter | None = None) -> None:
    handler = _StderrHandler()
    handler.setFormatter(access_format or logging.Formatter("%(message)s"))
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
