"""The main job on the embedded dataset: train the cnn on digits, then export and measure it.

Everything goes under one directory (``./torchship-quickstart`` by default): the training
run with its artifact, and ``summary.md`` saying what was done and what to run next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from torchship.artifact import Artifact

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


def run_quickstart(out: Path, epochs: int | None = None, console: Console | None = None) -> QuickstartResult:
    """Train -> (later stages as they exist) -> summary.md; returns the final artifact."""
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
    write_summary(result)
    return result


def write_summary(result: QuickstartResult) -> Path:
    m = result.artifact.manifest
    val = m.metrics.get("val", {})
    lines = [
        "# torchship quickstart",
        "",
        f"Model: `{m.architecture.describe()}` on `{m.data.get('name', '?')}`, artifact `{result.artifact.path}`.",
        "",
        f"Validation: accuracy {val.get('accuracy', float('nan')):.4f}, macro-F1 {val.get('f1_macro', float('nan')):.4f}, "
        f"AUROC {val.get('auroc', float('nan')):.4f}.",
        "",
        "## Steps",
        *[f"- {step}" for step in result.steps],
        "",
        "## Next",
        f"- `torchship inspect {result.artifact.path}`",
        f"- `torchship evaluate {result.artifact.path}`",
        "",
    ]
    path = result.out / "summary.md"
    path.write_text("\n".join(lines))
    return path
