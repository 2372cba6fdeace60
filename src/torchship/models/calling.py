"""One calling convention for every model: named tensors in, a flat tuple of tensors out.

Hugging Face models take keyword arguments and return a ``ModelOutput`` (a dict), others a
tensor, a tuple or a dataclass. ``SignatureModule`` wraps any of them so runtimes, exporters
and ``torch.export`` see ``forward(*inputs) -> tuple`` in the order of the manifest's signature.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from torchship.errors import ModelError


def flatten_outputs(out: Any) -> list[tuple[str | None, torch.Tensor]]:
    """(key or None, tensor) pairs of a model's output in a fixed order; ``None`` entries dropped."""
    if isinstance(out, torch.Tensor):
        return [(None, out)]
    if isinstance(out, Mapping):  # ModelOutput is an OrderedDict
        return [(str(k), v) for k, v in out.items() if isinstance(v, torch.Tensor)]
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        pairs = ((f.name, getattr(out, f.name)) for f in dataclasses.fields(out))
        return [(k, v) for k, v in pairs if isinstance(v, torch.Tensor)]
    if isinstance(out, (tuple, list)):
        flat: list[tuple[str | None, torch.Tensor]] = []
        for item in out:
            flat.extend((None, t) for _, t in flatten_outputs(item))
        return flat
    raise ModelError(
        f"the model returns {type(out).__name__}, not tensors", fix="return a tensor, tuple or dict"
    )


class SignatureModule(nn.Module):
    """``forward(*tensors)`` in signature order -> tuple of output tensors in signature order."""

    def __init__(self, model: nn.Module, input_names: Sequence[str], keyword: bool):
        super().__init__()
        self.model = model
        self.input_names = list(input_names)
        self.keyword = keyword

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = (
            self.model(**dict(zip(self.input_names, tensors, strict=False)))
            if self.keyword
            else self.model(*tensors)
        )
        return tuple(t for _, t in flatten_outputs(out))
