"""Composite models assembled from zoo models by compression stages (ensembles).

They live in their own registry, beside the zoo: ``build_model`` finds them by name, but
they are not single architectures to train from scratch, so ``--model`` does not list them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from torchship.errors import ModelError
from torchship.registry import Registry

composites: Registry = Registry("composite model", error=ModelError)


@composites.register("ensemble")
class Ensemble(nn.Module):
    """Run every member on the same input and combine their outputs.

    ``mean`` averages the members' logits. ``vote`` returns each class's share of the
    members' top-1 votes, plus the mean probability scaled by ``1 / (2 * members)`` so that a
    tie goes to the more confident class without ever overturning a majority; argmax of the
    scores is the majority vote. Both stay plain tensor ops (argmax, compare, sum), so the
    whole ensemble exports as one ONNX graph.

    Args:
        members: Zoo architectures (``{"name": ..., "kwargs": {...}}`` or a bare zoo name);
            ``in_channels``/``num_classes``/``input_size`` fill in what a member leaves out.
            Members may carry recorded structural edits (pruned shapes, fusions).
        mode: ``mean`` or ``vote``.

    Example:
        >>> net = Ensemble(["mlp", {"name": "mlp", "kwargs": {"hidden": [8]}}], in_channels=1, input_size=8)
        >>> net(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        members: Sequence[str | dict[str, Any]],
        mode: Literal["mean", "vote"] = "mean",
        in_channels: int | None = None,
        num_classes: int | None = None,
        input_size: int | Sequence[int] | None = None,
        dropout: float | None = None,
    ):
        super().__init__()
        from torchship.models.build import build_model  # build.py imports this module

        if mode not in ("mean", "vote"):
            raise ModelError(f"unknown ensemble mode {mode!r}", fix="choose one of: mean, vote")
        if len(members) < 1:
            raise ModelError(
                "an ensemble needs at least one member", fix="list members in model.kwargs.members"
            )
        derived = {
            "in_channels": in_channels,
            "num_classes": num_classes,
            "input_size": input_size,
            "dropout": dropout,
        }
        built = []
        for i, member in enumerate(members):
            arch = {"name": member} if isinstance(member, str) else dict(member)
            if "name" not in arch or "import" in arch:
                raise ModelError(
                    f"ensemble member {i} is not a zoo model ({arch})",
                    fix="ensembles rebuild from the zoo only; give each member a zoo 'name'",
                )
            kwargs = dict(arch.get("kwargs") or {})
            for key, value in derived.items():
                if value is not None and key not in kwargs:
                    kwargs[key] = value
            built.append(build_model({"name": arch["name"], "kwargs": kwargs}))
        self.members = nn.ModuleList(built)
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # logits: (members, batch, classes)
        logits = torch.stack([member(x) for member in self.members])
        if self.mode == "mean":
            return logits.mean(dim=0)
        n, classes = logits.shape[0], logits.shape[-1]
        picks = logits.argmax(dim=-1, keepdim=True)  # (members, batch, 1)
        one_hot = (picks == torch.arange(classes, device=x.device)).to(logits.dtype)
        votes = one_hot.sum(dim=0) / n
        confidence = logits.softmax(dim=-1).mean(dim=0)
        return votes + confidence / (2 * n)
