"""Per-model statistics in the shape of Triton's statistics extension (``/v2/models/{m}/stats``).

Updated only on the event loop (the batcher delivers results there), so no locks.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import numpy as np

_RECENT = 1024  # successful requests whose latency the dashboard's percentiles cover


class _Duration:
    __slots__ = ("count", "ns")

    def __init__(self) -> None:
        self.count = 0
        self.ns = 0

    def add(self, seconds: float, count: int = 1) -> None:
        self.count += count
        self.ns += int(seconds * 1e9)

    def to_json(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


class ModelStats:
    """Counts and cumulative durations for one model version."""

    PHASES = (
        "success",
        "fail",
        "queue",
        "compute_input",
        "compute_infer",
        "compute_output",
        "cache_hit",
        "cache_miss",
    )

    def __init__(self, name: str, version: str):
        self.name = name
        self.version = version
        self.last_inference_ms = 0
        self.inference_count = 0  # rows inferred
        self.execution_count = 0  # batches run
        self.instance_restarts = 0
        self.last_restart_error: str | None = None
        self.phases = {phase: _Duration() for phase in self.PHASES}
        self._recent_s = np.zeros(_RECENT)
        self._recent_n = 0
        self.batches: dict[int, dict[str, _Duration]] = defaultdict(
            lambda: {k: _Duration() for k in ("compute_input", "compute_infer", "compute_output")}
        )

    def record_batch(self, rows: int, input_s: float, infer_s: float, output_s: float) -> None:
        self.execution_count += 1
        self.inference_count += rows
        self.last_inference_ms = int(time.time() * 1e3)
        batch = self.batches[rows]
        batch["compute_input"].add(input_s)
        batch["compute_infer"].add(infer_s)
        batch["compute_output"].add(output_s)
        self.phases["compute_input"].add(input_s)
        self.phases["compute_infer"].add(infer_s)
        self.phases["compute_output"].add(output_s)

    def record_request(self, ok: bool, total_s: float) -> None:
        self.phases["success" if ok else "fail"].add(total_s)
        if ok:
            self._recent_s[self._recent_n % _RECENT] = total_s
            self._recent_n += 1

    def latency_ms(self, percentiles: tuple[int, ...] = (50, 90, 99)) -> dict[str, float] | None:
        """Percentiles of the last 1,024 successful requests' latency, or None before the first."""
        if not self._recent_n:
            return None
        recent = self._recent_s[: min(self._recent_n, _RECENT)] * 1e3
        return {
            f"p{p}": float(v) for p, v in zip(percentiles, np.percentile(recent, percentiles), strict=False)
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {k: v.to_json() for k, v in self.phases.items()},
            "batch_stats": [
                {"batch_size": size, **{k: v.to_json() for k, v in phases.items()}}
                for size, phases in sorted(self.batches.items())
            ],
            "memory_usage": [],
            "instance_restarts": self.instance_restarts,
        }
