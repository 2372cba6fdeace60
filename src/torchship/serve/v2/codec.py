"""Open Inference Protocol v2: decode infer requests and encode responses (JSON and binary).

Follows the KServe v2 spec and Triton's extensions: the binary tensor data extension
(``Inference-Header-Content-Length``, ``binary_data_size``, the ``binary_data`` output
parameter and ``binary_data_output``), the classification extension (``classification: k``
answers ``score:index:label`` strings) and the schedule-policy ``timeout`` parameter.
JSON is parsed by orjson; flat ``data`` goes into numpy with ``np.fromiter`` (no
intermediate array of Python objects), binary tensors with ``np.frombuffer`` (no copy).
Shapes are bounded before any arithmetic: at most ``MAX_SHAPE_RANK`` dimensions, and no
dimension nor element count above the body's size in bytes (every element takes at least
one byte of body, as JSON text or as binary data), so the work a request can cause before
it is refused stays linear in its size.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from torchship.errors import TorchshipError

HEADER_LENGTH = "inference-header-content-length"
MAX_SHAPE_RANK = 8  # dimensions of an input tensor, batch included

DTYPES: dict[str, np.dtype] = {
    name: np.dtype(t)
    for name, t in {
        "BOOL": np.bool_,
        "UINT8": np.uint8,
        "UINT16": np.uint16,
        "UINT32": np.uint32,
        "UINT64": np.uint64,
        "INT8": np.int8,
        "INT16": np.int16,
        "INT32": np.int32,
        "INT64": np.int64,
        "FP16": np.float16,
        "FP32": np.float32,
        "FP64": np.float64,
    }.items()
}
_NAMES = {dtype: name for name, dtype in DTYPES.items()}


class ServeError(TorchshipError):
    """A request the server refuses; ``status`` is its HTTP status code."""

    def __init__(
        self, what: str, fix: str | None = None, *, status: int = 400, headers: dict[str, str] | None = None
    ):
        super().__init__(what, fix)
        self.status = status
        self.headers = headers or {}


@dataclass(frozen=True)
class RequestedOutput:
    """An entry of the request's ``outputs``: which tensor, as binary or not, top-k or not."""

    name: str
    binary: bool | None = None
    classification: int | None = None


@dataclass
class InferRequest:
    """A decoded infer request; ``inputs`` maps names to arrays of their declared datatype."""

    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: list[RequestedOutput] | None
    binary_output: bool = False
    timeout_us: int | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def decode_json(body: bytes | str, what: str = "request body") -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ServeError(f"{what} is not valid JSON ({exc})", fix="send a JSON object") from None


def decode_infer(body: bytes, header_length: str | None = None) -> InferRequest:
    """Decode a v2 infer body; with ``header_length`` the JSON is followed by binary tensors.

    Raises:
        ServeError: 400 with the exact field that is wrong.
    """
    binary = b""
    max_elements = len(body)
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise ServeError(f"Inference-Header-Content-Length {header_length!r} is not an integer") from None
        if not 0 < n <= len(body):
            raise ServeError(f"Inference-Header-Content-Length {n} does not fit the {len(body)}-byte body")
        body, binary = body[:n], memoryview(body)[n:]
    return decode_head(decode_json(body), binary, max_elements)


def decode_head(raw: Any, binary: memoryview | bytes = b"", max_elements: int = 0) -> InferRequest:
    """Decode an infer request's parsed JSON head and the binary tensors that follow it.

    ``max_elements`` bounds every input's element count before any arithmetic: the size in
    bytes of the whole request, since every element takes at least one byte of it.

    Raises:
        ServeError: 400 with the exact field that is wrong.
    """
    if not isinstance(raw, dict):
        raise ServeError("request body must be a JSON object with 'inputs'")
    inputs = raw.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ServeError("request needs a non-empty 'inputs' list")
    params = _parameters(raw, "request")
    offset = 0
    arrays: dict[str, np.ndarray] = {}
    for i, spec in enumerate(inputs):
        name, array, used = _decode_input(spec, i, binary, offset, max_elements)
        offset += used
        arrays[name] = array
    if offset != len(binary):
        raise ServeError(
            f"binary payload has {len(binary) - offset} bytes beyond the inputs' binary_data_size"
        )
    request_id = raw.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ServeError("'id' must be a string")
    timeout = params.get("timeout")
    if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0):
        raise ServeError("parameter 'timeout' must be a positive integer (microseconds)")
    return InferRequest(
        id=request_id,
        inputs=arrays,
        outputs=_requested_outputs(raw.get("outputs")),
        binary_output=params.get("binary_data_output") is True,
        timeout_us=timeout,
        parameters=params,
    )


def _parameters(obj: dict[str, Any], where: str) -> dict[str, Any]:
    params = obj.get("parameters") or {}
    if not isinstance(params, dict):
        raise ServeError(f"{where} 'parameters' must be a JSON object")
    return params


def _element_count(shape: Any, name: str, max_elements: int) -> int:
    """The element count of ``shape``; 400 before any arithmetic if it could pass ``max_elements``."""
    if not isinstance(shape, list) or len(shape) > MAX_SHAPE_RANK:
        rank = f" (it has {len(shape)})" if isinstance(shape, list) else ""
        raise ServeError(
            f"input {name!r}: 'shape' must be a list of at most {MAX_SHAPE_RANK} dimensions{rank}"
        )
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ServeError(f"input {name!r}: 'shape' must be a list of non-negative integers")
    count = math.prod(shape) if all(d <= max_elements for d in shape) else max_elements + 1  # small ints only
    if count > max_elements:
        raise ServeError(
            f"input {name!r}: shape {shape} is larger than a {max_elements}-byte request "
            "can carry (each element takes at least one byte)",
            fix="send a shape that matches the data",
        )
    return count


def _decode_input(
    spec: Any, i: int, binary: memoryview | bytes, offset: int, max_elements: int
) -> tuple[str, np.ndarray, int]:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ServeError(f"inputs[{i}] must be an object with a 'name'")
    name = spec["name"]
    count = _element_count(spec.get("shape"), name, max_elements)
    shape = spec["shape"]
    datatype = spec.get("datatype")
    dtype = DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise ServeError(
            f"input {name!r}: datatype {datatype!r} is not supported", fix=f"use one of {', '.join(DTYPES)}"
        )
    size = _parameters(spec, f"input {name!r}").get("binary_data_size")
    if size is not None:
        want = count * dtype.itemsize
        if size != want:
            raise ServeError(
                f"input {name!r}: binary_data_size {size} != {want} bytes for {datatype} {shape}"
            )
        if offset + size > len(binary):
            raise ServeError(
                f"input {name!r}: binary payload is truncated ({len(binary) - offset} of {size} bytes)"
            )
        array = np.frombuffer(binary, dtype=dtype.newbyteorder("<"), count=count, offset=offset)
        return name, array.reshape(shape), size
    if "data" not in spec:
        raise ServeError(f"input {name!r} has neither 'data' nor binary_data_size")
    return name, _from_json_data(spec["data"], name, dtype, datatype, shape, count), 0


def _from_json_data(
    data: Any, name: str, dtype: np.dtype, datatype: str, shape: list[int], count: int
) -> np.ndarray:
    try:
        if isinstance(data, list) and (not data or not isinstance(data[0], list)):
            array = np.fromiter(data, dtype=dtype, count=len(data))  # flat: no object array in between
        else:
            array = np.asarray(data, dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        raise ServeError(f"input {name!r}: data are not all {datatype} values") from None
    if array.size != count:
        raise ServeError(f"input {name!r}: data has {array.size} values but shape {shape} needs {count}")
    return array.reshape(shape)


def _requested_outputs(outputs: Any) -> list[RequestedOutput] | None:
    if outputs is None:
        return None
    if not isinstance(outputs, list):
        raise ServeError("'outputs' must be a list")
    wanted = []
    for i, spec in enumerate(outputs):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise ServeError(f"outputs[{i}] must be an object with a 'name'")
        params = _parameters(spec, f"output {spec['name']!r}")
        k = params.get("classification")
        if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
            raise ServeError(f"output {spec['name']!r}: 'classification' must be a positive integer")
        binary = params.get("binary_data")
        wanted.append(RequestedOutput(spec["name"], None if binary is None else bool(binary), k))
    return wanted


def classify(values: np.ndarray, k: int, labels: list[str]) -> np.ndarray:
    """Top-``k`` of each row as ``b"score:index:label"`` (Triton's classification extension).

    Example:
        >>> classify(np.array([[0.1, 0.7, 0.2]]), 2, ["a", "b", "c"]).tolist()
        [[b'0.700000:1:b', b'0.200000:2:c']]
    """
    # values: (n, classes) -> (n, k) of bytes
    k = min(k, values.shape[1])
    top = np.argsort(-values, axis=1, kind="stable")[:, :k]
    rows = [
        [f"{row[j]:f}:{j}:{labels[j] if j < len(labels) else j}".encode() for j in idx]
        for row, idx in zip(values, top, strict=False)
    ]
    return np.array(rows, dtype=object).reshape(values.shape[0], k)


@dataclass
class OutputTensor:
    """One response tensor; ``binary`` says whether it travels after the JSON header."""

    name: str
    array: np.ndarray
    binary: bool = False


def _bytes_payload(array: np.ndarray) -> bytes:
    return b"".join(struct.pack("<I", len(v)) + v for v in array.reshape(-1))


def encode_outputs(outputs: list[OutputTensor]) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The response's ``outputs`` entries, and the binary chunks of the binary ones, in order."""
    entries, chunks = [], []
    for out in outputs:
        is_bytes = out.array.dtype == object
        datatype = "BYTES" if is_bytes else _NAMES[out.array.dtype]
        entry: dict[str, Any] = {"name": out.name, "datatype": datatype, "shape": list(out.array.shape)}
        if out.binary:
            chunk = (
                _bytes_payload(out.array)
                if is_bytes
                else np.ascontiguousarray(out.array)
                .astype(out.array.dtype.newbyteorder("<"), copy=False)
                .tobytes()
            )
            entry["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        elif is_bytes:
            entry["data"] = [v.decode() for v in out.array.reshape(-1)]
        else:
            entry["data"] = out.array.reshape(-1)
        entries.append(entry)
    return entries, chunks


def encode_infer(
    model: str, version: str, request_id: str | None, outputs: list[OutputTensor]
) -> tuple[bytes, dict[str, str]]:
    """Encode a v2 infer response; returns the body and the headers it needs."""
    entries, chunks = encode_outputs(outputs)
    head: dict[str, Any] = {"model_name": model, "model_version": version}
    if request_id is not None:
        head["id"] = request_id
    head["outputs"] = entries
    header = orjson.dumps(head, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return header, {"content-type": "application/json"}
    return header + b"".join(chunks), {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(header)),
    }
