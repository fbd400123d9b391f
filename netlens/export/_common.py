"""What the exporters share: grouping nodes by VRF and the text of a node label."""

from __future__ import annotations

from typing import Any

import networkx as nx


def clusters(g: nx.MultiGraph) -> tuple[list[str], dict[str, list[str]]]:
    """Split nodes into top-level ones and per-VRF groups, in insertion order.

    A VRF's group holds the VRF node itself, its interfaces, l3mdev VRFs and
    the container behind it, so a drawing shows each namespace as one box.
    """
    top: list[str] = []
    groups: dict[str, list[str]] = {}
    for node, data in g.nodes(data=True):
        if data.get("type") == "vrf":
            groups.setdefault(node, []).insert(0, node)
    for node, data in g.nodes(data=True):
        if data.get("type") == "vrf":
            continue
        ns = data.get("netns")
        if isinstance(ns, str) and ns in groups:
            groups[ns].append(node)
        else:
            top.append(node)
    return top, groups


def label_lines(data: dict[str, Any]) -> list[str]:
    """Lines of a node's label: name first, then what an engineer looks for."""
    t = data.get("type")
    name = str(data.get("label", ""))
    if t == "vrf":
        return [f"VRF {name}"]
    if t == "l3vrf":
        return [f"vrf {name}", f"table {data.get('table')}"]
    if t == "server":
        return [name, f"{data.get('kernel', '')} {data.get('arch', '')}".strip()]
    if t == "container":
        return [name, str(data.get("engine", ""))]
    lines = [name]
    kind = data.get("kind")
    extra = str(kind) if kind else ""
    if "vni" in data:
        extra += f" vni {data['vni']}"
    if "vlan_id" in data:
        extra += f" id {data['vlan_id']}"
    if "speed_mbps" in data:
        extra += f" {data['speed_mbps']} Mb/s"
    if extra:
        lines.append(extra)
    lines.extend(data.get("addresses", ()))
    return lines
