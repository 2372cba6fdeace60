"""``torchship federate``: federated training on Flower, simulated here or across SuperNodes."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from torchship.cli._common import err, metrics_table, out
from torchship.cli.main import app

EXAMPLE = (
    "Example: torchship federate configs/digits-mlp-federated.yaml --clients 4 --rounds 3 "
    "--partition dirichlet:0.5 --strategy fedprox -o runs/fed"
)


@app.command(epilog=EXAMPLE)
def federate(
    config: Annotated[
        Path, typer.Argument(help="Training YAML; an optional `federate:` section sets the defaults below.")
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Run directory: OUT/artifact, OUT/rounds/, OUT/rounds.jsonl.")
    ],
    clients: Annotated[
        int | None, typer.Option(help="Number of clients K (SuperNodes in a deployment).")
    ] = None,
    rounds: Annotated[int | None, typer.Option(help="Federated rounds R.")] = None,
    fraction: Annotated[float | None, typer.Option(help="Share of clients sampled each round.")] = None,
    partition: Annotated[str | None, typer.Option(help="iid, dirichlet:ALPHA or by-file.")] = None,
    strategy: Annotated[str | None, typer.Option(help="fedavg, fedprox or fedadam.")] = None,
    local_epochs: Annotated[int | None, typer.Option(help="Epochs each client trains per round.")] = None,
    dp_clip: Annotated[
        float | None, typer.Option(help="Differential privacy: clip each client update to this L2 norm.")
    ] = None,
    dp_noise: Annotated[
        float | None, typer.Option(help="Differential privacy: Gaussian noise multiplier (with --dp-clip).")
    ] = None,
    client_data: Annotated[
        list[Path] | None,
        typer.Option(help="Simulation with --partition by-file: one client per data file (repeatable)."),
    ] = None,
    superlink: Annotated[
        str | None,
        typer.Option(
            help="Deploy: submit the run to the Flower SuperLink at HOST:PORT instead of simulating."
        ),
    ] = None,
    baseline: Annotated[
        bool,
        typer.Option(
            "--baseline", help="Also train centrally on the same data and epoch budget (OUT/centralized)."
        ),
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue after the last round's artifact in OUT.")
    ] = False,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a config key: --set optim.lr=1e-3.")
    ] = None,
    flower_logs: Annotated[bool, typer.Option("--flower-logs", help="Show Flower's own INFO log.")] = False,
) -> None:
    """Train across K clients that keep their data; Flower aggregates, every round is an artifact.

    Without --superlink the clients are simulated in this process, each with its share of the
    config's dataset. With --superlink the run goes to Flower SuperNodes, each reading its own
    file (`flower-supernode --node-config "data-path='FILE'"`); see docs/federate.md.
    """
    _require_flower()
    from torchship.federate import FederatedRun

    logging.getLogger("flwr").setLevel(logging.INFO if flower_logs else logging.ERROR)
    flags = {
        "clients": clients,
        "rounds": rounds,
        "fraction": fraction,
        "partition": partition,
        "strategy": strategy,
        "local_epochs": local_epochs,
    }
    run = _load(config, set_ or [], {k: v for k, v in flags.items() if v is not None}, dp_clip, dp_noise)
    if client_data:
        run = FederatedRun.from_dict(
            {
                **json.loads(run.to_json()),
                "federate": {
                    **run.federate.model_dump(),
                    "partition": "by-file",
                    "clients": len(client_data),
                },
            }
        )
    if superlink:
        from torchship.federate.deploy import submit

        submit(out_dir, run, superlink, resume=resume, flower_logs=flower_logs)
        artifact = None
    else:
        from torchship.federate import simulate

        nodes = [{"data-path": str(p), "name": p.stem} for p in client_data] if client_data else None
        artifact = simulate(run, out_dir, resume=resume, console=err, node_configs=nodes)
    summary = json.loads((out_dir / "summary.json").read_text())
    out.print(
        metrics_table(
            summary["metrics"], title=f"federated ({summary['strategy']}, {summary['rounds']} rounds)"
        )
    )
    if summary.get("dropped"):
        out.print(f"dropped: {summary['dropped']}")
    if summary.get("privacy"):
        out.print(_privacy_line(summary["privacy"]))
    out.print(f"artifact: {artifact.path if artifact else summary['artifact']}")
    if baseline:
        _centralized(run, out_dir)


def _privacy_line(p: dict[str, Any]) -> str:
    spent = (
        f"ε = {p['epsilon']:.2f} at δ = {p['delta']:g}"
        if p.get("epsilon") is not None
        else f"ε not computed ({p.get('epsilon_not_computed')})"
    )
    params = f"clip {p['clip_norm']:g}, noise multiplier {p['noise_multiplier']:g}"
    return f"privacy: {spent}; {params}, {p['mechanism']}"


def _require_flower() -> None:
    import importlib.util

    from torchship.errors import TorchshipError

    if importlib.util.find_spec("flwr") is None:
        raise TorchshipError(
            "federated training needs Flower (flwr), which is not installed",
            fix="pip install 'torchship[federate]'",
        )


def _load(
    config: Path, overrides: list[str], flags: dict[str, Any], dp_clip: float | None, dp_noise: float | None
) -> Any:
    from torchship.config import apply_overrides, read_yaml, validate_config
    from torchship.federate import FederateConfig, FederatedRun
    from torchship.train import TrainConfig

    data = apply_overrides(read_yaml(config), overrides)
    section = {**(data.pop("federate", None) or {}), **flags}
    if dp_clip is not None or dp_noise is not None:
        section["privacy"] = {
            **section.get("privacy", {}),
            **({"clip_norm": dp_clip} if dp_clip is not None else {}),
            **({"noise_multiplier": dp_noise} if dp_noise is not None else {}),
        }
    train_cfg = validate_config(TrainConfig, data, f"config {config}")
    fed = validate_config(FederateConfig, section, f"config {config} (federate)")
    return FederatedRun(train=train_cfg, federate=fed)


def _centralized(run: Any, out_dir: Path) -> None:
    """The same model, config and data trained on one machine for rounds x local epochs."""
    from rich.console import Console

    from torchship.train import TrainConfig, train

    data = run.train.resolved()
    data["out"] = str(out_dir / "centralized")
    data["train"].update(
        epochs=run.federate.rounds * run.federate.local_epochs, early_stop=None, progress=False
    )
    artifact = train(TrainConfig.model_validate(data), console=Console(stderr=True, quiet=True))
    if artifact is not None:
        out.print(metrics_table({"val": artifact.manifest.metrics["val"]}, title="centralized"))
