"""A model's signature from its example inputs and one traced call, and the wrapper that
gives every model the same calling convention: named tensors in, a flat tuple out.

Hugging Face models return a ``ModelOutput`` (a dict), others a tensor, a tuple or a
dataclass; ``flatten_outputs`` turns each into a list of tensors in a fixed order, and the
signature names them (dict keys where there are keys).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from torchship.artifact.manifest import BATCH, TensorSpec
from torchship.errors import TorchshipError
from torchship.models.calling import flatten_outputs  # noqa: F401 - re-exported for importers

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "bool": torch.bool,
}
_NAMES = {v: k for k, v in DTYPES.items()}


class ImportError_(TorchshipError):  # noqa: N801, N818 - the trailing _ avoids shadowing the builtin ImportError
    """A model cannot be brought in as given."""


def dtype_name(dtype: torch.dtype) -> str:
    if dtype not in _NAMES:
        raise ImportError_(
            f"tensors of dtype {dtype} are not supported", fix=f"use one of {', '.join(DTYPES)}"
        )
    return _NAMES[dtype]


def output_names(
    flat: Sequence[tuple[str | None, torch.Tensor]], given: Sequence[str] | None, task: str
) -> list[str]:
    if given:
        if len(given) != len(flat):
            raise ImportError_(
                f"{len(given)} output names given but the model returns {len(flat)} tensors",
                fix="pass one name per output",
            )
        return list(given)
    if all(key is not None for key, _ in flat):
        return [str(key) for key, _ in flat]
    if len(flat) == 1:
        return ["logits" if task in ("classification", "multilabel") else "output"]
    return [f"output_{i}" for i in range(len(flat))]


def tensor_specs(
    names: Sequence[str],
    tensors: Sequence[torch.Tensor],
    dynamic: Mapping[str, Mapping[int, str]],
    ranges: Mapping[str, Sequence[int]] | None = None,
) -> list[dict[str, Any]]:
    """Signature entries: dim 0 is ``batch`` unless ``dynamic`` says otherwise for that tensor."""
    specs = []
    for name, t in zip(names, tensors, strict=False):
        dims = dict(dynamic.get(name, {0: BATCH}))
        shape: list[int | str] = [dims.get(i, int(size)) for i, size in enumerate(t.shape)]
        entry: dict[str, Any] = {"name": name, "dtype": dtype_name(t.dtype), "shape": shape}
        if ranges and name in ranges:
            entry["range"] = list(ranges[name])
        specs.append(entry)
    return specs


def output_dims(
    outputs: Sequence[torch.Tensor], inputs: Sequence[torch.Tensor], input_specs: Sequence[dict[str, Any]]
) -> list[dict[int, str]]:
    """Name an output's dims after the input dims of the same size (batch, seq, ...)."""
    sizes: dict[int, str] = {}
    for t, spec in zip(inputs, input_specs, strict=False):
        for i, d in enumerate(spec["shape"]):
            if isinstance(d, str):
                sizes.setdefault(int(t.shape[i]), d)
    return [
        {
            i: sizes[int(s)]
            for i, s in enumerate(o.shape)
            if int(s) in sizes and (i == 0 or sizes[int(s)] != BATCH)
        }
        for o in outputs
    ]


_INPUT = re.compile(r"^(?P<name>[A-Za-z_][\w.]*):(?P<dtype>\w+):(?P<shape>[\w=,]+)(?::(?P<range>\d+-\d+))?$")


def parse_input(text: str) -> tuple[TensorSpec, dict[str, int]]:
    """``input_ids:int64:batch,seq=128[:0-1000]`` -> (spec, example sizes of named dims).

    A named dim's ``=N`` is the size used for example inputs (batch defaults to 2, others to 16).

    Raises:
        ImportError_: If the text is not NAME:DTYPE:SHAPE[:LOW-HIGH].
    """
    match = _INPUT.match(text.strip())
    fix = "write NAME:DTYPE:SHAPE[:LOW-HIGH], e.g. input_ids:int64:batch,seq=128:0-30522"
    if not match:
        raise ImportError_(f"--input {text!r} is not NAME:DTYPE:SHAPE", fix=fix)
    if match["dtype"] not in DTYPES:
        raise ImportError_(
            f"--input {text!r}: unknown dtype {match['dtype']!r}", fix=f"use one of {', '.join(DTYPES)}"
        )
    shape: list[int | str] = []
    sizes: dict[str, int] = {}
    for part in match["shape"].split(","):
        name, _, size = part.partition("=")
        if name.isdigit():
            shape.append(int(name))
            continue
        if size and not size.isdigit():
            raise ImportError_(f"--input {text!r}: size of {name!r} is not an integer", fix=fix)
        shape.append(name)
        sizes[name] = int(size) if size else (2 if name == BATCH else 16)
    rng = [int(v) for v in match["range"].split("-")] if match["range"] else None
    try:
        spec = TensorSpec(name=match["name"], dtype=match["dtype"], shape=shape, range=rng)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ImportError_(f"--input {text!r}: {str(exc).splitlines()[-1]}", fix=fix) from None
    return spec, sizes
