"""Compression on this CPU: structured pruning and distillation against the fp32 ONNX Runtime baseline.

For each case (the digits ``cnn`` at 1x8x8, a CIFAR-shaped ``resnet8`` on digits upscaled to
3x32x32) the script trains the fp32 baseline, then in the same run:

- prunes 50 % of the channels with Torch-Pruning (2 steps, fine-tuning between and after);
- distills the baseline into a student with <= 1/4 of its parameters, and trains the same
  student without a teacher on the same budget (``compare``);
- exports baseline, pruned and students to ONNX and times them with ONNX Runtime (fp32,
  ``--threads`` intra-op threads) at batch 1 and 32: warm-up, then the median of repeated
  runs, every model timed alternately in the same rounds so machine noise hits all alike.

Speed-ups are throughput ratios against the baseline's ONNX Runtime figure at the same batch.
The quantization rows of this benchmark belong to the int8 work (issue 4, quantize).

    python benchmarks/compression.py [--cases cnn,resnet] [--quick] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from torchship import compress
from torchship.artifact import Artifact
from torchship.config import validate_config
from torchship.train import TrainConfig, train

CASES: dict[str, dict[str, Any]] = {
    "cnn": {
        "title": "cnn (digits 1x8x8)",
        "train": {
            "model": {"name": "cnn", "kwargs": {"channels": [32, 64], "hidden": 128}, "dropout": 0.1},
            "data": {"name": "digits"},
            "optim": {"name": "adamw", "lr": 3e-3, "weight_decay": 0.01},
            "schedule": {"name": "cosine", "warmup_epochs": 1},
            "train": {"epochs": 15, "batch_size": 64, "label_smoothing": 0.05},
        },
        "student": {"student": "cnn", "student_kwargs": {"channels": [16, 32], "hidden": 32}},
        "lr": 1e-3,
    },
    "resnet": {
        "title": "resnet8 (digits 3x32x32)",
        "train": {
            "model": {"name": "resnet", "kwargs": {"depth": 8, "width": 16}, "init": "kaiming"},
            "data": {"name": "digits", "resize": 32, "channels": 3, "augment": {"crop_padding": 2}},
            "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
            "schedule": {"name": "onecycle"},
            "train": {"epochs": 10, "batch_size": 128, "grad_clip": 5.0},
        },
        "student": {"student": "resnet", "student_kwargs": {"depth": 8, "width": 8}},
        "lr": 5e-3,
    },
}
BATCH_SIZES = (1, 32)


def train_baseline(case: dict[str, Any], out: Path, epochs: int | None) -> Artifact:
    raw = {**case["train"], "out": str(out), "name": f"{case['title'].split()[0]}-baseline"}
    if epochs is not None:
        raw["train"] = {**raw["train"], "epochs": epochs}
    return train(validate_config(TrainConfig, raw), console=Console(quiet=True))


def compress_case(case: dict[str, Any], baseline: Artifact, root: Path, epochs: int) -> dict[str, Artifact]:
    finetune = {"epochs": epochs, "lr": case["lr"], "batch_size": case["train"]["train"]["batch_size"]}
    pruned = compress.prune(baseline, compress.PruneConfig(ratio=0.5, steps=2, step_epochs=max(1, epochs // 3),
                                                           finetune=finetune), out=root / "pruned")
    distilled = compress.distill(baseline, compress.DistillConfig(
        **case["student"], compare=True, temperature=4.0, alpha=0.7,
        train={**finetune, "epochs": case["train"]["train"]["epochs"], "lr": case["train"]["optim"]["lr"],
               "optimizer": case["train"]["optim"]["name"], "work_dir": str(root / "distill-runs")},
    ), out=root / "distilled")
    alone = Artifact.load(root / "distill-runs" / "without-teacher" / "artifact")
    return {"baseline": baseline, "pruned 50%": pruned, "student, distilled": distilled, "student, no teacher": alone}


def onnx_session(art: Artifact, path: Path, threads: int):
    import onnxruntime as ort

    model = art.build_model()
    example = torch.zeros(2, *art.manifest.input.shape)
    torch.onnx.export(model, (example,), str(path), dynamo=True, dynamic_shapes={"x": {0: "batch"}})
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def time_sessions(sessions: dict[str, Any], shape: list[int], rounds: int, min_time_s: float) -> dict[str, dict]:
    """Median seconds per batch for every session, rounds interleaved across sessions."""
    samples: dict[str, dict[int, list[float]]] = {name: {b: [] for b in BATCH_SIZES} for name in sessions}
    inputs = {b: np.random.default_rng(0).standard_normal((b, *shape)).astype(np.float32) for b in BATCH_SIZES}
    for _ in range(rounds):
        for name, session in sessions.items():
            feed_name = session.get_inputs()[0].name
            for b in BATCH_SIZES:
                feed = {feed_name: inputs[b]}
                for _ in range(5):
                    session.run(None, feed)  # warm-up
                calls, start = 0, time.perf_counter()
                while (elapsed := time.perf_counter() - start) < min_time_s or calls < 10:
                    session.run(None, feed)
                    calls += 1
                samples[name][b].append(elapsed / calls)
    return {
        name: {b: {"latency_ms": 1e3 * statistics.median(v), "throughput_sps": b / statistics.median(v)}
               for b, v in per_batch.items()}
        for name, per_batch in samples.items()
    }


def run_case(key: str, root: Path, args: argparse.Namespace, console: Console) -> list[dict[str, Any]]:
    case = CASES[key]
    console.print(f"[bold]{case['title']}[/bold]: training the baseline")
    baseline = train_baseline(case, root / "baseline", 2 if args.quick else None)
    console.print("pruning and distilling")
    arts = compress_case(case, baseline, root, 1 if args.quick else args.finetune_epochs)
    sessions = {name: onnx_session(art, root / f"{i}.onnx", args.threads) for i, (name, art) in enumerate(arts.items())}
    timings = time_sessions(sessions, baseline.manifest.input.shape, args.rounds, args.min_time_s)
    base_acc = _accuracy(baseline)
    rows = []
    for name, art in arts.items():
        stats = _stats(art, name)
        row = {"case": case["title"], "model": name, "params": stats["params"], "macs": stats["macs"],
               "val_accuracy": _accuracy(art), "accuracy_drop_pt": 100 * (base_acc - _accuracy(art))}
        for b in BATCH_SIZES:
            t = timings[name][b]
            row[f"b{b}_latency_ms"] = t["latency_ms"]
            row[f"b{b}_throughput_sps"] = t["throughput_sps"]
            row[f"b{b}_speedup"] = t["throughput_sps"] / timings["baseline"][b]["throughput_sps"]
        rows.append(row)
    return rows


def _accuracy(art: Artifact) -> float:
    return float(art.manifest.metrics["val"]["accuracy"])


def _stats(art: Artifact, name: str) -> dict[str, int]:
    from torchship.compress.measure import count_macs

    model = art.build_model()
    return {"params": sum(p.numel() for p in model.parameters()), "macs": count_macs(model, art.manifest.input.shape)}


def print_rows(rows: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="compression vs the fp32 baseline (ONNX Runtime fp32, same run)")
    for col in ("case", "model", "params", "MFLOPs", "val acc", "drop (pt)", "b1 ms", "b1 speed-up",
                "b32 samples/s", "b32 speed-up"):
        table.add_column(col, justify="left" if col in ("case", "model") else "right")
    for r in rows:
        table.add_row(r["case"], r["model"], f"{r['params']:,}", f"{2 * r['macs'] / 1e6:.2f}",
                      f"{r['val_accuracy']:.2%}", f"{r['accuracy_drop_pt']:+.2f}", f"{r['b1_latency_ms']:.3f}",
                      f"{r['b1_speedup']:.2f}x", f"{r['b32_throughput_sps']:,.0f}", f"{r['b32_speedup']:.2f}x")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="cnn,resnet", help="comma-separated: cnn, resnet")
    parser.add_argument("--quick", action="store_true", help="2 training epochs, 1 fine-tuning epoch (smoke test)")
    parser.add_argument("--finetune-epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-time-s", type=float, default=0.3)
    parser.add_argument("--out-dir", type=Path, default=None, help="keep the artifacts here (default: temporary)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out_dir or Path(tmp)
        rows: list[dict[str, Any]] = []
        for key in args.cases.split(","):
            rows += run_case(key.strip(), root / key.strip(), args, console)
    print_rows(rows, Console())
    result = {"benchmark": "compression", "threads": args.threads, "torch": torch.__version__,
              "cpu": platform.processor() or platform.machine(), "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
