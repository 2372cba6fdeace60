"""Ensembles: several artifacts served, exported and measured as one.

``mean`` and ``vote`` wrap the members in the zoo's :class:`~torchship.models.Ensemble`
(weights under ``members.0.*``, ``members.1.*``, ...), so the result is one artifact with
one forward pass and exports as one graph. ``soup`` averages the weights of members that
share one architecture (a uniform model soup, Wortsman et al., 2022): one member's cost.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from rich.console import Console

from torchship.artifact import Artifact
from torchship.compress.base import CompressError, Strict, check_out
from torchship.compress.measure import load_val, model_stats, val_metrics
from torchship.models import build_model


class EnsembleConfig(Strict):
    """How to combine the members, and the data to measure the result on."""

    mode: Literal["mean", "vote", "soup"] = "mean"
    data: str | dict[str, Any] | None = None


def ensemble(
    members: Sequence[Artifact],
    cfg: EnsembleConfig | None = None,
    *,
    out: str | Path,
    allow_import: Iterable[str] = (),
    console: Console | None = None,
) -> Artifact:
    """Combine ``members`` into one artifact whose lineage lists every member's digest.

    Raises:
        CompressError: Fewer than two members, members fed or labelled differently, a
            bring-your-own member in a mean/vote ensemble, or a soup of different architectures.
    """
    cfg = cfg or EnsembleConfig()
    if len(members) < 2:
        raise CompressError(
            f"an ensemble needs at least two members, got {len(members)}", fix="list more artifacts"
        )
    target = check_out(out, *members)
    check_compatible(members)
    allowed = tuple(allow_import)
    first = members[0]
    val = load_val(first, cfg.data)
    shape = first.manifest.input.shape
    models = [m.build_model(allowed) for m in members]
    report: dict[str, Any] = {
        f"{i}: {m.manifest.name}": model_stats(net, shape, val_metrics(net, val))
        for i, (m, net) in enumerate(zip(members, models, strict=False))
    }
    archs = [m.manifest.architecture.model_dump(by_alias=True, exclude_none=True) for m in members]
    if cfg.mode == "soup":
        architecture, model = archs[0], _soup(members, models, archs)
    else:
        architecture, model = _combine(members, models, archs, cfg.mode)
    metrics = {"val": val_metrics(model, val)}
    report[cfg.mode] = model_stats(model, shape, metrics["val"])
    params = cfg.model_dump(mode="json") | {
        "members": [{"name": m.manifest.name, "digest": m.digest} for m in members],
        "report": report,
    }
    child = first.derive(
        op="ensemble",
        params=params,
        model=model,
        architecture=architecture,
        metrics=metrics,
        name=f"{first.manifest.name}-{cfg.mode}{len(members)}",
        curves=[],
    )
    return child.save(target)


def check_compatible(members: Sequence[Artifact]) -> None:
    """Members must take the same inputs, normalized the same way, and predict the same labels."""
    first = members[0].manifest
    for i, other in enumerate(m.manifest for m in members[1:]):
        where = f"member {i + 1} ({other.name}) and member 0 ({first.name})"
        if other.labels != first.labels:
            raise CompressError(
                f"{where} predict different labels", fix="ensemble models trained on the same classes"
            )
        a, b = first.input, other.input
        same = a.shape == b.shape and a.layout == b.layout and _close(a.mean, b.mean) and _close(a.std, b.std)
        if not same or not math.isclose(a.scale, b.scale, rel_tol=1e-6):
            raise CompressError(
                f"{where} take different inputs (shape {b.shape} vs {a.shape}, or other normalization)",
                fix="ensemble models trained on the same data with the same preprocessing",
            )


def _close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(
        math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-7) for x, y in zip(a, b, strict=False)
    )


def _combine(members, models, archs, mode: str):
    for i, arch in enumerate(archs):
        if "name" not in arch:
            raise CompressError(
                f"member {i} ({members[i].manifest.name}) is a bring-your-own model",
                fix="mean/vote ensembles rebuild their members from the zoo; use zoo models",
            )
    architecture = {"name": "ensemble", "kwargs": {"members": archs, "mode": mode}}
    model = build_model(architecture)
    for slot, net in zip(model.members, models, strict=False):
        slot.load_state_dict(net.state_dict())
    return architecture, model.eval()


def _differences(a: dict[str, Any], b: dict[str, Any]) -> str:
    if a.get("name") != b.get("name") or a.get("import") != b.get("import"):
        return f"model ({a.get('name') or a.get('import')} vs {b.get('name') or b.get('import')})"
    ka, kb = a.get("kwargs", {}), b.get("kwargs", {})
    keys = sorted(k for k in set(ka) | set(kb) if ka.get(k) != kb.get(k))
    return "kwargs " + ", ".join(keys)


def _soup(members, models, archs):
    """Average every floating-point tensor; integer buffers (BN step counts) come from member 0."""
    for i, arch in enumerate(archs[1:], start=1):
        if arch != archs[0]:
            raise CompressError(
                f"soup needs one architecture, but member {i} ({members[i].manifest.name}) differs from "
                f"member 0 in {_differences(archs[0], arch)}",
                fix="soup only same-architecture models (fine-tuned from one start), or use --mode mean",
            )
    states = [net.state_dict() for net in models]
    averaged = {
        key: torch.stack([s[key] for s in states]).mean(dim=0) if value.is_floating_point() else value.clone()
        for key, value in states[0].items()
    }
    model = models[0]
    model.load_state_dict(averaged)
    return model.eval()
