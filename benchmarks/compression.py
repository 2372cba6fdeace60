"""Compression on this CPU: pruning, distillation and int8 against the best fp32 runtime.

For each case (the digits ``cnn`` at 1x8x8, a CIFAR-shaped ``resnet8`` on digits upscaled to
3x32x32) the script trains the fp32 baseline, then in the same run:

- prunes 50 % of the channels with Torch-Pruning (2 steps, fine-tuning between and after);
- distills the baseline into a student with <= 1/4 of its parameters, and trains the same
  student without a teacher on the same budget (``compare``);
- quantizes the baseline to int8 with ONNX Runtime (static QDQ, minmax calibration on 256
  training inputs; and dynamic), and the pruned model too (prune + int8, the compound case);
- with ``--pt2e``, also quantizes with torchao's pt2e flow and runs the program compiled by
  Inductor (``torch.compile``; tens of seconds of compiling per case);
- times everything at batch 1 and 32 with ``--threads`` intra-op threads: warm-up, then the
  median of repeated runs, every model timed alternately in the same rounds so machine
  noise hits all alike.

The baseline is timed in every fp32 runtime (eager, TorchScript, ONNX Runtime); speed-ups are
throughput ratios against the **fastest** of them at the same batch size (``best fp32``),
and also reported against fp32 ONNX Runtime. Float candidates run in ONNX Runtime, int8 ORT
candidates in ONNX Runtime (the int8 graph), pt2e in ``torch.compile``.

    python benchmarks/compression.py [--cases cnn,resnet] [--quick] [--pt2e] [--threads 2] [--json out.json]
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


def compress_case(
    case: dict[str, Any], baseline: Artifact, root: Path, epochs: int, pt2e: bool
) -> dict[str, Artifact]:
    finetune = {"epochs": epochs, "lr": case["lr"], "batch_size": case["train"]["train"]["batch_size"]}
    pruned = compress.prune(
        baseline,
        compress.PruneConfig(ratio=0.5, steps=2, step_epochs=max(1, epochs // 3), finetune=finetune),
        out=root / "pruned",
    )
    distilled = compress.distill(
        baseline,
        compress.DistillConfig(
            **case["student"],
            compare=True,
            temperature=4.0,
            alpha=0.7,
            train={
                **finetune,
                "epochs": case["train"]["train"]["epochs"],
                "lr": case["train"]["optim"]["lr"],
                "optimizer": case["train"]["optim"]["name"],
                "work_dir": str(root / "distill-runs"),
            },
        ),
        out=root / "distilled",
    )
    alone = Artifact.load(root / "distill-runs" / "without-teacher" / "artifact")
    arts = {
        "baseline": baseline,
        "pruned 50%": pruned,
        "student, distilled": distilled,
        "student, no teacher": alone,
    }
    static, dynamic = compress.QuantizeConfig(mode="static"), compress.QuantizeConfig(mode="dynamic")
    arts["int8 static"] = compress.quantize(baseline, static, out=root / "int8")
    arts["int8 dynamic"] = compress.quantize(baseline, dynamic, out=root / "int8-dyn")
    arts["pruned 50% + int8"] = compress.quantize(pruned, static, out=root / "p-int8")
    if pt2e:
        arts["int8 pt2e (compile)"] = compress.quantize(
            baseline, compress.QuantizeConfig(mode="pt2e"), out=root / "pt2e"
        )
    return arts


def predictors(name: str, art: Artifact, threads: int) -> dict[str, Any]:
    """``label -> predict(batch)``: the baseline in every fp32 runtime, each candidate in its own."""
    from torchship.export import export
    from torchship.runtime import load_predictor

    if name == "baseline":
        art = export(art, ["onnx", "torchscript"], out=art.path.parent / "baseline-exported")
        runtimes = {"fp32 eager": "eager", "fp32 torchscript": "torchscript", "baseline": "onnxruntime"}
        return {label: load_predictor(art, rt, threads=threads).predict for label, rt in runtimes.items()}
    if "pt2e" in name:
        from torchship.runtime.base import RuntimeOptions
        from torchship.runtime.exported import ExportedPredictor

        module = ExportedPredictor(
            art.path / "model.int8.pt2", RuntimeOptions(threads=threads), art.manifest.input.shape
        ).module
        # freezing lets Inductor constant-fold and prepack the int8 weights into oneDNN int8 kernels
        torch._inductor.config.freezing = True
        compiled = torch.compile(module)
        return {name: lambda x: _no_grad(compiled, x)}
    if "onnx-int8" not in art.manifest.exports:
        art = export(art, ["onnx"], out=art.path.parent / f"{art.path.name}-exported")
    return {name: load_predictor(art, "onnxruntime", threads=threads).predict}


@torch.no_grad()
def _no_grad(module: Any, x: np.ndarray) -> np.ndarray:
    return module(torch.from_numpy(x)).numpy()


def time_sessions(
    sessions: dict[str, Any], shape: list[int], rounds: int, min_time_s: float
) -> dict[str, dict]:
    """Median seconds per batch for every predictor, rounds interleaved across them."""
    samples: dict[str, dict[int, list[float]]] = {name: {b: [] for b in BATCH_SIZES} for name in sessions}
    inputs = {
        b: np.random.default_rng(0).standard_normal((b, *shape)).astype(np.float32) for b in BATCH_SIZES
    }
    for _ in range(rounds):
        for name, predict in sessions.items():
            for b in BATCH_SIZES:
                feed = inputs[b]
                for _ in range(5):
                    predict(feed)  # warm-up (and, for torch.compile, the compile)
                calls, start = 0, time.perf_counter()
                while (elapsed := time.perf_counter() - start) < min_time_s or calls < 10:
                    predict(feed)
                    calls += 1
                samples[name][b].append(elapsed / calls)
    return {
        name: {
            b: {"latency_ms": 1e3 * statistics.median(v), "throughput_sps": b / statistics.median(v)}
            for b, v in per_batch.items()
        }
        for name, per_batch in samples.items()
    }


def run_case(key: str, root: Path, args: argparse.Namespace, console: Console) -> list[dict[str, Any]]:
    case = CASES[key]
    console.print(f"[bold]{case['title']}[/bold]: training the baseline")
    baseline = train_baseline(case, root / "baseline", 2 if args.quick else None)
    console.print("pruning and distilling")
    arts = compress_case(case, baseline, root, 1 if args.quick else args.finetune_epochs, args.pt2e)
    console.print("timing")
    sessions = {
        label: fn for name, art in arts.items() for label, fn in predictors(name, art, args.threads).items()
    }
    for label in [label for label in sessions if "pt2e" in label]:
        try:  # compile both shapes now; Inductor's int8 lowering fails on some graphs
            for b in BATCH_SIZES:
                sessions[label](np.zeros((b, *baseline.manifest.input.shape), np.float32))
        except Exception as exc:  # noqa: BLE001 - report the row as missing, keep the benchmark
            console.print(
                f"[yellow]{label}: torch.compile failed ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:160]}); row left out"
            )
            del sessions[label]
    timings = time_sessions(sessions, baseline.manifest.input.shape, args.rounds, args.min_time_s)
    fp32 = ("baseline", "fp32 eager", "fp32 torchscript")
    best = {b: max(fp32, key=lambda n: timings[n][b]["throughput_sps"]) for b in BATCH_SIZES}
    base_acc = _accuracy(baseline)
    rows = []
    for name, art in [*arts.items(), ("fp32 eager", baseline), ("fp32 torchscript", baseline)]:
        if name not in timings:
            continue
        stats = _stats(art, name)
        row = {
            "case": case["title"],
            "model": name,
            "params": stats["params"],
            "macs": stats["macs"],
            "file_bytes": _file_bytes(art, name),
            "val_accuracy": _accuracy(art),
            "accuracy_drop_pt": 100 * (base_acc - _accuracy(art)),
        }
        for b in BATCH_SIZES:
            t = timings[name][b]
            row[f"b{b}_latency_ms"] = t["latency_ms"]
            row[f"b{b}_throughput_sps"] = t["throughput_sps"]
            row[f"b{b}_speedup"] = t["throughput_sps"] / timings[best[b]][b]["throughput_sps"]
            row[f"b{b}_speedup_vs_ort"] = t["throughput_sps"] / timings["baseline"][b]["throughput_sps"]
            row[f"b{b}_reference"] = "fp32 onnxruntime" if best[b] == "baseline" else best[b]
        rows.append(row)
    return rows


def _file_bytes(art: Artifact, name: str) -> int:
    """Bytes of the file the model runs from: the int8 graph/program, else the fp32 ONNX export."""
    for file in ("model.int8.onnx", "model.int8.pt2"):
        if file in art.manifest.files:
            return (art.path / file).stat().st_size
    exported = art.path.parent / (
        "baseline-exported" if name.startswith(("baseline", "fp32")) else f"{art.path.name}-exported"
    )
    return (exported / "model.onnx").stat().st_size


def _accuracy(art: Artifact) -> float:
    return float(art.manifest.metrics["val"]["accuracy"])


def _stats(art: Artifact, name: str) -> dict[str, int]:
    from torchship.compress.measure import count_macs

    model = art.build_model()
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "macs": count_macs(model, art.manifest.input.shape),
    }


def print_rows(rows: list[dict[str, Any]], console: Console) -> None:
    table = Table(
        title="compression vs the best fp32 runtime of the baseline, same run "
        "(in brackets: vs fp32 ONNX Runtime)"
    )
    for col in (
        "case",
        "model",
        "params",
        "MFLOPs",
        "file KiB",
        "val acc",
        "drop (pt)",
        "b1 ms",
        "b1 speed-up",
        "b32 samples/s",
        "b32 speed-up",
    ):
        table.add_column(col, justify="left" if col in ("case", "model") else "right")
    for r in rows:
        table.add_row(
            r["case"],
            r["model"],
            f"{r['params']:,}",
            f"{2 * r['macs'] / 1e6:.2f}",
            f"{r['file_bytes'] / 1024:.1f}",
            f"{r['val_accuracy']:.2%}",
            f"{r['accuracy_drop_pt']:+.2f}",
            f"{r['b1_latency_ms']:.3f}",
            f"{r['b1_speedup']:.2f}x [{r['b1_speedup_vs_ort']:.2f}x]",
            f"{r['b32_throughput_sps']:,.0f}",
            f"{r['b32_speedup']:.2f}x [{r['b32_speedup_vs_ort']:.2f}x]",
        )
    console.print(table)
    for case in dict.fromkeys(r["case"] for r in rows):
        first = next(r for r in rows if r["case"] == case)
        console.print(
            f"{case}: best fp32 runtime at batch 1 = {first['b1_reference']}, "
            f"at batch 32 = {first['b32_reference']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="cnn,resnet", help="comma-separated: cnn, resnet")
    parser.add_argument(
        "--quick", action="store_true", help="2 training epochs, 1 fine-tuning epoch (smoke test)"
    )
    parser.add_argument("--finetune-epochs", type=int, default=6)
    parser.add_argument(
        "--pt2e", action="store_true", help="also torchao pt2e int8, compiled by Inductor (slow to compile)"
    )
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-time-s", type=float, default=0.3)
    parser.add_argument(
        "--out-dir", type=Path, default=None, help="keep the artifacts here (default: temporary)"
    )
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
    result = {
        "benchmark": "compression",
        "threads": args.threads,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "rows": rows,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
