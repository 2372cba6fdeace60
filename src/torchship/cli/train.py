"""``torchship train`` and ``torchship validate``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from torchship.cli._common import AllowImport, err, metrics_table, out
from torchship.cli.main import app
from torchship.config import load_config

DataOpt = Annotated[
    str | None, typer.Option("--data", help="Dataset NAME[:PATH], e.g. digits, mnist:~/data/mnist.")
]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="Override a config key: --set optim.lr=1e-3 (repeatable).")
]


def _flags(
    data: str | None,
    model: str | None,
    epochs: int | None,
    batch_size: int | None,
    lr: float | None,
    optimizer: str | None,
    out_dir: Path | None,
    seed: int | None,
    device: str | None,
    name: str | None,
    quiet: bool,
) -> dict[str, Any]:
    """CLI shortcuts as a nested config dict (they override the YAML; --set overrides them)."""
    flags: dict[str, Any] = {}

    def put(path: str, value: Any) -> None:
        if value is None:
            return
        node = flags
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value

    if data is not None:
        from torchship.data import parse_data_arg

        parsed = parse_data_arg(data)
        put("data.name", parsed.name)
        put("data.path", parsed.path)
    put("model.name", model)
    put("train.epochs", epochs)
    put("train.batch_size", batch_size)
    put("optim.lr", lr)
    put("optim.name", optimizer)
    put("out", str(out_dir) if out_dir else None)
    put("train.seed", seed)
    put("train.device", device)
    put("name", name)
    if quiet:
        put("train.progress", False)
    return flags


@app.command(epilog="Example: torchship train --data digits --model cnn --epochs 5 --out runs/x")
def train(
    config: Annotated[Path | None, typer.Argument(help="YAML config (see configs/); optional.")] = None,
    data: DataOpt = None,
    model: Annotated[
        str | None, typer.Option(help="Zoo model: mlp, cnn, lenet, resnet, resnet8/18/20.")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (train.epochs).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size (train.batch_size).")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (optim.lr).")] = None,
    optimizer: Annotated[str | None, typer.Option(help="sgd, adam, adamw, adagrad, rmsprop.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory (out).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (train.seed).")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda (train.device).")] = None,
    name: Annotated[str | None, typer.Option(help="Artifact name.")] = None,
    set_: SetOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the run directory's last checkpoint.")
    ] = False,
    allow_import: AllowImport = None,
    nproc_per_node: Annotated[
        int | None, typer.Option(help="Train with N local DDP processes (via torchrun).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or per-epoch lines.")] = False,
) -> None:
    """Train a model and write its artifact to OUT/artifact (checkpoints, logs, summary.json beside it)."""
    from torchship.train import TrainConfig
    from torchship.train import train as run_training

    flags = _flags(data, model, epochs, batch_size, lr, optimizer, out_dir, seed, device, name, quiet)
    cfg = load_config(TrainConfig, config, set_ or [], flags)
    check_references(cfg, str(config) if config else "from flags")
    if nproc_per_node and nproc_per_node > 1 and "WORLD_SIZE" not in os.environ:
        from torchship.train.distributed import launch

        argv = sys.argv[1:]
        cleaned = []
        skip = False
        for arg in argv:
            if skip:
                skip = False
                continue
            if arg == "--nproc-per-node":
                skip = True
                continue
            if arg.startswith("--nproc-per-node="):
                continue
            cleaned.append(arg)
        launch(nproc_per_node, cleaned)
        return
    rank = int(os.environ.get("RANK", "0"))
    if rank == 0 and cfg.train.progress and not resume:  # a resumed run names only what differs, if anything
        err.print("[bold]config[/bold]\n" + yaml.safe_dump(cfg.resolved(), sort_keys=False).rstrip())
    artifact = run_training(cfg, resume=resume, allow_import=allow_import or [], console=err)
    if artifact is None:
        return
    out.print(metrics_table(artifact.manifest.metrics, title=f"{artifact.manifest.name}"))
    out.print(f"artifact: {artifact.path}")


@app.command(epilog="Example: torchship validate configs/digits-cnn.yaml --set optim.lr=1e-3")
def validate(
    config: Annotated[Path, typer.Argument(help="YAML config to check.")],
    set_: SetOpt = None,
) -> None:
    """Check a training config without training: every problem is reported at once.

    A config with a `tune:` block also has its search space checked: unknown keys, empty ranges
    and every value the space can sample that the config would reject. A `federate:` block is
    checked as `torchship federate` reads it.
    """
    from torchship.config import read_yaml
    from torchship.train import TrainConfig

    if "tune" in read_yaml(config):
        from torchship.tune import load_tune

        spec = load_tune(config, set_ or [])
        out.print(yaml.safe_dump(spec.train.resolved(), sort_keys=False).rstrip())
        searched = ", ".join(f"{p.key} ({p.kind})" for p in spec.params)
        out.print(f"[green]config {config} is valid; tune searches {searched} for {spec.tune.trials} trials")
        return
    if "federate" in read_yaml(config):
        from torchship.cli.federate import _load as load_federated

        run = load_federated(config, set_ or [], {}, None, None)
        check_references(run.train, str(config))
        out.print(
            yaml.safe_dump(
                {**run.train.resolved(), "federate": run.federate.model_dump(mode="json")}, sort_keys=False
            ).rstrip()
        )
        out.print(f"[green]config {config} is valid (federated: {run.federate.clients} clients)")
        return
    cfg = load_config(TrainConfig, config, set_ or [])
    check_references(cfg, str(config))
    out.print(yaml.safe_dump(cfg.resolved(), sort_keys=False).rstrip())
    out.print(f"[green]config {config} is valid")


def check_references(cfg, where: str) -> None:
    """Problems pydantic cannot see: names that must exist in a registry, paths that must exist."""
    from torchship.config import raise_problems
    from torchship.train.config import reference_problems

    raise_problems(f"config {where}", reference_problems(cfg))
