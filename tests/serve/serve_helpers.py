"""Helpers for the server tests: test runtimes, request bodies, in-process and real-socket servers.

Imported as ``serve_helpers`` (conftest adds this folder to sys.path, as tests/export does).
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from torchship.runtime import runtimes
from torchship.runtime.eager import EagerPredictor
from torchship.serve import ModelSettings, Security, ServeConfig, create_app

CRASH_VALUE = 1234.0  # a row whose first value is this makes the "test-crash" runtime raise


class _Hooked(EagerPredictor):
    """Eager with a hook before every batch, on both entry points (``predict`` rows, ``run`` feeds)."""

    def before(self, first_column: np.ndarray) -> None:
        raise NotImplementedError

    def predict(self, batch):
        self.before(np.asarray(batch).reshape(len(batch), -1)[:, 0])
        return super().predict(batch)

    def run(self, feeds):
        first = next(iter(feeds.values()))
        self.before(np.asarray(first).reshape(len(first), -1)[:, 0])
        return super().run(feeds)


class SlowPredictor(_Hooked):
    """Eager, plus 50 ms per batch: lets tests fill a queue."""

    name = "test-slow"

    def before(self, first_column):
        time.sleep(0.05)


GATE = threading.Event()  # the "test-gate" runtime's batches wait for it; open unless a test closes it
GATE.set()
AT_GATE = threading.Event()  # set when a batch has reached the closed gate


class GatePredictor(_Hooked):
    """Eager, but each batch waits until ``GATE`` is open: a test holds the queue full as long as it likes."""

    name = "test-gate"

    def before(self, first_column):
        if not GATE.is_set():
            AT_GATE.set()
        if not GATE.wait(60):
            raise RuntimeError("test gate never opened")


class CrashPredictor(_Hooked):
    name = "test-crash"

    def before(self, first_column):
        if (first_column == CRASH_VALUE).any():
            raise RuntimeError("simulated instance crash")


for _name, _cls in (
    ("test-slow", SlowPredictor),
    ("test-gate", GatePredictor),
    ("test-crash", CrashPredictor),
):
    if _name not in runtimes:
        runtimes.register(_name)(lambda art, opts, _cls=_cls: _cls(art, opts))


def v2_body(x: np.ndarray, **extra) -> dict:
    return {
        "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}],
        **extra,
    }


def reference(repo: Path, model: str, version: str, x: np.ndarray) -> np.ndarray:
    import torch

    from torchship.artifact import Artifact

    net = Artifact.load(repo / model / version).build_model()
    with torch.inference_mode():
        return net(torch.from_numpy(x)).numpy()


async def wait_ready(client: httpx.AsyncClient, tries: int = 400) -> None:
    import anyio

    for _ in range(tries):
        if (await client.get("/v2/health/ready")).status_code == 200:
            return
        await anyio.sleep(0.05)
    raise TimeoutError("server never became ready")


@contextlib.asynccontextmanager
async def in_process(path: Path, config: ServeConfig | None = None, security: Security | None = None):
    """Start the app's lifespan, wait for readiness, yield an httpx client talking ASGI."""
    app = create_app(path, config, security)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
            await wait_ready(client)
            yield client


def settings(**kwargs) -> ServeConfig:
    return ServeConfig(default=ModelSettings(**kwargs))


@contextlib.contextmanager
def real_server(path: Path, config: ServeConfig | None = None, security: Security | None = None):
    """uvicorn on 127.0.0.1 (free port) in a thread; yields the base URL; stops by itself."""
    with serve_app(create_app(path, config, security)) as url:
        yield url


@contextlib.contextmanager
def serve_app(app):
    """Run a ``create_app`` app under uvicorn on 127.0.0.1 (free port); yield its URL once ready."""
    from torchship.serve.server import uvicorn_server

    server = uvicorn_server(app, app.state.serve.config, host="127.0.0.1", port=0, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise TimeoutError("uvicorn did not start")
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        while httpx.get(url + "/v2/health/ready", timeout=5).status_code != 200:
            if time.monotonic() > deadline:
                raise TimeoutError("server never became ready")
            time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(30)
