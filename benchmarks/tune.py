"""What tuning buys on digits, and what the pruner saves, in one run on one machine.

1. The shipped default config (configs/digits-cnn.yaml) against the best config a TPE search
   over configs/digits-tune.yaml finds, both trained for the same epochs per run on the same
   split; the search picks on the validation split, the comparison is on a held-out test split
   neither saw.
2. The same search (same seed, same trial count) with the median pruner and without it: the
   epochs each spends, and the epochs spent until its best validation accuracy first reaches
   the no-pruner search's best (the pruner's goal: at least 40 % fewer epochs).

    python benchmarks/tune.py [--trials 12] [--epochs 6] [--pruner median] [--json out.json]
    python benchmarks/tune.py --default configs/digits32-resnet.yaml \\
        --search configs/digits32-resnet-tune.yaml --trials 8 --epochs 4

Prints a table for people and one JSON document (the figures in docs/benchmarks.md).
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

from torchship.config import load_config
from torchship.train import TrainConfig, train
from torchship.tune import load_tune, run_search

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "configs" / "digits-cnn.yaml"
SEARCH = ROOT / "configs" / "digits-tune.yaml"
HELD_OUT = ["data.test_fraction=0.2"]  # both sides: same split, a test set the search never sees


def search(out: Path, trials: int, epochs: int, pruner: str, seed: int, config: Path = SEARCH) -> dict:
    overrides = [*HELD_OUT, f"train.epochs={epochs}", f"tune.pruner={pruner}", f"tune.seed={seed}"]
    started = time.perf_counter()
    result = run_search(load_tune(config, overrides), out, trials=trials)
    elapsed_s = time.perf_counter() - started
    spent, best, curve = 0, None, []
    for row in result.rows:  # in trial order: epochs spent so far and the best accuracy so far
        spent += row["epochs"] or 0
        value = row["values"].get("val.accuracy")
        if row["state"] == "COMPLETE" and value is not None:
            best = value if best is None else max(best, value)
        curve.append((spent, best))
    from torchship.artifact import Artifact

    artifact = Artifact.load(result.artifact)
    return {
        "pruner": pruner,
        "trials": len(result.rows),
        "pruned": sum(r["state"] == "PRUNED" for r in result.rows),
        "failed": sum(r["state"] == "FAIL" for r in result.rows),
        "epochs_spent": spent,
        "best_val_accuracy": best,
        "best_test_accuracy": artifact.manifest.metrics.get("test", {}).get("accuracy"),
        "best_params": next(r["params"] for r in result.rows if r["number"] == result.best_trial),
        "curve": curve,
        "wall_s": elapsed_s,
    }


def epochs_to_reach(curve: list[tuple[int, float | None]], target: float) -> int | None:
    return next((spent for spent, best in curve if best is not None and best >= target), None)


def default_run(out: Path, epochs: int, config: Path = DEFAULT) -> dict:
    cfg = load_config(
        TrainConfig, config, [*HELD_OUT, f"train.epochs={epochs}", f"out={out}", "train.progress=false"]
    )
    artifact = train(cfg, console=Console(quiet=True))
    return {
        "val_accuracy": artifact.manifest.metrics["val"]["accuracy"],
        "test_accuracy": artifact.manifest.metrics["test"]["accuracy"],
        "epochs": epochs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--pruner", default="median", choices=["median", "hyperband", "halving"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--default", type=Path, default=DEFAULT, help="the shipped config to beat")
    parser.add_argument("--search", type=Path, default=SEARCH, help="the config with the tune: space")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tune-bench-") as tmp:
        root = Path(tmp)
        default = default_run(root / "default", args.epochs, args.default)
        plain = search(root / "plain", args.trials, args.epochs, "none", args.seed, args.search)
        pruned = search(root / "pruned", args.trials, args.epochs, args.pruner, args.seed, args.search)
    target = plain["best_val_accuracy"]
    reach_plain = epochs_to_reach(plain["curve"], target)
    reach_pruned = epochs_to_reach(pruned["curve"], target)
    doc = {
        "kind": "torchship.bench.tune",
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "settings": vars(args) | {k: str(getattr(args, k)) for k in ("json", "default", "search")},
        "default": default,
        "search": plain,
        "search_pruned": pruned,
        "epochs_to_reach_no_pruner_best": {"no_pruner": reach_plain, "pruner": reach_pruned},
        "epochs_saved_total": 1 - pruned["epochs_spent"] / plain["epochs_spent"],
        "epochs_saved_to_reach": (1 - reach_pruned / reach_plain) if reach_pruned and reach_plain else None,
    }
    table = Table(
        title=f"tune {args.search.name} vs {args.default.name}: "
        f"{args.trials} trials x {args.epochs} epochs, seed {args.seed}"
    )
    columns = (
        "run",
        "val acc",
        "test acc",
        "epochs spent",
        f"epochs to val acc {target:.4f}",
        "pruned",
        "wall s",
    )
    for name in columns:
        table.add_column(name, justify="left" if name == "run" else "right")
    table.add_row(
        "default config",
        f"{default['val_accuracy']:.4f}",
        f"{default['test_accuracy']:.4f}",
        str(args.epochs),
        "",
        "",
        "",
    )
    for label, run, reach in (
        ("search, no pruner", plain, reach_plain),
        (f"search, {args.pruner} pruner", pruned, reach_pruned),
    ):
        test = run["best_test_accuracy"]
        table.add_row(
            label,
            f"{run['best_val_accuracy']:.4f}",
            f"{test:.4f}" if test is not None else "–",
            str(run["epochs_spent"]),
            str(reach) if reach else "not reached",
            str(run["pruned"]),
            f"{run['wall_s']:.0f}",
        )
    Console().print(table)
    text = json.dumps(doc)
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
