"""One served model version: its predictors and batcher, its v2 signature, and its answers.

The v2 signature is the manifest's: every named input and output with its datatype, ``-1``
for each named dynamic dim. A classifier also answers ``probabilities`` (softmax of its first
output) and takes the ``classification`` parameter. Every dim, the named dims' agreement
across inputs, row count, integer ranges and finiteness are checked here, before a request
can join a batch, so one bad request never fails the others. A model with one fixed-size
float input and one output keeps the one-array path (``predict``); others run by name.
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

PROBABILITIES = "probabilities"
V2_TYPES = {
    "float32": "FP32",
    "float16": "FP16",
    "bfloat16": "BF16",
    "int64": "INT64",
    "int32": "INT32",
    "bool": "BOOL",
}


class ClientGoneError(Exception):
    """The client closed the connection before its request was computed."""


def softmax(logits: np.ndarray) -> np.ndarray:
    # logits: (n, classes)
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


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
        from torchship.runtime.base import legacy_shape

        manifest = artifact.manifest
        self.signature = manifest.signature
        self.task = manifest.task
        shape = legacy_shape(artifact)
        # one fixed-size float input and one output: rows travel as one array (predict)
        self.single = shape is not None and len(self.signature.outputs) == 1
        self.sample_shape = tuple(shape) if self.single else ()
        self.labels = list(manifest.labels)
        first = self.signature.outputs[0]
        self.classifier = self.task == "classification" and len(first.shape) == 2
        self.output_names = self.signature.output_names + ([PROBABILITIES] if self.classifier else [])
        self.in_flight = 0
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
        predictors = [self._make_predictor() for _ in range(settings.instances)]
        self.runtime = getattr(predictors[0], "picked", predictors[0].name)
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

        runtime = self.settings.runtime
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
            spin=False,
            allow_import=self.settings.allow_import,
        )

    def _warm_up(self, predictors: list[Any]) -> None:
        # the runtime warmed up at batch 1; the biggest batch allocates its buffers here, not under load
        if self.single:
            batch = np.zeros((self.settings.max_batch_size, *self.sample_shape), dtype=np.float32)
            for predictor in predictors:
                predictor.predict(batch)
            return
        from torchship.runtime.feeds import example_feeds

        feeds = example_feeds(self.signature, batch=self.settings.max_batch_size)
        for predictor in predictors:
            predictor.run(feeds)

    def _observe(self, result: BatchResult) -> None:
        """On the instance thread, after the answers went out: feed the drift window and request log."""
        if self.monitor is not None:
            self.monitor.offer(result.x, result.y)
        if self.request_log is not None and not isinstance(result.x, dict):  # the log writes one-input rows
            self.request_log.offer(self.name, self.version, [p.rows for p in result.requests], result.outputs)

    def drift(self) -> dict[str, Any]:
        """The drift scores of the live window, or why there are none."""
        if self.monitor is None:
            return {"status": "off", "reason": self.monitor_reason}
        return self.monitor.to_json()

    # ------------------------------------------------------------------ signature
    def _tensors(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Inputs and outputs as ``{name, datatype, shape}``; named dims are ``-1``."""

        def entry(name: str, dtype: str, shape: list[int | str]) -> dict[str, Any]:
            dims = [-1 if isinstance(d, str) else d for d in shape]
            return {"name": name, "datatype": V2_TYPES[dtype], "shape": dims}

        inputs = [entry(t.name, t.dtype, t.shape) for t in self.signature.inputs]
        outputs = [entry(t.name, "float32", t.shape) for t in self.signature.outputs]
        if self.classifier:
            outputs.append({**outputs[0], "name": PROBABILITIES})
        return inputs, outputs

    def metadata(self) -> dict[str, Any]:
        inputs, outputs = self._tensors()
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": f"torchship_{self.runtime}",
            "inputs": inputs,
            "outputs": outputs,
            "parameters": {"task": self.task, "runtime": self.runtime},
        }

    def triton_config(self) -> dict[str, Any]:
        """The model configuration in Triton's JSON form, so Triton's tools can read it."""
        s = self.settings
        inputs, outputs = self._tensors()

        def config(t: dict[str, Any]) -> dict[str, Any]:
            return {"name": t["name"], "data_type": f"TYPE_{t['datatype']}", "dims": t["shape"][1:]}

        return {
            "name": self.name,
            "platform": f"torchship_{self.runtime}",
            "backend": "torchship",
            "version_policy": {"latest": {"num_versions": 1}},
            "max_batch_size": s.max_batch_size,
            "input": [{**config(t), "format": "FORMAT_NONE"} for t in inputs],
            "output": [config(t) for t in outputs],
            "dynamic_batching": {
                "preferred_batch_size": list(s.preferred_batch_sizes),
                "max_queue_delay_microseconds": int(s.max_queue_delay_ms * 1000),
                "default_queue_policy": {
                    "timeout_action": "REJECT",
                    "default_timeout_microseconds": int(s.timeout_ms * 1000),
                    "allow_timeout_override": True,
                    "max_queue_size": s.queue_limit,
                },
            },
            "instance_group": [{"name": self.name, "kind": "KIND_CPU", "count": s.instances}],
            "parameters": {
                "torchship_threads": {"string_value": str(s.threads or "")},
                "torchship_runtime": {"string_value": self.runtime},
            },
        }

    def check_input(self, request: InferRequest) -> np.ndarray | dict[str, np.ndarray]:
        """The request's rows as FP32 (n, *input.shape) (named arrays for other models), or a 400."""
        if not self.single:
            return self._check_named(request)
        INPUT = self.signature.inputs[0].name  # noqa: N806 - the one input's name ("input" for zoo models)
        if set(request.inputs) != {INPUT}:
            raise ServeError(
                f"model {self.name!r} takes exactly one input named {INPUT!r}, got {sorted(request.inputs)}"
            )
        x = request.inputs[INPUT]
        want = list(self.sample_shape)
        if x.ndim != len(want) + 1 or list(x.shape[1:]) != want:
            raise ServeError(
                f"input {INPUT!r} has shape {list(x.shape)}; model {self.name!r} expects [n, "
                f"{', '.join(map(str, want))}]"
            )
        n = x.shape[0]
        if not 1 <= n <= self.settings.max_batch_size:
            raise ServeError(
                f"input {INPUT!r} has {n} rows; model {self.name!r} takes 1 to "
                f"{self.settings.max_batch_size} per request"
            )
        x = x.astype(np.float32, copy=False)
        if not x.flags.writeable:  # binary tensors are views of the body; runtimes may write in place
            x = x.copy()
        if not np.isfinite(x).all():
            first = int(np.flatnonzero(~np.isfinite(x.reshape(-1)))[0])
            raise ServeError(f"input {INPUT!r} holds NaN or infinite values (first at flat index {first})")
        return x

    def _check_named(self, request: InferRequest) -> dict[str, np.ndarray]:
        from torchship.runtime.feeds import FeedError, check_feeds

        for spec in self.signature.inputs:
            x = request.inputs.get(spec.name)
            if x is not None and not spec.is_float and x.dtype.kind == "f":
                raise ServeError(
                    f"input {spec.name!r} is {spec.dtype}; got floating-point data",
                    fix=f"send {V2_TYPES[spec.dtype]}",
                )
        try:
            feeds = check_feeds(self.signature, request.inputs)
        except FeedError as exc:
            raise ServeError(f"model {self.name!r}: {exc}") from None
        n = next(iter(feeds.values())).shape[0]
        if not 1 <= n <= self.settings.max_batch_size:
            raise ServeError(
                f"inputs have {n} rows; model {self.name!r} takes 1 to "
                f"{self.settings.max_batch_size} per request"
            )
        for spec in self.signature.inputs:
            x = feeds[spec.name]
            if spec.is_float and not np.isfinite(x).all():
                raise ServeError(f"input {spec.name!r} holds NaN or infinite values")
            if spec.range is not None and x.size and (x.min() < spec.range[0] or x.max() >= spec.range[1]):
                raise ServeError(f"input {spec.name!r} has values outside [{spec.range[0]}, {spec.range[1]})")
        return feeds

    def check_outputs(self, wanted: list[RequestedOutput] | None) -> None:
        for out in wanted or ():
            if out.name not in self.output_names:
                raise ServeError(
                    f"model {self.name!r} has no output {out.name!r}; "
                    f"choose from {', '.join(self.output_names)}"
                )
            if out.classification is not None and not (
                self.classifier and out.name in (self.output_names[0], PROBABILITIES)
            ):
                raise ServeError(
                    f"output {out.name!r} of model {self.name!r} ({self.task}) takes no "
                    "'classification' "
                    "parameter",
                    fix="ask for it only on a classifier's scores",
                )

    def outputs(
        self, result: np.ndarray | dict[str, np.ndarray], wanted: list[RequestedOutput] | None, binary: bool
    ) -> list[OutputTensor]:
        """The response tensors for one request's outputs (the logits array of a one-output model)."""
        values = result if isinstance(result, dict) else {self.signature.outputs[0].name: result}
        tensors = []
        for out in wanted or [RequestedOutput(name) for name in self.output_names]:
            if out.name == PROBABILITIES:
                answer = softmax(values[self.signature.outputs[0].name])
            else:
                answer = values[out.name]
            if out.classification is not None:
                answer = classify(answer, out.classification, self.labels)
            tensors.append(OutputTensor(out.name, answer, binary if out.binary is None else out.binary))
        return tensors

    # ------------------------------------------------------------------ running
    def overloaded(self) -> ServeError:
        return ServeError(
            f"model {self.name!r} is overloaded ({self.settings.queue_limit} requests queued)",
            fix="retry later",
            status=503,
            headers={"retry-after": "1"},
        )

    def check_capacity(self) -> None:
        """Shed before the body is read or decoded: a full queue answers 503 at the cost of a lookup."""
        if self.batcher.depth >= self.settings.queue_limit:
            raise self.overloaded()

    async def infer(self, rows: Any, timeout_s: float, gone: asyncio.Future | None = None) -> Any:
        """Queue ``rows`` for the batcher and wait for this request's logits."""
        try:
            pending = self.batcher.submit(rows, timeout_s)
        except QueueFullError:
            raise self.overloaded() from None
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

    def record(self, status: int, total_s: float) -> None:
        """Count one finished request by status (called by the HTTP layer)."""
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
