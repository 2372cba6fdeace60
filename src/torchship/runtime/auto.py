"""``auto``: measure the runtimes this artifact can use and keep the fastest.

Candidates are ``eager`` plus every runtime whose export the artifact holds (and whose
library is installed); ``compile`` only when asked for, since it compiles for tens of
seconds. Each candidate is warmed up, then timed on a batch of ``batch_size`` zeros; the
lowest median wins. ``describe()`` says what was picked and every median measured.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from typing import Any

import numpy as np

from torchship.artifact import Artifact
from torchship.runtime.base import Predictor, RuntimeError_, RuntimeOptions, runtimes, warm_up

log = logging.getLogger(__name__)


def int8_programs(artifact: Artifact) -> dict[str, str]:
    """Export key -> runtime of every int8 program the artifact holds (made by ``compress quantize``)."""
    from torchship.export.base import format_runtimes
    from torchship.runtime.onnxruntime import INT8_EXPORT

    served = format_runtimes()
    programs = {}
    for fmt, record in artifact.manifest.exports.items():
        if fmt == INT8_EXPORT:
            programs[fmt] = "onnxruntime"
        elif fmt in served and isinstance(record, dict) and record.get("precision") == "int8":
            programs[fmt] = served[fmt].runtime
    return programs


def candidates(artifact: Artifact, include: tuple[str, ...] = ()) -> list[str]:
    """Runtimes ``auto`` considers for this artifact, eager first.

    An int8 artifact (``compress quantize``) is only run where its int8 program runs: eager
    and the fp32 exports would compute the float model it was made from, so the fastest of
    them would be a different model, not a faster runtime.
    """
    from torchship.export.base import format_runtimes

    exports = artifact.manifest.exports
    available = [
        runs.runtime
        for fmt, runs in format_runtimes().items()
        if fmt in exports and (runs.module is None or importlib.util.find_spec(runs.module))
    ]
    int8 = set(int8_programs(artifact).values())
    if int8:
        return [name for name in available if name in int8]
    names = ["eager", *available] if artifact.manifest.architecture is not None else available
    names += [name for name in include if name not in names and name != "auto"]
    return names


def median_latency_ms(predictor: Predictor, feeds: dict[str, np.ndarray], repeats: int) -> float:
    """Median wall time of ``predictor.run(feeds)`` over ``repeats`` calls, in ms."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.run(feeds)
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


class AutoPredictor:
    """The fastest measured predictor, with what was measured; forwards ``predict`` to it."""

    name = "auto"

    def __init__(
        self, chosen: Predictor, medians_ms: dict[str, float], batch_size: int, failed: dict[str, str]
    ):
        self.chosen = chosen
        self.picked = chosen.name
        self.medians_ms = medians_ms
        self.batch_size = batch_size
        self.failed = failed

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.chosen.predict(batch)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.chosen.run(feeds)

    def describe(self) -> dict[str, Any]:
        return {
            **self.chosen.describe(),
            "runtime": f"auto -> {self.picked}",
            "picked": self.picked,
            "median_ms": self.medians_ms,
            "measured_batch_size": self.batch_size,
            "skipped": self.failed,
        }

    def close(self) -> None:
        self.chosen.close()


@runtimes.register("auto")
def _auto(artifact: Artifact, options: RuntimeOptions) -> AutoPredictor:
    extra = dict(options.extra)
    batch_size = int(extra.pop("batch_size", 8))
    repeats = int(extra.pop("repeats", 20))
    include = tuple(extra.pop("include", ()))
    inner = RuntimeOptions(
        options.threads, options.inter_op_threads, options.device, 0, options.allow_import, extra
    )
    from torchship.runtime.feeds import example_feeds

    batch = example_feeds(artifact.manifest.signature, batch=batch_size)
    best: tuple[float, Predictor] | None = None
    medians: dict[str, float] = {}
    failed: dict[str, str] = {}
    for name in candidates(artifact, include):
        try:
            predictor = runtimes.get(name)(artifact, inner)
        except Exception as exc:  # a runtime that cannot load here is skipped, and said so
            failed[name] = str(exc).splitlines()[0][:200]
            continue
        warm_up(predictor, artifact, max(options.warmup, 1))
        medians[name] = round(median_latency_ms(predictor, batch, repeats), 4)
        if best is None or medians[name] < best[0]:
            if best is not None:
                best[1].close()
            best = (medians[name], predictor)
        else:
            predictor.close()
    if best is None:
        raise RuntimeError_(
            f"no runtime could load {artifact.manifest.name} ({failed})", fix="check the exports"
        )
    log.info("auto picked %s (median ms at batch %d: %s)", best[1].name, batch_size, medians)
    return AutoPredictor(best[1], medians, batch_size, failed)
