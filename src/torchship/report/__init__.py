"""One self-contained HTML page about a model: curves, confusion, lineage, optimize, bench, exports.

    from torchship.report import write_report
    result = write_report(["runs/digits-cnn", "runs/digits-cnn-pruned"], "report.html",
                          bench=["bench.json"], optimize=["runs/opt"])

matplotlib (the ``report`` extra) is imported only when a figure is drawn.
"""

from torchship.report.build import Report, ReportResult, Section, collect, quickstart_report, write_report
from torchship.report.collect import ReportError, find_sources
from torchship.report.results import OPTIMIZE_FIELDS, read_bench, read_optimize

__all__ = [
    "OPTIMIZE_FIELDS",
    "Report",
    "ReportError",
    "ReportResult",
    "Section",
    "collect",
    "find_sources",
    "quickstart_report",
    "read_bench",
    "read_optimize",
    "write_report",
]
