"""Access log and request ids: one JSON line per request, ``X-Request-ID`` echoed or assigned.

A plain ASGI middleware (no per-request Request objects), so it costs a few microseconds.
Lines go to the ``torchship.serve.access`` logger; ``torchship serve`` prints them to stderr.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from typing import Any

import orjson

from torchship.serve.metrics import ServeMetrics

access_log = logging.getLogger("torchship.serve.access")


class AccessLog:
    """Wrap an ASGI app: assign request ids, count in-flight requests, log each request."""

    def __init__(self, app: Any, metrics: ServeMetrics, enabled: bool = True):
        self.app = app
        self.metrics = metrics
        self.enabled = enabled
        self._ids = itertools.count(1)
        self._prefix = f"{os.getpid():x}-{int(time.time()):x}-"

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for key, value in scope["headers"]:
            if key == b"x-request-id" and 0 < len(value) <= 128 and value.isascii():
                request_id = value
                break
        if request_id is None:
            request_id = f"{self._prefix}{next(self._ids)}".encode()
        t0 = time.monotonic()
        status = [500]

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id)]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.metrics.in_flight.dec()
            if self.enabled and access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    orjson.dumps(
                        {
                            "ts": round(time.time(), 3),
                            "request_id": request_id.decode(),
                            "client": (scope.get("client") or ("", 0))[0],
                            "method": scope["method"],
                            "path": scope["path"],
                            "status": status[0],
                            "ms": round((time.monotonic() - t0) * 1e3, 3),
                        }
                    ).decode()
                )
