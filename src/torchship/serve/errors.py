"""The one error mapper: every failure inside a request becomes (status, message, headers).

``map_error`` decides, for every protocol: the status of a ``ServeError``, Starlette's status
for routing errors (404 no route, 405 wrong method), 499 and nothing sent when the client hung
up, and 500 for anything unexpected, whose traceback goes to the server log and never to the
client. HTTP answers it as ``{"error": "<what>; <fix>"}`` (``error_parts``, sent by the router
in ``serve/app.py`` and by the early refusal in ``serve/server.py``); gRPC aborts with the code
``grpc_code_name`` derives from the same status (``serve/grpc_service.py``); a model's request
statistics count the same status (``ServedModel.record_outcome``).
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from torchship.serve.v2 import ServeError

log = logging.getLogger("torchship.serve")
CLIENT_GONE = 499  # nginx's status for a client that closed the connection; nothing is sent

# the gRPC status code (a grpc.StatusCode name) for each HTTP status; anything else is INTERNAL
_GRPC_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    408: "DEADLINE_EXCEEDED",
    413: "RESOURCE_EXHAUSTED",
    CLIENT_GONE: "CANCELLED",
    503: "UNAVAILABLE",
}


class ClientGoneError(Exception):
    """The client closed the connection before its request was computed."""


def error_status(exc: BaseException) -> int:
    """The status a failure answers with (and is counted under)."""
    if isinstance(exc, ServeError):
        return exc.status
    if isinstance(exc, (ClientGoneError, asyncio.CancelledError)):
        return CLIENT_GONE
    if isinstance(exc, HTTPException):
        return exc.status_code
    return 500


def map_error(exc: BaseException, method: str, path: str) -> tuple[int, str, dict[str, str]]:
    """(status, message, headers) answering ``exc`` on ``method path``; logs unexpected failures."""
    status = error_status(exc)
    if isinstance(exc, ServeError):
        return status, str(exc), dict(exc.headers)
    if status == CLIENT_GONE:
        return status, "client closed the connection", {}
    if isinstance(exc, HTTPException):
        message = f"no route {method} {path}" if status == 404 else str(exc.detail)
        return status, message, dict(exc.headers or {})
    log.error("internal error answering %s %s", method, path, exc_info=exc)
    message = (
        f"internal server error ({type(exc).__name__}); the server log has the details, "
        "find them by this response's X-Request-ID"
    )
    return status, message, {}


def error_parts(exc: BaseException, method: str, path: str) -> tuple[int, bytes, dict[str, str]]:
    """(status, body, headers) of the JSON error answering ``exc`` on ``method path`` over HTTP."""
    status, message, headers = map_error(exc, method, path)
    if status == CLIENT_GONE:
        return status, b"", {}
    return status, orjson.dumps({"error": message}), {"content-type": "application/json", **headers}


def error_response(request: Request, exc: BaseException) -> Response:
    """``error_parts`` as a Starlette exception handler's response."""
    status, body, headers = error_parts(exc, request.method, request.url.path)
    return Response(body, status, headers)


def grpc_code_name(status: int) -> str:
    """The ``grpc.StatusCode`` name for a status ``map_error`` chose.

    Example:
        >>> grpc_code_name(503), grpc_code_name(418)
        ('UNAVAILABLE', 'INTERNAL')
    """
    return _GRPC_CODES.get(status, "INTERNAL")
