"""SIGTERM under load: the server stops accepting, answers every accepted request, exits 0."""

from __future__ import annotations

import concurrent.futures as cf
import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
from serve_helpers import v2_body

SERVER = """
import sys, time
from torchship.runtime import runtimes
from torchship.runtime.eager import EagerPredictor
from torchship.serve import ModelSettings, ServeConfig, serve

class Slow(EagerPredictor):
    def predict(self, batch):
        time.sleep(0.25)
        return super().predict(batch)

runtimes.register("drain-slow")(lambda art, opts: Slow(art, opts))
config = ServeConfig(
    access_log=False, default=ModelSettings(runtime="drain-slow", max_batch_size=1, warmup=0)
)
serve(sys.argv[1], port=int(sys.argv[2]), config=config, log_level="warning")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _in_flight(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=5).text
    return float(re.search(r"^torchship_inflight_requests (\S+)$", text, re.M).group(1))


def test_sigterm_under_load_finishes_every_accepted_request(repo):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(repo / "mlp" / "1"), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(url + "/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        body = v2_body(np.ones((1, 16), np.float32))
        with httpx.Client(timeout=60) as http, cf.ThreadPoolExecutor(12) as pool:
            futures = [
                pool.submit(http.post, url + "/v2/models/tiny-mlp/infer", json=body) for _ in range(12)
            ]
            busy_by = time.monotonic() + 10
            while (in_flight := _in_flight(url)) < 5 and time.monotonic() < busy_by:
                time.sleep(0.01)
            os.kill(proc.pid, signal.SIGTERM)
            statuses = [f.result().status_code for f in futures]
        assert in_flight >= 5  # 0.25 s per request, one at a time: most were still queued at SIGTERM
        assert statuses == [200] * 12
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after draining
        try:
            httpx.get(url + "/v2/health/live", timeout=2)
            raise AssertionError("server still accepting after drain")
        except httpx.TransportError:
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_a_connection_accepted_before_sigterm_gets_its_first_request_answered(repo):
    """uvicorn closes every connection without a request in progress at shutdown, so a client that
    connected just before SIGTERM and sent its request just after lost it (Server disconnected)."""
    import signal as signals
    import threading

    import orjson

    from torchship.serve import ServeConfig, create_app
    from torchship.serve.server import uvicorn_server

    app = create_app(repo / "mlp" / "1", ServeConfig(access_log=False))
    server = uvicorn_server(app, app.state.serve.config, host="127.0.0.1", port=0, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not (server.started and app.state.serve.started):
        assert thread.is_alive(), "the server did not start"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    body = orjson.dumps(v2_body(np.ones((1, 16), np.float32)))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        while not server.server_state.connections:  # accepted, no request sent yet
            assert time.monotonic() < deadline, "the connection was never accepted"
            time.sleep(0.01)
        server.handle_exit(signals.SIGTERM, None)
        while True:  # until the listener is closed: the shutdown has begun
            assert time.monotonic() < deadline, "the server never stopped listening"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
            except ConnectionRefusedError:
                break
            time.sleep(0.02)
        time.sleep(0.2)  # past uvicorn's closing of the connections between requests
        sock.sendall(
            b"POST /v2/models/tiny-mlp/infer HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    thread.join(30)
    head, _, answer = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), reply[:200]
    assert b"connection: close" in head.lower()
    assert orjson.loads(answer)["outputs"][0]["shape"][0] == 1
    assert not thread.is_alive()
