"""Live drift monitoring inside the server, off the request path.

Each model instance thread, after it has handed a batch's answers back to the event loop,
offers the batch (inputs and logits, no copies) to its ``LiveMonitor``. The offer never
blocks: beyond ``max_rows_per_s`` (a token bucket) or when the hub's bounded queue is full
the batch is skipped and counted. One hub thread per server turns accepted batches into
counts and adds them to the model's rolling ``Window``; scores are computed when asked
(``/metrics``, the stats and drift endpoints), from a snapshot taken under a short lock.
Nothing here writes to the arrays it is given, so monitoring cannot change an answer.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from torchship.artifact import Artifact
from torchship.errors import ArtifactError
from torchship.monitor._worker import Worker
from torchship.monitor.baseline import Baseline
from torchship.monitor.config import MonitorConfig
from torchship.monitor.drift import DriftScores, score
from torchship.monitor.requestlog import RequestLog
from torchship.monitor.window import Window, count_batch


class LiveMonitor:
    """The rolling window of one model version and the bookkeeping of what it skipped."""

    def __init__(self, baseline: Baseline, config: MonitorConfig, hub: MonitorHub):
        self.baseline = baseline
        self.config = config
        self._hub = hub
        self._window = Window(baseline, config.window_rows)
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(0)
        self._tokens = config.max_rows_per_s
        self._refilled_s = time.monotonic()
        self.offered_batches = 0
        self.skipped_batches = 0

    def offer(
        self, x: np.ndarray | dict[str, np.ndarray], logits: np.ndarray | dict[str, np.ndarray]
    ) -> bool:
        """Hand a computed batch over (any thread, never blocks); False when it was skipped."""
        self.offered_batches += 1
        now = time.monotonic()
        rate = self.config.max_rows_per_s
        self._tokens = min(rate, self._tokens + (now - self._refilled_s) * rate)
        self._refilled_s = now
        if self._tokens <= 0 or not self._hub.put((self, x, logits)):
            self.skipped_batches += 1
            return False
        self._tokens -= len(next(iter(x.values()))) if isinstance(x, dict) else len(x)
        return True

    def update(
        self, x: np.ndarray | dict[str, np.ndarray], logits: np.ndarray | dict[str, np.ndarray]
    ) -> None:
        counts = count_batch(self.baseline, x, logits, self.config.values_per_row, self._rng)
        with self._lock:
            self._window.add(counts)

    def scores(self) -> DriftScores:
        with self._lock:
            counts = self._window.snapshot()
        return score(self.baseline, counts, self.config.thresholds, self.config.min_rows)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.scores().to_json(),
            "window_rows": self.config.window_rows,
            "offered_batches": self.offered_batches,
            "skipped_batches": self.skipped_batches,
            "monitor_cpu_s": self._hub.cpu_s,
        }


class MonitorHub:
    """The server's monitoring: one worker thread for every model's windows, and the request log."""

    def __init__(self, config: MonitorConfig):
        self.config = config
        self._worker: Worker | None = None
        self._start_lock = threading.Lock()
        self.request_log = RequestLog(config.request_log) if config.request_log is not None else None

    def attach(self, artifact: Artifact) -> tuple[LiveMonitor | None, str]:
        """A monitor for one loaded model version, or None and the reason there is none."""
        if not self.config.enabled:
            return None, "monitoring is off in the serve config"
        try:
            baseline = Baseline.from_artifact(artifact)
        except ArtifactError as exc:
            return None, str(exc)
        with self._start_lock:
            if self._worker is None:
                self._worker = Worker(
                    "torchship-monitor",
                    _update,
                    self.config.queue_batches,
                    many=True,
                    linger_s=self.config.update_interval_s,
                )
        return LiveMonitor(baseline, self.config, self), ""

    @property
    def cpu_s(self) -> float:
        """CPU seconds the monitor thread has spent counting, for every model together."""
        return self._worker.cpu_s if self._worker is not None else 0.0

    def put(self, job: tuple) -> bool:
        return self._worker is not None and self._worker.offer(job)

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Wait until every accepted batch is counted (tests)."""
        return self._worker is None or self._worker.wait_idle(timeout_s)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None
        if self.request_log is not None:
            self.request_log.close()


def _update(jobs: list[tuple[LiveMonitor, np.ndarray, np.ndarray]]) -> None:
    """Count every waiting batch, one concatenated batch per model version."""
    by_monitor: dict[int, list] = {}
    for job in jobs:
        by_monitor.setdefault(id(job[0]), []).append(job)
    for same in by_monitor.values():
        monitor = same[0][0]
        if len(same) == 1:
            monitor.update(same[0][1], same[0][2])
        elif isinstance(same[0][1], dict):  # named inputs and outputs; sizes of other dims may differ
            for _, x, y in same:
                monitor.update(x, y)
        else:
            monitor.update(np.concatenate([j[1] for j in same]), np.concatenate([j[2] for j in same]))
