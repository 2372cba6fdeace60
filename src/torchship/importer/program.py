"""Capture an imported model with torch.export, its declared dims dynamic, and check it.

``Dim.AUTO`` lets torch.export find each dynamic dim's range itself (a BERT's sequence is
bounded by its position table), and the program is then checked: a dim declared dynamic
that the trace fixed to one size is reported by name instead of failing later at serve time.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from torchship.export.capture import failure_summary
from torchship.importer.signature import ImportError_
from torchship.models.calling import SignatureModule


def capture(
    module: SignatureModule, examples: Sequence[torch.Tensor], specs: Sequence[dict[str, Any]]
) -> torch.export.ExportedProgram:
    """Trace ``module`` on ``examples``; every named dim in ``specs`` dynamic.

    Raises:
        ImportError_: If torch.export cannot trace it (naming the op or line), or fixes a
            declared dynamic dim.
    """
    dynamic = tuple(
        {i: torch.export.Dim.AUTO for i, d in enumerate(s["shape"]) if isinstance(d, str)} for s in specs
    )
    try:
        program = torch.export.export(
            module, tuple(examples), dynamic_shapes={"tensors": dynamic}, strict=False
        )
    except Exception as exc:  # torch.export raises many unrelated types; all mean "cannot trace"
        raise ImportError_(
            f"torch.export cannot capture {type(module.model).__name__}: {failure_summary(exc)}",
            fix="the class path still works with --allow-import; rewrite that part of forward() "
            "to get a program that needs no Python code",
        ) from exc
    placeholders = [n for n in program.graph.nodes if n.op == "placeholder"][-len(specs) :]
    for spec, node in zip(specs, placeholders, strict=False):
        shape = node.meta["val"].shape
        for axis, name in ((i, d) for i, d in enumerate(spec["shape"]) if isinstance(d, str)):
            if not isinstance(shape[axis], torch.SymInt):
                raise ImportError_(
                    f"torch.export fixed dim {name!r} of input {spec['name']} to {int(shape[axis])}: "
                    "the model "
                    "does not accept other sizes there",
                    fix=f"declare that dim as the number {int(shape[axis])}, "
                    "or use example inputs where it is above 1",
                )
    return program


def program_bytes(program: torch.export.ExportedProgram) -> bytes:
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def widen_batch(examples: Sequence[torch.Tensor], specs: Sequence[dict[str, Any]]) -> list[torch.Tensor]:
    """Examples whose dynamic dims of size 1 are doubled, so torch.export does not fix them at 1."""
    widened = []
    for t, spec in zip(examples, specs, strict=False):
        for axis, d in enumerate(spec["shape"]):
            if isinstance(d, str) and t.shape[axis] == 1:
                t = torch.cat([t, t], dim=axis)
        widened.append(t)
    return widened


def max_abs_diff(reference: Sequence[torch.Tensor], candidate: Sequence[torch.Tensor]) -> float:
    diffs = [
        float(np.max(np.abs(r.detach().double().numpy() - c.detach().double().numpy()), initial=0.0))
        for r, c in zip(reference, candidate, strict=False)
    ]
    return max(diffs, default=0.0)
