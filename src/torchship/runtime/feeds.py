"""Valid example inputs generated from a model's signature, and named-tensor calls.

Integer inputs are drawn from their declared ``range`` (a vocabulary), inputs whose name
says they are a mask are all ones, floats are standard normal. Named dynamic dims take the
size given here, else the signature's example size (``dims``), else 16; ``batch`` is ``batch``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from torchship.artifact.manifest import BATCH, Signature, TensorSpec
from torchship.errors import TorchshipError

NUMPY_DTYPES: dict[str, Any] = {
    "float32": np.float32,
    "float16": np.float16,
    "int64": np.int64,
    "int32": np.int32,
    "bool": np.bool_,
}
DEFAULT_DIM = 16


class FeedError(TorchshipError):
    """Inputs that do not fit the model's signature."""


def dim_sizes(signature: Signature, batch: int, dims: Mapping[str, int] | None = None) -> dict[str, int]:
    sizes = {**signature.dims, **(dims or {})}
    sizes[BATCH] = batch
    return sizes


def example_feeds(
    signature: Signature, batch: int = 2, dims: Mapping[str, int] | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """One valid input per signature input, named dims resolved by ``dim_sizes``."""
    rng = np.random.default_rng(seed)
    sizes = dim_sizes(signature, batch, dims)
    return {spec.name: example_tensor(spec, sizes, rng) for spec in signature.inputs}


def example_tensor(spec: TensorSpec, sizes: Mapping[str, int], rng: np.random.Generator) -> np.ndarray:
    shape = tuple(sizes.get(d, DEFAULT_DIM) if isinstance(d, str) else d for d in spec.shape)
    if spec.dtype == "bool":
        return np.ones(shape, dtype=np.bool_) if "mask" in spec.name else rng.random(shape) < 0.5
    if not spec.is_float:
        if "mask" in spec.name:
            return np.ones(shape, dtype=NUMPY_DTYPES[spec.dtype])
        low, high = spec.range or (0, 2)
        return rng.integers(low, high, size=shape).astype(NUMPY_DTYPES[spec.dtype])
    x = rng.standard_normal(shape).astype(np.float32)
    return x.astype(NUMPY_DTYPES.get(spec.dtype, np.float32))  # bfloat16 has no numpy dtype: fed as float32


def numpy_dtype(dtype: str) -> Any:
    return NUMPY_DTYPES.get(dtype, np.float32)


def check_feeds(signature: Signature, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Arrays for every signature input, cast to its dtype, every dim checked; named dims agree.

    Raises:
        FeedError: Naming the input and the dim that is wrong.
    """
    missing = [s.name for s in signature.inputs if s.name not in feeds]
    unknown = [k for k in feeds if k not in signature.input_names]
    if missing or unknown:
        raise FeedError(
            f"inputs {sorted(feeds)} do not match the signature ({', '.join(signature.input_names)})"
            + (f": missing {missing}" if missing else "")
            + (f", unknown {unknown}" if unknown else ""),
            fix="send every input the model's metadata lists, by name",
        )
    seen: dict[str, tuple[str, int]] = {}
    checked = {}
    for spec in signature.inputs:
        x = np.asarray(feeds[spec.name])
        if x.ndim != len(spec.shape):
            raise FeedError(
                f"input {spec.name} has shape {list(x.shape)}, expected [{', '.join(map(str, spec.shape))}]",
                fix="send tensors shaped as the model's metadata says, batch first",
            )
        for axis, (want, got) in enumerate(zip(spec.shape, x.shape, strict=False)):
            if isinstance(want, int) and want != got:
                raise FeedError(
                    f"input {spec.name} dim {axis} is {got}, expected {want}",
                    fix="send tensors shaped as the model's metadata says, batch first",
                )
            if isinstance(want, str):
                first = seen.setdefault(want, (spec.name, int(got)))
                if first[1] != got:
                    raise FeedError(
                        f"dim {want!r} is {first[1]} in input {first[0]} but {got} in input {spec.name}",
                        fix=f"give every input the same {want} size",
                    )
        checked[spec.name] = np.ascontiguousarray(x, dtype=numpy_dtype(spec.dtype))
    return checked


def read_arrays(path: str | Path, signature: Signature) -> dict[str, np.ndarray]:
    """Every array of a file of named arrays: an ``.npz``, or a ``.json`` object of name ->
    nested list (batch first). Not checked against ``signature`` (only named in the fix).

    Raises:
        FeedError: Another file type, or a file that cannot be read.
    """
    path = Path(path)
    fix = f"write one array per input ({', '.join(signature.input_names)}), batch first, to a .npz or .json"
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        if path.suffix != ".json":
            raise FeedError(f"{path} is neither .npz nor .json", fix=fix)
        import json

        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FeedError(f"cannot read inputs from {path}: {first}", fix=fix) from None
    if not isinstance(raw, dict):
        raise FeedError(f"{path} holds a JSON {type(raw).__name__}, not an object of named arrays", fix=fix)
    try:
        return {name: np.asarray(value) for name, value in raw.items()}
    except ValueError as exc:
        raise FeedError(f"{path}: an array is ragged ({str(exc).splitlines()[0]})", fix=fix) from None


def read_feeds(path: str | Path, signature: Signature) -> dict[str, np.ndarray]:
    """Named inputs from a file (see :func:`read_arrays`), checked against ``signature``.

    Raises:
        FeedError: An unreadable file, or inputs that do not fit the signature.
    """
    return check_feeds(signature, read_arrays(path, signature))


def run_in_chunks(predictor: Any, feeds: Mapping[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
    """Every output of ``predictor.run`` on ``feeds``, fed ``batch_size`` rows at a time."""
    n = len(next(iter(feeds.values())))
    chunks = [
        predictor.run({k: v[i : i + batch_size] for k, v in feeds.items()}) for i in range(0, n, batch_size)
    ]
    return {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]}
