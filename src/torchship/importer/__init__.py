"""Bring in a model trained elsewhere: from memory (``from_model``) or from files (``import_source``).

Every imported PyTorch model is also captured with torch.export, its declared dims
dynamic, and stored as ``model.pt2``: later stages run it without the model's Python code.

Example:
    >>> import torch
    >>> from torchship.importer import from_model
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 2))
    >>> art = from_model(net, (torch.randn(2, 4),), name="tiny", task="regression")
    >>> [(t.name, t.shape) for t in art.manifest.signature.outputs]
    [('output', ['batch', 2])]
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchship.artifact import Artifact
from torchship.artifact.manifest import BATCH
from torchship.importer.program import capture, max_abs_diff, program_bytes, widen_batch
from torchship.importer.signature import ImportError_, output_dims, tensor_specs
from torchship.importer.signature import output_names as name_outputs
from torchship.models.calling import SignatureModule, flatten_outputs

PT2 = "model.pt2"

__all__ = ["ImportError_", "from_model", "import_source"]


def from_model(
    model: nn.Module,
    example_inputs: Sequence[torch.Tensor] | Mapping[str, torch.Tensor] | torch.Tensor,
    *,
    name: str,
    task: str = "classification",
    labels: Sequence[str] | None = None,
    dynamic_dims: Mapping[str, Mapping[int, str]] | None = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    ranges: Mapping[str, Sequence[int]] | None = None,
    architecture: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
) -> Artifact:
    """Describe ``model`` by its signature, capture it with torch.export, and make an artifact.

    Args:
        example_inputs: A tuple (positional) or dict (keyword, as Hugging Face models take
            them) of example tensors; they define the inputs' names, dtypes and shapes.
        dynamic_dims: Named dynamic dims per input, ``{"input_ids": {0: "batch", 1: "seq"}}``;
            an input not listed has dim 0 ``batch`` and every other dim fixed.
        output_names: Names of the flattened outputs; default the keys of a dict/ModelOutput,
            else ``logits`` (classifiers) or ``output`` / ``output_0``, ``output_1``, ...
        ranges: ``[low, high)`` of integer inputs (vocabulary size), for valid example inputs.
        architecture: ``{"import": "pkg.mod:Class", "kwargs": {...}}`` when the model can be
            rebuilt from code (what ``torchship import --class`` records); else the artifact
            holds the weights and the program, and runs without the model's code.
        out: Save the artifact here (``OUT`` is the artifact directory).

    Raises:
        ImportError_: If the model's outputs are not tensors, or torch.export cannot capture
            it and no ``architecture`` says how to rebuild it.
    """
    keyword = isinstance(example_inputs, Mapping)
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    if keyword:
        names = list(example_inputs)  # type: ignore[arg-type]
        tensors = list(example_inputs.values())  # type: ignore[union-attr]
    else:
        tensors = list(example_inputs)  # type: ignore[arg-type]
        names = (
            list(input_names)
            if input_names
            else (["input"] if len(tensors) == 1 else [f"input_{i}" for i in range(len(tensors))])
        )
    if len(names) != len(tensors):
        raise ImportError_(
            f"{len(names)} input names for {len(tensors)} example inputs", fix="pass one name per input"
        )
    # not a stub of ours: torch's ExportedProgram.module() raises NotImplementedError for eval()
    # and train(); such a program keeps the mode it was captured in, which a .pt2 import wants
    with contextlib.suppress(NotImplementedError):
        model = model.eval()
    module = SignatureModule(model, names, keyword)
    dynamic = dynamic_dims or {}
    inputs = tensor_specs(names, tensors, dynamic, ranges)
    tensors = widen_batch(tensors, inputs)
    with torch.no_grad():
        flat = flatten_outputs(
            model(**dict(zip(names, tensors, strict=False))) if keyword else model(*tensors)
        )
    outs = name_outputs(flat, output_names, task)
    out_dims = output_dims([t for _, t in flat], tensors, inputs)
    outputs = tensor_specs(outs, [t for _, t in flat], dict(zip(outs, out_dims, strict=False)))
    for spec, dims in zip(outputs, out_dims, strict=False):
        if not dims:  # an output with no dim tied to an input keeps its traced shape
            spec["shape"] = [int(d) for d in spec["shape"]]
    sizes = {
        d: int(t.shape[i])
        for t, s in zip(tensors, inputs, strict=False)
        for i, d in enumerate(s["shape"])
        if isinstance(d, str) and d != BATCH
    }
    signature = {"inputs": inputs, "outputs": outputs, "dims": sizes}
    exports: dict[str, Any] = {}
    files: dict[str, bytes] = {}
    capture_error = None
    try:
        program = capture(module, tensors, inputs)
    except ImportError_ as exc:
        if architecture is None:
            raise
        capture_error = str(exc)
    else:
        with torch.no_grad():
            diff = max_abs_diff([t for _, t in flat], program.module()(*tensors))
        files[PT2] = program_bytes(program)
        exports["exported"] = {
            "file": PT2,
            "dynamic_batch": True,
            "torch": torch.__version__,
            "max_abs_diff": diff,
            "samples": int(tensors[0].shape[0]),
            "samples_source": "import example inputs",
        }
    arch = dict(architecture) if architecture is not None else None
    if arch is not None:
        arch["call"] = "keyword" if keyword else "positional"
    params: dict[str, Any] = {"source": type(model).__name__}
    if capture_error:
        params["capture_error"] = capture_error
    art = Artifact.create(
        name=name,
        model=model,
        architecture=arch,
        signature=signature,
        labels=list(labels or []),
        task=task,
        op="import",
        params=params,
        exports=exports,
    )
    art.pending_files.update(files)
    return art.save(out) if out is not None else art


def import_source(
    source: str | Path,
    out: str | Path,
    *,
    class_path: str | None = None,
    allow_import: Sequence[str] = (),
    kwargs: Mapping[str, Any] | None = None,
    inputs: Sequence[str] = (),
    labels: Sequence[str] = (),
    task: str = "classification",
    name: str | None = None,
    output_names: Sequence[str] | None = None,
) -> Artifact:
    """Bring in a weights file (with ``class_path``), a ``.pt2`` program or an ``.onnx`` file.

    Args:
        out: The artifact directory to write.
        inputs: ``NAME:DTYPE:SHAPE[:LOW-HIGH]`` per input (``input_ids:int64:batch,seq=128:0-30522``);
            needed for weights, optional for programs (their signature is read from the file).

    Raises:
        ImportError_: A source torchship cannot read, a missing ``--class``/``--input``, weights
            that do not fit the class.
        ModelError: A class that was not allowed with ``allow_import`` or cannot be built.
    """
    from torchship.importer import sources
    from torchship.importer.signature import parse_input

    path = Path(source)
    if not path.is_file():
        raise ImportError_(f"{path} does not exist", fix="point at a weights, .pt2 or .onnx file")
    parsed = [parse_input(text) for text in inputs]
    specs = [spec for spec, _ in parsed]
    sizes = {k: v for _, dims in parsed for k, v in dims.items()}
    ranges = {s.name: s.range for s in specs if s.range}
    name = name or path.stem
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        art = sources.from_onnx(path, name=name, task=task, labels=labels, specs=specs, sizes=sizes)
        return art.save(out)
    if suffix == ".pt2":
        program = sources.load_program(path)
        names, tensors, dynamic = sources.program_inputs(program, specs, sizes)
        return from_model(
            program.module(),
            tuple(tensors),
            name=name,
            task=task,
            labels=labels,
            input_names=names,
            dynamic_dims=dynamic,
            ranges=ranges,
            output_names=output_names,
            out=out,
        )
    if suffix not in sources.WEIGHT_SUFFIXES:
        raise ImportError_(
            f"{path.name}: unknown kind of file",
            fix=f"import weights ({', '.join(sources.WEIGHT_SUFFIXES)}), a .pt2 program or an .onnx file",
        )
    if not class_path:
        raise ImportError_(
            f"{path.name} holds weights only; torchship needs the class that builds the module",
            fix="pass --class pkg.mod:Class --allow-import pkg.mod:Class (a class or a factory function)",
        )
    if not specs:
        raise ImportError_(
            "a weights file says nothing about the model's inputs",
            fix="describe each with --input NAME:DTYPE:SHAPE, e.g. --input input_ids:int64:batch,seq=128",
        )
    from torchship.models import build_model

    architecture = {"import": class_path, "kwargs": dict(kwargs or {})}
    model = build_model(architecture, allow_import=allow_import)
    sources.fit_state_dict(model, sources.read_state_dict(path), path.name)
    tensors = sources.examples_for(specs, sizes)
    names = [s.name for s in specs]
    examples: Any = (
        dict(zip(names, tensors, strict=False)) if sources.keyword_call(model, names) else tuple(tensors)
    )
    return from_model(
        model,
        examples,
        name=name,
        task=task,
        labels=labels,
        input_names=names,
        dynamic_dims={s.name: s.dynamic for s in specs},
        ranges=ranges,
        output_names=output_names,
        architecture=architecture,
        out=out,
    )
