"""The HTTP app: Open Inference Protocol v2 routes plus health, repository, stats, drift and metrics.

``create_app(PATH)`` gives a Starlette ASGI app with a real lifespan: at start it begins
loading (and warming up) the startup models in the background, answering ``/v2/health/ready``
with 503 + Retry-After until they are ready; at shutdown it lets every accepted request
finish, then stops the model instances. Run it with ``torchship serve`` (uvicorn) or any
ASGI server; tests drive it in-process through ``httpx.ASGITransport``. ``GET /`` is the
dashboard (``serve/dashboard.py``); drift scores come from ``torchship.monitor``.

One request path: every route is an entry of one table (``ServeRouter``), the v2 infer route
matched first and served as plain ASGI; every failure is answered by the one mapper (``serve/errors.py``);
every inference route counts its outcome with ``ServedModel.record_outcome()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

import torchship
from torchship.serve.access import AccessLog
from torchship.serve.body import LimitedReceive, too_large
from torchship.serve.config import ServeConfig
from torchship.serve.dashboard import RateTracker
from torchship.serve.errors import error_parts, error_response
from torchship.serve.metrics import ServeMetrics
from torchship.serve.model import Admission, ServedModel
from torchship.serve.protocol import ADMISSION, GONE
from torchship.serve.repository import Repository
from torchship.serve.security import Security
from torchship.serve.v2 import ServeError, decode_infer, decode_json, encode_infer

log = logging.getLogger("torchship.serve")
EXTENSIONS = [
    "binary_tensor_data",
    "classification",
    "model_repository",
    "statistics",
    "model_configuration",
    "schedule_policy",
]


class ServeState:
    """What every route shares: the repository, metrics, security and the lifecycle flags."""

    def __init__(
        self, repository: Repository, config: ServeConfig, security: Security, metrics: ServeMetrics
    ):
        self.repository = repository
        self.config = config
        self.security = security
        self.metrics = metrics
        self.rates = RateTracker()  # the dashboard's recent rates
        self.started = False  # startup models loaded and warmed up
        self.draining = False
        self.grpc_port: int | None = None  # bound gRPC port (serve/grpc_service.py), None: off

    def limited_receive(self, receive: Any, declared: str | None, json: bool = False) -> LimitedReceive:
        """``receive`` within the body limits: 413 past ``max_body_bytes`` (``max_json_bytes`` for a
        JSON body, when smaller), 408 past ``body_timeout_s``."""
        limit, key = self.config.max_body_bytes, "max_body_bytes"
        if json and self.config.max_json_bytes < limit:
            limit, key = self.config.max_json_bytes, "max_json_bytes"
        return LimitedReceive(receive, limit, self.config.body_timeout_s, declared, key)

    async def read_body(self, request: Request, json: bool = True) -> bytes:
        """The whole body (JSON unless ``json`` is False), within the body limits."""
        return await self.limited_receive(request.receive, request.headers.get("content-length"), json).read()

    def not_ready(self) -> ServeError | None:
        """Why ``/v2/health/ready`` answers 503 (None: ready)."""
        if self.draining or not self.started:
            why = "draining" if self.draining else "loading and warming up models"
            return ServeError(f"server is not ready ({why})", status=503, headers={"retry-after": "1"})
        failed = self.repository.unavailable_startup_models() if self.config.strict_readiness else []
        if failed:
            return ServeError(
                f"server is not ready: {'; '.join(failed)}",
                status=503,
                fix="fix those models and load them with POST /v2/repository/models/{m}/load, "
                "or serve with --no-strict-readiness",
            )
        return None


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY),
        status,
        headers,
        media_type="application/json",
    )


Handler = Callable[[Request, ServeState], Awaitable[Response]]


def endpoint(guard: str | None = None) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wrap a route: check its token (``inference``/``management``); ``ServeRouter`` maps its failures."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            state: ServeState = request.app.state.serve
            if guard == "inference":
                state.security.check_inference(request.headers.get("authorization"))
            elif guard == "management":
                state.security.check_management(request.headers.get("authorization"))
            return await handler(request, state)

        route.__name__ = handler.__name__
        return route

    return wrap


def _model(request: Request, state: ServeState) -> ServedModel:
    return state.repository.get(request.path_params["model"], request.path_params.get("version"))


# ---------------------------------------------------------------------- health and metadata
@endpoint()
async def live(request: Request, state: ServeState) -> Response:
    return json_response({"live": True})


@endpoint()
async def ready(request: Request, state: ServeState) -> Response:
    problem = state.not_ready()
    if problem is not None:
        raise problem
    return json_response({"ready": True})


@endpoint()
async def server_metadata(request: Request, state: ServeState) -> Response:
    return json_response({"name": "torchship", "version": torchship.__version__, "extensions": EXTENSIONS})


@endpoint("inference")
async def model_metadata(request: Request, state: ServeState) -> Response:
    model = _model(request, state)
    return json_response(model.v2.metadata())


@endpoint("inference")
async def model_ready(request: Request, state: ServeState) -> Response:
    try:
        model = _model(request, state)
    except ServeError as exc:
        if exc.status != 503:
            raise
        return json_response({"name": request.path_params["model"], "ready": False}, 503, exc.headers)
    return json_response({"name": model.name, "versions": [model.version], "ready": True})


@endpoint("inference")
async def model_config(request: Request, state: ServeState) -> Response:
    return json_response(_model(request, state).v2.triton_config())


@endpoint("inference")
async def model_stats(request: Request, state: ServeState) -> Response:
    if "model" in request.path_params:
        if "version" in request.path_params:
            models = [_model(request, state)]
        else:
            _model(request, state)  # 404 when unknown
            models = list(state.repository.models[request.path_params["model"]].values())
    else:
        models = [m for versions in state.repository.models.values() for m in versions.values()]
    # Triton's shape, plus one "drift" key per model (tritonclient passes unknown keys through)
    return json_response({"model_stats": [{**m.stats.to_json(), "drift": m.drift()} for m in models]})


@endpoint("inference")
async def model_drift(request: Request, state: ServeState) -> Response:
    model = _model(request, state)
    return json_response({"name": model.name, "version": model.version, **model.drift()})


@endpoint("inference")
async def dashboard_summary(request: Request, state: ServeState) -> Response:
    from torchship.serve.dashboard import summary

    return json_response(summary(state))


# ---------------------------------------------------------------------- inference
class InferEndpoint:
    """``POST /v2/models/{m}[/versions/{v}]/infer``: a plain ASGI endpoint in the route table.

    No Request object and no per-route wrapper, because it is the one hot path: on a 2-core
    machine those layers cost about as much CPU as the handler itself. The router matches it
    first (``infer_params``) and maps its failures like every other route's.
    """

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        state: ServeState = scope["app"].state.serve
        headers = {
            key: value
            for key, value in scope["headers"]
            if key in (b"authorization", b"content-length", b"inference-header-content-length")
        }
        params = scope["path_params"]
        admission = scope.get(ADMISSION)  # a place taken at the request head (serve/protocol.py)
        try:
            payload, extra = await _infer(
                state, params["model"], params.get("version"), headers, receive, admission, scope.get(GONE)
            )
        finally:
            if admission is not None:
                admission.release()
        await send_response(send, 200, payload, extra)


async def send_response(send: Any, status: int, body: bytes, headers: dict[str, str]) -> None:
    """Send a whole response through ASGI ``send`` (no Response object)."""
    raw = [(b"content-length", str(len(body)).encode())]
    raw += [(key.encode(), str(value).encode()) for key, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _infer(
    state: ServeState,
    name: str,
    version: str | None,
    headers: dict[bytes, bytes],
    receive: Any,
    admission: Admission | None = None,
    gone: asyncio.Future | None = None,
) -> tuple[bytes, dict[str, str]]:
    authorization = headers.get(b"authorization")
    state.security.check_inference(authorization.decode("latin-1") if authorization is not None else None)
    model = state.repository.get(name, version)
    with model.record_outcome():
        if admission is None or admission.model is not model:
            admission = model.admit()
        try:
            return await _infer_admitted(state, model, headers, receive, admission, gone)
        finally:
            admission.release()  # idempotent: infer released it once the request was queued


async def _infer_admitted(
    state: ServeState,
    model: ServedModel,
    headers: dict[bytes, bytes],
    receive: Any,
    admission: Admission,
    gone: asyncio.Future | None,
) -> tuple[bytes, dict[str, str]]:
    declared = headers.get(b"content-length")
    header_length = headers.get(b"inference-header-content-length")
    body = await state.limited_receive(
        receive, declared.decode("latin-1") if declared else None, json=header_length is None
    ).read()
    max_json = state.config.max_json_bytes
    if header_length is not None and header_length.isdigit() and int(header_length) > max_json:
        raise too_large(max_json, "max_json_bytes")
    req = decode_infer(body, header_length.decode("latin-1") if header_length is not None else None)
    rows = model.v2.check_input(req)
    model.v2.check_outputs(req.outputs)
    timeout_s = req.timeout_us / 1e6 if req.timeout_us else model.settings.timeout_ms / 1e3
    if gone is not None:  # our protocol completes it when the client hangs up (serve/protocol.py)
        logits = await model.infer(rows, timeout_s, gone, admission)
    else:  # another ASGI server: a receive() after the body completes when the client hangs up
        watch = asyncio.ensure_future(receive())
        try:
            logits = await model.infer(rows, timeout_s, watch, admission)
        finally:
            watch.cancel()
    return encode_infer(
        model.name, model.version, req.id, model.v2.outputs(logits, req.outputs, req.binary_output)
    )


# ---------------------------------------------------------------------- repository API
@endpoint("management")
async def repository_index(request: Request, state: ServeState) -> Response:
    body = await state.read_body(request)
    options = decode_json(body) if body.strip() else {}
    if not isinstance(options, dict):
        raise ServeError('repository index body must be a JSON object like {"ready": true}')
    return json_response(state.repository.index(ready_only=options.get("ready") is True))


async def _no_files(request: Request, state: ServeState) -> None:
    body = await state.read_body(request)
    options = decode_json(body) if body.strip() else {}
    params = options.get("parameters", {}) if isinstance(options, dict) else None
    if not isinstance(params, dict):
        raise ServeError("load/unload body must be a JSON object")
    if any(key == "config" or key.startswith("file:") for key in params):
        raise ServeError(
            "this server loads models only from its repository directory",
            fix="copy the artifact into the repository, then load it by name",
            status=400,
        )


@endpoint("management")
async def repository_load(request: Request, state: ServeState) -> Response:
    await _no_files(request, state)
    await state.repository.load(request.path_params["model"])
    return json_response({})


@endpoint("management")
async def repository_unload(request: Request, state: ServeState) -> Response:
    await _no_files(request, state)
    await state.repository.unload(request.path_params["model"])
    return json_response({})


@endpoint()
async def metrics(request: Request, state: ServeState) -> Response:
    for versions in state.repository.models.values():
        for model in versions.values():
            state.metrics.queue_depth.labels(model.name, model.version).set(model.batcher.depth)
            state.metrics.set_drift(model.name, model.version, model.drift())
    request_log = state.repository.monitoring.request_log
    if request_log is not None:
        state.metrics.request_log_dropped.set(request_log.dropped)
        state.metrics.request_log_written.set(request_log.written)
    return Response(state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


class ServeRouter(Router):
    """The one route table, and the one place an HTTP request's failure is answered.

    Every route raises; the router answers with ``error_parts`` (``serve/errors.py``), so no
    failure reaches the client as a text/plain 500. Routing errors come here as well: Starlette
    raises 404 for an unknown path and 405 (with ``Allow``) for a known path and another method.

    The table's two infer entries are matched by ``infer_params`` before the table is walked:
    Starlette's matching (regex, convertors, scope copies) costs about half the dispatch of the
    one hot path. Both lead to the same ``InferEndpoint``, so they cannot disagree; anything
    but a POST to an infer path (a GET gets 405) is the table's.
    """

    def __init__(self, routes: list[Route], infer: InferEndpoint, lifespan: Any):
        super().__init__(routes, lifespan=lifespan)
        self.infer = infer

    async def app(self, scope: dict, receive: Any, send: Any) -> None:
        try:
            if scope["type"] == "http" and scope["method"] == "POST":
                params = infer_params(scope["path"])
                if params is not None:
                    scope["path_params"] = params
                    await self.infer(scope, receive, send)
                    return
            await super().app(scope, receive, send)
        except Exception as exc:  # noqa: BLE001 - the one mapper answers every failure in JSON
            if scope["type"] != "http":
                raise
            await send_response(send, *error_parts(exc, scope["method"], scope["path"]))


def infer_params(path: str) -> dict[str, str] | None:
    """The path parameters of ``/v2/models/{model}[/versions/{version}]/infer``, or None.

    Example:
        >>> infer_params("/v2/models/cnn/versions/2/infer"), infer_params("/v2/models/cnn/ready")
        ({'model': 'cnn', 'version': '2'}, None)
    """
    if not (path.startswith("/v2/models/") and path.endswith("/infer")):
        return None
    parts = path[len("/v2/models/") : -len("/infer")].split("/")
    if len(parts) == 1 and parts[0]:
        return {"model": parts[0]}
    if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
        return {"model": parts[0], "version": parts[2]}
    return None


class ServeApp(Starlette):
    """Starlette whose router maps its own failures, so its per-request ExceptionMiddleware is left out.

    The stack: ServerErrorMiddleware (JSON 500 for a failure in a middleware), the middleware
    added with ``add_middleware`` (AccessLog outermost), then ``ServeRouter``.
    """

    def __init__(self, lifespan: Any):
        super().__init__(lifespan=lifespan)
        infer = InferEndpoint()
        self.router = ServeRouter(_routes(infer), infer, lifespan)

    def build_middleware_stack(self) -> Any:
        app: Any = self.router.app  # Router.__call__ only forwards to it: one frame less per request
        middleware = [Middleware(ServerErrorMiddleware, handler=error_response), *self.user_middleware]
        for cls, args, kwargs in reversed(middleware):
            app = cls(app, *args, **kwargs)
        return app


def _routes(infer: InferEndpoint) -> list[Route]:
    from torchship.serve import convenience, dashboard

    model_paths = ("/v2/models/{model}", "/v2/models/{model}/versions/{version}")
    routes = [Route(f"{base}/infer", infer, methods=["POST"], name="infer") for base in model_paths]
    routes += [
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2", server_metadata),
        Route("/v2/models/stats", model_stats),
        Route("/v2/repository/index", repository_index, methods=["POST"]),
        Route("/v2/repository/models/{model}/load", repository_load, methods=["POST"]),
        Route("/v2/repository/models/{model}/unload", repository_unload, methods=["POST"]),
        Route("/metrics", metrics),
        Route("/", dashboard.index),
        Route("/static/{name}", dashboard.asset),
        Route("/v1/summary", dashboard_summary),
    ]
    for base in model_paths:
        routes += [
            Route(base, model_metadata),
            Route(f"{base}/ready", model_ready),
            Route(f"{base}/stats", model_stats),
            Route(f"{base}/config", model_config),
        ]
    for base in ("/v1/models/{model}", "/v1/models/{model}/versions/{version}"):
        routes.append(Route(f"{base}/drift", model_drift))
    return routes + convenience.routes(endpoint)


def create_app(
    path: str | Path,
    config: ServeConfig | None = None,
    security: Security | None = None,
    grpc_address: str | None = None,
    *,
    grpc_reuse_port: bool = False,
) -> ServeApp:
    """Build the ASGI app serving the artifact or repository at ``path``.

    With ``grpc_address`` (``host:port``; port 0 picks a free one) the lifespan also serves
    the v2 gRPC service there, in the same event loop (``serve/grpc_service.py``).
    ``grpc_reuse_port`` shares that port with other processes (``serve --workers``); without
    it a taken port fails.

    Example:
        >>> from torchship.testing import tiny_artifact
        >>> import tempfile
        >>> art = tiny_artifact("cnn", path=tempfile.mkdtemp() + "/tiny")
        >>> app = create_app(art.path)
    """
    config = config or ServeConfig()
    metrics = ServeMetrics()
    state = ServeState(Repository(path, config, metrics), config, security or Security(), metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        async def start() -> None:
            await state.repository.load_startup()
            state.started = True
            log.info(
                "ready: %s",
                ", ".join(
                    f"{e['name']}/{e.get('version', '-')} {e['state']}" for e in state.repository.index()
                ),
            )

        grpc_server = None
        if grpc_address is not None:
            from torchship.serve.grpc_service import STOP_GRACE_S, start_grpc

            grpc_server = await start_grpc(state, grpc_address, reuse_port=grpc_reuse_port)
        loader = asyncio.create_task(start())
        try:
            yield
        finally:
            state.draining = True
            if not loader.done():
                loader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loader
            if grpc_server is not None:
                await grpc_server.stop(STOP_GRACE_S)
            await state.repository.close()

    app = ServeApp(lifespan)
    app.state.serve = state
    app.add_middleware(AccessLog, metrics=metrics, enabled=config.access_log)  # outermost
    return app
