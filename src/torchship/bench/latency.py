"""The one measuring function: time a callable on one batch until the percentiles are stable.

``bench``, ``optimize`` and the server's self-check all time through :func:`measure_latency`,
so a number means the same thing wherever it is printed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from torchship.errors import TorchshipError


class BenchError(TorchshipError):
    """A benchmark cannot run as asked (bad settings, an unsaved artifact, ...)."""


@dataclass(frozen=True)
class TimingConfig:
    """How long to measure one (predictor, batch size).

    Runs ``warmup`` discarded calls, then times calls until both ``min_iterations`` and
    ``min_time_s`` are reached, stopping early at ``max_time_s`` (slow models then report
    fewer iterations, which the result records).

    Attributes:
        warmup: Calls run and discarded first (JIT, allocator and cache warm-up).
        min_iterations: Timed calls at least; p99 needs about 100 to mean anything.
        min_time_s: Timed seconds at least, so fast models collect thousands of samples.
        max_time_s: Stop timing after this many seconds even if ``min_iterations`` is not reached.
    """

    warmup: int = 5
    min_iterations: int = 100
    min_time_s: float = 1.0
    max_time_s: float = 10.0

    def __post_init__(self) -> None:
        problems = []
        if self.warmup < 0:
            problems.append(f"warmup={self.warmup} (must be >= 0)")
        if self.min_iterations < 1:
            problems.append(f"min_iterations={self.min_iterations} (must be >= 1)")
        if self.min_time_s < 0:
            problems.append(f"min_time_s={self.min_time_s} (must be >= 0)")
        if self.max_time_s <= 0 or self.max_time_s < self.min_time_s:
            problems.append(f"max_time_s={self.max_time_s} (must be > 0 and >= min_time_s)")
        if problems:
            raise BenchError(f"invalid timing settings: {', '.join(problems)}", fix="fix them and re-run")


@dataclass(frozen=True)
class LatencyStats:
    """Per-call latency of one batch size, and the throughput it implies.

    Percentiles use linear interpolation between samples (numpy's default); ``iqr_ms`` is
    p75 - p25, the spread that outliers from a shared machine do not inflate. Throughput is
    reported both from the median (``throughput_sps``, the headline figure and the one ratios
    use) and from the mean (``throughput_mean_sps``, which a busy machine drags down).
    """

    batch_size: int
    iterations: int
    warmup: int
    measured_time_s: float
    first_call_ms: float | None
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    iqr_ms: float
    min_ms: float
    max_ms: float
    samples_ns: tuple[int, ...] = field(repr=False, default=())

    @property
    def throughput_sps(self) -> float:
        """Median throughput, batch_size / p50: robust to stalls caused by other processes."""
        return self.batch_size * 1e3 / self.p50_ms if self.p50_ms > 0 else float("inf")

    @property
    def throughput_mean_sps(self) -> float:
        """Throughput over all timed calls, batch_size / mean: includes every stall the machine caused."""
        return self.batch_size * 1e3 / self.mean_ms if self.mean_ms > 0 else float("inf")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("samples_ns")
        data["throughput_sps"] = self.throughput_sps
        data["throughput_mean_sps"] = self.throughput_mean_sps
        return data


def summarize(
    samples_ns: Sequence[int], batch_size: int, *, warmup: int = 0, first_call_ms: float | None = None
) -> LatencyStats:
    """Percentiles, mean, std and IQR of per-call times given in nanoseconds."""
    if not samples_ns:
        raise BenchError("no timed calls to summarize", fix="raise max_time_s or min_iterations")
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    p25, p50, p75, p90, p99 = np.percentile(ms, [25, 50, 75, 90, 99])
    return LatencyStats(
        batch_size=batch_size,
        iterations=len(ms),
        warmup=warmup,
        measured_time_s=float(ms.sum() / 1e3),
        first_call_ms=first_call_ms,
        p50_ms=float(p50),
        p90_ms=float(p90),
        p99_ms=float(p99),
        mean_ms=float(ms.mean()),
        std_ms=float(ms.std(ddof=1)) if len(ms) > 1 else 0.0,
        iqr_ms=float(p75 - p25),
        min_ms=float(ms.min()),
        max_ms=float(ms.max()),
        samples_ns=tuple(int(v) for v in samples_ns),
    )


def measure_latency(
    fn: Callable[[Any], Any],
    batch: Any,
    *,
    warmup: int = 5,
    min_iterations: int = 100,
    min_time_s: float = 1.0,
    max_time_s: float = 10.0,
    sync: Callable[[], None] | None = None,
) -> LatencyStats:
    """Call ``fn(batch)`` repeatedly and summarize the per-call wall-clock latency.

    Each call is timed on its own with ``time.perf_counter_ns`` (two clock reads and a list
    append per call: well under 1 µs of overhead). Warm-up calls are discarded; the first is
    kept as ``first_call_ms`` because compiling runtimes pay their cost there.

    Args:
        fn: What to time, e.g. ``predictor.predict``; its result is discarded.
        batch: The argument passed to every call; ``len(batch)`` is the batch size.
        warmup: Calls run first and discarded.
        min_iterations: Timed calls at least (unless ``max_time_s`` runs out first).
        min_time_s: Timed seconds at least.
        max_time_s: Stop after this many timed seconds.
        sync: Called before each clock read, e.g. ``torch.cuda.synchronize`` on a GPU.

    Example:
        >>> stats = measure_latency(sum, [1, 2, 3], warmup=1, min_iterations=20, min_time_s=0)
        >>> stats.iterations, stats.batch_size, stats.p50_ms <= stats.p99_ms
        (20, 3, True)
    """
    TimingConfig(warmup, min_iterations, min_time_s, max_time_s)  # validates
    clock = time.perf_counter_ns
    first_call_ms = None
    for i in range(warmup):
        t0 = clock()
        fn(batch)
        if sync is not None:
            sync()
        if i == 0:
            first_call_ms = (clock() - t0) / 1e6
    min_ns, max_ns = int(min_time_s * 1e9), int(max_time_s * 1e9)
    samples: list[int] = []
    append = samples.append
    busy_ns = 0
    while True:
        if sync is not None:
            sync()
        t0 = clock()
        fn(batch)
        if sync is not None:
            sync()
        dt = clock() - t0
        append(dt)
        busy_ns += dt
        if busy_ns >= max_ns or (busy_ns >= min_ns and len(samples) >= min_iterations):
            break
    return summarize(samples, _batch_size(batch), warmup=warmup, first_call_ms=first_call_ms)


def _batch_size(batch: Any) -> int:
    try:
        return len(batch)
    except TypeError:
        return 1
