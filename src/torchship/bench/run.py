"""Benchmark artifacts across runtimes and batch sizes: one :class:`BenchResult` per combination.

For each (artifact, runtime) the predictor is loaded once (timed as the cold start), every
batch size is timed through :func:`~torchship.bench.latency.measure_latency`, accuracy is
measured when data is given, and the memory peak of all that is read last. A runtime that
cannot load or run an artifact gives skipped rows carrying the one-line reason.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from torchship.artifact import WEIGHTS, Artifact
from torchship.bench import memory
from torchship.bench.accuracy import BenchData, DataSource, data_for, measure_accuracy
from torchship.bench.latency import BenchError, LatencyStats, TimingConfig, measure_latency
from torchship.errors import TorchshipError
from torchship.export.base import format_runtimes

# The runtime that picks another is a choice, not a runtime to compare.
NOT_IN_ALL = ("auto",)


@dataclass
class BenchResult:
    """One row: an artifact in a runtime at a batch size. Unmeasured fields are None.

    ``throughput_sps`` is batch_size / p50 and ``throughput_mean_sps`` batch_size / mean (see
    :class:`~torchship.bench.latency.LatencyStats`). ``ratio`` is this row's ``throughput_sps``
    over the baseline row's (``baseline``: the first measured artifact/runtime at the same batch
    size). ``peak_rss_scope`` says what the memory figures cover (see :mod:`torchship.bench.memory`);
    ``reason`` says why a row was skipped, or notes what an ok row could not measure.
    """

    artifact: str
    artifact_path: str | None
    runtime: str
    batch_size: int
    status: str  # "ok" or "skipped"
    reason: str | None = None
    threads: int | None = None
    iterations: int | None = None
    warmup: int | None = None
    measured_time_s: float | None = None
    latency_p50_ms: float | None = None
    latency_p90_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_mean_ms: float | None = None
    latency_std_ms: float | None = None
    latency_iqr_ms: float | None = None
    latency_min_ms: float | None = None
    latency_max_ms: float | None = None
    first_call_ms: float | None = None
    throughput_sps: float | None = None
    throughput_mean_sps: float | None = None
    ratio: float | None = None
    baseline: str | None = None
    load_time_s: float | None = None
    peak_rss_bytes: int | None = None
    rss_delta_bytes: int | None = None
    peak_rss_scope: str | None = None
    file: str | None = None
    file_size_bytes: int | None = None
    accuracy: float | None = None
    accuracy_samples: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def label(self) -> str:
        return f"{self.artifact}/{self.runtime}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BenchResult:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def fill_latency(self, stats: LatencyStats) -> None:
        self.iterations, self.warmup = stats.iterations, stats.warmup
        self.measured_time_s, self.first_call_ms = stats.measured_time_s, stats.first_call_ms
        for name in ("p50", "p90", "p99", "mean", "std", "iqr", "min", "max"):
            setattr(self, f"latency_{name}_ms", getattr(stats, f"{name}_ms"))
        self.throughput_sps, self.throughput_mean_sps = stats.throughput_sps, stats.throughput_mean_sps


def resolve_runtimes(names: str | Iterable[str]) -> list[str]:
    """``"all"`` or a comma list (or list) of runtime names, checked against the registry.

    ``all`` is every registered runtime except ``auto``, eager first (so ratios are against eager).

    Raises:
        RuntimeError_: A name is not a registered runtime (the message lists the choices).
    """
    from torchship.runtime import runtimes

    items = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    if items == ["all"]:
        registered = [n for n in runtimes.names() if n not in NOT_IN_ALL]
        return sorted(registered, key=lambda n: (n != "eager", n))
    if not items:
        raise BenchError("no runtime given", fix="pass --runtime eager,onnxruntime or --runtime all")
    for name in items:
        runtimes.get(name)
    return list(dict.fromkeys(items))


def bench(
    artifacts: Sequence[Artifact | str | Path],
    runtimes: str | Sequence[str] = ("eager",),
    batch_sizes: Sequence[int] = (1, 8, 32),
    *,
    threads: int | None = None,
    data: DataSource | None = None,
    timing: TimingConfig | None = None,
    isolate: bool = False,
    allow_import: Iterable[str] = (),
    progress: Callable[[str], None] | None = None,
    dims: Mapping[str, int] | None = None,
) -> list[BenchResult]:
    """Measure every artifact in every runtime at every batch size.

    Args:
        artifacts: Artifacts, or paths to artifact directories.
        runtimes: Runtime names, a comma list, or ``"all"``.
        batch_sizes: Batch sizes to time, each on seeded random normalized inputs.
        threads: Intra-op threads for every runtime; None keeps each runtime's default.
        data: Labelled validation data for the accuracy column (see :class:`BenchData`).
        timing: Warm-up and repetition settings; defaults to :class:`TimingConfig`'s.
        isolate: Measure each (artifact, runtime) in a fresh subprocess, so neither memory
            nor warmed caches leak between rows (artifacts must be saved).
        allow_import: Bring-your-own model classes the user trusts (``pkg.mod:Class``).
        progress: Called with a one-line message before each (artifact, runtime) is measured.
        dims: Sizes of named dynamic dims for the generated inputs (``{"seq": 128}``); default
            the signature's example sizes. Integer inputs are drawn from their declared range.

    Example:
        >>> from torchship.testing import tiny_artifact
        >>> fast = TimingConfig(warmup=1, min_iterations=5, min_time_s=0)
        >>> rows = bench([tiny_artifact("cnn")], "eager", [1, 4], timing=fast)
        >>> [(r.runtime, r.batch_size, r.status) for r in rows]
        [('eager', 1, 'ok'), ('eager', 4, 'ok')]
    """
    names = resolve_runtimes(runtimes)
    sizes = _check_batch_sizes(batch_sizes)
    timing = timing or TimingConfig()
    loaded = [a if isinstance(a, Artifact) else Artifact.load(a) for a in artifacts]
    if not loaded:
        raise BenchError("no artifact given", fix="pass at least one artifact directory")
    results: list[BenchResult] = []
    same_name = Counter(a.manifest.name for a in loaded)
    for artifact in loaded:
        art_data = data_for(data, artifact)
        for name in names:
            if progress is not None:
                progress(f"{artifact.manifest.name} in {name}: batch {', '.join(map(str, sizes))}")
            if isolate:
                from torchship.bench.isolate import measure_isolated as measure
            else:
                measure = measure_runtime
            rows = measure(
                artifact,
                name,
                sizes,
                threads=threads,
                timing=timing,
                data=art_data,
                allow_import=allow_import,
                dims=dims,
            )
            if same_name[artifact.manifest.name] > 1:  # a parent and its child: say which is which
                m = artifact.manifest
                for row in rows:
                    row.artifact = f"{m.name} v{m.version} ({m.lineage.op})"
            results.extend(rows)
    add_ratios(results)
    return results


def measure_runtime(
    artifact: Artifact,
    runtime: str,
    batch_sizes: Sequence[int],
    *,
    threads: int | None = None,
    timing: TimingConfig | None = None,
    data: BenchData | None = None,
    allow_import: Iterable[str] = (),
    peak_rss_scope: str | None = None,
    dims: Mapping[str, int] | None = None,
) -> list[BenchResult]:
    """Load ``artifact`` into ``runtime`` once and measure it at each batch size, in this process."""
    from torchship.runtime import load_predictor

    timing = timing or TimingConfig()
    rows = [_row(artifact, runtime, bs, threads) for bs in batch_sizes]
    rss_before = memory.rss_bytes()
    scope = memory.reset_peak_rss()
    start = time.perf_counter()
    try:
        predictor = load_predictor(artifact, runtime, threads=threads, warmup=0, allow_import=allow_import)
    except Exception as exc:  # noqa: BLE001 - any load failure is a skipped row, not a crashed table
        return [_skip(row, f"cannot load: {_one_line(exc)}") for row in rows]
    load_time_s = time.perf_counter() - start
    try:
        info = _describe(predictor)
        file_name, file_size = _model_file(artifact, runtime, info)
        for row in rows:
            batch = example_batch(artifact, row.batch_size, dims=dims)
            try:
                call = predictor.run if isinstance(batch, dict) else predictor.predict
                stats = measure_latency(
                    call,
                    batch,
                    warmup=timing.warmup,
                    min_iterations=timing.min_iterations,
                    min_time_s=timing.min_time_s,
                    max_time_s=timing.max_time_s,
                )
            except Exception as exc:  # noqa: BLE001 - e.g. a static-shape export at another batch size
                _skip(row, f"cannot run batch {row.batch_size}: {_one_line(exc)}")
                continue
            row.fill_latency(stats)
            reported = info.get("threads")
            row.threads = threads or (reported if isinstance(reported, int) else None)
            row.load_time_s, row.file, row.file_size_bytes = load_time_s, file_name, file_size
        accuracy, accuracy_note = _accuracy(predictor, data, [r.batch_size for r in rows if r.ok])
        peak = memory.peak_rss_bytes()
    finally:
        predictor.close()
    for row in rows:
        if row.ok:
            row.accuracy = accuracy
            row.accuracy_samples = len(data.x) if data is not None and accuracy is not None else None
            row.peak_rss_bytes = peak
            row.rss_delta_bytes = peak - rss_before if rss_before is not None else None
            row.peak_rss_scope = peak_rss_scope or scope
            row.reason = accuracy_note
    return rows


def add_ratios(results: list[BenchResult]) -> None:
    """Set ``ratio`` (throughput over the baseline's) on measured rows; baseline: first per batch size."""
    baselines: dict[int, BenchResult] = {}
    for row in results:
        if row.ok and row.throughput_sps:
            base = baselines.setdefault(row.batch_size, row)
            row.ratio = row.throughput_sps / base.throughput_sps
            row.baseline = base.label


def example_batch(
    artifact: Artifact, batch_size: int, seed: int = 0, dims: Mapping[str, int] | None = None
) -> np.ndarray | dict[str, np.ndarray]:
    """Seeded standard-normal inputs of the artifact's shape: (batch_size, *input.shape) float32.

    A model with several, integer or variable-size inputs gets named inputs generated from its
    signature instead (valid token ids from the declared range, masks of ones).
    """
    from torchship.runtime.base import legacy_shape

    if legacy_shape(artifact) is None or dims:
        from torchship.runtime.feeds import example_feeds

        return example_feeds(artifact.manifest.signature, batch=batch_size, dims=dims, seed=seed)
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch_size, *artifact.manifest.input.shape), dtype=np.float32)


def _check_batch_sizes(batch_sizes: Sequence[int]) -> list[int]:
    sizes = list(dict.fromkeys(batch_sizes))
    bad = [b for b in sizes if not isinstance(b, int) or isinstance(b, bool) or b < 1]
    if bad or not sizes:
        raise BenchError(f"invalid batch sizes {bad or '(none)'}", fix="pass positive integers, e.g. 1,8,32")
    return sizes


def _row(artifact: Artifact, runtime: str, batch_size: int, threads: int | None) -> BenchResult:
    path = str(artifact.path) if artifact.path is not None else None
    return BenchResult(artifact.manifest.name, path, runtime, batch_size, "ok", threads=threads)


def _skip(row: BenchResult, reason: str) -> BenchResult:
    row.status, row.reason = "skipped", reason
    return row


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, TorchshipError):
        return " ".join(text.split())
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:300]


def _describe(predictor: Any) -> dict[str, Any]:
    try:
        return dict(predictor.describe())
    except Exception:  # noqa: BLE001 - describe() is informational only
        return {}


def _model_file(artifact: Artifact, runtime: str, info: dict[str, Any]) -> tuple[str | None, int | None]:
    """The file this runtime runs from: what its predictor names, else its export, else the weights."""
    candidates: list[str] = []
    if info.get("file"):
        candidates.append(str(info["file"]))
    # where a runtime's model file lives when its predictor does not say (describe()["file"])
    fmt = next((f for f, runs in format_runtimes().items() if runs.runtime == runtime), runtime)
    export = artifact.manifest.exports.get(fmt, {})
    if export.get("file"):
        candidates.append(str(export["file"]))
    candidates.append(WEIGHTS)
    for name in candidates:
        path = Path(name)
        if not path.is_absolute() and artifact.path is not None:
            path = artifact.path / name
        if path.is_file():
            return path.name, path.stat().st_size
    return None, None


def _accuracy(
    predictor: Any, data: BenchData | None, batch_sizes: list[int]
) -> tuple[float | None, str | None]:
    """Accuracy in chunks of the largest batch size that ran; a failure is a note, not a lost row."""
    if data is None or not batch_sizes:
        return None, None
    try:
        return measure_accuracy(predictor.predict, data, max(batch_sizes)), None
    except Exception as exc:  # noqa: BLE001
        return None, f"accuracy not measured: {_one_line(exc)}"
