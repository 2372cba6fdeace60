"""``torchship serve --workers N``: N full server processes behind one listening socket.

The supervisor (this process) binds the HTTP port once, as uvicorn's and gunicorn's
multi-process modes do, and starts N workers with the ``spawn`` method (no fork of a process
that may hold threads); each inherits the socket, so a taken port fails once, here, and the
kernel hands each new connection to whichever worker accepts first. Each worker is the
ordinary single-process server (its own batcher per model, so a batch forms from the
requests of that worker's connections), plus:

- a private Unix socket through which its siblings fan out readiness, statistics and the
  repository API (``serve/cluster.py``);
- prometheus-client's multiprocess files in the supervisor's private temporary directory,
  so ``/metrics`` sums every worker (``serve/metrics.py``); the directory is removed at exit;
- every worker serves gRPC too: grpcio cannot adopt an inherited socket, so each binds the
  gRPC port itself with ``SO_REUSEPORT`` (after the supervisor checked it is free) and the
  kernel hands each new connection to one of them; a channel is one long-lived connection,
  so it stays with the worker it reached;
- worker 0 alone runs drift monitoring (the other workers' rows would otherwise form N
  separate windows); the request log gets one file per worker (``log.w1.jsonl``, ...)
  because its writer owns its file;
- every access-log line carries ``"worker": i``.

On SIGTERM or SIGINT the supervisor sends SIGTERM to every worker; each stops accepting and
answers every request it accepted (the single-process drain), then exits. A worker that dies
any other way is started again, logged and counted in ``torchship_worker_restarts_total``.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from torchship.errors import ConfigError, TorchshipError
from torchship.serve.config import ServeConfig
from torchship.serve.security import Security

log = logging.getLogger("torchship.serve")
LISTEN_BACKLOG = 2048  # uvicorn's default listen queue, for the socket the workers share
_FAST_FAILURES = 3  # a worker that dies this many times in a row within _FAST_FAILURE_S stops the server
_FAST_FAILURE_S = 10.0
_BAD_INPUT = 2  # a worker's exit status when its input (the repository) is bad: not restarted
_FATAL = "fatal.txt"  # that worker's one-line error, for the supervisor to raise


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, picklable for ``spawn``."""

    path: str
    count: int
    host: str
    port: int
    config: ServeConfig
    security: Security | None
    log_level: str
    drain_timeout_s: float
    grpc_address: str | None
    directory: str
    parent_pid: int


def run_workers(
    path: str | Path,
    workers: int,
    *,
    host: str,
    port: int,
    config: ServeConfig,
    security: Security | None,
    log_level: str,
    drain_timeout_s: float,
    grpc_port: int | None,
) -> None:
    """Serve ``path`` from ``workers`` processes sharing ``host:port`` until SIGTERM/SIGINT, then drain all.

    Raises:
        ConfigError: ``path`` is not a directory, or a port is taken.
    """
    from torchship.serve.server import _configure_logging

    if not Path(path).is_dir():
        raise ConfigError(
            f"model repository {path} is not a directory", fix="pass an artifact or a repository"
        )
    grpc_address = None
    if grpc_port is not None:
        from torchship.serve.grpc_service import check_port_free, require_grpc
        from torchship.serve.grpc_service import grpc_address as address

        require_grpc()
        # free now (a listener sharing it with SO_REUSEPORT fails the probe too); then every
        # worker binds it with SO_REUSEPORT. Port 0 becomes one free port for all of them.
        grpc_address = address(host, check_port_free(host, grpc_port))
    _configure_logging(log_level, config.access_log)
    listener = bind(host, port)
    with listener, tempfile.TemporaryDirectory(prefix="torchship-serve-") as directory:
        metrics_dir = Path(directory) / "metrics"
        metrics_dir.mkdir()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)  # inherited by every worker at spawn
        spec = WorkerSpec(
            str(path),
            workers,
            host,
            listener.getsockname()[1],  # port 0 picked a free one
            split_threads(config, workers),
            security,
            log_level,
            drain_timeout_s,
            grpc_address,
            directory,
            os.getpid(),
        )
        from prometheus_client import values

        value_class = values.ValueClass
        try:
            code = Supervisor(spec, listener).run()
        finally:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            values.ValueClass = value_class
    if code:
        raise SystemExit(code)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound once (SO_REUSEADDR only: a port in use fails here)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror})", fix="choose another --port"
        ) from None
    sock.listen(LISTEN_BACKLOG)  # a worker with max_connections resizes it (protocol.GatedListener)
    sock.set_inheritable(True)
    return sock


def split_threads(config: ServeConfig, workers: int) -> ServeConfig:
    """Give each model without explicit ``threads`` a share of the cores: N workers must not oversubscribe."""
    from torchship.serve.server import default_workers

    share = max(1, default_workers() // workers)
    default = (
        config.default if config.default.threads else config.default.model_copy(update={"threads": share})
    )
    models = {
        name: s if s.threads else s.model_copy(update={"threads": share}) for name, s in config.models.items()
    }
    return config.model_copy(update={"default": default, "models": models})


class Supervisor:
    """Start, watch, restart and stop the workers."""

    def __init__(self, spec: WorkerSpec, listener: socket.socket):
        self.spec = spec
        self.listener = listener
        self.context = multiprocessing.get_context("spawn")
        self.workers: list[Any] = [None] * spec.count
        self.started_s = [0.0] * spec.count
        self.fast_failures = [0] * spec.count
        self.stopping = False
        self.restarts = _restart_counter()

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for index in range(self.spec.count):
                self.start(index)
            log.info(
                "supervisor %d: %d workers on http://%s:%d",
                os.getpid(),
                self.spec.count,
                self.spec.host,
                self.spec.port,
            )
            while not self.stopping:
                wait([w.sentinel for w in self.workers], timeout=1.0)
                for index, worker in enumerate(self.workers):
                    if worker.exitcode is None or self.stopping:
                        continue
                    if worker.exitcode == _BAD_INPUT:  # every worker would fail the same way
                        self.stop()
                        raise TorchshipError((Path(self.spec.directory) / _FATAL).read_text())
                    if not self.replace(index):
                        self.stop()
                        return 1
            return 0
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def start(self, index: int) -> None:
        spec = self.spec
        worker = self.context.Process(
            target=worker_main,
            args=(spec, index, self.listener),
            name=f"torchship-worker-{index}",
            daemon=False,
        )
        worker.start()
        self.workers[index] = worker
        self.started_s[index] = time.monotonic()

    def replace(self, index: int) -> bool:
        """Start worker ``index`` again after it died; False when it keeps dying at start-up."""
        from prometheus_client import multiprocess

        dead = self.workers[index]
        multiprocess.mark_process_dead(dead.pid)  # its live gauges (in flight, queue depth) stop counting
        lived_s = time.monotonic() - self.started_s[index]
        self.fast_failures[index] = self.fast_failures[index] + 1 if lived_s < _FAST_FAILURE_S else 0
        if self.fast_failures[index] >= _FAST_FAILURES:
            log.error(
                "worker %d (pid %d) exited with code %s %d times within %.0f s of starting; stopping",
                index,
                dead.pid,
                dead.exitcode,
                _FAST_FAILURES,
                _FAST_FAILURE_S,
            )
            return False
        self.restarts.labels(str(index)).inc()
        self.start(index)
        log.warning(
            "worker %d (pid %d) exited with code %s; restarted as pid %d",
            index,
            dead.pid,
            dead.exitcode,
            self.workers[index].pid,
        )
        return True

    def _on_signal(self, sig: int, frame: Any) -> None:
        if not self.stopping:
            self.stopping = True
            # this copy of the socket too: once the workers close theirs, new connections are refused
            self.listener.close()
            self._signal_all(signal.SIGTERM)

    def _signal_all(self, sig: int) -> None:
        for worker in self.workers:
            if worker is not None and worker.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, sig)

    def stop(self) -> None:
        """SIGTERM every worker, wait for their drains, kill what outlives the drain timeout."""
        self.stopping = True
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self.spec.drain_timeout_s + 15
        for worker in self.workers:
            if worker is None:
                continue
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.exitcode is None:
                log.error("worker %s (pid %d) did not drain in time; killing it", worker.name, worker.pid)
                worker.kill()
                worker.join(5)


def _restart_counter() -> Any:
    from prometheus_client import Counter, values

    # this process imported prometheus-client before PROMETHEUS_MULTIPROC_DIR was set: choose the
    # multiprocess value class now, so the counter lands in the files every worker's /metrics reads
    values.ValueClass = values.get_value_class()
    return Counter(
        "torchship_worker_restarts", "Worker processes restarted after they died", ["worker"], registry=None
    )


# ---------------------------------------------------------------------- in each worker
def worker_main(spec: WorkerSpec, index: int, listener: socket.socket) -> None:
    """One worker: the single-process server on the shared socket plus its private Unix socket."""
    from torchship.serve.app import create_app
    from torchship.serve.cluster import Cluster, ClusterRoute, read_repository_file, socket_path
    from torchship.serve.server import _configure_logging, run_uvicorn

    os.setpgrp()  # Ctrl-C reaches the supervisor only; it sends one SIGTERM (a second would skip the drain)
    _exit_with_parent(spec.parent_pid)
    config = _worker_config(spec.config, index, read_repository_file(spec.directory))
    try:
        app = create_app(spec.path, config, spec.security, spec.grpc_address, grpc_reuse_port=True)
    except TorchshipError as exc:  # a bad artifact: the supervisor says it in one line and stops
        with contextlib.suppress(FileExistsError), open(Path(spec.directory) / _FATAL, "x") as fatal:
            fatal.write(str(exc))
        raise SystemExit(_BAD_INPUT) from None
    cluster = Cluster(index, spec.count, spec.directory)
    app.state.serve.cluster = cluster  # the gRPC service fans out through it too
    app.user_middleware.insert(1, _middleware(ClusterRoute, cluster=cluster))
    _configure_logging(spec.log_level, config.access_log, _WorkerFormatter(index))
    private = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = socket_path(spec.directory, index)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # left by this worker's previous process
    private.bind(path)
    private.listen(256)
    run_uvicorn(
        app,
        config,
        host=spec.host,
        port=spec.port,
        log_level=spec.log_level,
        drain_timeout_s=spec.drain_timeout_s,
        sockets=[listener, private],
    )


def _worker_config(config: ServeConfig, index: int, wanted: dict[str, str]) -> ServeConfig:
    """Worker ``index``'s config: models loaded/unloaded since start-up, one drift monitor, own log file."""
    models = dict(config.models)
    for name, load in wanted.items():
        models[name] = config.settings_for(name).model_copy(update={"load": load})
    monitor = config.monitor
    if index > 0:
        log_config = monitor.request_log
        if log_config is not None:
            path = Path(log_config.path)
            log_config = log_config.model_copy(
                update={"path": path.with_name(f"{path.stem}.w{index}{path.suffix}")}
            )
        monitor = monitor.model_copy(update={"enabled": False, "request_log": log_config})
    return config.model_copy(update={"models": models, "monitor": monitor})


def _middleware(cls: type, **kwargs: Any) -> Any:
    from starlette.middleware import Middleware

    return Middleware(cls, **kwargs)


class _WorkerFormatter(logging.Formatter):
    """Access lines are JSON objects: add ``"worker": i`` as their first key."""

    def __init__(self, index: int):
        super().__init__("%(message)s")
        self.prefix = f'{{"worker":{index},'

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        return self.prefix + line[1:] if line.startswith("{") else line


def _exit_with_parent(parent_pid: int) -> None:
    """Drain and exit when the supervisor is gone (killed with SIGKILL, say): no orphan keeps the port."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="torchship-parent-watch", daemon=True).start()
