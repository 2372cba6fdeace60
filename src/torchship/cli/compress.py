"""``torchship compress ART prune|fuse|distill|quantize`` and ``torchship ensemble A B C``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from torchship.cli._common import AllowImport, err, out
from torchship.cli.main import app


class _MethodGroup(TyperGroup):
    """Unknown methods get torchship's one-line error (listing the methods), not click's usage block."""

    def resolve_command(self, ctx: typer.Context, args: list[str]):
        if args and not args[0].startswith("-") and self.get_command(ctx, args[0]) is None:
            from torchship.compress import methods

            methods.get(args[0])
        return super().resolve_command(ctx, args)


compress_app = typer.Typer(
    cls=_MethodGroup,
    rich_markup_mode="markdown",
    no_args_is_help=True,
    help="Make a smaller or faster artifact from ARTIFACT; the parent is never modified.",
    epilog="Example: torchship compress runs/digits-cnn/artifact prune --ratio 0.5 --epochs 3 -o runs/pruned",
)
app.add_typer(compress_app, name="compress")

Out = Annotated[Path, typer.Option("--out", "-o", help="Run directory; the artifact goes to OUT/artifact.")]
Data = Annotated[
    str | None, typer.Option(help="Dataset NAME[:PATH]; default: the one the artifact was trained on.")
]
Set = Annotated[
    list[str] | None, typer.Option("--set", help="Override a config key, e.g. --set finetune.lr=1e-3.")
]
Config = Annotated[Path | None, typer.Option("--config", help="YAML file with the method's settings.")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON instead of tables.")]


@compress_app.callback()
def compress(
    ctx: typer.Context,
    artifact: Annotated[Path, typer.Argument(help="Artifact directory to compress (read only).")],
) -> None:
    """Compress ARTIFACT with one method, writing a new artifact whose lineage names it."""
    ctx.obj = {"artifact": artifact}


@compress_app.command(
    epilog="Example: torchship compress runs/digits-cnn/artifact prune --ratio 0.5 "
    "--steps 2 --step-epochs 1 --epochs 3 -o runs/digits-cnn-pruned"
)
def prune(
    ctx: typer.Context,
    out_dir: Out,
    kind: Annotated[
        str | None, typer.Option(help="structured (remove channels) or unstructured (zero weights).")
    ] = None,
    ratio: Annotated[
        float | None,
        typer.Option("--ratio", "--sparsity", help="Share of channels/weights to remove, in [0, 1)."),
    ] = None,
    scope: Annotated[
        str | None, typer.Option(help="layer (same ratio everywhere) or global (rank across layers).")
    ] = None,
    importance: Annotated[str | None, typer.Option(help="Channel norm: l1 or l2.")] = None,
    ignore: Annotated[
        list[str] | None, typer.Option(help="Layer to keep whole (repeatable); default: head.")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Rounds to reach the target.")] = None,
    step_epochs: Annotated[int | None, typer.Option(help="Fine-tuning epochs between rounds.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Fine-tuning epochs after the last round.")] = None,
    lr: Annotated[float | None, typer.Option(help="Fine-tuning learning rate.")] = None,
    round_to: Annotated[int | None, typer.Option(help="Keep channel counts multiples of this.")] = None,
    data: Data = None,
    config: Config = None,
    set_: Set = None,
    as_json: Json = False,
    allow_import: AllowImport = None,
) -> None:
    """Remove channels (Torch-Pruning, residual-aware) or zero the smallest weights, then fine-tune."""
    flags = _flags(
        kind=kind,
        ratio=ratio,
        scope=scope,
        importance=importance,
        ignore=ignore,
        steps=steps,
        step_epochs=step_epochs,
        round_to=round_to,
        data=data,
        finetune=_flags(epochs=epochs, lr=lr),
    )
    _run(ctx, "prune", flags, config, set_, out_dir, as_json, allow_import)


@compress_app.command(
    epilog="Example: torchship compress runs/digits32-resnet8/artifact fuse -o runs/resnet8-fused"
)
def fuse(
    ctx: typer.Context,
    out_dir: Out,
    tolerance: Annotated[
        float | None, typer.Option(help="Largest |Δ| of the logits accepted (default 1e-5).")
    ] = None,
    data: Data = None,
    config: Config = None,
    set_: Set = None,
    as_json: Json = False,
    allow_import: AllowImport = None,
) -> None:
    """Fold batch norms into the layers before them; the outputs are checked against the parent."""
    _run(ctx, "fuse", _flags(tolerance=tolerance, data=data), config, set_, out_dir, as_json, allow_import)


@compress_app.command(
    epilog="Example: torchship compress runs/digits-cnn/artifact distill --student cnn "
    "--student-kwargs '{channels: [8, 16], hidden: 32}' --epochs 10 --compare -o runs/student"
)
def distill(
    ctx: typer.Context,
    out_dir: Out,
    student: Annotated[str | None, typer.Option(help="Zoo model of the student (default cnn).")] = None,
    student_kwargs: Annotated[
        str | None, typer.Option(help="Student kwargs as YAML/JSON, e.g. '{channels: [8, 16]}'.")
    ] = None,
    temperature: Annotated[
        float | None, typer.Option("--temperature", "-T", help="Softmax temperature (default 4).")
    ] = None,
    alpha: Annotated[
        float | None, typer.Option(help="Weight of the teacher term; 1 - alpha on the labels (default 0.7).")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs (default 10).")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (default 3e-3).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size (default 64).")] = None,
    compare: Annotated[
        bool, typer.Option("--compare", help="Also train the student without the teacher.")
    ] = False,
    data: Data = None,
    config: Config = None,
    set_: Set = None,
    as_json: Json = False,
    allow_import: AllowImport = None,
) -> None:
    """Train a small zoo student on ARTIFACT's soft predictions (the teacher) mixed with the labels."""
    kwargs = _yaml_mapping(student_kwargs, "--student-kwargs") if student_kwargs is not None else None
    flags = _flags(
        student=student,
        student_kwargs=kwargs,
        temperature=temperature,
        alpha=alpha,
        compare=compare or None,
        data=data,
        train=_flags(epochs=epochs, lr=lr, batch_size=batch_size),
    )
    _run(ctx, "distill", flags, config, set_, out_dir, as_json, allow_import)


@compress_app.command(
    epilog="Example: torchship compress runs/digits-cnn/artifact quantize --mode static "
    "--calibration entropy --max-accuracy-drop 0.01 -o runs/digits-cnn-int8"
)
def quantize(
    ctx: typer.Context,
    out_dir: Out,
    mode: Annotated[
        str | None,
        typer.Option(help="static (ORT, calibrated), dynamic (ORT, MatMul/Gemm only) or pt2e (torchao)."),
    ] = None,
    calibration: Annotated[
        str | None, typer.Option(help="static: minmax (default), entropy or percentile.")
    ] = None,
    calibration_size: Annotated[
        int | None, typer.Option(help="Training-split inputs to calibrate on (default 256).")
    ] = None,
    max_accuracy_drop: Annotated[
        float | None,
        typer.Option(
            help="Keep the most sensitive layers float until val accuracy drops at most this "
            "(0.01 = 1 point)."
        ),
    ] = None,
    per_channel: Annotated[
        bool | None,
        typer.Option(
            "--per-channel/--per-tensor",
            help="Weight scales per output channel (default) or per tensor.",
        ),
    ] = None,
    qat_epochs: Annotated[
        int | None, typer.Option(help="pt2e: quantization-aware training epochs before converting.")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="QAT learning rate (default 1e-4).")] = None,
    data: Data = None,
    config: Config = None,
    set_: Set = None,
    as_json: Json = False,
    allow_import: AllowImport = None,
) -> None:
    """Quantize to int8 (ONNX Runtime QDQ, or torchao pt2e), re-measured on the validation split."""
    flags = _flags(
        mode=mode,
        calibration=calibration,
        calibration_size=calibration_size,
        max_accuracy_drop=max_accuracy_drop,
        per_channel=per_channel,
        qat_epochs=qat_epochs,
        data=data,
        finetune=_flags(lr=lr),
    )
    _run(ctx, "quantize", flags, config, set_, out_dir, as_json, allow_import)


@app.command(epilog="Example: torchship ensemble runs/a runs/b runs/c --mode mean -o runs/abc")
def ensemble(
    artifacts: Annotated[list[Path], typer.Argument(help="Member artifact directories (two or more).")],
    out_dir: Out,
    mode: Annotated[
        str, typer.Option(help="mean (average logits), vote (majority) or soup (average weights).")
    ] = "mean",
    data: Data = None,
    as_json: Json = False,
    allow_import: AllowImport = None,
) -> None:
    """Combine several artifacts into one: one forward pass, one export, one artifact."""
    from torchship.artifact import Artifact
    from torchship.compress import EnsembleConfig
    from torchship.compress import ensemble as run_ensemble
    from torchship.config import validate_config

    cfg = validate_config(EnsembleConfig, _flags(mode=mode, data=data), where="ensemble options")
    members = [Artifact.load(path) for path in artifacts]
    child = run_ensemble(members, cfg, out=out_dir, allow_import=allow_import or [], console=err)
    _print_result(child, as_json)


def _run(
    ctx: typer.Context,
    method: str,
    flags: dict[str, Any],
    config: Path | None,
    set_: list[str] | None,
    out_dir: Path,
    as_json: bool,
    allow_import: list[str] | None,
) -> None:
    from torchship.artifact import Artifact
    from torchship.compress import methods, run
    from torchship.config import load_config

    cfg = load_config(methods.get(method).config, config, set_ or [], flags)
    parent = Artifact.load(ctx.obj["artifact"])
    child = run(parent, method, cfg, out=out_dir, allow_import=allow_import or [], console=err)
    _print_result(child, as_json)


def _flags(**values: Any) -> dict[str, Any]:
    """Options the user gave (None and empty sub-dicts dropped), as a config dict."""
    if isinstance(values.get("data"), str):
        from torchship.data import parse_data_arg

        parsed = parse_data_arg(values["data"])  # an unknown dataset fails here, listing the choices
        values["data"] = _flags(name=parsed.name, path=parsed.path)
    return {k: v for k, v in values.items() if v is not None and v != {}}


def _yaml_mapping(text: str, option: str) -> dict[str, Any]:
    import yaml

    from torchship.errors import ConfigError

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = None
    if not isinstance(value, dict):
        raise ConfigError(
            f"{option} {text!r} is not a mapping", fix="write it like '{channels: [8, 16], hidden: 32}'"
        )
    return value


def _print_result(child, as_json: bool) -> None:
    lineage = child.manifest.lineage
    report = lineage.params.get("report", {})
    if as_json:
        print(
            json.dumps(
                {
                    "artifact": str(child.path),
                    "op": lineage.op,
                    "parent": lineage.parent,
                    "metrics": child.manifest.metrics,
                    "params": lineage.params,
                },
                indent=2,
            )
        )
        return
    if report:
        out.print(comparison_table(report, title=f"{lineage.op}: {child.manifest.name}"))
    sparsity = report.get("sparsity")
    if sparsity and any(sparsity.values()):
        table = Table(title="sparsity per layer (share of zero weights)")
        table.add_column("layer")
        table.add_column("sparsity", justify="right")
        for layer, share in sparsity.items():
            table.add_row(layer, f"{share:.1%}")
        out.print(table)
    if "max_abs_diff" in lineage.params:
        pairs = len(lineage.params.get("pairs", []))
        out.print(
            f"folded {pairs} batch norms; max |Δ| of logits vs parent: {lineage.params['max_abs_diff']:.2e}"
        )
    if lineage.op == "quantize":
        _print_quantized(lineage.params)
    out.print(f"artifact: {child.path}")


def _print_quantized(params: dict[str, Any]) -> None:
    calibration = (
        f", {params['calibration']} calibration on {params['calibration_size']} inputs"
        if params.get("calibration_size")
        else ""
    )
    if "agreement" in params:  # judged against fp32 on generated inputs: the model had no labelled data
        agree = params["agreement"]
        top1 = f", top-1 agreement {agree['top1_agreement']:.2%}" if "top1_agreement" in agree else ""
        out.print(
            f"int8 {params['mode']} ({params['backend']}); max |Δ| vs fp32 {agree['max_abs_diff']:.3g}"
            f"{top1} on {agree['samples']} generated inputs; "
            f"ONNX {agree['fp32_bytes']:,} -> {agree['int8_bytes']:,} bytes"
        )
    else:
        out.print(
            f"int8 {params['mode']} ({params['backend']}{calibration}); "
            f"accuracy drop {params['accuracy_drop'] * 100:+.2f} pt"
        )
    for node, reason in params.get("float_nodes", {}).items():
        out.print(f"  kept float: {node} ({reason})")


def comparison_table(report: dict[str, Any], title: str) -> Table:
    """Params, MACs, weight size and validation accuracy, one column per model in the report."""
    columns = {name: stats for name, stats in report.items() if isinstance(stats, dict) and "params" in stats}
    table = Table(title=title)
    table.add_column("")
    for name in columns:
        table.add_column(name, justify="right")
    if len(columns) == 2:
        table.add_column("change", justify="right")
    rows = [
        ("parameters", "params", lambda v: f"{v:,}"),
        ("non-zero parameters", "nonzero_params", lambda v: f"{v:,}"),
        ("FLOPs (2 x MACs)", "macs", lambda v: _si(2 * v)),
        ("weights size", "weights_bytes", _bytes),
        ("val accuracy", "val_accuracy", lambda v: f"{v:.2%}"),
    ]
    values = list(columns.values())
    for label, key, fmt in rows:
        if key == "nonzero_params" and all(s["nonzero_params"] == s["params"] for s in values):
            continue
        cells = [fmt(s[key]) for s in values]
        if len(values) == 2:
            a, b = values[0][key], values[1][key]
            cells.append(
                f"{(b - a) * 100:+.2f} pt" if key == "val_accuracy" else (f"{b / a:.2f}x" if a else "")
            )
        table.add_row(label, *cells)
    return table


def _si(value: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.2f} {unit}"
    return f"{value:.0f}"


def _bytes(value: int) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value} B"


@app.command(
    epilog="Example: torchship optimize runs/digits-cnn/artifact --max-accuracy-drop 0.01 "
    "--objective latency --batch-size 32 --time-budget 10 -o runs/digits-cnn-opt"
)
def optimize(
    artifact: Annotated[Path, typer.Argument(help="Artifact directory to optimize (read only).")],
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Run directory: the pick in OUT/artifact, candidates and optimize.json beside it.",
        ),
    ],
    max_accuracy_drop: Annotated[
        float | None, typer.Option(help="Largest validation accuracy loss accepted (0.01 = 1 point).")
    ] = None,
    max_relative_diff: Annotated[
        float | None,
        typer.Option(
            help="Without labelled data, not a classifier: largest max |Δ| / max |fp32 output| "
            "accepted (default 0.05)."
        ),
    ] = None,
    objective: Annotated[
        str | None, typer.Option(help="latency (p50), throughput or size, at --batch-size.")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Batch size every candidate is measured at (default 1).")
    ] = None,
    time_budget: Annotated[
        float | None, typer.Option(help="Minutes; start no new candidate after this.")
    ] = None,
    recipe: Annotated[
        list[str] | None, typer.Option(help="Only this recipe (repeatable), e.g. int8-static-entropy.")
    ] = None,
    student: Annotated[str | None, typer.Option(help="Also distill into this zoo model.")] = None,
    student_kwargs: Annotated[str | None, typer.Option(help="Student kwargs as YAML/JSON.")] = None,
    finetune_epochs: Annotated[
        int | None, typer.Option(help="Fine-tuning epochs after pruning (default 2).")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="Intra-op threads for every runtime.")] = None,
    data: Data = None,
    config: Config = None,
    set_: Set = None,
    as_json: Json = False,
    allow_import: AllowImport = None,
) -> None:
    """Try compression recipes on ARTIFACT, measure each here, and pick the best within the budget."""
    from torchship.artifact import Artifact
    from torchship.compress.optimize import OptimizeConfig
    from torchship.compress.optimize import optimize as run_optimize
    from torchship.config import load_config

    kwargs = _yaml_mapping(student_kwargs, "--student-kwargs") if student_kwargs is not None else None
    flags = _flags(
        max_accuracy_drop=max_accuracy_drop,
        max_relative_diff=max_relative_diff,
        objective=objective,
        batch_size=batch_size,
        time_budget_min=time_budget,
        recipes=recipe or None,
        student=student,
        student_kwargs=kwargs,
        finetune_epochs=finetune_epochs,
        threads=threads,
        data=data,
    )
    cfg = load_config(OptimizeConfig, config, set_ or [], flags)
    parent = Artifact.load(artifact)

    def progress(message: str) -> None:
        if message.startswith("start "):
            err.print(message.replace("start ", "making candidate ", 1))

    result = run_optimize(parent, cfg, out=out_dir, allow_import=allow_import or [], progress=progress)
    document = result.document
    if as_json:
        print(json.dumps(document, indent=2))
    else:
        out.print(optimize_table(document))
        if document.get("judged_by") == "agreement":
            out.print(f"judged by {document['judgement']}", soft_wrap=True)
        out.print(f"table: {result.out / 'optimize.json'} and {result.out / 'optimize.md'}", soft_wrap=True)
    if result.picked is None:
        from torchship.compress import CompressError

        raise CompressError(
            document["verdict"],
            fix=f"see {result.out / 'optimize.md'}; raise --max-accuracy-drop"
            + (" or --max-relative-diff" if document.get("judged_by") == "agreement" else "")
            + ", "
            "try other recipes, or measure at a larger --batch-size",
        )
    if not as_json:
        out.print(document["verdict"], soft_wrap=True)
        out.print(f"artifact: {result.picked.path}", soft_wrap=True)


def optimize_table(document: dict[str, Any]) -> Table:
    """Every candidate against the fastest fp32 runtime: accuracy, latency, size, speed-up, verdict."""
    from torchship.compress.optimize import quality_cells

    base = document["baseline"]
    agreed = document.get("judged_by") == "agreement"
    table = Table(
        title=f"optimize {document['name']}: {document['settings']['objective']} at batch "
        f"{document['settings']['batch_size']}, vs fp32 {base['runtime']}"
    )
    # fold, never cut: in an 80-column log rich would squeeze the last column away and cut names to "…"
    quality = ("top-1 agr", "max |Δ| (rel)") if agreed else ("acc", "drop pt")
    for col in ("candidate", "runtime", *quality, "p50 ms", "size", "speed-up", "verdict"):
        table.add_column(
            col, justify="left" if col in ("candidate", "runtime", "verdict") else "right", overflow="fold"
        )
    for c in document["candidates"]:
        if c["status"] != "ok":
            table.add_row(c["name"], "", "", "", "", "", "", f"[dim]{c['status']}: {c['reason']}"[:120])
            continue
        first = c.get("baseline")
        notes = (
            ["baseline"]
            if first
            else [
                "faster" if c["faster"] else "[red]not faster[/red]",
                "in budget" if c["within_budget"] else "[red]over budget[/red]",
            ]
        )
        notes += ["Pareto"] if c["pareto"] else []
        notes += ["[bold]PICKED[/bold]"] if c["picked"] else []
        speedup = "1.00x" if first else f"{c['speedup']:.2f}x"
        table.add_row(
            c["name"],
            c["runtime"],
            *quality_cells(c),
            f"{c['latency_p50_ms']:.3f}",
            _bytes(c["size_bytes"]),
            speedup,
            ", ".join(notes),
        )
    return table
