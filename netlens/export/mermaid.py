"""Mermaid flowchart export (paste into Markdown, GitHub renders it).

Mermaid ids must be simple words, so nodes are numbered ``n0, n1, ...`` in
graph order and the model id goes into the label; the numbering is stable for
a given snapshot. Each VRF is a ``subgraph``.
"""

from __future__ import annotations

import networkx as nx

from netlens.export._common import clusters, label_lines
from netlens.kernel.inert import mermaid_text

# (open, close) brackets per node type
_SHAPES = {
    "server": ("[[", "]]"),
    "vrf": ("[(", ")]"),
    "l3vrf": ("[(", ")]"),
    "interface": ("[", "]"),
    "bridge": ("{{", "}}"),
    "uplink": ("[/", "/]"),
    "container": ("([", "])"),
}
_LINKS = {
    "veth": "===",
    "uplink": "===",
    "member": "-.-",
    "l3vrf_member": "-.-",
    "container": "-.-",
    "tunnel": "-.-",
    "lower": "-.-",
}


def to_mermaid(g: nx.MultiGraph) -> str:
    """The graph as a Mermaid ``flowchart LR``, ending with a newline."""
    ids = {node: f"n{i}" for i, node in enumerate(g.nodes)}

    def node_line(node: str, indent: str) -> str:
        data = g.nodes[node]
        o, c = _SHAPES.get(str(data.get("type")), ("[", "]"))
        label = "<br/>".join(mermaid_text(x) for x in label_lines(dict(data)))
        return f'{indent}{ids[node]}{o}"{label}"{c}'

    out = ["flowchart LR"]
    top, groups = clusters(g)
    for node in top:
        out.append(node_line(node, "  "))
    for i, (vrf, members) in enumerate(groups.items()):
        title = mermaid_text(f"{g.nodes[vrf].get('label', vrf)} ({vrf})")
        out.append(f'  subgraph c{i}["{title}"]')
        for node in members:
            out.append(node_line(node, "    "))
        out.append("  end")
    for u, v, etype in g.edges(keys=True):
        link = _LINKS.get(str(etype), "---")
        out.append(f"  {ids[u]} {link}|{mermaid_text(str(etype))}| {ids[v]}")
    return "\n".join(out) + "\n"
