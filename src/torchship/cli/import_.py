"""``torchship import``: bring in a model trained elsewhere (weights + class, ``.pt2``, ``.onnx``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from torchship.cli._common import AllowImport, err, out
from torchship.cli.main import app

EXAMPLE = (
    "Example: torchship import bert.safetensors --class mypkg.models:build_bert --allow-import "
    "mypkg.models:build_bert --kwargs '{\"num_labels\": 3}' --input input_ids:int64:batch,seq=128:0-30522 "
    "--input attention_mask:int64:batch,seq=128 --labels neg,neutral,pos -o runs/bert"
)
TASKS = ("classification", "multilabel", "regression", "embedding", "generic")


@app.command("import", epilog=EXAMPLE)
def import_(
    source: Annotated[
        Path,
        typer.Argument(help="Weights (.pt/.pth/.bin/.safetensors/.ckpt), a .pt2 program, or an .onnx file."),
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Run directory; the artifact goes to OUT/artifact.")
    ],
    class_path: Annotated[
        str | None,
        typer.Option(
            "--class", help="pkg.mod:Class or a factory that returns the module (weights files only)."
        ),
    ] = None,
    kwargs: Annotated[str | None, typer.Option("--kwargs", help="JSON object passed to --class.")] = None,
    inputs: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            help="NAME:DTYPE:SHAPE[:LOW-HIGH] per input, e.g. input_ids:int64:batch,seq=128:0-30522 "
            "(named dims are dynamic; =N is the example size).",
        ),
    ] = None,
    outputs: Annotated[str | None, typer.Option("--outputs", help="Comma-separated output names.")] = None,
    labels: Annotated[str | None, typer.Option("--labels", help="FILE (one per line) or a,b,c.")] = None,
    task: Annotated[str, typer.Option(help=f"One of: {', '.join(TASKS)}.")] = "classification",
    name: Annotated[str | None, typer.Option(help="Artifact name (default: the file's stem).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the signature as JSON.")] = False,
    allow_import: AllowImport = None,
) -> None:
    """Import SOURCE as an artifact with a model signature, captured with torch.export.

    Weights are read without unpickling code; the program stored beside them lets every later
    stage (export, bench, serve, quantize) run the model without its Python class.
    """
    from torchship.importer import ImportError_, import_source
    from torchship.importer.sources import read_labels

    if task not in TASKS:
        raise ImportError_(f"unknown task {task!r}", fix=f"choose one of: {', '.join(TASKS)}")
    try:
        parsed_kwargs = json.loads(kwargs) if kwargs else {}
    except json.JSONDecodeError as exc:
        raise ImportError_(
            f"--kwargs is not JSON ({exc})", fix="pass a JSON object, e.g. '{\"num_labels\": 3}'"
        ) from None
    if not isinstance(parsed_kwargs, dict):
        raise ImportError_(
            "--kwargs is not a JSON object", fix="pass a JSON object, e.g. '{\"num_labels\": 3}'"
        )
    art = import_source(
        source,
        out_dir / "artifact",
        class_path=class_path,
        allow_import=allow_import or [],
        kwargs=parsed_kwargs,
        inputs=inputs or [],
        labels=read_labels(labels),
        task=task,
        name=name,
        output_names=[o.strip() for o in outputs.split(",")] if outputs else None,
    )
    m = art.manifest
    if as_json:
        print(
            json.dumps(
                {
                    "artifact": str(art.path),
                    "task": m.task,
                    "signature": m.signature.model_dump(exclude_none=True),
                },
                indent=2,
            )
        )
        return
    out.print(f"[bold]{m.name}[/bold] ({m.task}) -> {art.path}")
    for line in signature_lines(m.signature):
        out.print(line, markup=False, highlight=False)
    note = m.lineage.params.get("capture_error")
    if note:
        err.print(f"note: {note}; stages that run the model need --allow-import {class_path}")
    elif "exported" in m.exports:
        err.print("captured with torch.export: later stages run it without the model's Python code")
    else:
        err.print(
            "ONNX-only artifact: export (triton), bench, serve and quantize run it in ONNX Runtime; "
            "prune, fuse and distill need the PyTorch class"
        )


def signature_lines(signature) -> list[str]:  # noqa: ANN001 - a manifest Signature
    """``input  input_ids  int64[batch, seq]  range [0, 1000)`` lines, inputs then outputs."""
    lines = []
    for side, specs in (("input", signature.inputs), ("output", signature.outputs)):
        for spec in specs:
            extra = f"  range [{spec.range[0]}, {spec.range[1]})" if spec.range else ""
            if spec.preprocessing is not None:
                pre = spec.preprocessing
                extra += f"  {pre.kind}: (raw * {pre.scale:.6g} - mean) / std"
            lines.append(f"{side:<7}{spec.name:<16}{spec.dtype}[{', '.join(map(str, spec.shape))}]{extra}")
    if signature.dims:
        lines.append(
            "dims   " + ", ".join(f"{k}={v}" for k, v in signature.dims.items()) + " (example sizes)"
        )
    return lines
