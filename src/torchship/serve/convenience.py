"""Routes for people rather than programs: TF-Serving-style ``:predict`` and image upload.

``POST /v1/models/{m}:predict`` takes ``{"instances": [sample, ...]}`` (each sample a nested
list of the model's input shape, raw as on disk: the manifest's scale, mean and std are
applied, docs/data.md "Units") and answers a label and probabilities per instance.
``POST /v1/models/{m}:classify`` takes one PNG or JPEG, either as the raw body or as a
multipart form field ``file``, preprocesses it as the manifest says (channels, size, scale,
mean, std) and answers the top-k labels with probabilities. Uploads are read within the body
limits (multipart forms too, as they stream in); an image must start with the PNG or JPEG
signature and its header must declare at most ``max_image_pixels`` pixels before it is
decoded, on a worker thread.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from torchship.errors import TorchshipError
from torchship.serve.errors import ClientGoneError
from torchship.serve.model import ServedModel
from torchship.serve.v2 import ServeError, decode_json, softmax

IMAGE_SIGNATURES = {"PNG": b"\x89PNG\r\n\x1a\n", "JPEG": b"\xff\xd8\xff"}


def _model(request: Request, state: Any) -> ServedModel:
    return state.repository.get(request.path_params["model"], request.path_params.get("version"))


async def _run(model: ServedModel, rows: np.ndarray) -> np.ndarray:
    if not np.isfinite(rows).all():
        raise ServeError("instances hold NaN or infinite values")
    return await model.infer(rows, model.settings.timeout_ms / 1e3)


def _ranked(model: ServedModel, probabilities: np.ndarray, k: int) -> list[dict[str, Any]]:
    # probabilities: (classes,)
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [
        {
            "label": model.v2.labels[i] if i < len(model.v2.labels) else str(i),
            "index": int(i),
            "probability": float(probabilities[i]),
        }
        for i in order
    ]


async def predict(request: Request, state: Any) -> Response:
    from torchship.serve.app import json_response

    model = _model(request, state)
    with model.record_outcome():
        rows = _instances(model, decode_json(await state.read_body(request)))
        probabilities = softmax(await _run(model, rows))
    predictions = [{"label": _ranked(model, p, 1)[0]["label"], "probabilities": p} for p in probabilities]
    return json_response({"predictions": predictions})


def _instances(model: ServedModel, raw: Any) -> np.ndarray:
    """The preprocessed rows of a ``{"instances": [...]}`` body, raw as on disk."""
    from torchship.data import preprocess

    instances = raw.get("instances") if isinstance(raw, dict) else None
    if not isinstance(instances, list) or not instances:
        raise ServeError('body must be {"instances": [sample, ...]}')
    try:
        rows = np.asarray(instances, dtype=np.float32)
    except (TypeError, ValueError):
        raise ServeError("instances must be nested lists of numbers of one shape") from None
    if rows.shape[1:] != model.v2.sample_shape or len(rows) > model.settings.max_batch_size:
        raise ServeError(
            f"instances have shape {list(rows.shape)}; model {model.name!r} expects "
            f"[n <= {model.settings.max_batch_size}, {', '.join(map(str, model.v2.sample_shape))}]"
        )
    return preprocess(rows, model.artifact.manifest.input.model_dump()).numpy()  # raw in, as everywhere


async def _image_bytes(request: Request, state: Any) -> bytes:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await state.read_body(request, json=False)
    # the form parser reads through the body limits, so a big upload is refused as it streams in
    receive = state.limited_receive(request.receive, request.headers.get("content-length"))
    limited = Request(request.scope, receive)
    try:
        form = await limited.form(max_files=1, max_fields=8)
    except (ServeError, ClientGoneError):
        raise
    except Exception as exc:  # noqa: BLE001 - python-multipart raises several types
        raise ServeError(f"cannot read the multipart form ({exc})") from None
    try:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ServeError("multipart form needs a file field named 'file'")
        return await upload.read()
    finally:
        await form.close()


def _open_image(data: bytes, max_pixels: int) -> Any:
    """The PIL image of a PNG or JPEG body, decoded only after its signature and size are checked."""
    from PIL import Image, UnidentifiedImageError

    if not any(data.startswith(magic) for magic in IMAGE_SIGNATURES.values()):
        raise ServeError(
            f"body is not a PNG or JPEG image (it starts with {data[:8]!r})",
            fix="send the file's bytes as the body or as the form field 'file'",
        )
    try:
        image = Image.open(io.BytesIO(data), formats=list(IMAGE_SIGNATURES))  # reads the header only
        width, height = image.size
        if width * height > max_pixels:
            raise ServeError(
                f"image is {width}x{height} = {width * height} pixels, over the {max_pixels}-pixel limit",
                status=413,
                fix="send a smaller image, or raise max_image_pixels",
            )
        image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as exc:
        raise ServeError(
            f"body is not a readable PNG or JPEG image ({type(exc).__name__})",
            fix="send the file's bytes as the body or as the form field 'file'",
        ) from None
    return image


def _preprocess(model: ServedModel, data: bytes, max_pixels: int) -> np.ndarray:
    from torchship.data import preprocess_image

    if model.artifact.manifest.input.layout != "image":
        raise ServeError(f"model {model.name!r} takes features, not images", fix="use /v2/.../infer")
    image = _open_image(data, max_pixels)
    try:
        x = preprocess_image(image, model.artifact.manifest.input.model_dump())
    except TorchshipError as exc:
        raise ServeError(str(exc)) from None
    return x.numpy()[None].astype(np.float32)


async def classify(request: Request, state: Any) -> Response:
    from torchship.serve.app import json_response

    model = _model(request, state)
    with model.record_outcome():
        k = request.query_params.get("top_k", "5")
        if not k.isdigit() or int(k) < 1:
            raise ServeError("top_k must be a positive integer")
        data = await _image_bytes(request, state)
        rows = await asyncio.to_thread(_preprocess, model, data, state.config.max_image_pixels)
        probabilities = softmax(await _run(model, rows))[0]
    return json_response(
        {
            "model_name": model.name,
            "model_version": model.version,
            "top": _ranked(model, probabilities, int(k)),
        }
    )


def routes(endpoint: Any) -> list[Route]:
    out = []
    for base in ("/v1/models/{model}", "/v1/models/{model}/versions/{version}"):
        out += [
            Route(base + ":predict", endpoint("inference")(predict), methods=["POST"]),
            Route(base + ":classify", endpoint("inference")(classify), methods=["POST"]),
        ]
    return out
