"""Read what people bring: weights files (+ the class that builds the module), ``.pt2``
programs and ``.onnx`` files. Weights are read with ``torch.load(weights_only=True)`` or
safetensors, never as a full pickle; a ``.pt2`` archive is checked for pickled payloads first.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchship.artifact import Artifact, TensorSpec
from torchship.artifact.manifest import BATCH
from torchship.errors import require
from torchship.importer.signature import DTYPES, ImportError_

WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
ONNX_FILE = "model.onnx"


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file; a checkpoint's ``state_dict`` (Lightning) when it has one.

    Raises:
        ImportError_: If the file is not a weights file torch can read without unpickling code.
    """
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, ...: all mean "not plain weights"
        raise ImportError_(
            f"{path.name} is not a plain weights file ({str(exc).splitlines()[0][:160]})",
            fix="save model.state_dict() with torch.save or safetensors; torchship never unpickles code",
        ) from None
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ImportError_(
            f"{path.name} does not hold a state dict of tensors", fix="save model.state_dict()"
        )
    return dict(loaded)


def fit_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model``, stripping a wrapper prefix (``model.``, ``module.``) if that fits.

    Raises:
        ImportError_: If the keys do not fit the model, naming a few on each side.
    """
    want = set(model.state_dict())
    candidates = [""] + sorted({k.split(".", 1)[0] + "." for k in state if "." in k})
    for prefix in candidates:
        stripped = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if want <= set(stripped) | _non_persistent(model):
            model.load_state_dict({k: v for k, v in stripped.items() if k in want}, strict=False)
            return
    missing = sorted(want - set(state))[:3]
    raise ImportError_(
        f"the weights in {source} do not fit the model (model keys missing from the file: {missing}, "
        f"file keys: {sorted(state)[:3]})",
        fix="check --class and --kwargs build the model these weights were saved from",
    )


def _non_persistent(model: nn.Module) -> set[str]:
    return {f"{p}.{b}" if p else b for p, m in model.named_modules() for b in m._non_persistent_buffers_set}


def keyword_call(model: nn.Module, names: Sequence[str]) -> bool:
    """Feed inputs by name when forward() has parameters of those names (Hugging Face), else by position."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return len(names) > 1 and all(n in params for n in names)


def examples_for(specs: Sequence[TensorSpec], sizes: Mapping[str, int]) -> list[torch.Tensor]:
    from torchship.runtime.feeds import example_tensor

    rng = np.random.default_rng(0)
    tensors = []
    for spec in specs:
        x = example_tensor(spec, {BATCH: 2, **sizes}, rng)
        tensors.append(torch.from_numpy(x).to(DTYPES[spec.dtype]))
    return tensors


def read_labels(text: str | None) -> list[str]:
    """``--labels FILE`` (one per line) or ``a,b,c``."""
    if not text:
        return []
    path = Path(text)
    if path.is_file():
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return [part.strip() for part in text.split(",") if part.strip()]


# ---------------------------------------------------------------------------- ONNX

_ONNX_DTYPES = {1: "float32", 10: "float16", 16: "bfloat16", 7: "int64", 6: "int32", 9: "bool"}


def onnx_signature(model: Any) -> dict[str, Any]:
    """The signature of an ONNX graph: its inputs (initializers excluded) and outputs, dims named.

    A dim_param on axis 0 becomes ``batch``; other dim_params keep their (sanitized) name,
    so two inputs sharing ``sequence`` share one named dim.

    Raises:
        ImportError_: For a tensor type torchship does not carry.
    """
    initializers = {i.name for i in model.graph.initializer}
    rename: dict[str, str] = {}

    def spec(value: Any) -> dict[str, Any]:
        tensor = value.type.tensor_type
        if tensor.elem_type not in _ONNX_DTYPES:
            raise ImportError_(
                f"ONNX tensor {value.name} has element type {tensor.elem_type}, not supported",
                fix=f"use one of {', '.join(_ONNX_DTYPES.values())}",
            )
        shape: list[int | str] = []
        for axis, dim in enumerate(tensor.shape.dim):
            if dim.HasField("dim_value"):
                shape.append(int(dim.dim_value))
                continue
            param = dim.dim_param or f"{value.name}_{axis}"
            if param not in rename:
                rename[param] = BATCH if axis == 0 else (re.sub(r"\W", "_", param) or f"dim{axis}")
            shape.append(rename[param])
        return {"name": value.name, "dtype": _ONNX_DTYPES[tensor.elem_type], "shape": shape}

    inputs = [spec(v) for v in model.graph.input if v.name not in initializers]
    outputs = [spec(v) for v in model.graph.output]
    return {"inputs": inputs, "outputs": outputs}


def from_onnx(
    path: Path,
    *,
    name: str,
    task: str,
    labels: Sequence[str],
    specs: Sequence[TensorSpec],
    sizes: Mapping[str, int],
) -> Artifact:
    """An ONNX-only artifact: the graph as ``model.onnx``, no PyTorch weights or class.

    Raises:
        ImportError_: If onnx.checker rejects the file or ``--input`` names an input the graph lacks.
    """
    onnx = require("onnx", "onnx")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # DecodeError, ValidationError, ...
        raise ImportError_(
            f"{path.name} is not a valid ONNX model ({str(exc).splitlines()[0][:160]})"
        ) from None
    signature = onnx_signature(model)
    given = {s.name: s for s in specs}
    unknown = sorted(set(given) - {s["name"] for s in signature["inputs"]})
    if unknown:
        raise ImportError_(
            f"--input names {unknown}, which {path.name} does not take",
            fix=f"its inputs are {[s['name'] for s in signature['inputs']]}",
        )
    signature["inputs"] = [
        given[s["name"]].model_dump(exclude_none=True) if s["name"] in given else s
        for s in signature["inputs"]
    ]
    signature["dims"] = {k: v for k, v in sizes.items() if k != BATCH}
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None)
    record = {
        "file": ONNX_FILE,
        "opset": opset,
        "dynamic_batch": True,
        "source": "import",
        "onnx": onnx.__version__,
    }
    art = Artifact.create(
        name=name,
        model=None,
        architecture=None,
        signature=signature,
        labels=list(labels),
        task=task,
        op="import",
        params={"source": path.name, "format": "onnx"},
        exports={"onnx": record},
    )
    art.pending_files[ONNX_FILE] = path.read_bytes()
    return art


# ---------------------------------------------------------------------------- .pt2


def program_inputs(
    program: torch.export.ExportedProgram, specs: Sequence[TensorSpec], sizes: Mapping[str, int]
) -> tuple[list[str], list[torch.Tensor], dict[str, dict[int, str]]]:
    """Names, example tensors and named dynamic dims of a program's user inputs.

    ``--input`` specs win; otherwise the placeholder names are used, a symbolic axis 0 is
    ``batch`` and every other symbol gets one name (``d1``, ``d2``...) shared where it repeats.
    """
    user = set(program.graph_signature.user_inputs)
    nodes = [n for n in program.graph.nodes if n.op == "placeholder" and n.name in user]
    if specs:
        if len(specs) != len(nodes):
            raise ImportError_(
                f"{len(specs)} --input given but the program takes {len(nodes)} inputs",
                fix="give one --input per program input, in order",
            )
        return [s.name for s in specs], examples_for(specs, sizes), {s.name: s.dynamic for s in specs}
    names, tensors, dynamic = [], [], {}
    symbols: dict[str, str] = {}
    for node in nodes:
        val = node.meta["val"]
        shape, dims = [], {}
        for axis, size in enumerate(val.shape):
            if isinstance(size, torch.SymInt):
                key = str(size)
                symbols.setdefault(key, BATCH if axis == 0 else f"d{len(symbols)}")
                dims[axis] = symbols[key]
                shape.append(2 if axis == 0 else 16)
            else:
                shape.append(int(size))
        x = torch.randn(shape) if val.dtype.is_floating_point else torch.ones(shape)
        names.append(node.name)
        tensors.append(x.to(val.dtype))
        dynamic[node.name] = dims
    return names, tensors, dynamic


def load_program(path: Path) -> torch.export.ExportedProgram:
    from torchship.runtime.exported import check_pt2_without_pickles

    try:
        check_pt2_without_pickles(path)
        from torch.ao.quantization.fx import _decomposed  # noqa: F401 - registers int8 ops

        return torch.export.load(str(path))
    except ImportError_:
        raise
    except Exception as exc:  # RuntimeError_ from the check, or the deserializer's own errors
        raise ImportError_(
            f"cannot load {path.name} as a torch.export program ({str(exc).splitlines()[0][:200]})",
            fix="save it with torch.export.save (same torch version)",
        ) from None
