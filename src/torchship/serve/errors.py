"""The one error mapper: every failure inside a request becomes the documented JSON error shape.

``{"error": "<what>; <fix>"}`` with the status of a ``ServeError``, Starlette's status for
routing errors (404 no route, 405 wrong method), nothing (499) when the client hung up, and
500 for anything unexpected, whose traceback goes to the server log and never to the client.
The infer fast path, every Starlette route and the Starlette app's exception handlers all
answer through ``error_parts``, so no failure can reach the client as a text/plain 500.
"""

from __future__ import annotations

import logging

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from torchship.serve.model import ClientGoneError
from torchship.serve.v2 import ServeError

log = logging.getLogger("torchship.serve")
CLIENT_GONE = 499  # nginx's status for a client that closed the connection; nothing is sent


def error_status(exc: BaseException) -> int:
    """The HTTP status a failure answers with."""
    if isinstance(exc, ServeError):
        return exc.status
    if isinstance(exc, ClientGoneError):
        return CLIENT_GONE
    if isinstance(exc, HTTPException):
        return exc.status_code
    return 500


def error_parts(exc: BaseException, method: str, path: str) -> tuple[int, bytes, dict[str, str]]:
    """(status, body, headers) of the JSON error answering ``exc`` on ``method path``."""
    status = error_status(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, ServeError):
        message, headers = str(exc), dict(exc.headers)
    elif isinstance(exc, ClientGoneError):
        return status, b"", {}
    elif isinstance(exc, HTTPException):
        message = f"no route {method} {path}" if status == 404 else str(exc.detail)
        headers = dict(exc.headers or {})
    else:
        log.error("internal error answering %s %s", method, path, exc_info=exc)
        message = (
            f"internal server error ({type(exc).__name__}); the server log has the details, "
            "find them by this response's X-Request-ID"
        )
    return status, orjson.dumps({"error": message}), {"content-type": "application/json", **headers}


def error_response(exc: BaseException, request: Request) -> Response:
    """``error_parts`` as a Starlette response (also usable as a Starlette exception handler)."""
    status, body, headers = error_parts(exc, request.method, request.url.path)
    return Response(body, status, headers)
