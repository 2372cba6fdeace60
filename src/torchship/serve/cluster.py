"""What stays one per server when ``torchship serve --workers N`` runs N processes behind one port.

Every worker serves the same app twice: on the shared TCP socket (clients) and on a private
Unix socket ``DIR/w<i>.sock`` in the supervisor's temporary directory (siblings). A request
that must see the whole server and reaches one worker over TCP is fanned out here to every
worker's private socket, each answering for itself with its own token check:

- ``GET /v2/health/ready``: ready only when every worker answers 200;
- ``GET /v2/models[/{m}[/versions/{v}]]/stats``: counts and durations summed over workers;
- ``POST /v2/repository/models/{m}/load|unload``: reaches every worker; the outcome is
  written to ``DIR/repository.json`` so a restarted worker starts with the same models;
- ``GET /v1/models/{m}[/versions/{v}]/drift``: answered by worker 0, the one drift monitor.

``/metrics`` needs no fan-out: prometheus-client's multiprocess files sum it (serve/metrics.py).
Requests that arrive on a private socket (uvicorn's ``server`` is ``(path, None)``) are local.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

import orjson

REPOSITORY_FILE = "repository.json"  # {model: "startup" | "on_demand"} after a fanned-out load/unload
_QUERY_TIMEOUT_S = 10.0
_LOAD_TIMEOUT_S = 600.0  # a load reads and warms up a model in every worker
_BODY_LIMIT_BYTES = 1 << 20  # repository API bodies are tiny JSON objects
_STATS = re.compile(r"^/v2/models(/[^/]+(/versions/[^/]+)?)?/stats$")
_DRIFT = re.compile(r"^/v1/models/[^/]+(/versions/[^/]+)?/drift$")
_REPOSITORY = re.compile(r"^/v2/repository/models/([^/]+)/(load|unload)$")


def socket_path(directory: str | Path, index: int) -> str:
    return str(Path(directory) / f"w{index}.sock")


class Cluster:
    """Worker ``index`` of ``count``: asks its siblings over their private sockets."""

    def __init__(self, index: int, count: int, directory: str | Path):
        self.index = index
        self.count = count
        self.directory = Path(directory)

    async def ask(
        self,
        index: int,
        method: str,
        target: str,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
        timeout_s: float = _QUERY_TIMEOUT_S,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        """One request to worker ``index``: (status, headers, body), or None when it is not there."""
        try:
            return await asyncio.wait_for(
                _request(socket_path(self.directory, index), method, target, body, headers or []), timeout_s
            )
        except (OSError, asyncio.TimeoutError, ValueError):
            return None  # restarting, draining or stuck: the caller says what that means

    async def ask_all(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
        timeout_s: float = _QUERY_TIMEOUT_S,
    ) -> list[tuple[int, list, bytes] | None]:
        return list(
            await asyncio.gather(
                *(self.ask(i, method, target, body, headers, timeout_s) for i in range(self.count))
            )
        )

    async def ready(self) -> list[int]:
        """Indexes of the workers that are not ready (empty: the server is)."""
        answers = await self.ask_all("GET", "/v2/health/ready")
        return [i for i, answer in enumerate(answers) if answer is None or answer[0] != 200]

    def remember(self, model: str, action: str) -> None:
        """Record a load/unload for workers started later (atomically: readers never see half a file)."""
        path = self.directory / REPOSITORY_FILE
        wanted = read_repository_file(self.directory)
        wanted[model] = "startup" if action == "load" else "on_demand"
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(wanted))
        os.replace(tmp, path)

    async def answer(
        self, kind: str, method: str, target: str, body: bytes, headers: list[tuple[str, str]]
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """A server-wide route's (status, headers, JSON body), from every worker's own answer."""
        if kind == "ready":
            missing = await self.ready()
            if missing:
                error = f"server is not ready (worker {', '.join(map(str, missing))} of {self.count} is not)"
                return 503, [(b"retry-after", b"1")], orjson.dumps({"error": error})
            return 200, [], orjson.dumps({"ready": True})
        if kind == "drift":
            return _or_unavailable(await self.ask(0, method, target, body, headers))
        timeout_s = _LOAD_TIMEOUT_S if kind in ("load", "unload") else _QUERY_TIMEOUT_S
        answers = await self.ask_all(method, target, body, headers, timeout_s)
        failed = next((a for a in answers if a is not None and a[0] != 200), None)
        if failed is not None:  # 401, 404, a failed load: the worker's own answer says why
            return _passed_on(failed)
        if kind == "stats":
            parsed = [orjson.loads(a[2]) for a in answers if a is not None]
            owner = orjson.loads(answers[0][2]) if answers[0] is not None else None
            return 200, [], orjson.dumps(sum_stats(parsed, owner))
        model = _REPOSITORY.match(target.split("?")[0]).group(1)
        self.remember(model, kind)
        return 200, [], b"{}"

    async def call(self, kind: str, method: str, target: str, authorization: str | None) -> dict[str, Any]:
        """``answer`` for the gRPC service: the JSON body, or the ServeError the HTTP route would send."""
        from torchship.serve.v2 import ServeError

        headers = [("authorization", authorization)] if authorization else []
        status, extra, payload = await self.answer(kind, method, target, b"", headers)
        result = orjson.loads(payload)
        if status != 200:
            raise ServeError(
                result.get("error", f"status {status}"),
                status=status,
                headers={k.decode(): v.decode() for k, v in extra},
            )
        return result


def read_repository_file(directory: str | Path) -> dict[str, str]:
    path = Path(directory) / REPOSITORY_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


async def _request(
    path: str, method: str, target: str, body: bytes, headers: list[tuple[str, str]]
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    import h11  # uvicorn's HTTP/1.1 parser, so this client needs no extra dependency

    reader, writer = await asyncio.open_unix_connection(path)
    try:
        conn = h11.Connection(h11.CLIENT)
        head = [
            ("host", "torchship-worker"),
            ("content-length", str(len(body))),
            ("connection", "close"),
            *headers,
        ]
        writer.write(
            conn.send(h11.Request(method=method, target=target, headers=head))
            + (conn.send(h11.Data(data=body)) if body else b"")
            + conn.send(h11.EndOfMessage())
        )
        status, response_headers, chunks = 0, [], []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Response):
                status, response_headers = event.status_code, list(event.headers)
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                return status, response_headers, b"".join(chunks)
    except h11.RemoteProtocolError as exc:
        raise ValueError(str(exc)) from None
    finally:
        writer.close()


def sum_stats(answers: list[dict[str, Any]], drift_owner: dict[str, Any] | None) -> dict[str, Any]:
    """Add the workers' ``model_stats`` entries model version by model version (Triton's shape)."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    owner_drift = {
        (e["name"], e["version"]): e.get("drift") for e in (drift_owner or {}).get("model_stats", [])
    }
    for answer in answers:
        for entry in answer.get("model_stats", []):
            key = (entry["name"], entry["version"])
            into = merged.get(key)
            if into is None:
                merged[key] = {**entry, "batch_stats": list(entry["batch_stats"])}
                continue
            into["last_inference"] = max(into["last_inference"], entry["last_inference"])
            for field in ("inference_count", "execution_count", "instance_restarts"):
                into[field] = into.get(field, 0) + entry.get(field, 0)
            _add_durations(into["inference_stats"], entry["inference_stats"])
            by_size = {b["batch_size"]: b for b in into["batch_stats"]}
            for batch in entry["batch_stats"]:
                if batch["batch_size"] in by_size:
                    _add_durations(by_size[batch["batch_size"]], batch)
                else:
                    into["batch_stats"].append(batch)
            into["batch_stats"].sort(key=lambda b: b["batch_size"])
    for key, entry in merged.items():
        if key in owner_drift:
            entry["drift"] = owner_drift[key]
    return {"model_stats": list(merged.values())}


def _add_durations(into: dict[str, Any], more: dict[str, Any]) -> None:
    for phase, value in more.items():
        if isinstance(value, dict) and phase in into:
            into[phase] = {
                "count": into[phase]["count"] + value["count"],
                "ns": into[phase]["ns"] + value["ns"],
            }


class ClusterRoute:
    """ASGI layer: fan the server-wide routes out to every worker; everything else passes through."""

    def __init__(self, app: Any, cluster: Cluster):
        self.app = app
        self.cluster = cluster

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        server = scope.get("server")
        local = scope["type"] != "http" or (
            server is not None and server[1] is None
        )  # Unix socket: a sibling
        kind = None if local else _kind(scope["method"], scope["path"])
        if kind is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k in (b"authorization", b"content-type", b"x-request-id")
        ]
        target = scope["path"] + (
            f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else ""
        )
        status, extra, payload = await self.cluster.answer(kind, scope["method"], target, body, headers)
        raw = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            *extra,
        ]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": payload})


def _kind(method: str, path: str) -> str | None:
    if method == "GET":
        if path == "/v2/health/ready":
            return "ready"
        if _STATS.match(path):
            return "stats"
        if _DRIFT.match(path):
            return "drift"
    elif method == "POST":
        match = _REPOSITORY.match(path)
        if match:
            return match.group(2)
    return None


async def _read_body(receive: Any) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > _BODY_LIMIT_BYTES or not message.get("more_body", False):
            return b"".join(chunks)


def _passed_on(answer: tuple[int, list, bytes]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    status, headers, payload = answer
    keep = [(k, v) for k, v in headers if k in (b"retry-after", b"www-authenticate")]
    return status, keep, payload


def _or_unavailable(answer: tuple[int, list, bytes] | None) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    if answer is None:
        return 503, [(b"retry-after", b"1")], orjson.dumps({"error": "worker 0 is restarting; retry shortly"})
    return _passed_on(answer)
