"""Measure artifacts across runtimes: latency percentiles, throughput, load time, memory, size, accuracy.

The library behind ``torchship bench``; ``optimize`` and the server's self-check time
through the same :func:`measure_latency`.

Example:
    >>> from torchship.bench import TimingConfig, bench
    >>> from torchship.testing import tiny_artifact
    >>> rows = bench([tiny_artifact("cnn")], "eager", [8], timing=TimingConfig(1, 5, 0.0, 1.0))
    >>> rows[0].throughput_sps > 0, rows[0].latency_p50_ms <= rows[0].latency_p99_ms
    (True, True)
"""

from torchship.bench.accuracy import BenchData, measure_accuracy, val_data_loader
from torchship.bench.latency import BenchError, LatencyStats, TimingConfig, measure_latency, summarize
from torchship.bench.report import results_table, skipped_notes, to_document, write_csv, write_json
from torchship.bench.run import BenchResult, bench, example_batch, measure_runtime, resolve_runtimes

__all__ = [
    "BenchData",
    "BenchError",
    "BenchResult",
    "LatencyStats",
    "TimingConfig",
    "bench",
    "example_batch",
    "measure_accuracy",
    "measure_latency",
    "measure_runtime",
    "resolve_runtimes",
    "results_table",
    "skipped_notes",
    "summarize",
    "to_document",
    "val_data_loader",
    "write_csv",
    "write_json",
]
