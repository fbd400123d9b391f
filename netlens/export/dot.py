"""Graphviz DOT export (``netlens dump --format dot | dot -Tsvg > host.svg``).

Written by hand rather than through pydot/pygraphviz: no extra dependency, and
the text is fully under our control, so it is stable for golden-file tests.
Each VRF is a ``cluster`` box holding its interfaces and container.
"""

from __future__ import annotations

import networkx as nx

from netlens.export._common import clusters, label_lines
from netlens.kernel.inert import dot_string

_SHAPES = {
    "server": "box3d",
    "vrf": "cylinder",
    "l3vrf": "cylinder",
    "interface": "box",
    "bridge": "hexagon",
    "uplink": "cds",
    "container": "component",
}
_EDGE_STYLE = {
    "veth": 'penwidth=2, color="#1f77b4"',
    "bridge_port": 'color="#2ca02c"',
    "member": 'style=dotted, color="#7f7f7f"',
    "l3vrf_member": 'style=dotted, color="#9467bd"',
    "master": 'color="#8c564b"',
    "uplink": 'penwidth=3, color="#d62728"',
    "tunnel": 'style=dashed, color="#ff7f0e"',
    "lower": 'style=dashed, color="#8c564b"',
    "container": 'style=dotted, color="#17becf"',
}


def _node_line(node: str, data: dict[str, object], indent: str) -> str:
    # each line escaped on its own, then joined with DOT's line break
    label = "\\n".join(dot_string(s)[1:-1] for s in label_lines(dict(data)))
    shape = _SHAPES.get(str(data.get("type")), "box")
    style = ', style="rounded,dashed"' if data.get("up") is False else ""
    return f'{indent}{dot_string(node)} [label="{label}", shape={shape}{style}];'


def to_dot(g: nx.MultiGraph) -> str:
    """The graph as DOT text, ending with a newline."""
    out = [
        f"graph {dot_string('netlens ' + str(g.graph.get('hostname', '')))} {{",
        '  graph [rankdir=LR, fontname="Helvetica", compound=true];',
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=8];',
    ]
    top, groups = clusters(g)
    for node in top:
        out.append(_node_line(node, g.nodes[node], "  "))
    for i, (vrf, members) in enumerate(groups.items()):
        vdata = g.nodes[vrf]
        title = f"{vdata.get('label', vrf)} ({vrf})"
        out.append(f"  subgraph cluster_{i} {{")
        out.append(f"    label={dot_string(title)}; style=rounded;")
        for node in members:
            out.append(_node_line(node, g.nodes[node], "    "))
        out.append("  }")
    for u, v, etype in g.edges(keys=True):
        style = _EDGE_STYLE.get(str(etype), "")
        out.append(
            f"  {dot_string(u)} -- {dot_string(v)} [label={dot_string(str(etype))}, {style}];"
        )
    out.append("}")
    return "\n".join(out) + "\n"
