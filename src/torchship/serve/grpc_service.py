"""Open Inference Protocol v2 over gRPC: ``inference.GRPCInferenceService`` beside the HTTP app.

The messages are tritonclient's, generated from Triton's ``grpc_service.proto``
(``tritonclient.grpc.service_pb2``): a server and a ``tritonclient.grpc`` client in one process
then share one protobuf descriptor pool, where a second copy of the same file would clash.
The server is grpcio's asyncio server, started by the app's lifespan in the HTTP server's
event loop, so every RPC reaches the same repository, batchers, limits, tokens and metrics.

An infer request is rewritten as the v2 JSON head (as parsed from an HTTP body) and the raw
tensors after it, and decoded by ``v2.decode_head`` as an HTTP body is; answers are encoded
by ``v2.encode_outputs`` with every output binary, as ``outputs`` and ``raw_output_contents``.
Datatypes, shape and size checks and the byte layout of BYTES therefore live in one place for
both protocols.
Outputs always travel as ``raw_output_contents``, as Triton answers (``tritonclient`` reads
typed output contents only for BYTES).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson

import torchship
from torchship.errors import ConfigError, require
from torchship.serve.access import access_log
from torchship.serve.errors import grpc_code_name, map_error
from torchship.serve.v2 import DTYPES, ServeError, decode_head, decode_json, encode_outputs

if TYPE_CHECKING:
    from torchship.serve.app import ServeState

log = logging.getLogger("torchship.serve")
SERVICE = "inference.GRPCInferenceService"
STOP_GRACE_S = 10.0  # at shutdown (after the HTTP drain) running RPCs get this long to finish

# the InferTensorContents field that carries each datatype (FP16 has none: raw only)
_TYPED_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def require_grpc() -> Any:
    """The generated messages (``tritonclient.grpc.service_pb2``), or which extra installs them."""
    require("grpc", "serve")
    return require("tritonclient.grpc.service_pb2", "serve")


def grpc_code(status: int) -> Any:
    """The gRPC status code for a status the one mapper chose (``errors.grpc_code_name``)."""
    import grpc

    return getattr(grpc.StatusCode, grpc_code_name(status))


def _trailers(status: int, message: str, headers: dict[str, str]) -> tuple[tuple[str, str | bytes], ...]:
    """``retry-after`` as in HTTP, plus google.rpc.RetryInfo that gRPC clients read from the status."""
    trailers: list[tuple[str, str | bytes]] = [
        (k, v) for k, v in headers.items() if k in ("retry-after", "www-authenticate")
    ]
    retry = headers.get("retry-after")
    if retry is not None and retry.isdigit():
        try:
            from google.protobuf import any_pb2, duration_pb2
            from google.rpc import error_details_pb2, status_pb2
        except ImportError:  # googleapis-common-protos missing: the plain header still says when
            return tuple(trailers)
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=int(retry))))
        packed = status_pb2.Status(code=grpc_code(status).value[0], message=message, details=[detail])
        trailers.append(("grpc-status-details-bin", packed.SerializeToString()))
    return tuple(trailers)


# ---------------------------------------------------------------------- infer: messages <-> v2 bodies
def _parameter(value: Any) -> Any:
    which = value.WhichOneof("parameter_choice")
    return getattr(value, which) if which else None


def _tensor_spec(tensor: Any, raw: bytes | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": tensor.name, "shape": list(tensor.shape), "datatype": tensor.datatype}
    if tensor.parameters:
        spec["parameters"] = {k: _parameter(v) for k, v in tensor.parameters.items()}
    given = [field.name for field, _ in tensor.contents.ListFields()]
    if raw is not None:
        if given:
            raise ServeError(
                f"input {tensor.name!r} has both contents and raw_input_contents",
                fix="send each tensor one way",
            )
        spec.setdefault("parameters", {})["binary_data_size"] = len(raw)
        return spec
    field = _TYPED_FIELD.get(tensor.datatype)
    if tensor.datatype in DTYPES and field is None:
        raise ServeError(
            f"input {tensor.name!r}: {tensor.datatype} has no typed contents field",
            fix="send it in raw_input_contents",
        )
    if field is not None and any(name != field for name in given):
        raise ServeError(
            f"input {tensor.name!r}: datatype {tensor.datatype} is carried in contents.{field}, "
            f"got contents.{', contents.'.join(given)}"
        )
    spec["data"] = list(getattr(tensor.contents, field)) if field is not None else []
    return spec


def to_v2_head(request: Any) -> tuple[dict[str, Any], bytes]:
    """A ``ModelInferRequest`` as the v2 JSON head (parsed) and the binary tensors after it."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise ServeError(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs",
            fix="send one raw entry per input, in the order of 'inputs'",
        )
    head: dict[str, Any] = {
        "inputs": [_tensor_spec(t, raw[i] if raw else None) for i, t in enumerate(request.inputs)],
        "parameters": {k: _parameter(v) for k, v in request.parameters.items()},
    }
    if request.id:
        head["id"] = request.id
    if request.outputs:
        head["outputs"] = [
            {"name": o.name, "parameters": {k: _parameter(v) for k, v in o.parameters.items()}}
            for o in request.outputs
        ]
    return head, b"".join(raw)


def to_response(pb: Any, model: str, version: str, request_id: str | None, tensors: list[Any]) -> Any:
    """Encode output tensors with ``v2.encode_outputs`` (all binary) into a message."""
    for tensor in tensors:
        tensor.binary = True
    entries, chunks = encode_outputs(tensors)
    response = pb.ModelInferResponse(model_name=model, model_version=version, id=request_id or "")
    for entry, chunk in zip(entries, chunks, strict=True):
        response.outputs.add(name=entry["name"], datatype=entry["datatype"], shape=entry["shape"])
        response.raw_output_contents.append(chunk)
    return response


# ---------------------------------------------------------------------- the service
Rpc = Callable[[Any, Any, Any], Awaitable[Any]]


def rpc(guard: str | None = None) -> Callable[[Rpc], Rpc]:
    """Wrap an RPC: check its token, count it in flight, answer a failure as ``map_error`` says, log it."""

    def wrap(method: Rpc) -> Rpc:
        @functools.wraps(method)
        async def handler(self: InferenceService, request: Any, context: Any) -> Any:
            t0, status = time.monotonic(), 500
            self.state.metrics.in_flight.inc()
            try:
                if guard is not None:
                    self.check_token(guard, context)
                response = await method(self, request, context)
                status = 200
                return response
            except Exception as exc:  # noqa: BLE001 - the one mapper answers every failure
                status, message, headers = map_error(exc, "GRPC", f"/{SERVICE}/{method.__name__}")
                await context.abort(grpc_code(status), message, _trailers(status, message, headers))
            except asyncio.CancelledError:
                status = 499
                raise
            finally:
                self.state.metrics.in_flight.dec()
                self.log_access(method.__name__, status, t0, context)

        return handler

    return wrap


class InferenceService:
    """The RPCs of ``inference.GRPCInferenceService`` this server answers; the rest are UNIMPLEMENTED."""

    def __init__(self, state: ServeState):
        self.state = state
        self.pb = require_grpc()
        self.config_pb = require("tritonclient.grpc.model_config_pb2", "serve")
        self._ids = itertools.count(1)
        self._prefix = f"{os.getpid():x}-{int(time.time()):x}-g"

    def check_token(self, guard: str, context: Any) -> None:
        authorization = _metadata(context, "authorization")
        security = self.state.security
        (security.check_inference if guard == "inference" else security.check_management)(authorization)

    def log_access(self, name: str, status: int, t0: float, context: Any) -> None:
        if not (self.state.config.access_log and access_log.isEnabledFor(logging.INFO)):
            return
        given = _metadata(context, "x-request-id")
        access_log.info(
            orjson.dumps(
                {
                    "ts": round(time.time(), 3),
                    "request_id": given
                    if given and len(given) <= 128
                    else f"{self._prefix}{next(self._ids)}",
                    "client": context.peer(),
                    "method": "GRPC",
                    "path": f"/{SERVICE}/{name}",
                    "status": status,
                    "ms": round((time.monotonic() - t0) * 1e3, 3),
                }
            ).decode()
        )

    # ------------------------------------------------------------------ health and metadata
    @rpc()
    async def ServerLive(self, request: Any, context: Any) -> Any:  # noqa: N802 - names from the proto
        return self.pb.ServerLiveResponse(live=True)

    @rpc()
    async def ServerReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        ready = self.state.started and not self.state.draining
        cluster = getattr(self.state, "cluster", None)  # serve --workers: every worker must be ready
        if ready and cluster is not None:
            ready = not await cluster.ready()
        return self.pb.ServerReadyResponse(ready=ready)

    @rpc()
    async def ServerMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        from torchship.serve.app import EXTENSIONS

        return self.pb.ServerMetadataResponse(
            name="torchship", version=torchship.__version__, extensions=EXTENSIONS
        )

    @rpc("inference")
    async def ModelReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        try:
            self.state.repository.get(request.name, request.version or None)
        except ServeError as exc:
            if exc.status not in (404, 503):
                raise
            return self.pb.ModelReadyResponse(ready=False)
        return self.pb.ModelReadyResponse(ready=True)

    @rpc("inference")
    async def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        model = self.state.repository.get(request.name, request.version or None)
        return _from_json(model.v2.metadata(), self.pb.ModelMetadataResponse())

    @rpc("inference")
    async def ModelConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
        model = self.state.repository.get(request.name, request.version or None)
        config = _from_json(model.v2.triton_config(), self.config_pb.ModelConfig())
        return self.pb.ModelConfigResponse(config=config)

    @rpc("inference")
    async def ModelStatistics(self, request: Any, context: Any) -> Any:  # noqa: N802
        cluster = getattr(self.state, "cluster", None)
        if cluster is not None:  # serve --workers: summed over workers, as the HTTP route is
            path = "/v2/models" + (f"/{quote(request.name)}" if request.name else "")
            path += f"/versions/{quote(request.version)}" if request.name and request.version else ""
            stats = await cluster.call("stats", "GET", f"{path}/stats", _metadata(context, "authorization"))
            for entry in stats["model_stats"]:
                entry.pop("drift", None)
            return _from_json(stats, self.pb.ModelStatisticsResponse())
        repository = self.state.repository
        if request.name and request.version:
            models = [repository.get(request.name, request.version)]
        elif request.name:
            repository.get(request.name)  # NOT_FOUND when unknown
            models = list(repository.models[request.name].values())
        else:
            models = [m for versions in repository.models.values() for m in versions.values()]
        stats = {"model_stats": [m.stats.to_json() for m in models]}
        return _from_json(stats, self.pb.ModelStatisticsResponse())

    # ------------------------------------------------------------------ inference
    @rpc("inference")
    async def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
        model = self.state.repository.get(request.model_name, request.model_version or None)
        with model.record_outcome():
            model.check_capacity()
            head, binary = to_v2_head(request)
            req = decode_head(head, binary, request.ByteSize())  # every element takes a byte of it
            rows = model.v2.check_input(req)
            model.v2.check_outputs(req.outputs)
            timeout_s = req.timeout_us / 1e6 if req.timeout_us else model.settings.timeout_ms / 1e3
            remaining_s = context.time_remaining()  # the client's deadline, when it set one
            if remaining_s is not None:
                timeout_s = max(min(timeout_s, remaining_s), 1e-3)
            logits = await model.infer(rows, timeout_s)
            return to_response(
                self.pb, model.name, model.version, req.id, model.v2.outputs(logits, req.outputs, binary=True)
            )

    # ------------------------------------------------------------------ repository
    async def _repository(self, action: str, name: str, context: Any) -> None:
        """Load or unload ``name``: here, or in every worker under ``serve --workers``."""
        cluster = getattr(self.state, "cluster", None)
        if cluster is None:
            await getattr(self.state.repository, action)(name)
            return
        target = f"/v2/repository/models/{quote(name, safe='')}/{action}"
        await cluster.call(action, "POST", target, _metadata(context, "authorization"))

    @rpc("management")
    async def RepositoryIndex(self, request: Any, context: Any) -> Any:  # noqa: N802
        entries = self.state.repository.index(ready_only=request.ready)
        return _from_json({"models": entries}, self.pb.RepositoryIndexResponse())

    @rpc("management")
    async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:  # noqa: N802
        _refuse_files(request)
        await self._repository("load", request.model_name, context)
        return self.pb.RepositoryModelLoadResponse()

    @rpc("management")
    async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:  # noqa: N802
        _refuse_files(request)
        await self._repository("unload", request.model_name, context)
        return self.pb.RepositoryModelUnloadResponse()


def _metadata(context: Any, key: str) -> str | None:
    return next((v for k, v in context.invocation_metadata() or () if k == key), None)


def _refuse_files(request: Any) -> None:
    if request.repository_name:
        raise ServeError(
            f"this server has one repository; got repository_name {request.repository_name!r}",
            fix="leave repository_name empty",
        )
    if any(key == "config" or key.startswith("file:") for key in request.parameters):
        raise ServeError(
            "this server loads models only from its repository directory",
            fix="copy the artifact into the repository, then load it by name",
        )


def _from_json(payload: dict[str, Any], message: Any) -> Any:
    """Fill a message from the HTTP handlers' JSON (field names are the proto's); unknown keys are dropped."""
    from google.protobuf import json_format

    return json_format.ParseDict(
        decode_json(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)),
        message,
        ignore_unknown_fields=True,
    )


# ---------------------------------------------------------------------- lifecycle
def grpc_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_port_free(host: str, port: int) -> int:
    """Fail with one line, before anything starts, when the gRPC port is taken; returns the port.

    The probe binds without ``SO_REUSEPORT``, so any listener there fails it, one that shares
    the port too. Port 0 returns the free port the probe got (``serve --workers`` binds that
    one in every worker).

    Raises:
        ConfigError: Another process listens on ``host:port``.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen for gRPC on {grpc_address(host, port)} ({exc.strerror})",
                fix="choose another --grpc-port, or pass --no-grpc",
            ) from None
        return probe.getsockname()[1]


async def start_grpc(state: ServeState, address: str, *, reuse_port: bool = False) -> Any:
    """Start the gRPC service on ``address`` in the running loop; returns the server (``stop(grace)``).

    ``reuse_port`` binds with ``SO_REUSEPORT``, so every ``serve --workers`` process listens on
    the one port and the kernel spreads connections over them (the supervisor has checked the
    port is free first). Without it a taken port fails here instead of being shared.
    """
    pb = require_grpc()
    import grpc
    from google.protobuf import message_factory

    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", state.config.max_body_bytes),  # larger: RESOURCE_EXHAUSTED
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", int(reuse_port)),
        ]
    )
    service = InferenceService(state)
    handlers = {}
    for method in pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods:
        if method.client_streaming or not hasattr(service, method.name):
            continue  # unregistered RPCs (streaming, shared memory, trace, log settings) are UNIMPLEMENTED
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            getattr(service, method.name),
            request_deserializer=message_factory.GetMessageClass(method.input_type).FromString,
            response_serializer=message_factory.GetMessageClass(method.output_type).SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise ConfigError(
            f"cannot listen for gRPC on {address} ({exc})",
            fix="choose another --grpc-port, or pass --no-grpc",
        ) from None
    await server.start()
    state.grpc_port = port
    log.info("gRPC (inference.GRPCInferenceService) on %s", address.rsplit(":", 1)[0] + f":{port}")
    return server
