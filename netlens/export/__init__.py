"""Drawing-tool exports of the snapshot graph: Graphviz DOT, GraphML, Mermaid.

All three are deterministic (same snapshot, same bytes) because they walk the
graph in insertion order, which :func:`netlens.model.graph.build_graph` takes
from the snapshot's own stable order. Headless: networkx only, no textual/rich.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from netlens.model.types import Snapshot

FORMATS = ("dot", "graphml", "mermaid")


def render(snapshot: Snapshot, fmt: str) -> str:
    """Render ``snapshot`` in one of :data:`FORMATS` (imports networkx on demand)."""
    from netlens.model.graph import build_graph

    g = build_graph(snapshot)
    if fmt == "dot":
        from netlens.export.dot import to_dot

        return to_dot(g)
    if fmt == "graphml":
        from netlens.export.graphml import to_graphml

        return to_graphml(g)
    if fmt == "mermaid":
        from netlens.export.mermaid import to_mermaid

        return to_mermaid(g)
    raise ValueError(f"unknown export format {fmt!r} (one of {', '.join(FORMATS)})")
