"""Compression: each method reads an artifact and writes a new one whose lineage names its parent.

    from torchship import compress
    child = compress.prune(parent, compress.PruneConfig(ratio=0.5), out="runs/pruned")
    child = compress.run(parent, "fuse", {"tolerance": 1e-5}, out="runs/fused")
    result = compress.optimize(parent, compress.OptimizeConfig(max_accuracy_drop=0.01), out="runs/opt")

Metrics of the result are re-measured on the validation split; parent and child figures
(parameters, MACs, weight bytes, accuracy) are recorded in ``lineage.params.report``.
"""

from torchship.compress.base import CompressError, Finetune, methods, run
from torchship.compress.distill import DistillConfig, distill
from torchship.compress.ensemble import EnsembleConfig, ensemble
from torchship.compress.fuse import FuseConfig, fuse
from torchship.compress.optimize import OptimizeConfig, OptimizeResult, optimize
from torchship.compress.prune import PruneConfig, prune
from torchship.compress.quantize import QuantizeConfig, quantize

__all__ = [
    "CompressError",
    "DistillConfig",
    "EnsembleConfig",
    "Finetune",
    "FuseConfig",
    "OptimizeConfig",
    "OptimizeResult",
    "PruneConfig",
    "QuantizeConfig",
    "distill",
    "ensemble",
    "fuse",
    "methods",
    "optimize",
    "prune",
    "quantize",
    "run",
]
