"""``torchship inspect``: what an artifact is, readably (or as JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from torchship.cli._common import KeyFile, metrics_table, out, use_key_file
from torchship.cli.main import app


@app.command(epilog="Example: torchship inspect runs/digits-cnn/artifact --json")
def inspect(
    artifact: Annotated[Path, typer.Argument(help="Artifact directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
    key_file: KeyFile = None,
) -> None:
    """Verify an artifact (checksums, weights fit) and print it: model, input, metrics, lineage, files."""
    from torchship.artifact import Artifact
    from torchship.artifact.signing import signature_info

    use_key_file(key_file)
    art = Artifact.load(artifact)
    m = art.manifest
    signature = signature_info(art.path)
    if m.architecture is not None and m.architecture.name is not None:
        art.build_model()  # a zoo model: prove the weights fit (bring-your-own needs --allow-import)
    if as_json:
        print(json.dumps(m.to_json_dict() | {"digest": art.digest, "signature": signature}, indent=2))
        return
    out.print(f"[bold]{m.name}[/bold] v{m.version}  ({m.task}, created {m.created})  {art.digest[:19]}")
    _print_model(art)
    _print_provenance(m, signature)
    if m.data:
        sizes = m.data.get("sizes", {})
        out.print(f"data      {m.data.get('name', '?')}  {', '.join(f'{k} {v}' for k, v in sizes.items())}")
    if m.metrics:
        out.print(metrics_table(m.metrics))
    files = Table(title="files (sha256 verified)")
    files.add_column("file")
    files.add_column("bytes", justify="right")
    files.add_column("sha256")
    for name, digest in m.files.items():
        files.add_row(name, f"{(art.path / name).stat().st_size:,}", digest[7:19])
    out.print(files)
    if m.exports:
        exports = Table(title="exports (verified against eager)")
        for col in ("format", "file", "max |Δ|", "mean |Δ|", "top-1 agreement"):
            exports.add_column(col)
        for fmt, info in m.exports.items():
            exports.add_row(
                fmt,
                str(info.get("file", "")),
                _num(info.get("max_abs_diff")),
                _num(info.get("mean_abs_diff")),
                _num(info.get("top1_agreement")),
            )
        out.print(exports)
    out.print("env       " + ", ".join(f"{k} {v}" for k, v in m.env.items()))


def _print_model(art: Any) -> None:
    """The model line, its inputs (one normalized input, or the whole signature) and its labels."""
    m = art.manifest
    arch = m.architecture
    params = sum(t.numel() for t in art.state_dict().values())
    if arch is None:
        out.print(f"model     program only ({', '.join(m.exports)}); no PyTorch class", highlight=False)
    else:
        kwargs = ", ".join(f"{k}={v}" for k, v in arch.kwargs.items())
        out.print(f"model     {arch.describe()}({kwargs})  {params:,} weights")
    if _one_normalized_input(m):
        spec = m.input
        out.print(
            f"input     {spec.dtype}{list(spec.shape)} {spec.layout}; "
            f"x = (raw * {spec.scale:.6g} - mean) / std, "
            f"mean {_short(spec.mean)}, std {_short(spec.std)}"
        )
    else:
        from torchship.cli.import_ import signature_lines

        for line in signature_lines(m.signature):
            out.print(line, markup=False, highlight=False)
    if m.labels:
        more = " ..." if len(m.labels) > 12 else ""
        out.print(f"labels    {len(m.labels)}: {', '.join(m.labels[:12])}{more}")


def _print_provenance(m: Any, signature: dict[str, Any] | None) -> None:
    """Lineage, signature and encryption lines."""
    parent = m.lineage.parent[:19] if m.lineage.parent else "none"
    signed = m.lineage.parent_signature
    signed_parent = f", parent signature {signed[:19]}" if signed else ""
    out.print(f"lineage   {m.lineage.op} (parent {parent}{signed_parent})")
    if signature is None:
        out.print("signature none (unsigned; torchship sign ART --key private.pem)")
    else:
        out.print(
            f"signature {signature['file']} by {signature['kind']} {signature['fingerprint']} "
            "(not checked here: torchship verify ART --key public.pem)",
            highlight=False,
            soft_wrap=True,
        )
    if m.encryption is not None:
        out.print(f"encrypted {m.encryption.algorithm}: {', '.join(m.encryption.files)}")


def _one_normalized_input(m) -> bool:  # noqa: ANN001 - a Manifest
    """A classifier of one normalized float input and one output: the one-line input view says it all."""
    spec = m.signature.inputs
    return (
        len(spec) == 1
        and spec[0].preprocessing is not None
        and len(m.signature.outputs) == 1
        and m.signature.outputs[0].name == "logits"
    )


def _short(values: list[float]) -> str:
    shown = ", ".join(f"{v:.4g}" for v in values[:4])
    return f"[{shown}{', ...' if len(values) > 4 else ''}]"


def _num(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else ("" if value is None else str(value))
