"""Hostile requests: every one gets a JSON answer in bounded time and memory (docs/security.md)."""

from __future__ import annotations

import asyncio
import io
import socket
import struct
import zlib

import numpy as np
import orjson
import pytest
from serve_helpers import in_process, real_server, v2_body

from torchship.serve import ServeConfig, create_app
from torchship.serve.model import ServedModel
from torchship.serve.v2 import V2Signature

pytestmark = pytest.mark.anyio
X = np.zeros((1, 1, 8, 8), np.float32)


class Heartbeat:
    """Ticks on the event loop every few ms and keeps the longest gap between two ticks."""

    def __init__(self) -> None:
        self.ticks = 0
        self.longest_gap_s = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(0.002)
            now = loop.time()
            self.ticks += 1
            self.longest_gap_s = max(self.longest_gap_s, now - last)
            last = now


async def test_a_700k_entry_shape_never_holds_the_event_loop(repo):
    shape_bomb = orjson.dumps(
        {"inputs": [{"name": "input", "shape": [2] * 700_000, "datatype": "FP32", "data": [0.0]}]}
    )
    async with in_process(repo) as c:
        heartbeat = Heartbeat()
        beating = asyncio.ensure_future(heartbeat.run())
        await asyncio.sleep(0.05)
        ticks_before = heartbeat.ticks
        r = await c.post("/v2/models/cnn/infer", content=shape_bomb)
        await asyncio.sleep(0.05)
        beating.cancel()
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    assert "at most 8 dimensions (it has 700000)" in r.json()["error"]
    assert heartbeat.ticks > ticks_before
    # parsing the 1.4 MB body is linear (~10 ms here); the old big-int product took tens of seconds
    assert heartbeat.longest_gap_s < 1.0, heartbeat.longest_gap_s


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ([0, 2**63], "is larger than a"),
        ([2**40, 2**40, 1, 1], "is larger than a"),
        ([1] * 9, "at most 8 dimensions"),
    ],
)
async def test_absurd_shapes_are_a_json_400(repo, shape, message):
    async with in_process(repo) as c:
        body = {"inputs": [{"name": "input", "shape": shape, "datatype": "FP32", "data": []}]}
        r = await c.post("/v2/models/cnn/infer", content=orjson.dumps(body))
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    assert message in r.json()["error"]


async def test_json_has_its_own_smaller_limit_and_binary_tensors_pass_it(repo):
    x = np.random.default_rng(0).standard_normal((32, 16)).astype(np.float32)  # 2 KB binary, ~10 KB JSON
    async with in_process(repo, ServeConfig(max_json_bytes=4096)) as c:
        r = await c.post("/v2/models/mlp/infer", json=v2_body(x))
        assert r.status_code == 413
        assert "bytes exceeds the 4096-byte limit; send the tensors as binary data" in r.json()["error"]
        head = orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [32, 16],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": x.nbytes},
                    }
                ]
            }
        )
        r = await c.post(
            "/v2/models/mlp/infer",
            content=head + x.tobytes(),
            headers={"Inference-Header-Content-Length": str(len(head))},
        )
        assert r.status_code == 200
        padded = head[:-1] + b', "id": "' + b"p" * 5000 + b'"}'
        r = await c.post(
            "/v2/models/mlp/infer",
            content=padded + x.tobytes(),
            headers={"Inference-Header-Content-Length": str(len(padded))},
        )
        assert r.status_code == 413
        r = await c.post("/v1/models/mlp:predict", json={"instances": x.tolist()})
        assert r.status_code == 413


async def test_an_unexpected_failure_answers_json_500_on_every_kind_of_route(repo, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("something nobody expected")

    async with in_process(repo) as c:
        monkeypatch.setattr(V2Signature, "check_input", broken)
        monkeypatch.setattr(V2Signature, "metadata", broken)
        monkeypatch.setattr(ServedModel, "infer", broken)
        for r in (
            await c.post("/v2/models/cnn/infer", json=v2_body(X)),
            await c.get("/v2/models/cnn"),
            await c.post("/v1/models/cnn:predict", json={"instances": X.tolist()}),
        ):
            assert r.status_code == 500
            assert r.headers["content-type"] == "application/json"
            assert r.json()["error"].startswith("internal server error (RuntimeError)")
            assert "nobody expected" not in r.text  # details go to the log, not to the client
    assert "something nobody expected" in caplog.text


async def test_a_failure_outside_every_route_wrapper_still_answers_json_500(repo, monkeypatch):
    import httpx

    from torchship.serve import dashboard

    app = create_app(repo)
    monkeypatch.setattr(dashboard, "static_file", lambda name: 1 / 0)
    async with app.router.lifespan_context(app):
        # Starlette re-raises after answering, for the server log
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            r = await c.get("/")
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"].startswith("internal server error (ZeroDivisionError)")


async def _call(app, scope: dict, receive) -> tuple[int, bytes]:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def test_a_multipart_upload_is_refused_as_soon_as_it_passes_the_limit(repo):
    limit, chunk = 64 * 1024, b"x" * 16 * 1024
    app = create_app(repo, ServeConfig(max_body_bytes=limit))
    head = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n"
    )
    received = [0]

    async def receive() -> dict:  # a 3.2 MB upload without a Content-Length, 16 KiB at a time
        received[0] += 1
        if received[0] == 1:
            return {"type": "http.request", "body": head, "more_body": True}
        return {"type": "http.request", "body": chunk, "more_body": received[0] < 200}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/models/cnn:classify",
        "raw_path": b"",
        "query_string": b"",
        "headers": [(b"content-type", b"multipart/form-data; boundary=B")],
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "http",
        "root_path": "",
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    async with app.router.lifespan_context(app):
        for _ in range(400):
            if app.state.serve.started:
                break
            await asyncio.sleep(0.05)
        status, body = await _call(app, scope, receive)
    assert status == 413, body
    assert b"exceeds the 65536-byte limit" in body
    assert received[0] * len(chunk) <= limit + 2 * len(chunk)  # stopped reading at the limit


def _png_head(width: int, height: int) -> bytes:
    """A PNG signature and IHDR declaring width x height, without pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    end = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    return b"\x89PNG\r\n\x1a\n" + chunk + end


async def test_images_are_checked_by_signature_and_pixel_count_before_decoding(repo, monkeypatch):
    from PIL import Image, ImageFile

    def no_decoding(self):
        raise AssertionError("the image was decoded")

    async with in_process(repo) as c:
        monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
        r = await c.post("/v1/models/cnn:classify", content=_png_head(12_000, 12_000))  # 144 M pixels
        assert r.status_code == 413
        assert "12000x12000 = 144000000 pixels, over the 16777216-pixel limit" in r.json()["error"]
        gif = io.BytesIO()
        Image.new("L", (8, 8)).save(gif, format="GIF")
        r = await c.post("/v1/models/cnn:classify", content=gif.getvalue())
        assert r.status_code == 400
        assert "not a PNG or JPEG image (it starts with b'GIF8" in r.json()["error"]
    async with in_process(repo, ServeConfig(max_image_pixels=100)) as c:
        png = io.BytesIO()
        Image.new("L", (16, 16)).save(png, format="PNG")
        r = await c.post("/v1/models/cnn:classify", content=png.getvalue())
        assert r.status_code == 413
        assert "over the 100-pixel limit" in r.json()["error"]


# ---------------------------------------------------------------------- real sockets
def _exchange(url: str, *parts: bytes, timeout_s: float = 20.0) -> bytes:
    """Send ``parts`` on a raw socket, then read until the server closes it (or ``timeout_s``)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        for part in parts:
            sock.sendall(part)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def _status_and_json(response: bytes) -> tuple[int, dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return int(head.split(b" ")[1]), orjson.loads(body)


@pytest.fixture(scope="module")
def strict_server(repo):
    config = ServeConfig(max_header_bytes=2048, header_timeout_s=0.5, body_timeout_s=0.5)
    with real_server(repo, config) as url:
        yield url


@pytest.mark.anyio(False)
@pytest.mark.parametrize(
    "head",
    [
        b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 4000 + b"\r\n\r\n",  # a big header
        b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 3000,  # one that never ends
        b"GET /v2/health/live?" + b"q" * 4000 + b" HTTP/1.1\r\nHost: t\r\n\r\n",  # a long request line
    ],
)
def test_a_request_head_over_the_limit_gets_431(strict_server, head):
    status, body = _status_and_json(_exchange(strict_server, head))
    assert status == 431
    assert "exceed the 2048-byte limit" in body["error"]


@pytest.mark.anyio(False)
def test_a_stalled_request_head_gets_408(strict_server):
    status, body = _status_and_json(_exchange(strict_server, b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n"))
    assert status == 408
    assert "not received within 0.5 s" in body["error"]
    assert _exchange(strict_server) == b""  # a connection that sends nothing is closed


@pytest.mark.anyio(False)
def test_a_stalled_request_body_gets_408(strict_server):
    for path in (b"/v2/models/mlp/infer", b"/v2/repository/index"):
        head = b"POST " + path + b" HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n"
        status, body = _status_and_json(_exchange(strict_server, head, b'{"inputs": ['))
        assert status == 408
        assert "request body not received within 0.5 s" in body["error"]


@pytest.mark.anyio(False)
def test_requests_within_the_limits_still_pass(strict_server):
    ok = _exchange(
        strict_server,
        b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
        + b"X-Fine: "
        + b"a" * 1500
        + b"\r\n\r\n",
    )
    assert ok.startswith(b"HTTP/1.1 200")
