"""AOTInductor: the ``model.aoti.pt2`` package, compiled ahead of time to a native library.

Loading an AOTI package loads a shared library into the process: it is native code, trusted
like any binary you run. torchship loads it only from an artifact whose checksums verify; take
artifacts with AOTI packages only from sources you trust. A package is tied to the torch
version, CPU/GPU kind and platform it was compiled on.
"""

from __future__ import annotations

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
    export_file,
    legacy_shape,
    run_one_input,
    run_signature,
    runtimes,
)
from torchship.runtime.eager import apply_threads


class AotiPredictor:
    """A compiled AOTInductor model; dynamic batch dimension from 1 up."""

    name = "aoti"

    def __init__(
        self,
        path: Path,
        options: RuntimeOptions,
        input_shape: Sequence[int] | None,
        signature: Signature | None = None,
    ):
        apply_threads(options)
        self.device = torch.device(options.device)
        try:
            self.model = torch._inductor.aoti_load_package(str(path))
        except Exception as exc:  # the C++ loader raises RuntimeError or its own types
            raise RuntimeError_(
                f"cannot load AOTInductor package {path.name} ({str(exc).splitlines()[0][:200]})",
                fix="re-export it on this machine with torchship export --format aoti (same torch version)",
            ) from None
        self.path = path
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.signature = signature

    @torch.inference_mode()
    def predict(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(as_batch(batch, self.input_shape)).to(self.device)
        return self.model(x).float().cpu().numpy()

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.signature is None:
            return run_one_input(self, feeds)
        return run_signature(self.model, self.signature, feeds, self.device)

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": self.name,
            "file": self.path.name,
            "device": str(self.device),
            "threads": torch.get_num_threads(),
        }

    def close(self) -> None:
        self.model = None


@runtimes.register("aoti")
def _aoti(artifact: Artifact, options: RuntimeOptions) -> AotiPredictor:
    path = export_file(artifact, "aoti")
    if artifact.is_encrypted(path.name):
        # the AOTInductor loader dlopens a shared library, which must be a file: decrypting would mean
        # writing the compiled model to disk in clear, which torchship never does
        raise RuntimeError_(
            f"{path.name} is encrypted and AOTInductor can only load a package from disk",
            fix="run an encrypted artifact in eager, torchscript, exported or onnxruntime",
        )
    return AotiPredictor(path, options, legacy_shape(artifact), artifact.manifest.signature)
