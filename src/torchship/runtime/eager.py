"""Eager PyTorch: the reference every other runtime is compared against."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch

from torchship.artifact import Artifact
from torchship.models.calling import SignatureModule
from torchship.runtime.base import RuntimeOptions, runtimes


def apply_threads(options: RuntimeOptions) -> None:
    if options.threads:
        torch.set_num_threads(options.threads)
    if options.inter_op_threads:
        # can only be set once per process, before any inter-op work
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(options.inter_op_threads)


class EagerPredictor:
    name = "eager"

    def __init__(self, artifact: Artifact, options: RuntimeOptions):
        apply_threads(options)
        self.device = torch.device(options.device)
        self.model = artifact.build_model(options.allow_import).to(self.device).eval()
        self.options = options
        signature = artifact.manifest.signature
        arch = artifact.manifest.architecture
        keyword = arch is not None and arch.call == "keyword"
        self.call = SignatureModule(self.model, signature.input_names, keyword)
        self.output_names = signature.output_names

    @torch.inference_mode()
    def predict(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        return self.model(x).float().cpu().numpy()

    @torch.inference_mode()
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensors = [
            torch.from_numpy(np.ascontiguousarray(feeds[n])).to(self.device) for n in self.call.input_names
        ]
        return dict(
            zip(self.output_names, (t.float().cpu().numpy() for t in self.call(*tensors)), strict=False)
        )

    def describe(self) -> dict[str, Any]:
        return {"runtime": self.name, "device": str(self.device), "threads": torch.get_num_threads()}

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]


@runtimes.register("eager")
def _eager(artifact: Artifact, options: RuntimeOptions) -> EagerPredictor:
    return EagerPredictor(artifact, options)
