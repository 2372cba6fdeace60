"""Prometheus metrics for ``/metrics``, in a registry of the app's own (tests start many apps).

Under ``torchship serve --workers N`` every worker process writes its series to files in
``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode) and ``/metrics`` sums
them: counters and histograms over every worker that ever ran, gauges by their ``multiprocess_mode``.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_BATCH_ROWS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServeMetrics:
    """Every series the server exports; label children are cached per model version."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "torchship_requests", "Inference requests by outcome", ["model", "version", "status"], registry=r
        )
        self.queue_s = Histogram(
            "torchship_queue_seconds",
            "Time requests waited in the batch queue",
            ["model", "version"],
            buckets=_LATENCY_S,
            registry=r,
        )
        self.compute_s = Histogram(
            "torchship_compute_seconds",
            "Model compute time per batch",
            ["model", "version"],
            buckets=_LATENCY_S,
            registry=r,
        )
        self.total_s = Histogram(
            "torchship_request_seconds",
            "Request latency from body read to response",
            ["model", "version"],
            buckets=_LATENCY_S,
            registry=r,
        )
        self.batch_rows = Histogram(
            "torchship_batch_size",
            "Rows per executed batch",
            ["model", "version"],
            buckets=_BATCH_ROWS,
            registry=r,
        )
        # multiprocess_mode: how --workers sums a gauge over processes (ignored with one process)
        self.queue_depth = Gauge(
            "torchship_queue_depth",
            "Requests waiting in the batch queue",
            ["model", "version"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.in_flight = Gauge(
            "torchship_inflight_requests", "Requests being handled", registry=r, multiprocess_mode="livesum"
        )
        self.load_s = Gauge(
            "torchship_model_load_seconds",
            "Time the last load (incl. warm-up) took",
            ["model", "version"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.load_failures = Counter(
            "torchship_model_load_failures", "Failed model loads", ["model"], registry=r
        )
        self.restarts = Counter(
            "torchship_instance_restarts",
            "Model instances restarted after a failure",
            ["model", "version"],
            registry=r,
        )
        self._children: dict[tuple[str, str], tuple] = {}
        mv = ["model", "version"]

        def gauge(name: str, doc: str, labels: list[str] = mv, mode: str = "livemostrecent") -> Gauge:
            # drift: one worker owns the monitor (serve/workers.py), so its latest value is the value
            return Gauge(f"torchship_{name}", doc, labels, registry=r, multiprocess_mode=mode)

        self.drift_input_psi = gauge(
            "drift_input_psi",
            "PSI of live inputs vs the reference, per channel (images), feature (tables) or named input",
            [*mv, "group"],
        )
        self.drift_output_psi = gauge(
            "drift_output_psi",
            "PSI of an output's live values vs the reference (not classifiers)",
            [*mv, "output"],
        )
        self.drift_prediction_psi = gauge("drift_prediction_psi", "PSI of live predictions vs validation")
        self.drift_confidence_psi = gauge("drift_confidence_psi", "PSI of live top-1 confidence vs val")
        self.drift_mean_confidence = gauge("drift_mean_confidence", "Mean top-1 probability, live window")
        self.drift_confidence_drop = gauge("drift_confidence_drop", "Validation mean confidence minus live")
        self.drift_rows = gauge("drift_window_rows", "Live rows in the drift window")
        self.drift_alert = gauge("drift_alert", "1 when a live drift score is above its threshold")
        self.monitor_skipped = gauge("monitor_skipped_batches", "Batches the drift monitor skipped (load)")
        self.request_log_dropped = gauge(
            "request_log_dropped", "Request records dropped: queue full", [], "sum"
        )
        self.request_log_written = gauge("request_log_written", "Request records written", [], "sum")

    def for_model(self, model: str, version: str):
        """(queue, compute, total, batch) histogram children, looked up once per version."""
        key = (model, version)
        children = self._children.get(key)
        if children is None:
            children = tuple(
                m.labels(model, version)
                for m in (self.queue_s, self.compute_s, self.total_s, self.batch_rows)
            )
            self._children[key] = children
        return children

    def set_drift(self, model: str, version: str, drift: dict[str, Any]) -> None:
        """Copy one model version's drift JSON (``ServedModel.drift()``) into the gauges."""
        if "input_psi" not in drift:
            return
        for group, value in drift["input_psi"].items():
            self.drift_input_psi.labels(model, version, group).set(value)
        for output, value in drift.get("output_psi", {}).items():
            self.drift_output_psi.labels(model, version, output).set(value)
        optional = (
            (self.drift_prediction_psi, "prediction_psi"),
            (self.drift_confidence_psi, "confidence_psi"),
            (self.drift_mean_confidence, "mean_confidence"),
            (self.drift_confidence_drop, "confidence_drop"),
        )
        for gauge, key in optional:
            if drift[key] is not None:
                gauge.labels(model, version).set(drift[key])
        self.drift_rows.labels(model, version).set(drift["rows"])
        self.drift_alert.labels(model, version).set(1.0 if drift["drift"] else 0.0)
        self.monitor_skipped.labels(model, version).set(drift["skipped_batches"])

    def forget(self, model: str, version: str) -> None:
        """Drop an unloaded version's gauges, so /metrics stops reporting stale values (one process only:
        prometheus-client's multiprocess files cannot remove a series)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return
        for gauge in (
            self.drift_prediction_psi,
            self.drift_confidence_psi,
            self.drift_mean_confidence,
            self.drift_confidence_drop,
            self.drift_rows,
            self.drift_alert,
            self.monitor_skipped,
        ):
            with contextlib.suppress(KeyError):
                gauge.remove(model, version)
        for labelled in (self.drift_input_psi, self.drift_output_psi):
            for labels in list(labelled._metrics):
                if labels[:2] == (model, version):
                    labelled.remove(*labels)

    def render(self) -> bytes:
        """The exposition text: this registry's, or every worker's summed in multiprocess mode."""
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not directory:
            return generate_latest(self.registry)
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, directory)
        return generate_latest(registry)
