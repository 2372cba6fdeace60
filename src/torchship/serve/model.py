"""One served model version: its predictors and batcher, its lifecycle and its statistics.

What it takes and answers in v2 terms (metadata, Triton config, input checks, response tensors)
is its ``v2`` attribute, a ``V2Signature`` (``serve/v2/signature.py``). Every inference route
runs a request inside ``record_outcome()``, the one place a request's status and time are counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import numpy as np

from torchship.artifact import Artifact
from torchship.monitor.live import MonitorHub
from torchship.serve.batcher import Batcher, BatchResult, Pending, QueueFullError, run_rows
from torchship.serve.config import ModelSettings
from torchship.serve.errors import ClientGoneError, error_status
from torchship.serve.metrics import ServeMetrics
from torchship.serve.stats import ModelStats
from torchship.serve.v2 import ServeError, V2Signature

log = logging.getLogger("torchship.serve")

# A one-row run at least this long lets the runtime's intra-op threads spin between the run's
# operators (they sleep between runs either way). Woken for every operator instead, they cost a
# resnet18 (6-7 ms a row) about 0.5 ms per lone request, and the event loop, idle while such a run
# computes, needs little CPU per request next to it. For a short run the loop's work per request is
# a large share and spinning threads take the core it needs: a resnet20 (0.4 ms) formed smaller
# batches and lost throughput at concurrency 32. Measured in docs/benchmarks.md (2026-12-07, night).
SPIN_WITHIN_RUNS_MS = 2.0


def spins_within_runs(one_row_ms: float) -> bool:
    """Whether a model whose one-row run takes ``one_row_ms`` should spin between its operators."""
    return one_row_ms >= SPIN_WITHIN_RUNS_MS


class Admission:
    """A place held in a model's queue from the request head until the request is queued."""

    __slots__ = ("model", "held")

    def __init__(self, model: ServedModel):
        self.model, self.held = model, True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.model.admitted -= 1

    # a request dropped before the endpoint released its place (a middleware answered, the task
    # never ran) must not shrink the queue for good: the place goes with the last reference
    __del__ = release


class ServedModel:
    """A loaded, warmed-up model version behind a batcher."""

    def __init__(
        self,
        name: str,
        version: str,
        artifact: Artifact,
        settings: ModelSettings,
        metrics: ServeMetrics,
        loop: asyncio.AbstractEventLoop,
        monitoring: MonitorHub | None = None,
    ):
        self.name = name
        self.version = version
        self.artifact = artifact
        self.settings = settings
        self.metrics = metrics
        self.loop = loop
        self.stats = ModelStats(name, version)
        self.in_flight = 0
        self.admitted = 0  # requests past the capacity check and not yet queued (see check_capacity)
        self._idle = asyncio.Event()
        self._idle.set()
        self._queue_h, self._compute_h, self._total_h, self._batch_h = metrics.for_model(name, version)
        self._depth = metrics.queue_depth.labels(name, version)
        self._status: dict[int, Any] = {}
        self.load_s = 0.0
        self.loaded_at = time.time()
        self.monitor, self.monitor_reason = (
            monitoring.attach(artifact) if monitoring else (None, "monitoring is off")
        )
        self.request_log = monitoring.request_log if monitoring else None
        observe = self._observe if self.monitor is not None or self.request_log is not None else None
        self._runtime, self._spin = settings.runtime, False  # how _make_predictor loads an instance
        first = self._make_predictor()
        self.runtime = getattr(first, "picked", first.name)
        self.v2 = V2Signature(name, version, artifact, settings, self.runtime)
        if self.runtime == "onnxruntime" and spins_within_runs(one_row_ms := self._one_row_ms(first)):
            log.info(
                "%s/%s: a one-row run takes %.1f ms; its intra-op threads spin within runs",
                name,
                version,
                one_row_ms,
            )
            close = getattr(first, "close", None)
            if close is not None:
                close()
            # "auto" measured the runtimes once and picked this one: keep it, without measuring again
            self._runtime, self._spin = "onnxruntime", "run"
            first = self._make_predictor()
        predictors = [first] + [self._make_predictor() for _ in range(settings.instances - 1)]
        self._warm_up(predictors)
        self.batcher = Batcher(
            f"{name}/{version}",
            settings.policy(),
            predictors,
            self._make_predictor,
            loop,
            self._on_batch,
            observe,
        )

    def _make_predictor(self) -> Any:
        from torchship.runtime import load_predictor
        from torchship.runtime.auto import int8_programs

        runtime = self._runtime
        int8 = set(int8_programs(self.artifact).values())
        if int8 and runtime != "auto" and runtime not in int8:
            raise ServeError(
                f"{self.name} is an int8 artifact; runtime {runtime} would run the float "
                "weights it was quantized from",
                fix=f"serve it with --runtime auto or {' or '.join(sorted(int8))}",
            )
        return load_predictor(
            self.artifact,
            runtime,
            threads=self.settings.threads,
            warmup=self.settings.warmup,
            spin=self._spin,
            allow_import=self.settings.allow_import,
        )

    def _example(self, rows: int) -> np.ndarray | dict[str, np.ndarray]:
        if self.v2.single:
            return np.zeros((rows, *self.v2.sample_shape), dtype=np.float32)
        from torchship.runtime.feeds import example_feeds

        return example_feeds(self.artifact.manifest.signature, batch=rows)

    def _one_row_ms(self, predictor: Any, runs: int = 5) -> float:
        """The median time of a one-row run (the predictor is warm)."""
        x = self._example(1)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            run_rows(predictor, x)
            times.append(time.perf_counter() - t0)
        return float(np.median(times)) * 1e3

    def _warm_up(self, predictors: list[Any]) -> None:
        # the runtime warmed up at batch 1; the biggest batch allocates its buffers here, not under load
        x = self._example(self.settings.max_batch_size)
        for predictor in predictors:
            run_rows(predictor, x)

    def _observe(self, result: BatchResult) -> None:
        """On the instance thread, after the answers went out: feed the drift window and request log."""
        if self.monitor is not None:
            self.monitor.offer(result.x, result.y)
        if self.request_log is not None:
            # named inputs/outputs: a classifier's first output holds its classes (V2Signature.classifier)
            first = self.v2.signature.outputs[0].name
            inputs, outputs = [p.rows for p in result.requests], result.outputs
            if self.v2.single and not self.v2.classifier:  # one output but no logits: log it by name
                outputs = [y if isinstance(y, BaseException) else {first: y} for y in outputs]
            logits = first if self.v2.classifier and not self.v2.single else None
            self.request_log.offer(self.name, self.version, inputs, outputs, logits=logits)

    def drift(self) -> dict[str, Any]:
        """The drift scores of the live window, or why there are none."""
        if self.monitor is None:
            return {"status": "off", "reason": self.monitor_reason}
        return self.monitor.to_json()

    # ------------------------------------------------------------------ running
    def overloaded(self) -> ServeError:
        return ServeError(
            f"model {self.name!r} is overloaded ({self.settings.queue_limit} requests queued)",
            fix="retry later",
            status=503,
            headers={"retry-after": "1"},
        )

    def check_capacity(self) -> None:
        """Shed before the body is read or decoded: a full queue answers 503 at the cost of a lookup.

        Full counts the queued requests and the admitted ones still on their way to the queue
        (body being read or decoded): under a burst, many heads pass this check before the
        first of them is queued, and without them the queue would overshoot its limit.
        """
        if self.batcher.depth + self.admitted >= self.settings.queue_limit:
            raise self.overloaded()

    def admit(self) -> Admission:
        """Check capacity and hold a place for this request until it is queued (or fails)."""
        self.check_capacity()
        self.admitted += 1
        return Admission(self)

    async def infer(
        self,
        rows: Any,
        timeout_s: float,
        gone: asyncio.Future | None = None,
        admission: Admission | None = None,
    ) -> Any:
        """Queue ``rows`` for the batcher and wait for this request's logits."""
        try:
            pending = self.batcher.submit(rows, timeout_s)
        except QueueFullError:
            raise self.overloaded() from None
        finally:
            if admission is not None:
                admission.release()  # queued (or refused): the queue's depth counts it from here
        self.in_flight += 1
        self._idle.clear()
        self._depth.set(self.batcher.depth)
        timer = self.loop.call_at(
            pending.deadline_s - time.monotonic() + self.loop.time(), self._expire, pending
        )
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
        self._drop(
            pending,
            ServeError(
                f"request timed out after {timeout_ms:.0f} ms waiting for model {self.name!r}",
                fix="retry later or raise the 'timeout' parameter",
                status=503,
                headers={"retry-after": "1"},
            ),
        )

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
        for pending, out in zip(result.requests, result.outputs, strict=False):
            queue_s = pending.started_s - pending.enqueued_s
            self._queue_h.observe(queue_s)
            self.stats.phases["queue"].add(queue_s)
            if pending.future.done():
                continue
            if isinstance(out, BaseException):
                pending.future.set_exception(
                    ServeError(f"model {self.name!r} failed on this request ({out!r})", status=500)
                )
            else:
                pending.future.set_result(out)
        for pending in result.expired:
            self._expire(pending)
        if result.requests:
            self._compute_h.observe(result.compute_s)
            self._batch_h.observe(result.rows)
            self.stats.record_batch(result.rows, result.input_s, result.compute_s, time.monotonic() - t0)

    def record_outcome(self) -> Outcome:
        """Time one request from here and record how it ended (``with model.record_outcome(): ...``).

        Every inference route (v2 infer over HTTP and gRPC, ``:predict``, ``:classify``) runs its
        request inside one, so the statistics, ``/metrics`` and the dashboard count them alike.
        """
        return Outcome(self)

    def record(self, status: int, total_s: float) -> None:
        """Count one finished request by status: ``/v2/models/{m}/stats`` and ``torchship_requests``."""
        counter = self._status.get(status)
        if counter is None:
            counter = self._status[status] = self.metrics.requests.labels(
                self.name, self.version, str(status)
            )
        counter.inc()
        if status == 200:
            self._total_h.observe(total_s)
        self.stats.record_request(status == 200, total_s)

    async def close(self) -> None:
        """Finish every request already accepted, then stop the instance threads."""
        await self._idle.wait()
        await asyncio.to_thread(self.batcher.stop)
        self.metrics.forget(self.name, self.version)


class Outcome:
    """A context manager that records its request's status (``map_error``'s) and time on exit."""

    __slots__ = ("model", "t0")

    def __init__(self, model: ServedModel):
        self.model = model
        self.t0 = time.monotonic()

    def __enter__(self) -> Outcome:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        self.model.record(200 if exc is None else error_status(exc), time.monotonic() - self.t0)
