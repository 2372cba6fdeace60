"""Pruning: remove channels (structured, Torch-Pruning) or zero weights (unstructured, by magnitude).

Structured pruning follows Torch-Pruning's dependency graph, so coupled layers (a residual
sum, a batch norm, the linear layer after a flatten) shrink together and the tensors really
get smaller. The new sizes are recorded in the architecture (``pruned_shapes``) so the
artifact rebuilds from the zoo without any pruning code. Unstructured pruning zeroes the
smallest weights with ``torch.nn.utils.prune`` and makes the zeros permanent; shapes stay.

Both can run iteratively: ``steps`` rounds to the target, ``step_epochs`` of fine-tuning
between rounds and ``finetune.epochs`` after the last, through the training engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, NonNegativeInt, PositiveInt
from rich.console import Console
from torch import nn
from torch.nn.utils import prune as torch_prune

from torchship.artifact import Artifact
from torchship.compress.base import CompressError, Finetune, Strict, check_out, register
from torchship.compress.finetune import finetune, work_dir
from torchship.compress.measure import load_val, model_stats, val_metrics
from torchship.errors import require
from torchship.models.structure import rebuildable_architecture

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


class PruneConfig(Strict):
    """How much to prune, how, and how to recover accuracy afterwards."""

    kind: Literal["structured", "unstructured"] = "structured"
    ratio: float = Field(
        default=0.5, ge=0.0, lt=1.0, description="share of channels (structured) or weights removed"
    )
    scope: Literal["layer", "global"] = "layer"
    importance: Literal["l1", "l2"] = Field(
        default="l2", description="channel norm; unstructured ranks by |w|"
    )
    ignore: list[str] = Field(
        default_factory=lambda: ["head"], description="layers (and their children) kept whole"
    )
    steps: PositiveInt = 1
    step_epochs: NonNegativeInt = 0
    round_to: PositiveInt | None = Field(default=None, description="keep channel counts multiples of this")
    data: str | dict[str, Any] | None = None
    finetune: Finetune = Field(default_factory=Finetune)


@register("prune", PruneConfig)
def prune(
    artifact: Artifact,
    cfg: PruneConfig | None = None,
    *,
    out: str | Path,
    allow_import: Iterable[str] = (),
    console: Console | None = None,
) -> Artifact:
    """Prune channels or weights, fine-tune, and save a smaller artifact whose lineage names its parent.

    Raises:
        CompressError: An ``ignore`` entry names no layer, or Torch-Pruning cannot trace the model.
        DataError: The data does not fit the artifact.

    Example:
        >>> child = prune(parent, PruneConfig(ratio=0.5), out=tmp / "pruned")  # doctest: +SKIP
    """
    cfg = cfg or PruneConfig()
    target = check_out(out, artifact)
    val = load_val(artifact, cfg.data)
    allowed = tuple(allow_import)
    model = artifact.build_model(allowed)
    base_arch = artifact.manifest.architecture.model_dump(by_alias=True, exclude_none=True)
    shape = artifact.manifest.input.shape
    before = model_stats(model, shape, val_metrics(model, val))
    ignored = _match_ignored(model, cfg.ignore, artifact.manifest.name)
    if cfg.kind == "structured":
        pruner: _Structured | _Unstructured = _Structured(model, cfg, shape, ignored, artifact.manifest.name)
    else:
        pruner = _Unstructured(model, cfg, ignored)
    params = cfg.model_dump(mode="json")
    tuned: Artifact | None = None
    with work_dir(cfg.finetune) as root:
        for step in range(1, cfg.steps + 1):
            pruner.step(step)
            epochs = cfg.finetune.epochs if step == cfg.steps else cfg.step_epochs
            if epochs:
                # unstructured masks keep the shapes (and hold weight_orig/weight_mask until finish)
                structured = cfg.kind == "structured"
                arch = (
                    rebuildable_architecture(model, base_arch, allow_import=allowed)
                    if structured
                    else base_arch
                )
                tuned = finetune(
                    model,
                    arch,
                    parent=artifact,
                    data=val.config,
                    settings=cfg.finetune,
                    epochs=epochs,
                    out=root / f"step-{step}",
                    op="prune",
                    params=params,
                    console=console,
                )
                model = model.cpu()
        pruner.finish()
    model.eval()
    architecture = rebuildable_architecture(model, base_arch, allow_import=allowed)
    metrics = {**(tuned.manifest.metrics if tuned else {}), "val": val_metrics(model, val)}
    after = model_stats(model, shape, metrics["val"])
    params["report"] = {"parent": before, "pruned": after, "sparsity": layer_sparsity(model)}
    fields: dict[str, Any] = {"metrics": metrics}
    if tuned is not None:
        fields.update(
            reference=tuned.manifest.reference, curves=tuned.manifest.curves, data=tuned.manifest.data
        )
    child = artifact.derive(op="prune", params=params, model=model, architecture=architecture, **fields)
    return child.save(target)


def layer_sparsity(model: nn.Module) -> dict[str, float]:
    """Share of exactly-zero weights in every conv and linear layer."""
    return {
        name: round(float((module.weight == 0).float().mean()), 6)
        for name, module in model.named_modules()
        if isinstance(module, _WEIGHTED)
    }


def _match_ignored(model: nn.Module, patterns: list[str], name: str) -> list[nn.Module]:
    names = [n for n, _ in model.named_modules() if n]
    ignored: list[nn.Module] = []
    for pattern in patterns:
        hits = [m for n, m in model.named_modules() if n and (n == pattern or n.startswith(pattern + "."))]
        if not hits:
            raise CompressError(
                f"--ignore {pattern!r} names no layer of {name}",
                fix=f"choose among: {', '.join(names[:12])}{', ...' if len(names) > 12 else ''}",
            )
        ignored += hits
    return ignored


class _Structured:
    """Torch-Pruning's BasePruner driven one step at a time, with checks that the result still runs."""

    def __init__(
        self, model: nn.Module, cfg: PruneConfig, shape: list[int], ignored: list[nn.Module], name: str
    ):
        tp = require("torch_pruning", "compress")
        self.model, self.name = model, name
        self.example = torch.zeros(2, *shape)
        with torch.no_grad():
            self.out_shape = model.eval()(self.example).shape
        self.ignored = [m for m in ignored if isinstance(m, _WEIGHTED)]
        try:
            self.pruner = tp.pruner.BasePruner(
                model,
                self.example,
                importance=tp.importance.MagnitudeImportance(p=1 if cfg.importance == "l1" else 2),
                global_pruning=cfg.scope == "global",
                pruning_ratio=cfg.ratio,
                max_pruning_ratio=0.9,  # global ranking may otherwise empty a whole layer
                iterative_steps=cfg.steps,
                ignored_layers=self.ignored,
                round_to=cfg.round_to,
            )
            groups = list(
                self.pruner.DG.get_all_groups(
                    ignored_layers=self.pruner.ignored_layers, root_module_types=self.pruner.root_module_types
                )
            )
        except Exception as exc:  # noqa: BLE001 - any failure inside the tracer means "cannot trace"
            raise self._untraceable(exc) from None
        if not groups:
            raise CompressError(
                f"Torch-Pruning found no prunable channels in {name}",
                fix="check --ignore, or use --kind unstructured",
            )

    def step(self, step: int) -> None:
        try:
            self.pruner.step()
            with torch.no_grad():
                got = self.model.eval()(self.example).shape
        except Exception as exc:  # noqa: BLE001
            raise self._untraceable(exc) from None
        if got != self.out_shape:
            raise self._untraceable(f"its output changed from {list(self.out_shape)} to {list(got)}")

    def finish(self) -> None:
        self.model.zero_grad(set_to_none=True)

    def _untraceable(self, cause: object) -> CompressError:
        text = str(cause).strip().splitlines()[0][:160] if str(cause).strip() else type(cause).__name__
        return CompressError(
            f"Torch-Pruning cannot trace {self.name} ({text})",
            fix="use --kind unstructured, or --ignore the layers whose sizes the model hard-codes",
        )


class _Unstructured:
    """Magnitude pruning with ``torch.nn.utils.prune``: masks during fine-tuning, then made permanent."""

    def __init__(self, model: nn.Module, cfg: PruneConfig, ignored: list[nn.Module]):
        skip = {id(m) for m in ignored}
        self.layers = [m for m in model.modules() if isinstance(m, _WEIGHTED) and id(m) not in skip]
        if not self.layers:
            raise CompressError("no conv or linear layer is left to prune", fix="ignore fewer layers")
        self.cfg = cfg
        self.done = 0.0

    def step(self, step: int) -> None:
        target = self.cfg.ratio * step / self.cfg.steps
        # torch's pruning containers take `amount` as a share of the weights not yet pruned
        amount = (target - self.done) / (1.0 - self.done)
        if self.cfg.scope == "global":
            torch_prune.global_unstructured(
                [(m, "weight") for m in self.layers], pruning_method=torch_prune.L1Unstructured, amount=amount
            )
        else:
            for module in self.layers:
                torch_prune.l1_unstructured(module, "weight", amount=amount)
        self.done = target

    def finish(self) -> None:
        for module in self.layers:
            if torch_prune.is_pruned(module):
                torch_prune.remove(module, "weight")
