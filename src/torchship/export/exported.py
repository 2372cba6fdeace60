"""torch.export: the ExportedProgram saved as ``model.pt2``, batch dimension dynamic.

A PyTorch 2 model served from this file needs neither the model's Python code nor
TorchScript; loading reads JSON and raw tensor bytes (see ``runtime/exported.py``).
"""

from __future__ import annotations

import torch

from torchship.export.base import ExportContext, Staged, exporters, runs_in

FILE = "model.pt2"


@exporters.register("exported")
@runs_in("exported")
def export_program(ctx: ExportContext) -> Staged:
    """Save the shared ExportedProgram as ``model.pt2``.

    Raises:
        ExportError: If torch.export cannot trace the model (from ``capture_program``).
    """
    path = ctx.staging / FILE
    torch.export.save(ctx.program(), str(path))
    from torchship.runtime.base import RuntimeOptions
    from torchship.runtime.exported import ExportedPredictor

    predictor = ExportedPredictor(
        path, RuntimeOptions(device=ctx.options.device), ctx.artifact.manifest.input.shape
    )
    record = {"file": FILE, "dynamic_batch": True, "torch": torch.__version__}
    return Staged({FILE: path}, record, predictor)
