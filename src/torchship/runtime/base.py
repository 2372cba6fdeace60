"""The one interface every runtime implements, and the registry that picks one by name.

``bench``, ``optimize``, ``evaluate`` and the server all run models through a ``Predictor``:

    predictor = load_predictor(artifact, "onnxruntime", threads=2)
    logits = predictor.predict(batch)          # np.ndarray (n, *input.shape) -> (n, classes)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from torchship.artifact import Artifact
from torchship.artifact.manifest import Signature
from torchship.errors import TorchshipError
from torchship.registry import Registry


class RuntimeError_(TorchshipError):  # noqa: N801, N818 - the trailing _ avoids shadowing the builtin RuntimeError
    """A runtime cannot load or run this artifact."""


@dataclass(frozen=True)
class RuntimeOptions:
    """How to run: threads for intra-/inter-op parallelism, device, warm-up iterations."""

    threads: int | None = None
    inter_op_threads: int | None = None
    device: str = "cpu"
    warmup: int = 3
    allow_import: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


class Predictor(Protocol):
    """Named tensors in, named tensors out (``run``), in the manifest's signature.

    ``predict`` is the one-input shorthand: normalized float32 inputs of any batch size in,
    the first output out.
    """

    name: str

    def predict(self, batch: np.ndarray) -> np.ndarray: ...

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def describe(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


PredictorFactory = Callable[[Artifact, RuntimeOptions], Predictor]
runtimes: Registry[PredictorFactory] = Registry("runtime", error=RuntimeError_)


def load_predictor(
    artifact: Artifact,
    runtime: str = "eager",
    *,
    threads: int | None = None,
    device: str = "cpu",
    warmup: int = 3,
    allow_import: Iterable[str] = (),
    **extra: Any,
) -> Predictor:
    """Load ``artifact`` into the named runtime and warm it up."""
    factory = runtimes.get(runtime)
    options = RuntimeOptions(
        threads=threads, device=device, warmup=warmup, allow_import=tuple(allow_import), extra=extra
    )
    predictor = factory(artifact, options)
    warm_up(predictor, artifact, options.warmup)
    return predictor


def warm_up(predictor: Predictor, artifact: Artifact, iterations: int) -> None:
    if iterations <= 0:
        return
    from torchship.runtime.feeds import example_feeds

    feeds = example_feeds(artifact.manifest.signature, batch=1)
    for _ in range(iterations):
        predictor.run(feeds)


def legacy_shape(artifact: Artifact) -> tuple[int, ...] | None:
    """One sample's shape for ``predict`` when the model takes one fixed-size float input, else None."""
    spec = artifact.manifest.signature.inputs
    if len(spec) != 1 or not spec[0].is_float or any(isinstance(d, str) for d in spec[0].shape[1:]):
        return None
    return tuple(int(d) for d in spec[0].shape[1:])


def export_file(artifact: Artifact, fmt: str) -> Path:
    """Path of the artifact's verified ``fmt`` export.

    Raises:
        RuntimeError_: If the artifact has no such export, naming the command that makes it.
    """
    info = artifact.manifest.exports.get(fmt) or {}
    name = info.get("file")
    if not name or name not in artifact.manifest.files or artifact.path is None:
        where = artifact.path if artifact.path is not None else "ART"
        raise RuntimeError_(
            f"artifact {artifact.manifest.name} has no {fmt} export",
            fix=f"run: torchship export {where} --format {fmt}",
        )
    return artifact.path / name


def export_bytes(artifact: Artifact, path: Path) -> bytes | None:
    """The decrypted bytes of an encrypted export, held in memory only; None for a clear one.

    Runtimes load an encrypted export from these bytes (never from a clear file on disk).
    """
    name = path.relative_to(artifact.path).as_posix() if artifact.path is not None else path.name
    return artifact.read_bytes(name) if artifact.is_encrypted(name) else None


def as_batch(batch: Any, shape: Sequence[int] | None) -> np.ndarray:
    """A contiguous float32 array of shape (n, *shape), or a one-line error saying what was wrong.

    Raises:
        RuntimeError_: If the batch does not have the input shape the manifest declares.
    """
    if shape is None:
        raise RuntimeError_(
            "this model takes several or non-float inputs; predict() feeds one",
            fix="call run() with a dict of named inputs",
        )
    x = np.ascontiguousarray(batch, dtype=np.float32)
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != tuple(shape):
        raise RuntimeError_(
            f"batch has shape {list(x.shape)}, expected (n, {', '.join(map(str, shape))})",
            fix="send normalized inputs shaped like the manifest's input, with a leading batch dimension",
        )
    return x


def run_signature(
    call: Any, signature: Signature, feeds: dict[str, np.ndarray], device: Any
) -> dict[str, np.ndarray]:
    """Call a compiled module with the signature's inputs in order; name its outputs in order.

    For modules that take positional tensors (a torch.export program, a traced TorchScript
    module, an AOTInductor package) and return a tensor, a tuple of tensors or a dict.
    """
    import torch

    tensors = [torch.from_numpy(np.ascontiguousarray(feeds[n])).to(device) for n in signature.input_names]
    with torch.inference_mode():
        out = call(*tensors)
    values = list(out.values()) if isinstance(out, dict) else out if isinstance(out, (tuple, list)) else [out]
    return dict(zip(signature.output_names, (t.float().cpu().numpy() for t in values), strict=False))


def run_one_input(predictor: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``run`` for runtimes that only know ``predict``: one float input in, ``logits`` out."""
    if len(feeds) != 1:
        raise RuntimeError_(
            f"runtime {predictor.name} feeds one input, got {sorted(feeds)}",
            fix="use the exported or onnxruntime runtime for models with several inputs",
        )
    return {"logits": predictor.predict(next(iter(feeds.values())))}
