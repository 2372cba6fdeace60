"""Capture a model with torch.export once, and turn export failures into one-line messages.

The ExportedProgram is shared by the ``exported``, ``aoti`` and ``onnx`` formats, so all
three see the same graph and the model is traced once per ``torchship export`` run.
"""

from __future__ import annotations

import re
import traceback
from pathlib import Path

import torch
from torch import nn

from torchship.export.base import ExportError

BATCH = "batch"


def batch_dim() -> torch.export.Dim:
    """The dynamic batch dimension every export shares (any size from 1 up)."""
    return torch.export.Dim(BATCH, min=1)


def capture_program(model: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """Trace ``model`` with torch.export, batch dimension dynamic.

    Args:
        example: One batch of at least two samples (a batch of one would be specialised).

    Raises:
        ExportError: If torch.export cannot trace the model; the message names the op or the
            line of model code that stopped it.
    """
    try:
        # non-strict: traces the Python forward as written, the same way the ONNX exporter does
        return torch.export.export(model, (example,), dynamic_shapes=({0: batch_dim()},), strict=False)
    except Exception as exc:  # torch.export raises many unrelated types; all mean "cannot trace"
        raise ExportError(
            f"torch.export cannot trace {type(model).__name__}: {failure_summary(exc)}",
            fix="rewrite that part of forward() without data-dependent Python control flow, "
            "or export only the formats that work (--format onnx,torchscript)",
        ) from exc


_OP_PATTERNS = (
    re.compile(r"OpOverload\(op='([\w.:]+)', overload='(\w+)'\)"),
    re.compile(r"target=torch\.ops\.([\w.]+)"),
    re.compile(r"Unknown builtin op: ([\w:.]+)"),
    re.compile(r"unsupported operator:? '?([\w:.]+)'?", re.IGNORECASE),
)


def failing_op(exc: BaseException) -> str | None:
    """The operator named in an exporter's error chain, if any (``aten::_linalg_eigh``)."""
    for err in _chain(exc):
        text = str(err)
        for pattern in _OP_PATTERNS:
            match = pattern.search(text)
            if match:
                name = match.group(1).replace(".", "::", 1) if "::" not in match.group(1) else match.group(1)
                if match.lastindex and match.lastindex > 1 and match.group(2) != "default":
                    name += f".{match.group(2)}"
                return name.removesuffix(".default")
    return None


def failure_summary(exc: BaseException) -> str:
    """One line: the failing op when one is named, the first line of the error, the user code line."""
    op = failing_op(exc)
    first = _first_line(exc)
    where = user_frame(exc)
    parts = [f"unsupported op {op}" if op else first]
    if op and first and op not in first:
        parts.append(f"({first})")
    if where:
        parts.append(f"at {where}")
    return " ".join(parts)


def user_frame(exc: BaseException) -> str | None:
    """``file:line in function`` of the deepest frame outside torch and its exporters."""
    found = None
    for err in _chain(exc):
        for frame in traceback.extract_tb(err.__traceback__):
            path = Path(frame.filename).as_posix()
            if any(part in path for part in ("/torch/", "/onnxscript/", "/onnx/", "/torchship/", "<")):
                continue
            found = f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"
    return found


def _first_line(exc: BaseException) -> str:
    for err in reversed(list(_chain(exc))):
        for line in str(err).splitlines():
            # the ONNX exporter wraps the cause in a multi-line report; skip its decoration
            line = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
            if line and not line.startswith(("Failed to convert", "Failed to export", "#", "-", "<class")):
                return line[:200]
    return type(exc).__name__


def _chain(exc: BaseException):
    seen: set[int] = set()
    err: BaseException | None = exc
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__
