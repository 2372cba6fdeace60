"""Federated training on digits against central training on the same data, same run.

10 simulated clients share digits' training split (IID, or Dirichlet label skew with
alpha 0.5); FedAvg and FedProx (mu 0.1) each run ROUNDS rounds of one local epoch, so every sample is
seen once per round, as in one epoch of the central run, which trains ROUNDS epochs. All runs
use the same model, initialisation seed, optimizer, batch size and held-out validation split.
Reported: the global model's val accuracy after the last round (and the best round), against
the central run's last and best epoch.

    python benchmarks/federate.py [--rounds 30] [--clients 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from torchship.federate import FederatedRun, simulate
from torchship.train import TrainConfig, train

BASE = {
    "model": {"name": "mlp", "kwargs": {"hidden": [128]}},
    "data": {"name": "digits", "val_fraction": 0.2},
    "optim": {"name": "adam", "lr": 3e-3},
    "schedule": {"name": "constant"},
    "train": {"batch_size": 32, "threads": 1, "progress": False},
}
CASES = [("iid", "fedavg"), ("iid", "fedprox"), ("dirichlet:0.5", "fedavg"), ("dirichlet:0.5", "fedprox")]


def central(rounds: int, out: Path) -> dict:
    cfg = TrainConfig.model_validate({**BASE, "out": str(out), "train": {**BASE["train"], "epochs": rounds}})
    start = time.perf_counter()
    art = train(cfg, console=Console(quiet=True))
    accs = [r["val.accuracy"] for r in art.manifest.curves]
    loss = art.manifest.curves[-1]["val.loss"]
    return {"last": accs[-1], "best": max(accs), "val_loss": loss, "time_s": time.perf_counter() - start}


def federated(partition: str, strategy: str, rounds: int, clients: int, out: Path) -> dict:
    run = FederatedRun.from_dict(
        {
            **BASE,
            "federate": {
                "clients": clients,
                "rounds": rounds,
                "partition": partition,
                "strategy": strategy,
                "proximal_mu": 0.1,
                "seed": 0,
            },
        }
    )
    start = time.perf_counter()
    simulate(run, out, console=Console(quiet=True))
    rows = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    skew = json.loads((out / "partitions.json").read_text())["skew"]
    accs = [r["val.accuracy"] for r in rows]
    return {
        "last": accs[-1],
        "best": max(accs),
        "val_loss": rows[-1]["val.loss"],
        "skew": skew,
        "time_s": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import logging

    logging.getLogger("flwr").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        base = central(args.rounds, Path(tmp) / "central")
        results = []
        for partition, strategy in CASES:
            r = federated(
                partition, strategy, args.rounds, args.clients, Path(tmp) / f"{partition}-{strategy}"
            )
            results.append(
                {
                    "partition": partition,
                    "strategy": strategy,
                    **r,
                    "gap_points": 100 * (base["last"] - r["last"]),
                }
            )

    table = Table(
        title=f"digits, mlp, {args.clients} clients, {args.rounds} rounds x 1 local epoch "
        f"vs {args.rounds} central epochs"
    )
    for col in (
        "run",
        "label skew",
        "val acc (last)",
        "val acc (best)",
        "val loss (last)",
        "gap (points)",
        "time (s)",
    ):
        table.add_column(col, justify="left" if col == "run" else "right")
    table.add_row(
        "central",
        "–",
        f"{base['last']:.4f}",
        f"{base['best']:.4f}",
        f"{base['val_loss']:.4f}",
        "–",
        f"{base['time_s']:.1f}",
    )
    for r in results:
        table.add_row(
            f"{r['strategy']} {r['partition']}",
            f"{r['skew']:.3f}",
            f"{r['last']:.4f}",
            f"{r['best']:.4f}",
            f"{r['val_loss']:.4f}",
            f"{r['gap_points']:+.1f}",
            f"{r['time_s']:.1f}",
        )
    Console().print(table)
    doc = {
        "kind": "torchship.benchmark.federate",
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "flwr": __import__("flwr").__version__,
        },
        "rounds": args.rounds,
        "clients": args.clients,
        "central": base,
        "federated": results,
    }
    print(json.dumps(doc))
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
