"""Export: ONNX, TorchScript, torch.export, AOTInductor and Triton repositories, each verified.

from torchship.export import export
art = export(artifact, ["onnx", "torchscript", "triton"], out="runs/digits-cnn/exported")
art.manifest.exports["onnx"]["max_abs_diff"]     # vs eager PyTorch on the validation split
"""

from torchship.export import aoti, exported, onnx, torchscript, triton  # noqa: F401 - register the formats
from torchship.export.base import FORMAT_ORDER, ExportError, ExportParityError, exporters
from torchship.export.parity import TOLERANCES, Parity
from torchship.export.pipeline import export, resolve_formats

__all__ = [
    "FORMAT_ORDER",
    "TOLERANCES",
    "ExportError",
    "ExportParityError",
    "Parity",
    "export",
    "exporters",
    "resolve_formats",
]
