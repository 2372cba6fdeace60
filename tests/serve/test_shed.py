"""A full queue is refused from the request head: 503 + Retry-After at once, counted, body dropped."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import re
import socket

import httpx
import numpy as np
import orjson
import pytest
from serve_helpers import AT_GATE, GATE, real_server, v2_body

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


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _head(token: str | None, body_bytes: int, close: bool = False) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    connection = "Connection: close\r\n" if close else ""
    return (
        f"POST {INFER} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n{auth}{connection}"
        f"Content-Length: {body_bytes}\r\n\r\n"
    ).encode()


def _response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One response (head, body) read by its content-length; the connection may stay open."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a whole response head: {data[:80]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head.lower())[1])
    while len(body) < length:
        body += sock.recv(65536)
    assert len(body) == length, "more than one response arrived"
    return head, body


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _filled(repo, queue_limit: int = 1, **config):
    """A server whose queue is full but for ``queue_limit - 1`` places until the block ends (one
    request computing behind the closed gate, one queued); yields (url, http)."""
    from torchship.serve import ModelSettings, ServeConfig

    model = ModelSettings(runtime="test-gate", max_batch_size=1, queue_limit=queue_limit)
    with (
        real_server(repo, ServeConfig(default=model, **config), Security(inference_token="s3cret")) as url,
        httpx.Client(timeout=30) as http,
        cf.ThreadPoolExecutor(2) as pool,
    ):
        GATE.clear()
        AT_GATE.clear()
        try:
            fill = _fill(url, http, pool)
            yield url, http
        finally:
            GATE.set()
        assert [f.result().status_code for f in fill] == [200, 200]


@pytest.fixture
def full_queue(repo):
    """A server whose queue (limit 1) is full until the test ends; yields (url, http)."""
    with _filled(repo) as served:
        yield served


def test_a_full_queue_answers_from_the_head_before_the_body_and_keeps_the_connection(full_queue):
    url, http = full_queue
    with _connect(url) as sock:
        sock.sendall(_head("s3cret", 1_000_000))  # the 1 MB body is not sent: only the head is judged
        head, body = _response(sock)
        assert head.startswith(b"HTTP/1.1 503 ")
        assert b"retry-after: 1" in head.lower()
        assert b"connection: close" not in head.lower()
        assert b"overloaded" in body
        # the body that follows is dropped, and the same connection serves the next request
        sock.sendall(b" " * 1_000_000 + b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n")
        head, _ = _response(sock)
        assert head.startswith(b"HTTP/1.1 200 ")
    with _connect(url) as sock:
        sock.sendall(_head(None, 1_000_000))
        head, _ = _response(sock)
        assert head.startswith(b"HTTP/1.1 401 ")  # no token, no news about the queue
    metrics = http.get(url + "/metrics").text
    assert 'torchship_requests_total{model="mlp",status="503",version="1"} 1.0' in metrics


def test_a_refused_client_still_sending_its_body_gets_the_answer_not_a_reset(full_queue):
    url, _ = full_queue
    warnings = _Records()
    logging.getLogger("uvicorn.error").addHandler(warnings)
    try:
        for close in (False, True):  # keep-alive: body dropped; Connection: close: lingering close
            with _connect(url) as sock:
                # 8 MB does not fit in the socket buffers: most of it arrives after the refusal
                sock.sendall(_head("s3cret", 8_000_000, close) + b" " * 8_000_000)
                head, body = _response(sock)
                assert head.startswith(b"HTTP/1.1 503 "), head[:80]
                assert b"overloaded" in body
                assert (b"connection: close" in head.lower()) is close
                if close:
                    assert sock.recv(1) == b""  # then the server's FIN, not a reset
    finally:
        logging.getLogger("uvicorn.error").removeHandler(warnings)
    assert not [r for r in warnings.records if "Invalid HTTP" in r.getMessage()]  # a shed is no bad request


def test_a_shed_request_whose_body_stalls_is_closed(repo):
    with _filled(repo, header_timeout_s=0.5) as (url, _), _connect(url) as sock:
        sock.sendall(_head("s3cret", 1000) + b" " * 10)  # 10 of 1,000 bytes, then nothing
        head, _ = _response(sock)
        assert head.startswith(b"HTTP/1.1 503 ")
        assert sock.recv(1) == b""  # closed by the server within the timeout, not the test's 10 s


def test_a_request_holds_its_place_from_its_head_so_a_burst_cannot_overshoot_the_queue(repo):
    body = orjson.dumps(v2_body(np.ones((1, 16), np.float32)))
    with (
        _filled(repo, queue_limit=2) as (url, http),  # one computing, one queued: one place left
        _connect(url) as held,
        _connect(url) as late,
    ):
        held.sendall(_head("s3cret", len(body)))  # takes the last place; its body comes later
        late.sendall(_head("s3cret", len(body)))  # nothing is queued yet, but no place is left
        head, _ = _response(late)
        assert head.startswith(b"HTTP/1.1 503 ")
        held.sendall(body)
        GATE.set()
        head, answer = _response(held)
        assert head.startswith(b"HTTP/1.1 200 "), answer
        # answered last (one row a batch, first come first served): the two before it are counted
        stats = http.get(url + "/v2/models/mlp/stats", headers={"authorization": "Bearer s3cret"}).json()
        assert stats["model_stats"][0]["inference_stats"]["success"]["count"] == 3


def test_a_place_nobody_released_is_given_back_when_dropped():
    from torchship.serve.model import Admission

    class Model:
        admitted = 1

    model = Model()
    place = Admission(model)
    place.release()
    place.release()  # idempotent
    assert model.admitted == 0
    model.admitted = 1
    Admission(model)  # never released: dropped at once
    assert model.admitted == 0
