"""Tables stay whole in an 80-column log: cells fold, no column is squeezed away or cut to "…"."""

import io

from rich.console import Console

from torchship.cli.compress import optimize_table
from torchship.cli.export import exports_table


def _render(table) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=80, color_system=None).print(table)  # what a piped log gets
    return buffer.getvalue()


def _column(rendered: str, index: int, bar: str = "│") -> str:
    """The text of one column, its folded pieces joined top to bottom."""
    lines = [line.split(bar) for line in rendered.splitlines() if line.startswith(bar)]
    return "".join(cells[index + 1].strip() for cells in lines)


def test_optimize_table_keeps_every_column_and_name_in_80_columns():
    names = ["fp32-onnxruntime", "quantize-static-int8-onnxruntime", "prune-structured-0.5-finetune-eager"]
    candidates = [
        {
            "name": name,
            "status": "ok",
            "runtime": "onnxruntime",
            "accuracy": 0.97,
            "accuracy_drop": -0.0123,
            "latency_p50_ms": 0.123,
            "size_bytes": 123_456,
            "speedup": 2.31,
            "faster": True,
            "within_budget": True,
            "pareto": i == 1,
            "picked": i == 1,
            "baseline": i == 0,
        }
        for i, name in enumerate(names)
    ]
    document = {
        "name": "digits-cnn",
        "settings": {"objective": "latency", "batch_size": 32},
        "baseline": {"runtime": "onnxruntime"},
        "candidates": candidates,
    }
    rendered = _render(optimize_table(document))
    assert "…" not in rendered
    assert _column(rendered, 0, "┃") == "candidate"
    assert _column(rendered, 7, "┃") == "verdict"
    assert _column(rendered, 0) == "".join(names)
    assert "PICKED" in _column(rendered, 7)


def test_exports_table_keeps_tolerance_in_80_columns():
    record = {
        "file": "triton/digits-cnn/1/model.onnx",
        "max_abs_diff": 2.4e-7,
        "mean_abs_diff": 4.1e-8,
        "top1_agreement": 1.0,
        "samples": 360,
        "tolerance": 1e-4,
    }
    rendered = _render(exports_table("digits-cnn: exports verified (runs/x)", {"triton": record}))
    assert "…" not in rendered
    assert _column(rendered, 6, "┃") == "tolerance"
    assert _column(rendered, 6) == "1e-04"
    assert _column(rendered, 1) == record["file"]
