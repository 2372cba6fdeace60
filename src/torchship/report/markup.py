"""Small HTML pieces the report's sections are built from: tables, figures, notes, numbers."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    left: Sequence[int] = (),
    raw: Sequence[int] = (),
    caption: str | None = None,
    row_classes: Sequence[str] = (),
) -> str:
    """An HTML table; cells are escaped unless their column is in ``raw`` (already HTML)."""
    head = "".join(
        f'<th class="l">{escape(h)}</th>' if i in left else f"<th>{escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = []
    for n, row in enumerate(rows):
        cls = row_classes[n] if n < len(row_classes) and row_classes[n] else ""
        cells = "".join(
            ('<td class="l">' if i in left else "<td>") + (cell if i in raw else escape(str(cell))) + "</td>"
            for i, cell in enumerate(row)
        )
        body.append(f'<tr class="{cls}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
    cap = f'<caption class="note">{escape(caption)}</caption>' if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure(svg: str, alt: str) -> str:
    return f'<figure role="img" aria-label="{escape(alt)}">{svg}</figure>'


def missing_notes(notes: Sequence[str]) -> str:
    return "".join(f'<p class="missing">missing: {escape(n)}</p>' for n in notes)


def num(value: Any, spec: str, suffix: str = "") -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "–"
    return f"{value:{spec}}{suffix}"


def size(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return "–"


def flag(value: Any) -> str:
    return (
        {True: "yes", False: "no"}.get(value, "–") if isinstance(value, bool) or value is None else str(value)
    )
