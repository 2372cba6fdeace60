"""Render a :class:`~torchship.report.build.Report` as one self-contained HTML page.

No external links, scripts or fonts: CSS is inline, figures are inline SVG. Every section
says what it could not show instead of disappearing, so a report over a bare artifact still
tells its reader what to add.
"""

from __future__ import annotations

from html import escape

from torchship.report.build import Report, Section
from torchship.report.markup import missing_notes
from torchship.report.sections import SECTIONS

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px 32px 64px;background:#fff}
h1{margin:0 0 4px;font-size:26px} h2{margin-top:40px;border-bottom:2px solid #e3e7ee;padding-bottom:4px}
h3{margin:24px 0 8px;font-size:17px} .sub{color:#5b6577;margin:0 0 16px}
nav ol{columns:2;background:#f1f4f8;padding:12px 12px 12px 36px;border-radius:6px}
nav .gap{color:#b4541a;font-size:13px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}
th,td{border:1px solid #dde2ea;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#f1f4f8;white-space:nowrap} td.l,th.l{text-align:left}
tr.best td{font-weight:600;background:#eef8ee} tr.dim td{color:#8a93a3}
.missing{background:#fff5e8;border-left:4px solid #f0a04b;padding:6px 10px;margin:8px 0;font-size:14px}
.note{color:#5b6577;font-size:13px} code{background:#f1f4f8;padding:0 3px;border-radius:3px}
.pair{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
figure{margin:8px 0 16px} figure svg{max-width:100%;height:auto}
ul.tree{list-style:none;padding-left:18px;border-left:2px solid #dde2ea}
ul.tree.root{border:0;padding-left:0}
ul.tree li{margin:6px 0}
.op{display:inline-block;background:#e6efff;border-radius:4px;padding:0 6px;font-size:13px}
details{font-size:12px}
pre{white-space:pre-wrap;max-height:320px;overflow:auto;background:#f6f7f9;padding:8px}
"""


def render(report: Report) -> tuple[str, list[Section]]:
    """The page and its sections (with what each is missing)."""
    # a section only some runs have (federated rounds, tune) returns None for the others
    sections = [s for s in (build(report) for build in SECTIONS) if s is not None]
    toc = "".join(
        f'<li><a href="#{s.id}">{escape(s.title)}</a>'
        + (f' <span class="gap">({len(s.missing)} missing)</span>' if s.missing else "")
        + "</li>"
        for s in sections
    )
    body = "".join(
        f'<section id="{s.id}"><h2>{escape(s.title)}</h2>{missing_notes(s.missing)}{s.body}</section>'
        for s in sections
    )
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(report.title)}</title><style>{CSS}</style></head><body><main>"
        f'<h1>{escape(report.title)}</h1><p class="sub">written {escape(report.created)} by torchship '
        f"report · {len(report.entries)} artifact(s), {len(report.curves)} training run(s), "
        f"{len(report.bench)} bench file(s), {len(report.optimize)} optimize result(s)</p>"
        f"<nav><strong>Contents</strong><ol>{toc}</ol></nav>{body}</main></body></html>\n"
    )
    return page, sections
