"""Every registered runtime against eager, and what ``torchship bench``'s timing costs, in one run.

Two models with seeded (untrained: speed does not depend on the weights) parameters, both
on 3x32x32 inputs: the zoo ``cnn`` and the ResNet-18-size CIFAR ``resnet18``. Each is
exported to every format a registered runtime needs, then ``torchship.bench.bench`` measures
every runtime but ``auto`` at batch 1, 8 and 32 with the same threads; samples/s is
batch / p50 and the ratio is against eager at the same batch size, measured in the same run.

The overhead check times one ONNX Runtime session (built here, outside torchship's runtime)
two ways in alternating rounds: ``measure_latency`` around ``session.run``, and a bare
``for`` loop timing the whole round. It reports the median over rounds of (a) bench's
reported mean latency over the bare loop's, and (b) bench's wall time per call (its clock
reads and bookkeeping included) over the bare loop's.

    python benchmarks/runtimes.py [--threads 2] [--runtimes all] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from torchship.bench import TimingConfig, bench, measure_latency, results_table, to_document
from torchship.bench.run import example_batch, resolve_runtimes
from torchship.testing import tiny_artifact

MODELS = {"cnn": "cnn", "resnet18": "resnet18"}
SHAPE = (3, 32, 32)
BATCH_SIZES = (1, 8, 32)
# the export format each file-backed runtime runs from
FORMAT_OF = {"onnxruntime": "onnx", "torchscript": "torchscript", "exported": "exported", "aoti": "aoti"}


def make_artifacts(root: Path, runtimes: list[str], console: Console) -> tuple[list, dict[str, Any]]:
    """Seeded artifacts with the exports the chosen runtimes need; export seconds per format."""
    formats = [FORMAT_OF[r] for r in runtimes if r in FORMAT_OF]
    artifacts, notes = [], {}
    for name, zoo_name in MODELS.items():
        art = tiny_artifact(zoo_name, shape=SHAPE, path=root / name)
        art = art.with_manifest(name=name).save(root / name)
        for fmt in formats:
            start = time.perf_counter()
            try:
                from torchship.export import export

                art = export(art, [fmt])
                notes[f"{name}/{fmt}"] = {"export_s": round(time.perf_counter() - start, 1)}
            except Exception as exc:  # noqa: BLE001 - the runtime's rows then say why they were skipped
                notes[f"{name}/{fmt}"] = {"error": str(exc).splitlines()[0][:200]}
            console.print(f"export {name} {fmt}: {notes[f'{name}/{fmt}']}", highlight=False)
        artifacts.append(art)
    return artifacts, notes


def ort_session(art, threads: int):
    """An InferenceSession of the artifact's model.onnx, or of a fresh dynamo export when it has none."""
    import onnxruntime as ort

    if "onnx" in art.manifest.exports:
        path = art.path / art.manifest.exports["onnx"].get("file", "model.onnx")
    else:
        path = art.path / "bare.onnx"
        model = art.build_model()
        torch.onnx.export(
            model,
            (torch.zeros(2, *SHAPE),),
            str(path),
            dynamo=True,
            dynamic_shapes=({0: torch.export.Dim("batch")},),
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session, session.get_inputs()[0].name


def timing_overhead(art, threads: int, batch_size: int, rounds: int, round_s: float) -> dict[str, Any]:
    """bench's measure_latency around session.run against a bare loop, alternating rounds."""
    session, input_name = ort_session(art, threads)
    batch = example_batch(art, batch_size)

    def run(x: np.ndarray) -> None:
        session.run(None, {input_name: x})

    for _ in range(20):
        run(batch)
    # calls per bare round: as many as fit in round_s at the warm latency
    probe = measure_latency(run, batch, warmup=0, min_iterations=20, min_time_s=0.1, max_time_s=1.0)
    calls = max(20, int(round_s * 1e3 / probe.p50_ms))
    reported, wall = [], []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            run(batch)
        bare_ms = (time.perf_counter_ns() - t0) / 1e6 / calls
        t0 = time.perf_counter_ns()
        stats = measure_latency(run, batch, warmup=0, min_iterations=calls, min_time_s=0.0, max_time_s=60.0)
        bench_wall_ms = (time.perf_counter_ns() - t0) / 1e6 / stats.iterations
        reported.append(stats.mean_ms / bare_ms)
        wall.append(bench_wall_ms / bare_ms)
    return {
        "model": art.manifest.name,
        "batch_size": batch_size,
        "threads": threads,
        "rounds": rounds,
        "calls_per_round": calls,
        "latency_p50_ms": probe.p50_ms,
        "reported_over_bare_median": statistics.median(reported),
        "wall_over_bare_median": statistics.median(wall),
        "reported_over_bare": reported,
        "wall_over_bare": wall,
    }


def ratio_table(results) -> Table:
    """model x batch rows, one column per runtime: samples/s (× eager)."""
    runtimes = list(dict.fromkeys(r.runtime for r in results))
    table = Table(title="samples/s (× eager, same batch size, same run)")
    table.add_column("model")
    table.add_column("batch", justify="right")
    for name in runtimes:
        table.add_column(name, justify="right")
    for model in dict.fromkeys(r.artifact for r in results):
        for size in BATCH_SIZES:
            rows = {r.runtime: r for r in results if r.artifact == model and r.batch_size == size}
            eager = rows.get("eager")
            cells = []
            for name in runtimes:
                row = rows.get(name)
                if row is None or not row.ok:
                    cells.append("skipped")
                    continue
                ratio = row.throughput_sps / eager.throughput_sps if eager and eager.ok else None
                cells.append(f"{row.throughput_sps:,.0f}" + (f" ({ratio:.2f}×)" if ratio else ""))
            table.add_row(model, str(size), *cells)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runtimes", default="all")
    parser.add_argument("--min-time-s", type=float, default=1.0)
    parser.add_argument("--max-time-s", type=float, default=6.0)
    parser.add_argument("--overhead-rounds", type=int, default=21)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    console = Console(width=200)
    torch.manual_seed(0)
    runtimes = resolve_runtimes(args.runtimes)
    console.print(f"runtimes: {', '.join(runtimes)}; threads {args.threads}")
    timing = TimingConfig(
        warmup=5, min_iterations=100, min_time_s=args.min_time_s, max_time_s=args.max_time_s
    )
    with tempfile.TemporaryDirectory(prefix="torchship-runtimes-") as tmp:
        artifacts, exports = make_artifacts(Path(tmp), runtimes, console)
        results = bench(
            artifacts,
            runtimes,
            BATCH_SIZES,
            threads=args.threads,
            timing=timing,
            progress=lambda m: console.print(f"  {m}", highlight=False),
        )
        overhead = [
            timing_overhead(artifacts[0], args.threads, size, args.overhead_rounds, 0.25) for size in (1, 32)
        ]
    console.print(results_table(results, title="torchship bench, every runtime"))
    console.print(ratio_table(results))
    for item in overhead:
        console.print(
            f"timing overhead, ORT {item['model']} batch {item['batch_size']} "
            f"(p50 {item['latency_p50_ms']:.3f} ms): "
            f"reported/bare {item['reported_over_bare_median']:.4f}, "
            f"wall/bare {item['wall_over_bare_median']:.4f} "
            f"(median of {item['rounds']} alternating rounds)",
            highlight=False,
        )
    document = to_document(
        results,
        timing=timing,
        command="python benchmarks/runtimes.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "json" and v is not None
        ),
    )
    document.update(
        {"kind": "torchship.benchmarks.runtimes", "exports": exports, "timing_overhead": overhead}
    )
    text = json.dumps(document, indent=2)
    if args.json is not None:
        args.json.write_text(text + "\n")
        console.print(f"wrote {args.json}")
    print(
        json.dumps(
            {"timing_overhead": [{k: v for k, v in o.items() if not isinstance(v, list)} for o in overhead]}
        )
    )


if __name__ == "__main__":
    main()
