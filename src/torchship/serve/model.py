"""One served model version: its predictors and batcher, its v2 signature, and its answers.

The v2 signature of every torchship model: one input ``input`` (FP32, ``[-1, *input.shape]``)
and two outputs, ``logits`` and ``probabilities`` (FP32, ``[-1, classes]``). Inputs of any
numeric datatype are cast to FP32; shape, row count and finiteness are checked here, before
a request can join a batch, so one bad request never fails the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import numpy as np

from torchship.artifact import Artifact
from torchship.monitor.live import MonitorHub
from torchship.serve.batcher import Batcher, BatchResult, Pending, QueueFullError
from torchship.serve.config import ModelSettings
from torchship.serve.metrics import ServeMetrics
from torchship.serve.stats import ModelStats
from torchship.serve.v2 import InferRequest, OutputTensor, RequestedOutput, ServeError, classify

log = logging.getLogger("torchship.serve")

INPUT = "input"
OUTPUTS = ("logits", "probabilities")


class ClientGoneError(Exception):
    """The client closed the connection before its request was computed."""


def softmax(logits: np.ndarray) -> np.ndarray:
    # logits: (n, classes)
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


class ServedModel:
    """A loaded, warmed-up model version behind a batcher."""

    def __init__(self, name: str, version: str, artifact: Artifact, settings: ModelSettings,
                 metrics: ServeMetrics, loop: asyncio.AbstractEventLoop, monitoring: MonitorHub | None = None):
        self.name = name
        self.version = version
        self.artifact = artifact
        self.settings = settings
        self.metrics = metrics
        self.loop = loop
        self.stats = ModelStats(name, version)
        self.sample_shape = tuple(artifact.manifest.input.shape)
        self.labels = list(artifact.manifest.labels)
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._queue_h, self._compute_h, self._total_h, self._batch_h = metrics.for_model(name, version)
        self._depth = metrics.queue_depth.labels(name, version)
        self._status: dict[int, Any] = {}
        self.load_s = 0.0
        self.loaded_at = time.time()
        self.monitor, self.monitor_reason = monitoring.attach(artifact) if monitoring else (None, "monitoring is off")
        self.request_log = monitoring.request_log if monitoring else None
        observe = self._observe if self.monitor is not None or self.request_log is not None else None
        predictors = [self._make_predictor() for _ in range(settings.instances)]
        self._warm_up(predictors)
        self.batcher = Batcher(f"{name}/{version}", settings.policy(), predictors, self._make_predictor,
                               loop, self._on_batch, observe)

    def _make_predictor(self) -> Any:
        from torchship.runtime import load_predictor

        return load_predictor(self.artifact, self.settings.runtime, threads=self.settings.threads,
                              warmup=self.settings.warmup, spin=False)

    def _warm_up(self, predictors: list[Any]) -> None:
        # the runtime warmed up at batch 1; the biggest batch allocates its buffers here, not under load
        batch = np.zeros((self.settings.max_batch_size, *self.sample_shape), dtype=np.float32)
        for predictor in predictors:
            predictor.predict(batch)

    def _observe(self, result: BatchResult) -> None:
        """On the instance thread, after the answers went out: feed the drift window and request log."""
        if self.monitor is not None:
            self.monitor.offer(result.x, result.y)
        if self.request_log is not None:
            self.request_log.offer(self.name, self.version, [p.rows for p in result.requests], result.outputs)

    def drift(self) -> dict[str, Any]:
        """The drift scores of the live window, or why there are none."""
        if self.monitor is None:
            return {"status": "off", "reason": self.monitor_reason}
        return self.monitor.to_json()

    # ------------------------------------------------------------------ signature
    def metadata(self) -> dict[str, Any]:
        classes = len(self.labels)
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": f"torchship_{self.settings.runtime}",
            "inputs": [{"name": INPUT, "datatype": "FP32", "shape": [-1, *self.sample_shape]}],
            "outputs": [{"name": out, "datatype": "FP32", "shape": [-1, classes]} for out in OUTPUTS],
        }

    def triton_config(self) -> dict[str, Any]:
        """The model configuration in Triton's JSON form, so Triton's tools can read it."""
        s = self.settings
        return {
            "name": self.name,
            "platform": f"torchship_{s.runtime}",
            "backend": "torchship",
            "version_policy": {"latest": {"num_versions": 1}},
            "max_batch_size": s.max_batch_size,
            "input": [{"name": INPUT, "data_type": "TYPE_FP32", "format": "FORMAT_NONE",
                       "dims": list(self.sample_shape)}],
            "output": [{"name": out, "data_type": "TYPE_FP32", "dims": [len(self.labels)]} for out in OUTPUTS],
            "dynamic_batching": {
                "preferred_batch_size": list(s.preferred_batch_sizes),
                "max_queue_delay_microseconds": int(s.max_queue_delay_ms * 1000),
                "default_queue_policy": {"timeout_action": "REJECT",
                                         "default_timeout_microseconds": int(s.timeout_ms * 1000),
                                         "allow_timeout_override": True,
                                         "max_queue_size": s.queue_limit},
            },
            "instance_group": [{"name": self.name, "kind": "KIND_CPU", "count": s.instances}],
            "parameters": {"torchship_threads": {"string_value": str(s.threads or "")}},
        }

    def check_input(self, request: InferRequest) -> np.ndarray:
        """The request's rows as FP32 (n, *input.shape), or a 400 naming what is wrong."""
        if set(request.inputs) != {INPUT}:
            raise ServeError(f"model {self.name!r} takes exactly one input named {INPUT!r}, "
                             f"got {sorted(request.inputs)}")
        x = request.inputs[INPUT]
        want = list(self.sample_shape)
        if x.ndim != len(want) + 1 or list(x.shape[1:]) != want:
            raise ServeError(f"input {INPUT!r} has shape {list(x.shape)}; model {self.name!r} expects [n, "
                             f"{', '.join(map(str, want))}]")
        n = x.shape[0]
        if not 1 <= n <= self.settings.max_batch_size:
            raise ServeError(f"input {INPUT!r} has {n} rows; model {self.name!r} takes 1 to "
                             f"{self.settings.max_batch_size} per request")
        x = x.astype(np.float32, copy=False)
        if not x.flags.writeable:  # binary tensors are views of the body; runtimes may write in place
            x = x.copy()
        if not np.isfinite(x).all():
            first = int(np.flatnonzero(~np.isfinite(x.reshape(-1)))[0])
            raise ServeError(f"input {INPUT!r} holds NaN or infinite values (first at flat index {first})")
        return x

    def check_outputs(self, wanted: list[RequestedOutput] | None) -> None:
        for out in wanted or ():
            if out.name not in OUTPUTS:
                raise ServeError(f"model {self.name!r} has no output {out.name!r}; choose from {', '.join(OUTPUTS)}")

    def outputs(self, logits: np.ndarray, wanted: list[RequestedOutput] | None, binary: bool) -> list[OutputTensor]:
        """The response tensors for one request's logits (n, classes)."""
        tensors = []
        for out in wanted or [RequestedOutput(name) for name in OUTPUTS]:
            values = logits if out.name == "logits" else softmax(logits)
            if out.classification is not None:
                values = classify(values, out.classification, self.labels)
            tensors.append(OutputTensor(out.name, values, binary if out.binary is None else out.binary))
        return tensors

    # ------------------------------------------------------------------ running
    def overloaded(self) -> ServeError:
        return ServeError(f"model {self.name!r} is overloaded ({self.settings.queue_limit} requests queued)",
                          fix="retry later", status=503, headers={"retry-after": "1"})

    def check_capacity(self) -> None:
        """Shed before the body is read or decoded: a full queue answers 503 at the cost of a lookup."""
        if self.batcher.depth >= self.settings.queue_limit:
            raise self.overloaded()

    async def infer(self, rows: np.ndarray, timeout_s: float, gone: asyncio.Future | None = None) -> np.ndarray:
        """Queue ``rows`` for the batcher and wait for this request's logits."""
        try:
            pending = self.batcher.submit(rows, timeout_s)
        except QueueFullError:
            raise self.overloaded() from None
        self.in_flight += 1
        self._idle.clear()
        self._depth.set(self.batcher.depth)
        timer = self.loop.call_at(pending.deadline_s - time.monotonic() + self.loop.time(), self._expire, pending)
        if gone is not None:
            gone.add_done_callback(lambda _: self._drop(pending, ClientGoneError()))
        try:
            return await pending.future
        finally:
            timer.cancel()
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()

    def _expire(self, pending: Pending) -> None:
        timeout_ms = (pending.deadline_s - pending.enqueued_s) * 1e3
        self._drop(pending, ServeError(f"request timed out after {timeout_ms:.0f} ms waiting for model "
                                       f"{self.name!r}", fix="retry later or raise the 'timeout' parameter",
                                       status=503, headers={"retry-after": "1"}))

    @staticmethod
    def _drop(pending: Pending, exc: BaseException) -> None:
        if not pending.future.done() and not pending.started_s:
            pending.dropped = True
            pending.future.set_exception(exc)

    def _on_batch(self, result: BatchResult) -> None:
        t0 = time.monotonic()
        self._depth.set(self.batcher.depth)
        if result.restarted:
            self.stats.instance_restarts += 1
            self.stats.last_restart_error = result.error
            self.metrics.restarts.labels(self.name, self.version).inc()
        for pending, out in zip(result.requests, result.outputs):
            queue_s = pending.started_s - pending.enqueued_s
            self._queue_h.observe(queue_s)
            self.stats.phases["queue"].add(queue_s)
            if pending.future.done():
                continue
            if isinstance(out, BaseException):
                pending.future.set_exception(ServeError(
                    f"model {self.name!r} failed on this request ({out!r})", status=500))
            else:
                pending.future.set_result(out)
        for pending in result.expired:
            self._expire(pending)
        if result.requests:
            self._compute_h.observe(result.compute_s)
            self._batch_h.observe(result.rows)
            self.stats.record_batch(result.rows, result.input_s, result.compute_s, time.monotonic() - t0)

    def record(self, status: int, total_s: float) -> None:
        """Count one finished request by status (called by the HTTP layer)."""
        counter = self._status.get(status)
        if counter is None:
            counter = self._status[status] = self.metrics.requests.labels(self.name, self.version, str(status))
        counter.inc()
        if status == 200:
            self._total_h.observe(total_s)
        self.stats.record_request(status == 200, total_s)

    async def close(self) -> None:
        """Finish every request already accepted, then stop the instance threads."""
        await self._idle.wait()
        await asyncio.to_thread(self.batcher.stop)
        self.metrics.forget(self.name, self.version)
