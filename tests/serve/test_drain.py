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
