"""A full queue is refused from the request head: 503 + Retry-After, connection closed, counted."""

from __future__ import annotations

import concurrent.futures as cf
import logging
import re
import socket

import httpx
import numpy as np
import pytest
from serve_helpers import AT_GATE, GATE, real_server, settings, v2_body

from torchship.serve import Security

INFER = "/v2/models/mlp/infer"


def _fill(url: str, http: httpx.Client, pool: cf.Executor) -> list[cf.Future]:
    """One request computing behind the closed gate, one waiting: the queue (limit 1) is full."""
    good = v2_body(np.ones((1, 16), np.float32))
    headers = {"authorization": "Bearer s3cret"}
    fill = [pool.submit(http.post, url + INFER, json=good, headers=headers)]
    assert AT_GATE.wait(30), "the first request never reached the model"
    fill.append(pool.submit(http.post, url + INFER, json=good, headers=headers))
    for _ in range(3000):
        text = http.get(url + "/metrics").text
        depth = re.search(r'torchship_queue_depth\{model="mlp",version="1"\} (\S+)', text)
        if depth and float(depth.group(1)) >= 1:
            return fill
        GATE.wait(0.01)
    pytest.fail("the second request never queued")


def _head_only(url: str, token: str | None) -> bytes:
    """Send a request head announcing a 1 MB body, send no body, read the answer until close."""
    host, port = url.removeprefix("http://").split(":")
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (
        f"POST {INFER} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{auth}"
        "Content-Length: 1000000\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
            if not token:  # the app answers 401 and waits on the keep-alive connection
                break
        return b"".join(chunks)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _whole_request(url: str, body_bytes: int) -> bytes:
    """Send a head and its whole (large) body, then read the answer until the server's FIN."""
    host, port = url.removeprefix("http://").split(":")
    head = (
        f"POST {INFER} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer s3cret\r\nContent-Length: {body_bytes}\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + b" " * body_bytes)  # a reset here, if the server closed at once
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_a_refused_client_still_sending_its_body_gets_the_answer_not_a_reset(repo):
    config = settings(runtime="test-gate", max_batch_size=1, queue_limit=1)
    security = Security(inference_token="s3cret")
    with (
        real_server(repo, config, security) as url,
        httpx.Client(timeout=30) as http,
        cf.ThreadPoolExecutor(2) as pool,
    ):
        GATE.clear()
        AT_GATE.clear()
        warnings = _Records()
        logging.getLogger("uvicorn.error").addHandler(warnings)
        try:
            fill = _fill(url, http, pool)
            # 8 MB does not fit in the socket buffers: most of it arrives after the refusal
            answers = [_whole_request(url, 8_000_000) for _ in range(3)]
        finally:
            GATE.set()
            logging.getLogger("uvicorn.error").removeHandler(warnings)
        assert [f.result().status_code for f in fill] == [200, 200]
        assert not [
            r for r in warnings.records if "Invalid HTTP" in r.getMessage()
        ]  # a shed is no bad request
        for answer in answers:
            assert answer.startswith(b"HTTP/1.1 503 "), answer[:80]
            assert b"overloaded" in answer


def test_a_full_queue_refuses_from_the_head_and_closes_the_connection(repo):
    config = settings(runtime="test-gate", max_batch_size=1, queue_limit=1)
    security = Security(inference_token="s3cret")
    with (
        real_server(repo, config, security) as url,
        httpx.Client(timeout=30) as http,
        cf.ThreadPoolExecutor(2) as pool,
    ):
        GATE.clear()
        AT_GATE.clear()
        try:
            fill = _fill(url, http, pool)
            # no body sent: only an answer from the head can arrive, and the server closes
            answer = _head_only(url, "s3cret")
            unauthorized = _head_only(url, None)
        finally:
            GATE.set()
        assert [f.result().status_code for f in fill] == [200, 200]
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 ")
        assert b"retry-after: 1" in head.lower()
        assert b"connection: close" in head.lower()
        assert b"overloaded" in body
        assert unauthorized.startswith(b"HTTP/1.1 401 ")  # no token, no news about the queue
        metrics = http.get(url + "/metrics").text
        assert 'torchship_requests_total{model="mlp",status="503",version="1"} 1.0' in metrics
