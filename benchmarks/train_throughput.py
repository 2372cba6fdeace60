"""torchship's training loop against a bare hand-written PyTorch loop, same run, same everything.

Same model (same init seed), same in-memory data tensors, same batch size, optimizer and
threads. Each side runs EPOCHS epochs; the first is warm-up and discarded; we report the
median samples/s of the training phase of the rest (torchship's validation pass after each
epoch is reported separately as wall-clock, since the bare loop does not validate). The two
loops alternate ROUNDS times to spread machine noise over both.

    python benchmarks/train_throughput.py [--rounds 3] [--epochs 4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812
from rich.console import Console
from rich.table import Table

from torchship.config import validate_config
from torchship.data import load_data
from torchship.models import build_model
from torchship.train import TrainConfig, train

CASES = {
    "cnn (digits 1x8x8)": {
        "model": {"name": "cnn", "kwargs": {"channels": [32, 64], "hidden": 128}},
        "data": {"name": "digits"},
        "batch_size": 64,
    },
    "resnet8 (digits 3x32x32)": {
        "model": {"name": "resnet", "kwargs": {"depth": 8, "width": 16}},
        "data": {"name": "digits", "resize": 32, "channels": 3},
        "batch_size": 128,
    },
}


def torchship_epochs(case: dict, epochs: int, out: Path) -> tuple[list[float], float]:
    cfg = validate_config(
        TrainConfig,
        {
            "out": str(out),
            "model": case["model"],
            "data": case["data"],
            "optim": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
            "schedule": {"name": "constant"},
            "train": {"epochs": epochs, "batch_size": case["batch_size"], "progress": False},
        },
    )
    start = time.perf_counter()
    art = train(cfg, console=Console(quiet=True))
    wall_s = time.perf_counter() - start
    rates = [r["samples_per_s"] for r in art.manifest.curves]
    return rates, wall_s


def bare_epochs(case: dict, epochs: int) -> list[float]:
    """The loop a user would write by hand: randperm batches from in-memory tensors."""
    from torchship.data import DataConfig

    data = load_data(DataConfig.model_validate(case["data"]))
    torch.manual_seed(0)
    shape = data.input["shape"]
    kwargs = {
        "in_channels": shape[0],
        "num_classes": data.num_classes,
        "input_size": shape[1:],
        **case["model"]["kwargs"],
    }
    model = build_model({"name": case["model"]["name"], "kwargs": kwargs})
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = data.train.x, data.train.y
    bs = case["batch_size"]
    rates = []
    model.train()
    for epoch in range(epochs):
        gen = torch.Generator().manual_seed(epoch)
        perm = torch.randperm(len(x), generator=gen)
        t0 = time.perf_counter()
        for i in range(0, len(x), bs):
            idx = perm[i : i + bs]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        rates.append(len(x) / (time.perf_counter() - t0))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for name, case in CASES.items():
        ours, bare, walls = [], [], []
        for _ in range(args.rounds):
            bare += bare_epochs(case, args.epochs)[1:]
            with tempfile.TemporaryDirectory() as tmp:
                rates, wall_s = torchship_epochs(case, args.epochs, Path(tmp))
            ours += rates[1:]
            walls.append(wall_s)
        results.append(
            {
                "case": name,
                "batch_size": case["batch_size"],
                "bare_samples_per_s": statistics.median(bare),
                "torchship_samples_per_s": statistics.median(ours),
                "ratio": statistics.median(ours) / statistics.median(bare),
                "bare_spread": [min(bare), max(bare)],
                "torchship_spread": [min(ours), max(ours)],
                "torchship_wall_s_per_run_incl_validation": statistics.median(walls),
            }
        )
    table = Table(title=f"training throughput, {args.threads} threads, median of {args.rounds} rounds")
    for col in ("case", "batch", "bare loop samples/s", "torchship samples/s", "ratio"):
        table.add_column(col, justify="right" if col != "case" else "left")
    for r in results:
        table.add_row(
            r["case"],
            str(r["batch_size"]),
            f"{r['bare_samples_per_s']:,.0f}",
            f"{r['torchship_samples_per_s']:,.0f}",
            f"{r['ratio']:.3f}",
        )
    Console().print(table)
    doc = {
        "benchmark": "train_throughput",
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads},
        "torch": torch.__version__,
        "rounds": args.rounds,
        "epochs": args.epochs,
        "results": results,
    }
    print(json.dumps(doc))
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
