"""GraphML export (yEd, Gephi, Cytoscape, networkx itself).

GraphML attributes must be scalars of one type per key; the graph keeps
addresses as tuples, so a sanitized copy is written: tuples become one
comma-separated string, anything else non-scalar becomes its ``str``. Every
string, node ids included, goes through :func:`netlens.kernel.inert.xml_text`: a name
holding a control character would otherwise make the document invalid XML 1.0.
networkx writes keys and elements in insertion order, so the text is stable.
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from netlens.kernel.inert import xml_text


def _safe(value: Any) -> str | int | float | bool:
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (tuple, list)):
        return xml_text(",".join(str(v) for v in value))
    return xml_text(str(value))


def graphml_safe(g: nx.MultiGraph) -> nx.MultiGraph:
    """A copy of ``g`` whose every attribute GraphML can hold (None dropped)."""
    h = nx.MultiGraph()
    h.graph.update({k: _safe(v) for k, v in g.graph.items() if v is not None})
    for node, data in g.nodes(data=True):
        h.add_node(xml_text(node), **{k: _safe(v) for k, v in data.items() if v is not None})
    for u, v, key, data in g.edges(keys=True, data=True):
        attrs = {k: _safe(x) for k, x in data.items() if x is not None}
        h.add_edge(xml_text(u), xml_text(v), key=xml_text(str(key)), **attrs)
    return h


def to_graphml(g: nx.MultiGraph) -> str:
    """The graph as GraphML text, ending with a newline."""
    text = "\n".join(nx.generate_graphml(graphml_safe(g), prettyprint=True))
    return text + "\n"
