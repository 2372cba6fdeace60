"""Simulation: K clients in this process, each with its share of one dataset.

The ServerApp logic (``server.run_server``), Flower's strategy and Flower's ClientApp are
the ones a deployment runs; only the grid differs (``InProcessGrid`` instead of a SuperLink).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from torchship.artifact import Artifact
from torchship.data import load_data
from torchship.federate.client import client_app
from torchship.federate.config import FederatedRun
from torchship.federate.grid import InProcessGrid
from torchship.federate.partition import label_counts, parse_partition, partitioned, skew
from torchship.federate.server import run_server


def simulate(
    run: FederatedRun,
    out: str | Path,
    *,
    resume: bool = False,
    console: Console | None = None,
    node_configs: list[dict[str, Any]] | None = None,
    workers: int = 1,
) -> Artifact:
    """Run a federated simulation and write OUT/artifact, OUT/rounds/, OUT/rounds.jsonl.

    ``node_configs`` gives each client its node config instead of a partition of the
    config's dataset (e.g. ``{"data-path": "a.npz"}``, as a SuperNode's ``--node-config``).

    Example:
        >>> from torchship.federate import FederatedRun, simulate
        >>> run = FederatedRun.from_dict({"model": {"name": "mlp"}, "data": {"name": "digits"},
        ...                               "federate": {"clients": 3, "rounds": 2}})
        >>> art = simulate(run, "runs/fed-doc")  # doctest: +SKIP
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fed = run.federate
    spec = parse_partition(fed.partition)
    if node_configs is None:
        if spec.kind == "by-file":
            raise_by_file()
        data, parts = partitioned(run.train.data.model_dump_json(), fed.clients, fed.partition, fed.seed)
        node_configs = [{"partition-id": i, "num-partitions": fed.clients} for i in range(fed.clients)]
        counts = label_counts(data.train.y, parts, data.num_classes)
        (out / "partitions.json").write_text(
            json.dumps(
                {
                    "partition": fed.partition,
                    "seed": fed.seed,
                    "labels": data.labels,
                    "skew": skew(counts),
                    "clients": [
                        {"client": f"client-{i}", "size": int(sum(c)), "label_counts": c}
                        for i, c in enumerate(counts)
                    ],
                },
                indent=1,
            )
            + "\n"
        )
    else:
        data = load_data(run.train.data)
    names = {i + 1: str(cfg.get("name", f"client-{i}")) for i, cfg in enumerate(node_configs)}
    grid = InProcessGrid(client_app, node_configs, workers=workers)
    try:
        return run_server(grid, run, data, out, resume=resume, console=console, node_names=names)
    finally:
        grid.close()


def raise_by_file() -> None:
    from torchship.errors import ConfigError

    raise ConfigError(
        "partition by-file needs one data file per client",
        fix="pass --client-data FILE once per client, or deploy with flower-supernode "
        "--node-config \"data-path='FILE'\"",
    )
