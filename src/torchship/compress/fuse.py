"""Fusion: fold every batch norm into the convolution or linear layer that feeds it.

In eval mode a batch norm is an affine map per channel, so it folds exactly into the
weights and bias of the layer before it (``torch.nn.utils.fusion``): one layer fewer per
block, the same function. Pairs are found on the traced graph (``torch.fx``), and only
where the layer's output feeds nothing but the batch norm, so no other consumer changes.
The fused pairs are recorded in the architecture (``fused``) so the zoo rebuilds the
BN-less layers with their new bias; the result must match the parent within
``tolerance`` on the validation inputs, and the measured max |Δ| goes into the lineage.

Other inference-time fusions (conv + ReLU, conv + add) have no eager-mode form that
changes the model; ONNX Runtime and Inductor do them when the exported graph is compiled.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from pydantic import Field, PositiveFloat
from rich.console import Console
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from torchship.artifact import Artifact
from torchship.compress.base import CompressError, Strict, check_out, register
from torchship.compress.measure import load_val, model_stats, val_metrics
from torchship.models.structure import fusable, is_batch_norm, rebuildable_architecture, set_module_

TOLERANCE = 1e-5


class FuseConfig(Strict):
    """Fusion settings: the largest output difference accepted, and the data checked on."""

    tolerance: PositiveFloat = Field(default=TOLERANCE, description="max |Δ| of logits accepted")
    data: str | dict[str, Any] | None = None


@register("fuse", FuseConfig)
def fuse(
    artifact: Artifact,
    cfg: FuseConfig | None = None,
    *,
    out: str | Path,
    allow_import: Iterable[str] = (),
    console: Console | None = None,
) -> Artifact:
    """Fold batch norms into the preceding layers and save the result, proven equal to its parent.

    Raises:
        CompressError: The model cannot be traced, has nothing to fuse, or the outputs differ
            by more than ``tolerance``.
    """
    cfg = cfg or FuseConfig()
    target = check_out(out, artifact)
    allowed = tuple(allow_import)
    val = load_val(artifact, cfg.data)
    model = artifact.build_model(allowed)
    shape = artifact.manifest.input.shape
    name = artifact.manifest.name
    before = model_stats(model, shape, val_metrics(model, val))
    pairs = find_fusable_pairs(model, name)
    if not pairs:
        raise CompressError(
            f"{name} has no batch norm after a conv or linear layer to fold",
            fix="fusion only changes models with batch norm; nothing to do",
        )
    reference = artifact.build_model(allowed)
    fuse_pairs_(model, pairs)
    max_abs_diff = _max_abs_diff(reference, model, val.x)
    if max_abs_diff > cfg.tolerance:
        raise CompressError(
            f"fused {name} differs from its parent by {max_abs_diff:.3g} (tolerance {cfg.tolerance:g})",
            fix="raise --tolerance if that is acceptable, or report the model as a bug",
        )
    base_arch = artifact.manifest.architecture.model_dump(by_alias=True, exclude_none=True)
    architecture = rebuildable_architecture(model, base_arch, fused=pairs, allow_import=allowed)
    metrics = {**artifact.manifest.metrics, "val": val_metrics(model, val)}
    params = cfg.model_dump(mode="json") | {
        "pairs": [list(p) for p in pairs],
        "max_abs_diff": max_abs_diff,
        "report": {"parent": before, "fused": model_stats(model, shape, metrics["val"])},
    }
    child = artifact.derive(op="fuse", params=params, model=model, architecture=architecture, metrics=metrics)
    return child.save(target)


def find_fusable_pairs(model: nn.Module, name: str = "model") -> list[tuple[str, str]]:
    """(layer, batch norm) module paths where the layer's only consumer is the batch norm.

    Raises:
        CompressError: If ``torch.fx`` cannot trace the model.
    """
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception as exc:  # noqa: BLE001 - any tracer failure means the same to the user
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise CompressError(
            f"torch.fx cannot trace {name} to find fusable layers ({first})",
            fix="fusion needs a model without data-dependent control flow",
        ) from None
    modules = dict(model.named_modules())
    pairs: list[tuple[str, str]] = []
    for node in graph.nodes:
        if node.op != "call_module" or not is_batch_norm(modules[node.target]):
            continue
        source = node.args[0]
        if not isinstance(source, fx.Node) or source.op != "call_module" or len(source.users) != 1:
            continue
        layer, norm = modules[source.target], modules[node.target]
        if (
            fusable(layer)
            and norm.track_running_stats
            and norm.running_mean is not None
            and _fits(layer, norm)
        ):
            pairs.append((source.target, node.target))
    return pairs


def _fits(layer: nn.Module, norm: nn.Module) -> bool:
    out_features = layer.weight.shape[0]
    return norm.num_features == out_features and (
        not isinstance(layer, nn.Linear) or isinstance(norm, nn.BatchNorm1d)
    )


def fuse_pairs_(model: nn.Module, pairs: Iterable[tuple[str, str]]) -> nn.Module:
    """Replace each (layer, batch norm) pair by the folded layer and an Identity, in place."""
    model.eval()
    for layer_name, norm_name in pairs:
        layer, norm = model.get_submodule(layer_name), model.get_submodule(norm_name)
        folded = (
            fuse_linear_bn_eval(layer, norm)
            if isinstance(layer, nn.Linear)
            else fuse_conv_bn_eval(layer, norm)
        )
        set_module_(model, layer_name, folded)
        set_module_(model, norm_name, nn.Identity())
    return model


@torch.inference_mode()
def _max_abs_diff(
    reference: nn.Module, candidate: nn.Module, x: torch.Tensor, batch_size: int = 512
) -> float:
    """Largest |Δ| between the two models' logits over ``x`` and a batch of random inputs."""
    reference.eval(), candidate.eval()
    # random inputs (normalized scale, like x) also exercise channels the data leaves quiet
    probe = torch.cat([x, torch.randn(64, *x.shape[1:], generator=torch.Generator().manual_seed(0))])
    worst = 0.0
    for start in range(0, len(probe), batch_size):
        xb = probe[start : start + batch_size]
        worst = max(worst, float((reference(xb) - candidate(xb)).abs().max()))
    return worst
