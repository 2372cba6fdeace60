"""The lineage tree of the given artifacts: children link to parents by the parent's digest.

A child's ``lineage.parent`` is the digest of its parent's manifest when it was derived.
Exporting in place later changes the parent's manifest (its ``exports`` and ``files``), so a
parent is also matched by the digest its manifest had before any export.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from torchship.artifact import WEIGHTS
from torchship.report.collect import EVALUATION, ArtifactEntry


@dataclass
class LineageNode:
    entry: ArtifactEntry
    children: list[LineageNode] = field(default_factory=list)
    parent: ArtifactEntry | None = None
    via_pre_export_digest: bool = False

    @property
    def parent_missing(self) -> bool:
        """The manifest names a parent that is not among the given artifacts."""
        return self.parent is None and self.entry.manifest.lineage.parent is not None


def pre_export_digest(entry: ArtifactEntry) -> str:
    """The digest the manifest had before exports were added to it in place."""
    data = entry.manifest.to_json_dict()
    data["exports"] = {}
    data["files"] = {k: v for k, v in data.get("files", {}).items() if k in (WEIGHTS, EVALUATION)}
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def build_tree(entries: Sequence[ArtifactEntry]) -> list[LineageNode]:
    """Roots of the forest, in the order given; children under their parents."""
    nodes = [LineageNode(e) for e in entries]
    exact = {n.entry.digest: n for n in nodes}
    before_export = {pre_export_digest(n.entry): n for n in nodes}
    roots = []
    for node in nodes:
        wanted = node.entry.manifest.lineage.parent
        parent = exact.get(wanted) if wanted else None
        if parent is None and wanted:
            parent = before_export.get(wanted)
            node.via_pre_export_digest = parent is not None
        if parent is None or parent is node:
            roots.append(node)
            continue
        node.parent = parent.entry
        parent.children.append(node)
    return roots


def walk(roots: Sequence[LineageNode], depth: int = 0):
    """(node, depth) in tree order: each parent before its children."""
    for node in roots:
        yield node, depth
        yield from walk(node.children, depth + 1)


def param_summary(params: dict[str, Any], limit: int = 6) -> str:
    """The scalar params of an operation, ``key=value`` (nested blocks are left to the details view)."""
    scalars = [
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in params.items()
        if isinstance(v, (str, int, float, bool)) and not isinstance(v, dict)
    ]
    more = len(scalars) - limit
    return ", ".join(scalars[:limit]) + (f", … {more} more" if more > 0 else "")


def change_vs_parent(node: LineageNode) -> dict[str, float | None]:
    """Validation accuracy change (points) and size ratio of a child against its parent."""
    if node.parent is None:
        return {"accuracy_pt": None, "size_ratio": None}
    mine = node.entry.manifest.metrics.get("val", {}).get("accuracy")
    theirs = node.parent.manifest.metrics.get("val", {}).get("accuracy")
    accuracy_pt = 100 * (mine - theirs) if mine is not None and theirs is not None else None
    size, parent_size = node.entry.size_bytes, node.parent.size_bytes
    ratio = size / parent_size if size and parent_size else None
    return {"accuracy_pt": accuracy_pt, "size_ratio": ratio}
