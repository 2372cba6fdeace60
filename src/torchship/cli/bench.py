"""``torchship bench``: latency, throughput, load time, memory, size and accuracy, side by side."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from torchship.cli._common import AllowImport, KeyFile, err, out, use_key_file
from torchship.cli.main import app

EXAMPLE = (
    "Example: torchship bench runs/digits-cnn/artifact runs/digits-cnn/pruned --runtime all "
    "--batch-sizes 1,8,32 --threads 2 --data digits --json bench.json"
)


def parse_batch_sizes(value: str) -> list[int]:
    """``"1,8,32"`` -> ``[1, 8, 32]``.

    Raises:
        BenchError: A part is not a positive integer.
    """
    from torchship.bench import BenchError

    sizes = []
    for part in (p.strip() for p in value.split(",")):
        if not part.isdigit() or int(part) < 1:
            raise BenchError(
                f"--batch-sizes {value!r}: {part!r} is not a positive integer", fix="use e.g. 1,8,32"
            )
        sizes.append(int(part))
    return sizes


Artifacts = Annotated[list[Path], typer.Argument(help="Artifact directories; the first is the baseline.")]
Runtime = Annotated[str, typer.Option("--runtime", "-r", help="Runtimes, comma list, or 'all'.")]
BatchSizes = Annotated[str, typer.Option("--batch-sizes", "-b", help="Comma list of batch sizes.")]
Threads = Annotated[int | None, typer.Option(help="Intra-op threads for every runtime.")]
Data = Annotated[str | None, typer.Option(help="Accuracy on the val split of NAME[:PATH].")]
JsonOut = Annotated[Path | None, typer.Option("--json", help="Write results, machine, versions.")]
CsvOut = Annotated[Path | None, typer.Option("--csv", help="Write one CSV row per result here.")]
Isolate = Annotated[bool, typer.Option(help="Each artifact/runtime in a fresh process.")]
Warmup = Annotated[int, typer.Option(help="Discarded calls before timing each batch size.")]
MinIterations = Annotated[int, typer.Option(help="Timed calls at least per batch size.")]
MinTime = Annotated[float, typer.Option(help="Timed seconds at least per batch size.")]
MaxTime = Annotated[float, typer.Option(help="Stop timing a batch size after this many seconds.")]


@app.command(epilog=EXAMPLE)
def bench(
    artifacts: Artifacts,
    runtime: Runtime = "eager",
    batch_sizes: BatchSizes = "1,8,32",
    threads: Threads = None,
    data: Data = None,
    json_out: JsonOut = None,
    csv_out: CsvOut = None,
    isolate: Isolate = False,
    warmup: Warmup = 5,
    min_iterations: MinIterations = 100,
    min_time_s: MinTime = 1.0,
    max_time_s: MaxTime = 10.0,
    allow_import: AllowImport = None,
    key_file: KeyFile = None,
    dim: Annotated[
        list[str] | None,
        typer.Option(
            "--dim", help="NAME=N: size of a named dynamic dim in the generated inputs (e.g. seq=128)."
        ),
    ] = None,
) -> None:
    """Time ARTIFACTS in each runtime at each batch size: latency percentiles, samples/s, load, memory, size.

    Each batch size gets WARMUP discarded calls, then is timed until both MIN_ITERATIONS calls
    and MIN_TIME_S seconds are reached (or MAX_TIME_S runs out). samples/s is batch / p50; the
    fastest row per batch size is highlighted and × base compares with the first artifact/runtime.
    Runtimes that cannot load an artifact (an ONNX runtime before export, say) are skipped rows.
    """
    from torchship import bench as lib

    use_key_file(key_file)
    timing = lib.TimingConfig(warmup, min_iterations, min_time_s, max_time_s)
    sizes = parse_batch_sizes(batch_sizes)
    names = lib.resolve_runtimes(runtime)
    source = lib.val_data_loader(data) if data is not None else None
    err.print(f"bench: {len(artifacts)} artifact(s) × {', '.join(names)} × batch {batch_sizes}")
    dims = parse_dims(dim or [])
    results = lib.bench(
        artifacts,
        names,
        sizes,
        threads=threads,
        data=source,
        timing=timing,
        isolate=isolate,
        allow_import=allow_import or [],
        dims=dims or None,
        progress=lambda message: err.print(f"  {message}", highlight=False),
    )
    table = lib.results_table(results, title="torchship bench (samples/s = batch / p50)")
    print_unsqueezed(table)
    for note in lib.skipped_notes(results):
        out.print(note, style="yellow", highlight=False)
    command = shlex.join(
        [
            "torchship",
            "bench",
            *map(str, artifacts),
            "--runtime",
            runtime,
            "--batch-sizes",
            batch_sizes,
            *(["--threads", str(threads)] if threads else []),
            *(["--data", data] if data else []),
            *(["--isolate"] if isolate else []),
            "--warmup",
            str(warmup),
            "--min-iterations",
            str(min_iterations),
            "--min-time-s",
            str(min_time_s),
            "--max-time-s",
            str(max_time_s),
            *[arg for d in dim or [] for arg in ("--dim", d)],
        ]
    )
    if json_out is not None:
        out.print(f"wrote {lib.write_json(json_out, results, timing=timing, command=command)}")
    if csv_out is not None:
        out.print(f"wrote {lib.write_csv(csv_out, results)}")


def parse_dims(items: list[str]) -> dict[str, int]:
    """``["seq=128"]`` -> ``{"seq": 128}``, or a one-line error."""
    from torchship.bench.latency import BenchError

    dims = {}
    for item in items:
        name, _, size = item.partition("=")
        if not name or not size.isdigit() or int(size) < 1:
            raise BenchError(f"--dim {item!r} is not NAME=N", fix="e.g. --dim seq=128")
        dims[name] = int(size)
    return dims


def print_unsqueezed(table) -> None:
    """Print at full width when piped (files and logs do not wrap); a terminal keeps its own width."""
    from rich.console import Console
    from rich.measure import Measurement

    needed = Measurement.get(out, out.options.update_width(1000), table).maximum
    if out.is_terminal or needed <= out.width:
        out.print(table)
    else:
        Console(file=out.file, width=needed, color_system=None).print(table)
