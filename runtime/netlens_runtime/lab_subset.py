"""``lab up FILE --nodes a,b``: build only some nodes of a lab file.

``--nodes`` already took a number (grow the file's ``count`` groups to N nodes);
a list of names now picks nodes instead. The subset keeps what its nodes need
and drops what would dangle: links to nodes left out, networks no kept node is
on, routes through an interface or gateway that is no longer there, traffic
flows from or to a dropped node. What was dropped is returned as notes, so the
user sees that ``r2``'s default route went with the link it used.
"""

from __future__ import annotations

import dataclasses
import ipaddress

from netlens_runtime.errors import BadInput
from netlens_runtime.lab_model import PRIMARY_IFNAME, LabLink, LabNode, LabSpec


def parse_nodes_arg(text: str | None) -> int | list[str] | None:
    """``--nodes``: a number (scale the ``count`` groups) or comma-separated node names."""
    if text is None:
        return None
    text = text.strip()
    if text.isdigit():
        return int(text)
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise BadInput("--nodes: give a number of nodes or node names, e.g. --nodes r1,h1")
    return names


def subset(spec: LabSpec, names: list[str]) -> tuple[LabSpec, list[str]]:
    """``spec`` with only the nodes ``names`` (lab-local); returns it and notes on
    what was dropped besides the other nodes."""
    known = [n.name for n in spec.nodes]
    unknown = [n for n in names if n not in known]
    if unknown:
        shown = ", ".join(known[:12]) + (" ..." if len(known) > 12 else "")
        raise BadInput(f"--nodes: no node {unknown[0]!r} in lab {spec.name!r} (nodes: {shown})")
    keep = set(names)
    notes: list[str] = []
    links = tuple(lk for lk in spec.links if lk.a in keep and lk.b in keep)
    for lk in spec.links:
        if lk not in links:
            notes.append(f"link {lk.a}:{lk.a_ifname} - {lk.b}:{lk.b_ifname} (a node is left out)")
    nodes: list[LabNode] = []
    for node in spec.nodes:
        if node.name in keep:
            nodes.append(_trim_routes(spec, node, links, notes))
    used = {n.network for n in nodes if n.network} | {
        i.network for n in nodes for i in n.interfaces
    }
    networks = tuple(
        dataclasses.replace(
            net, allow_from=tuple(a for a in net.allow_from if a in used or "/" in a)
        )
        for net in spec.networks
        if net.name in used
    )
    traffic = tuple(f for f in spec.traffic if f.src in keep and f.dst in keep)
    dropped = len(spec.traffic) - len(traffic)
    if dropped:
        notes.append(f"{dropped} traffic flow(s) from or to a node left out")
    out = dataclasses.replace(
        spec, networks=networks, nodes=tuple(nodes), links=links, traffic=traffic
    )
    return out, notes


def _trim_routes(
    spec: LabSpec, node: LabNode, links: tuple[LabLink, ...], notes: list[str]
) -> LabNode:
    """Drop the node's routes whose interface or gateway left with the dropped links."""
    ifnames = {PRIMARY_IFNAME} if node.network else set()
    ifnames |= {i.ifname for i in node.interfaces}
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for name in [node.network, *(i.network for i in node.interfaces)]:
        subnet = spec.network(name).subnet if name else None
        if subnet:
            nets.append(ipaddress.ip_network(subnet))
    for lk in links:
        for end, ifname, addr in ((lk.a, lk.a_ifname, lk.a_addr), (lk.b, lk.b_ifname, lk.b_addr)):
            if end == node.name:
                ifnames.add(ifname)
                if addr:
                    nets.append(ipaddress.ip_interface(addr).network)
    routes = []
    for r in node.routes:
        if r.dev is not None and r.dev not in ifnames:
            notes.append(f"route {r.to} of {node.name} (its interface {r.dev} is left out)")
            continue
        if r.via is not None and r.dev is None:
            via = ipaddress.ip_address(r.via)
            if not any(via in net for net in nets):
                notes.append(f"route {r.to} via {r.via} of {node.name} (no longer connected)")
                continue
        routes.append(r)
    return dataclasses.replace(node, routes=tuple(routes))
