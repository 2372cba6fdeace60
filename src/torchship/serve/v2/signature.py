"""A served model's v2 signature: its metadata, Triton config, request checks and response tensors.

The v2 signature is the manifest's: every named input and output with its datatype, ``-1``
for each named dynamic dim. A classifier also answers ``probabilities`` (softmax of its first
output) and takes the ``classification`` parameter. Every dim, the named dims' agreement
across inputs, row count, integer ranges and finiteness are checked here, before a request
can join a batch, so one bad request never fails the others. A model with one fixed-size
float input and one output keeps the one-array path (``single``); others run by name.
HTTP (``serve/app.py``) and gRPC (``serve/grpc_service.py``) both decode with
``decode_infer``, check with ``check_input``/``check_outputs`` and answer ``outputs``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from torchship.serve.v2.codec import InferRequest, OutputTensor, RequestedOutput, ServeError, classify

if TYPE_CHECKING:
    from torchship.artifact import Artifact
    from torchship.serve.config import ModelSettings

PROBABILITIES = "probabilities"
V2_TYPES = {
    "float32": "FP32",
    "float16": "FP16",
    "bfloat16": "BF16",
    "int64": "INT64",
    "int32": "INT32",
    "bool": "BOOL",
}


# A request's rows are copied and checked on the event loop, which should not let go of the
# interpreter lock for them: numpy releases it inside a copy or ufunc of more than a few hundred
# elements, and a model's instance thread waiting for the lock (to hand back a batch's answers and
# take the next batch) gets it then, for up to the switch interval, while the loop waits.
# Measured (docs/benchmarks.md, "The interpreter lock on the event loop"): with numpy's copy and
# isfinite here the cnn with 2 workers formed batches of 4.1-4.5 rows, with this 5.9-7.5, and served
# 9 % more on average over 8 alternating rounds. So FP32 rows up to _LOCK_HELD_BYTES are copied and
# checked with bytes methods, which keep the lock: a float32 is NaN or infinite only when its
# exponent bits are all ones, so its sign-and-exponent byte is 0x7F or 0xFF. Finite values above
# 1.7e38 share that byte and are checked exactly.
_LOCK_HELD_BYTES = 1 << 20  # above this the copy takes long enough that releasing the lock is worth it
_HIGH_BYTE = 3 if sys.byteorder == "little" else 0  # the float32's sign-and-exponent byte


def finite_copy(x: np.ndarray) -> tuple[np.ndarray, int | None]:
    """A writeable C-contiguous copy of FP32 ``x``, and the flat index of its first NaN or infinite
    value (None: all finite). Keeps the interpreter lock for ``x`` up to ``_LOCK_HELD_BYTES``."""
    if x.nbytes > _LOCK_HELD_BYTES:
        copy = np.array(x, dtype=np.float32, order="C")
        finite = bool(np.isfinite(copy).all())
    else:
        raw = bytearray(np.ascontiguousarray(x, dtype=np.float32))
        copy = np.frombuffer(raw, np.float32).reshape(x.shape)
        high = raw[_HIGH_BYTE::4]
        finite = high.find(0x7F) < 0 and high.find(0xFF) < 0
        finite = finite or bool(np.isfinite(copy).all())  # a candidate byte: check exactly
    if finite:
        return copy, None
    return copy, int(np.flatnonzero(~np.isfinite(copy.reshape(-1)))[0])


def softmax(logits: np.ndarray) -> np.ndarray:
    # logits: (n, classes)
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


class V2Signature:
    """What one model version takes and answers in the v2 protocol."""

    def __init__(self, name: str, version: str, artifact: Artifact, settings: ModelSettings, runtime: str):
        from torchship.runtime.base import legacy_shape

        manifest = artifact.manifest
        self.name = name
        self.version = version
        self.settings = settings
        self.runtime = runtime
        self.signature = manifest.signature
        self.task = manifest.task
        shape = legacy_shape(artifact)
        # one fixed-size float input and one output: rows travel as one array (predict)
        self.single = shape is not None and len(self.signature.outputs) == 1
        self.sample_shape = tuple(shape) if self.single else ()
        self.labels = list(manifest.labels)
        self.classifier = manifest.answers_classes
        self.output_names = self.signature.output_names + ([PROBABILITIES] if self.classifier else [])

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
        # a copy: binary tensors are views of the body, and runtimes may write in place
        x, first = finite_copy(x)
        if first is not None:
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
