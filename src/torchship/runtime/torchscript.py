"""TorchScript: the frozen ``model.ts``, optimized for inference after loading.

``torch.jit.load`` does not unpickle Python objects: the archive holds TorchScript code,
compiled and run by TorchScript's own interpreter, and tensors restored by its restricted
unpickler. It is still a program, so load only artifacts whose checksums verify (they do
on ``Artifact.load``) and whose origin you trust.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchship.artifact import Artifact
from torchship.artifact.manifest import Signature
from torchship.runtime.base import (
    RuntimeError_,
    RuntimeOptions,
    as_batch,
    export_bytes,
    export_file,
    legacy_shape,
    run_one_input,
    run_signature,
    runtimes,
)
from torchship.runtime.eager import apply_threads


class TorchScriptPredictor:
    """A TorchScript module; ``optimize_for_inference`` runs here because saving its result breaks reload."""

    name = "torchscript"

    def __init__(
        self,
        path: Path,
        options: RuntimeOptions,
        input_shape: Sequence[int] | None,
        data: bytes | None = None,
        signature: Signature | None = None,
    ):
        apply_threads(options)
        self.device = torch.device(options.device)
        try:
            source = io.BytesIO(data) if data is not None else str(path)  # encrypted: stays in memory
            module = torch.jit.load(source, map_location=self.device)
        except RuntimeError as exc:
            raise RuntimeError_(
                f"cannot load TorchScript {path.name} ({str(exc).splitlines()[0][:200]})",
                fix="re-export it with torchship export --format torchscript",
            ) from None
        self.optimized = options.extra.get("optimize", True)
        self.module = torch.jit.optimize_for_inference(module) if self.optimized else module.eval()
        self.path = path
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.signature = signature

    @torch.inference_mode()
    def predict(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(as_batch(batch, self.input_shape)).to(self.device)
        return self.module(x).float().cpu().numpy()

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.signature is None:
            return run_one_input(self, feeds)
        return run_signature(self.module, self.signature, feeds, self.device)

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": self.name,
            "file": self.path.name,
            "device": str(self.device),
            "threads": torch.get_num_threads(),
            "optimize_for_inference": self.optimized,
        }

    def close(self) -> None:
        self.module = None  # type: ignore[assignment]


@runtimes.register("torchscript")
def _torchscript(artifact: Artifact, options: RuntimeOptions) -> TorchScriptPredictor:
    path = export_file(artifact, "torchscript")
    return TorchScriptPredictor(
        path, options, legacy_shape(artifact), export_bytes(artifact, path), artifact.manifest.signature
    )
