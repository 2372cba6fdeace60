"""torch.export: the ``model.pt2`` ExportedProgram, run as a graph module without the model's code.

``torch.export.load`` falls back to full unpickling (``torch.load(weights_only=False)``,
``pickle.loads``) for payloads the archive marks as pickled: tensor subclasses, opaque
objects, legacy weight files, and sample inputs that ``weights_only`` cannot read. torchship
writes none of those, so before loading it opens the archive (a zip of JSON and raw tensor
bytes) and refuses any of them; what is then loaded is JSON plus raw tensor data.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch

from torchship.artifact import Artifact, Signature
from torchship.runtime.base import (
    RuntimeError_,
    RuntimeOptions,
    as_batch,
    export_bytes,
    export_file,
    legacy_shape,
    run_signature,
    runtimes,
)
from torchship.runtime.eager import apply_threads


class ExportedPredictor:
    """The ExportedProgram's ``module()``; its batch dimension is dynamic."""

    name = "exported"

    def __init__(
        self,
        path: Path,
        options: RuntimeOptions,
        input_shape: Sequence[int] | None,
        signature: Signature | None = None,
        data: bytes | None = None,
    ):
        apply_threads(options)
        # an encrypted export is checked and loaded from its decrypted bytes, in memory
        check_pt2_without_pickles(io.BytesIO(data) if data is not None else path, path.name)
        self.device = torch.device(options.device)
        # int8 programs (compress quantize --mode pt2e) call quantized_decomposed ops, which torch
        # registers only when this module is imported; without it a fresh process cannot load them
        from torch.ao.quantization.fx import _decomposed  # noqa: F401

        try:
            program = torch.export.load(io.BytesIO(data) if data is not None else str(path))
        except Exception as exc:  # the deserializer raises assorted types for a bad archive
            raise RuntimeError_(
                f"cannot load ExportedProgram {path.name} ({str(exc).splitlines()[0][:200]})",
                fix="re-export it with torchship export --format exported (same torch version)",
            ) from None
        self.module = program.module().to(self.device)
        self.path = path
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.signature = signature

    @torch.inference_mode()
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.signature is None:
            return {"logits": self.predict(feeds["input"])}
        return run_signature(self.module, self.signature, feeds, self.device)

    @torch.inference_mode()
    def predict(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(as_batch(batch, self.input_shape)).to(self.device)
        out = self.module(x)
        return (out[0] if isinstance(out, (tuple, list)) else out).float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": self.name,
            "file": self.path.name,
            "device": str(self.device),
            "threads": torch.get_num_threads(),
        }

    def close(self) -> None:
        self.module = None  # type: ignore[assignment]


def check_pt2_without_pickles(path: Path | io.BytesIO, label: str | None = None) -> None:
    """Refuse a .pt2 archive that would make ``torch.export.load`` unpickle anything.

    Raises:
        RuntimeError_: If the archive marks a weight or constant as pickled, holds legacy
            ``.pt`` weights, custom or opaque objects, or sample inputs ``weights_only`` rejects.
    """
    label = label or Path(path).name  # type: ignore[arg-type]
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise RuntimeError_(f"{label} is not a .pt2 archive ({exc})", fix="re-export it") from None
    with archive:
        for name in archive.namelist():
            reason = _pickled_payload(archive, PurePosixPath(name))
            if reason:
                raise RuntimeError_(
                    f"{label} holds a pickled payload ({reason}: {name}); torchship does not unpickle",
                    fix="re-export it with torchship export --format exported",
                )


def _pickled_payload(archive: zipfile.ZipFile, name: PurePosixPath) -> str | None:
    parent = name.parent.as_posix()
    if parent.endswith(("data/weights", "data/constants")):
        if name.suffix == ".pt":
            return "legacy pickled weights"
        if name.name.startswith(("custom_obj_", "opaque_obj_")):
            return "custom object"
        if name.name.endswith("_config.json"):
            config = json.loads(archive.read(str(name))).get("config", {})
            if any(entry.get("use_pickle") for entry in config.values()):
                return "tensor marked use_pickle"
    if parent.endswith("data/sample_inputs"):
        try:
            torch.load(io.BytesIO(archive.read(str(name))), weights_only=True)
        except Exception:  # any failure here means torch.export.load would fall back to pickle
            return "sample inputs weights_only cannot read"
    return None


@runtimes.register("exported")
def _exported(artifact: Artifact, options: RuntimeOptions) -> ExportedPredictor:
    path = export_file(artifact, "exported")
    return ExportedPredictor(
        path, options, legacy_shape(artifact), artifact.manifest.signature, export_bytes(artifact, path)
    )
