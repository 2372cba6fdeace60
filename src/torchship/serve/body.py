"""Request bodies within limits: at most ``max_body_bytes`` (413) within ``body_timeout_s`` (408).

JSON has its own, smaller limit, ``max_json_bytes``: parsing JSON holds the event loop
(orjson keeps the interpreter lock, so a thread would not help) for about 20 ms per MiB on a
busy 2-core machine, so the JSON part of a request is kept small and big tensors travel as
binary data, which is not parsed.

Every route reads its body through ``LimitedReceive``: the raw-body routes with ``read()``,
multipart forms by handing it to Starlette's form parser as the request's ``receive``. Bytes
are counted as they arrive and the body is refused as soon as it passes the limit, so no
route holds more than the limit in memory; a declared ``Content-Length`` over the limit is
refused before anything is read. A client that stops sending (slow-loris) is answered 408
when the body deadline passes. Both answers close the connection, so the rest of an
unwanted body is never read.
"""

from __future__ import annotations

import asyncio
from typing import Any

from torchship.serve.errors import ClientGoneError
from torchship.serve.v2 import ServeError

_CLOSE = {"connection": "close"}


_FIXES = {
    "max_body_bytes": "send fewer rows per request, or raise max_body_bytes in the serve config",
    "max_json_bytes": "send the tensors as binary data (Inference-Header-Content-Length) or fewer rows per "
    "request, or raise max_json_bytes in the serve config",
}


def too_large(limit: int, key: str = "max_body_bytes", declared: str | None = None) -> ServeError:
    """The 413 for a body (or its JSON part) over the ``key`` limit of the serve config."""
    what = "JSON" if key == "max_json_bytes" else "request body"
    size = f" of {declared} bytes" if declared else ""
    return ServeError(
        f"{what}{size} exceeds the {limit}-byte limit", status=413, headers=_CLOSE, fix=_FIXES[key]
    )


class LimitedReceive:
    """An ASGI ``receive`` that refuses a body past ``limit`` bytes (413) or ``timeout_s`` seconds (408).

    Raises:
        ServeError: 413 at once when ``declared`` (the Content-Length) is over the limit.
    """

    def __init__(
        self,
        receive: Any,
        limit: int,
        timeout_s: float,
        declared: str | None = None,
        key: str = "max_body_bytes",
    ):
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large(limit, key, declared)
        self._receive = receive
        self.limit = limit
        self.key = key
        self.timeout_s = timeout_s
        self.size = 0
        self._deadline = asyncio.get_running_loop().time() + timeout_s

    async def __call__(self) -> dict[str, Any]:
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            raise ServeError(
                f"request body not received within {self.timeout_s:g} s",
                status=408,
                headers=_CLOSE,
                fix="send the whole body promptly, or raise body_timeout_s in the serve config",
            ) from None
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        self.size += len(message.get("body", b""))
        if self.size > self.limit:
            raise too_large(self.limit, self.key)
        return message

    async def read(self) -> bytes:
        """The whole body."""
        chunks = []
        while True:
            message = await self()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
