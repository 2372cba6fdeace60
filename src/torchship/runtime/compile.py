"""torch.compile: the eager model compiled by TorchInductor in this process.

Nothing is read from disk but the weights, so any artifact works; the first batches pay the
compile (tens of seconds on a small CPU), which ``warmup`` absorbs. Extra options: ``mode``
(``default``, ``reduce-overhead``, ``max-autotune``) and ``dynamic`` (True/False/None).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from torchship.artifact import Artifact
from torchship.runtime.base import RuntimeOptions, as_batch, run_one_input, runtimes
from torchship.runtime.eager import apply_threads


class CompilePredictor:
    """``torch.compile(model)``; batch sizes after the first reuse one dynamic-shape graph."""

    name = "compile"

    def __init__(self, artifact: Artifact, options: RuntimeOptions):
        apply_threads(options)
        self.device = torch.device(options.device)
        self.mode = options.extra.get("mode", "default")
        self.dynamic = options.extra.get("dynamic")
        model = artifact.build_model(options.allow_import).to(self.device).eval()
        self.model = torch.compile(
            model, mode=None if self.mode == "default" else self.mode, dynamic=self.dynamic
        )
        self.input_shape = tuple(artifact.manifest.input.shape)

    @torch.inference_mode()
    def predict(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(as_batch(batch, self.input_shape)).to(self.device)
        return self.model(x).float().cpu().numpy()

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return run_one_input(self, feeds)

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": self.name,
            "device": str(self.device),
            "threads": torch.get_num_threads(),
            "mode": self.mode,
            "dynamic": self.dynamic,
        }

    def close(self) -> None:
        self.model = None


@runtimes.register("compile")
def _compile(artifact: Artifact, options: RuntimeOptions) -> CompilePredictor:
    return CompilePredictor(artifact, options)
