"""The main job on the embedded dataset: train the cnn on digits, export it, prune it, measure both.

Everything goes under one directory (``./torchship-quickstart`` by default): the training
run with its artifact (exports verified and written inside it), ``bench.json``, an example
inference request ``request.json`` for the server, and ``summary.md`` saying what was done and
what to run next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from torchship.artifact import Artifact

# Quickstart's measurement: short but with warm-up and enough calls for stable percentiles.
QUICK_TIMING = {"warmup": 5, "min_iterations": 50, "min_time_s": 0.3, "max_time_s": 3.0}
QUICK_RUNTIMES = ("eager", "torchscript", "onnxruntime")
QUICK_BATCHES = (1, 32)
QUICK_PRUNE = 0.25  # of the channels; fine-tuned back to within about a point of the parent

QUICKSTART_CONFIG: dict[str, Any] = {
    "name": "digits-cnn",
    "model": {"name": "cnn", "kwargs": {"channels": [32, 64], "hidden": 128}, "dropout": 0.1},
    "data": {"name": "digits", "val_fraction": 0.2, "seed": 0},
    "optim": {"name": "adamw", "lr": 3e-3, "weight_decay": 0.01},
    "schedule": {"name": "cosine", "warmup_epochs": 1},
    "train": {"epochs": 15, "batch_size": 64, "label_smoothing": 0.05},
}


@dataclass
class QuickstartResult:
    out: Path
    artifact: Artifact
    steps: list[str] = field(default_factory=list)
    bench: list[Any] = field(default_factory=list)
    pruned: Artifact | None = None
    serve_command: str = ""
    curl_command: str = ""


def run_quickstart(out: Path, epochs: int | None = None, console: Console | None = None) -> QuickstartResult:
    """Train -> export -> prune -> bench -> serve request -> report -> summary.md, all under ``out``."""
    from torchship.config import validate_config
    from torchship.train import TrainConfig, train

    console = console or Console(stderr=True)
    config = {**QUICKSTART_CONFIG, "out": str(out / "train")}
    if epochs is not None:
        config["train"] = {**config["train"], "epochs": epochs}
    cfg = validate_config(TrainConfig, config, "quickstart config")
    console.rule("1. train: cnn on digits (scikit-learn's bundled 8x8 digits)")
    artifact = train(cfg, console=console)
    assert artifact is not None  # single process: rank 0 always returns the artifact
    result = QuickstartResult(out, artifact, [f"trained {artifact.manifest.name} -> {artifact.path}"])

    console.rule("2. export: ONNX and TorchScript, each verified against eager PyTorch")
    result.artifact = artifact = export_step(artifact, result)
    console.rule(f"3. compress: prune {QUICK_PRUNE:.0%} of the channels, fine-tune, export")
    result.pruned = compress_step(artifact, result, console)
    console.rule("4. bench: both models in eager, TorchScript and ONNX Runtime on this machine")
    bench_step([artifact, result.pruned], result, console)
    serve_step(artifact, result)
    console.rule("5. report: one HTML page over everything above")
    from torchship.report import quickstart_report

    result.steps.append(quickstart_report(out))  # writes <out>/report.html
    write_summary(result)
    return result


def export_step(artifact: Artifact, result: QuickstartResult) -> Artifact:
    from torchship.export import export

    exported = export(artifact, ["onnx", "torchscript"])
    for fmt in ("onnx", "torchscript"):
        rec = exported.manifest.exports[fmt]
        result.steps.append(
            f"exported {fmt}: max |Δ| {rec['max_abs_diff']:.2e} vs eager, "
            f"top-1 agreement {rec['top1_agreement']:.4f}"
        )
    return exported


def compress_step(artifact: Artifact, result: QuickstartResult, console: Console) -> Artifact:
    """Structured pruning with Torch-Pruning: the tensors really shrink, then a short fine-tune."""
    from torchship.compress import PruneConfig, prune
    from torchship.compress.base import Finetune
    from torchship.export import export

    cfg = PruneConfig(ratio=QUICK_PRUNE, finetune=Finetune(epochs=5, lr=1e-3))
    child = export(prune(artifact, cfg, out=result.out / "pruned", console=console), ["onnx", "torchscript"])
    before, after = artifact.manifest.metrics["val"]["accuracy"], child.manifest.metrics["val"]["accuracy"]
    size = child.path / "weights.safetensors", artifact.path / "weights.safetensors"
    result.steps.append(
        f"pruned {QUICK_PRUNE:.0%} of the channels -> {child.path}: val accuracy {before:.4f} -> "
        f"{after:.4f}, weights {size[0].stat().st_size / size[1].stat().st_size:.0%} of the parent's"
    )
    return child


def bench_step(artifacts: list[Artifact], result: QuickstartResult, console: Console) -> None:
    from torchship import bench as lib

    timing = lib.TimingConfig(**QUICK_TIMING)
    result.bench = lib.bench(
        artifacts,
        list(QUICK_RUNTIMES),
        list(QUICK_BATCHES),
        timing=timing,
        progress=lambda message: console.print(f"  {message}", highlight=False),
    )
    path = lib.write_json(
        result.out / "bench.json", result.bench, timing=timing, command="torchship quickstart"
    )
    best = max(
        (r for r in result.bench if r.status == "ok" and r.batch_size == max(QUICK_BATCHES)),
        key=lambda r: r.throughput_sps,
        default=None,
    )
    if best is not None:
        which = (
            "pruned" if best.artifact_path == str(artifacts[-1].path) and len(artifacts) > 1 else "trained"
        )
        result.steps.append(
            f"measured {', '.join(QUICK_RUNTIMES)} at batch {', '.join(map(str, QUICK_BATCHES))}: "
            f"fastest at batch {best.batch_size} is the {which} model in {best.runtime} "
            f"({best.throughput_sps:,.0f} samples/s, {best.ratio:.2f}x the trained model "
            f"in eager) -> {path}"
        )


def serve_step(artifact: Artifact, result: QuickstartResult) -> None:
    """Write one real validation sample as a v2 inference request and the commands that use it."""
    import json

    from torchship.export.parity import parity_inputs

    x = parity_inputs(artifact, None, max_samples=1).x[:1]
    request = {
        "id": "quickstart",
        "inputs": [
            {
                "name": "input",
                "shape": list(x.shape),
                "datatype": "FP32",
                "data": [round(float(v), 6) for v in x.reshape(-1)],
            }
        ],
        "outputs": [{"name": "probabilities", "parameters": {"classification": 3}}],
    }
    path = result.out / "request.json"
    path.write_text(json.dumps(request) + "\n")
    m = artifact.manifest
    result.serve_command = f"torchship serve {artifact.path} --port 8000"
    result.curl_command = (
        f"curl -s localhost:8000/v2/models/{m.name}/infer -H 'Content-Type: application/json' -d @{path}"
    )


def write_summary(result: QuickstartResult) -> Path:
    m = result.artifact.manifest
    val = m.metrics.get("val", {})
    lines = [
        "# torchship quickstart",
        "",
        f"Model: `{m.architecture.describe()}` on `{m.data.get('name', '?')}`, "
        f"artifact `{result.artifact.path}`.",
        "",
        f"Validation: accuracy {val.get('accuracy', float('nan')):.4f}, "
        f"macro-F1 {val.get('f1_macro', float('nan')):.4f}, "
        f"AUROC {val.get('auroc', float('nan')):.4f}.",
        "",
        "## Steps",
        *[f"- {step}" for step in result.steps],
        "",
        "## Serve it",
        "",
        f"    {result.serve_command}",
        f"    {result.curl_command}",
        "",
        "## Next",
        f"- `torchship inspect {result.artifact.path}`",
        f"- `torchship evaluate {result.artifact.path}`",
        f"- `torchship bench {result.artifact.path} --runtime all --batch-sizes 1,8,32`",
        f"- `torchship optimize {result.artifact.path} --max-accuracy-drop 0.01 "
        f"-o {result.out / 'optimize'}`",
        "",
    ]
    path = result.out / "summary.md"
    path.write_text("\n".join(lines))
    return path
