"""Prometheus metrics for ``/metrics``, in a registry of the app's own (tests start many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_BATCH_ROWS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServeMetrics:
    """Every series the server exports; label children are cached per model version."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("torchship_requests", "Inference requests by outcome",
                                ["model", "version", "status"], registry=r)
        self.queue_s = Histogram("torchship_queue_seconds", "Time requests waited in the batch queue",
                                 ["model", "version"], buckets=_LATENCY_S, registry=r)
        self.compute_s = Histogram("torchship_compute_seconds", "Model compute time per batch",
                                   ["model", "version"], buckets=_LATENCY_S, registry=r)
        self.total_s = Histogram("torchship_request_seconds", "Request latency from body read to response",
                                 ["model", "version"], buckets=_LATENCY_S, registry=r)
        self.batch_rows = Histogram("torchship_batch_size", "Rows per executed batch",
                                    ["model", "version"], buckets=_BATCH_ROWS, registry=r)
        self.queue_depth = Gauge("torchship_queue_depth", "Requests waiting in the batch queue",
                                 ["model", "version"], registry=r)
        self.in_flight = Gauge("torchship_inflight_requests", "Requests being handled", registry=r)
        self.load_s = Gauge("torchship_model_load_seconds", "Time the last load (incl. warm-up) took",
                            ["model", "version"], registry=r)
        self.load_failures = Counter("torchship_model_load_failures", "Failed model loads", ["model"], registry=r)
        self.restarts = Counter("torchship_instance_restarts", "Model instances restarted after a failure",
                                ["model", "version"], registry=r)
        self._children: dict[tuple[str, str], tuple] = {}

    def for_model(self, model: str, version: str):
        """(queue, compute, total, batch) histogram children, looked up once per version."""
        key = (model, version)
        children = self._children.get(key)
        if children is None:
            children = tuple(m.labels(model, version) for m in (self.queue_s, self.compute_s, self.total_s,
                                                                 self.batch_rows))
            self._children[key] = children
        return children

    def render(self) -> bytes:
        return generate_latest(self.registry)
