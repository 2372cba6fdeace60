"""Runtimes: one Predictor interface for eager, TorchScript, torch.export, AOTInductor, ONNX Runtime, ...

Every runtime registers itself on import; optional libraries (onnxruntime) are imported only
when their runtime is loaded::

    predictor = load_predictor(artifact, "onnxruntime", threads=2)
    logits = predictor.predict(batch)          # np.ndarray (n, *input.shape) -> (n, classes)
"""

from torchship.runtime import aoti, auto, compile, eager, exported, onnxruntime, torchscript  # noqa: F401 - register
from torchship.runtime.base import Predictor, RuntimeOptions, export_file, load_predictor, runtimes

__all__ = ["Predictor", "RuntimeOptions", "export_file", "load_predictor", "runtimes"]
