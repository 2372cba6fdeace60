"""Structural edits recorded in an architecture's kwargs, so compressed models rebuild from JSON.

Compression changes a model's structure after the zoo built it: structured pruning shrinks
tensors, fusion folds batch norm into the layer before it. Instead of pickling the edited
module, the manifest records the edits next to the zoo kwargs and :func:`build_model`
replays them on a freshly built model before the weights are loaded:

    {"name": "resnet", "kwargs": {"depth": 8, "width": 8,
        "fused": [["stem.0", "stem.1"], ...],                  # (layer, batch norm) pairs
        "pruned_shapes": {"stem.0.weight": [4, 3, 3, 3], ...}}}  # tensors whose size changed

Fusions are replayed first, then shapes, so any order of prune and fuse rebuilds exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from torchship.errors import ModelError

STRUCTURE_KEYS = ("fused", "pruned_shapes")

_FUSABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def split_structure(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate the builder's own kwargs from the recorded structural edits."""
    own = {k: v for k, v in kwargs.items() if k not in STRUCTURE_KEYS}
    edits = {k: kwargs[k] for k in STRUCTURE_KEYS if k in kwargs}
    return own, edits


def apply_structure_(model: nn.Module, edits: Mapping[str, Any]) -> nn.Module:
    """Replay recorded fusions, then recorded tensor shapes, on a freshly built model.

    Raises:
        ModelError: If an edit names a layer or tensor the model does not have.
    """
    for pair in edits.get("fused") or ():
        if not isinstance(pair, Sequence) or len(pair) != 2:
            raise ModelError(
                f"architecture kwargs 'fused' holds {pair!r}, not a [layer, norm] pair",
                fix="re-create the artifact with torchship compress fuse",
            )
        layer_name, norm_name = pair
        layer = _module(model, layer_name)
        if layer.bias is None:
            # the folded batch-norm shift becomes the layer's bias
            layer.bias = nn.Parameter(torch.zeros(layer.weight.shape[0], dtype=layer.weight.dtype))
        set_module_(model, norm_name, nn.Identity())
    for name, shape in (edits.get("pruned_shapes") or {}).items():
        resize_tensor_(model, name, [int(s) for s in shape])
    return model


def resize_tensor_(model: nn.Module, name: str, shape: list[int]) -> None:
    """Give parameter or buffer ``name`` the size ``shape``, fixing the layer's size attributes.

    A shrunk tensor keeps its leading entries (so a freshly built model stays sensibly
    initialised); the artifact's weights overwrite them on load.
    """
    module_name, _, attr = name.rpartition(".")
    module = _module(model, module_name)
    current = getattr(module, attr, None)
    if not isinstance(current, torch.Tensor):
        raise ModelError(
            f"recorded shape for {name!r} names no tensor of {type(model).__name__}",
            fix="the manifest does not match this architecture; re-create the artifact",
        )
    if list(current.shape) == shape:
        return
    if len(shape) == current.dim() and all(s <= c for s, c in zip(shape, current.shape, strict=False)):
        fresh = current.detach()[tuple(slice(0, s) for s in shape)].clone()
    else:
        fresh = torch.zeros(shape, dtype=current.dtype)
    if isinstance(current, nn.Parameter):
        setattr(module, attr, nn.Parameter(fresh, requires_grad=current.requires_grad))
    else:
        module.register_buffer(attr, fresh)
    if attr == "weight":
        _sync_sizes(module, shape)


def _sync_sizes(module: nn.Module, shape: list[int]) -> None:
    """Keep a layer's size attributes (shown by repr, read by exporters) in line with its weight."""
    if isinstance(module, nn.modules.conv._ConvNd):
        depthwise = module.groups > 1 and module.groups == module.in_channels == module.out_channels
        module.out_channels = shape[0]
        if depthwise:
            module.groups = module.in_channels = shape[0]
        else:
            module.in_channels = shape[1] * module.groups
    elif isinstance(module, nn.Linear):
        module.out_features, module.in_features = shape[0], shape[1]
    elif isinstance(module, nn.modules.batchnorm._NormBase):
        module.num_features = shape[0]
    elif isinstance(module, nn.LayerNorm):
        module.normalized_shape = tuple(shape)


def changed_shapes(model: nn.Module, reference: nn.Module) -> dict[str, list[int]]:
    """Tensors of ``model`` whose shape differs from ``reference`` (same names): the pruned map."""
    ref = reference.state_dict()
    changed: dict[str, list[int]] = {}
    for name, tensor in model.state_dict().items():
        if name not in ref:
            raise ModelError(
                f"compressed model has tensor {name!r} that its architecture does not build",
                fix="only shapes may change; this edit cannot be recorded",
            )
        if list(tensor.shape) != list(ref[name].shape):
            changed[name] = list(tensor.shape)
    return changed


def rebuildable_architecture(
    model: nn.Module,
    base: Mapping[str, Any],
    fused: Sequence[Sequence[str]] = (),
    allow_import: Sequence[str] = (),
) -> dict[str, Any]:
    """``base`` plus ``fused`` pairs, with every tensor whose size now differs recorded in ``pruned_shapes``.

    Shapes are compared against the architecture rebuilt with its fusions but without
    shapes, which is exactly what :func:`apply_structure_` replays before the shapes.
    """
    from torchship.models.build import build_model  # build.py imports this module

    own, edits = split_structure(base.get("kwargs") or {})
    pairs = [list(p) for p in (edits.get("fused") or [])] + [list(p) for p in fused]
    kwargs = {**own, **({"fused": pairs} if pairs else {})}
    reference = build_model({**base, "kwargs": kwargs}, allow_import=allow_import)
    shapes = changed_shapes(model, reference)
    return {**base, "kwargs": {**kwargs, **({"pruned_shapes": shapes} if shapes else {})}}


def set_module_(model: nn.Module, name: str, new: nn.Module) -> None:
    """Replace the submodule at dotted path ``name``."""
    parent_name, _, leaf = name.rpartition(".")
    setattr(_module(model, parent_name), leaf, new)


def _module(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise ModelError(
            f"recorded edit names layer {name!r}, which {type(model).__name__} does not have",
            fix="the manifest does not match this architecture; re-create the artifact",
        ) from None


def fusable(module: nn.Module) -> bool:
    return isinstance(module, _FUSABLE)


def is_batch_norm(module: nn.Module) -> bool:
    return isinstance(module, _NORMS)
