"""Bench results for people (a rich table) and for reports (one JSON document, or CSV rows)."""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import platform
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from torchship.bench.latency import TimingConfig
from torchship.bench.run import BenchResult
from torchship.output import make_dirs, write_atomic

SCHEMA = 1


def machine_info() -> dict[str, Any]:
    """What the figures were measured on: CPU model and flags that matter, cores, OS, GPU if any."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": platform.processor() or None,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
    }
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith("model name") and not info.get("cpu_model"):
            info["cpu_model"] = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            info["avx512"] = "avx512f" in flags
            info["amx"] = "amx_tile" in flags
            break
    try:
        import torch

        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001 - informational only
        info["gpu"] = None
    return info


def versions() -> dict[str, str]:
    """torch, torchship, numpy and whichever runtime libraries are importable."""
    import importlib

    import torch

    import torchship

    found = {"torchship": torchship.__version__, "torch": torch.__version__}
    found["python"] = platform.python_version()
    for name in ("numpy", "onnxruntime", "onnx"):
        try:
            found[name] = importlib.import_module(name).__version__
        except Exception:  # noqa: BLE001 - absent optional runtime
            continue
    return found


def to_document(
    results: list[BenchResult], *, timing: TimingConfig | None = None, command: str | None = None
) -> dict[str, Any]:
    """The JSON document ``--json`` writes: settings, machine, versions and every row."""
    return {
        "schema": SCHEMA,
        "kind": "torchship.bench",
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "command": command,
        "timing": asdict(timing) if timing is not None else None,
        "machine": machine_info(),
        "versions": versions(),
        "results": [r.to_json() for r in results],
    }


def write_json(path: str | os.PathLike[str], results: list[BenchResult], **kwargs: Any) -> Path:
    make_dirs(Path(path).parent)
    return write_atomic(path, json.dumps(to_document(results, **kwargs), indent=2) + "\n")


def write_csv(path: str | os.PathLike[str], results: list[BenchResult]) -> Path:
    """One row per result, every BenchResult field as a column (empty for None)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    names = [f.name for f in fields(BenchResult)]
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=names)
        writer.writeheader()
        for row in results:
            writer.writerow({k: ("" if v is None else v) for k, v in row.to_json().items()})
    return out


def results_table(results: list[BenchResult], title: str = "bench") -> Table:
    """Rows grouped by batch size; the fastest row of each group in bold green; skipped rows dimmed.

    ``× base`` is throughput over the first measured artifact/runtime of the same batch size,
    and ``iqr/p50`` is the interquartile range over the median: the spread of the timed calls.
    """
    table = Table(title=title)
    table.add_column("artifact")
    table.add_column("runtime")
    for name in (
        "batch",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "iqr/p50",
        "samples/s",
        "× base",
        "load s",
        "peak RSS MiB",
        "size MiB",
        "accuracy",
        "runs",
    ):
        table.add_column(name, justify="right")
    sizes = list(dict.fromkeys(r.batch_size for r in results))
    for i, size in enumerate(sizes):
        if i:
            table.add_section()
        group = [r for r in results if r.batch_size == size]
        measured = [r for r in group if r.ok and r.throughput_sps]
        fastest = max(measured, key=lambda r: r.throughput_sps or 0.0) if measured else None
        for row in group:
            style = "bold green" if row is fastest and len(measured) > 1 else None
            table.add_row(*_cells(row), style=style if row.ok else "dim")
    return table


def skipped_notes(results: list[BenchResult]) -> list[str]:
    """One line per (artifact, runtime, reason) that was skipped or left a note."""
    notes = {}
    for row in results:
        if row.reason:
            verb = "skipped" if not row.ok else "note"
            notes.setdefault((row.label, row.reason), f"{row.label} {verb}: {row.reason}")
    return list(notes.values())


def _cells(row: BenchResult) -> list[str | Text]:
    head = [row.artifact, row.runtime, str(row.batch_size)]
    if not row.ok:
        return [*head, "skipped", *[""] * 10]
    iqr = f"{100 * row.latency_iqr_ms / row.latency_p50_ms:.1f}%" if row.latency_p50_ms else ""
    return [
        *head,
        _ms(row.latency_p50_ms),
        _ms(row.latency_p90_ms),
        _ms(row.latency_p99_ms),
        iqr,
        f"{row.throughput_sps:,.0f}" if row.throughput_sps is not None else "",
        f"{row.ratio:.2f}×" if row.ratio is not None else "",
        f"{row.load_time_s:.2f}" if row.load_time_s is not None else "",
        _mib(row.peak_rss_bytes),
        _mib(row.file_size_bytes),
        f"{row.accuracy:.4f}" if row.accuracy is not None else "–",
        str(row.iterations or ""),
    ]


def _ms(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _mib(value: int | None) -> str:
    return f"{value / 2**20:.1f}" if value is not None else ""
