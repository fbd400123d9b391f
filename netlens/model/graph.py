"""The host as a graph: VRFs, interfaces, bridges, uplinks and containers.

Why a graph at all: the questions a network engineer asks ("what is this
container's way out?", "what hangs off br0?", "who is behind this veth?") are
path and neighbourhood questions. The model answers them per object; the graph
answers them across objects, and exporters draw it.

Shape (an undirected :class:`networkx.MultiGraph`: cables have no direction and
the edge *key* is the edge type, so two different relations between the same
pair of nodes never collapse into one):

Nodes (id -> attribute ``type``)
  ``"server"`` -> server; ``Netns.id`` -> vrf; ``"<netns id>/vrf/<name>"`` ->
  l3vrf (an l3mdev VRF inside a namespace); ``IfRef.key`` -> interface, bridge
  (kind bridge) or uplink (``Interface.uplink``); ``Container.id`` -> container.

Edges (attribute ``type``, also the MultiGraph key)
  veth (peer <-> peer), bridge_port (port <-> bridge), member (interface <->
  its namespace VRF; also l3vrf <-> namespace VRF), l3vrf_member (interface <->
  l3vrf whose device is its master), master (interface <-> a non-bridge,
  non-vrf master such as a bond; and the vrf device <-> its l3vrf), uplink
  (server <-> uplink), tunnel (vxlan <-> underlay), lower (vlan/macvlan/...
  <-> lower device), container (container <-> its VRF).

A port enslaved to a bridge, bond or l3mdev VRF gets *no* ``member`` edge: like
a switchport it does not route by itself, its master does. That makes shortest
paths follow the traffic: container -> VRF -> eth0 -> veth -> bridge -> host
VRF -> uplink.

Attributes are plain scalars (str, int, float, bool) or tuples of str; ``None``
is never stored, so exporters can rely on ``attr in data``. From a node id back
to the model object: :class:`netlens.model.index.SnapshotIndex` (``netns``,
``by_key``, ``containers`` dicts).

Helpers for views: :func:`neighbours`, :func:`bridge_ports`, :func:`uplinks`,
:func:`nodes_of_type`, :func:`path_to_uplink` / :func:`container_path_to_uplink`
(one node) and :func:`paths_to_uplink` (every node in one pass).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

import networkx as nx

from netlens.model.index import SnapshotIndex
from netlens.model.types import Container, Interface, Netns, Snapshot

SERVER = "server"
NODE_TYPES = ("server", "vrf", "l3vrf", "interface", "bridge", "uplink", "container")
EDGE_TYPES = (
    "veth",
    "bridge_port",
    "member",
    "l3vrf_member",
    "uplink",
    "tunnel",
    "lower",
    "container",
    "master",
)


def l3vrf_id(ns_id: str, name: str) -> str:
    """Node id of an l3mdev VRF named ``name`` inside namespace ``ns_id``."""
    return f"{ns_id}/vrf/{name}"


def _clean(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if v is not None}


def _itf_type(itf: Interface) -> str:
    if itf.kind == "bridge":
        return "bridge"
    if itf.uplink:
        return "uplink"
    return "interface"


def _itf_attrs(itf: Interface) -> dict[str, Any]:
    return _clean(
        {
            "type": _itf_type(itf),
            "label": itf.display_name,
            "name": itf.name,
            "network": itf.network,
            "kind": itf.kind,
            "netns": itf.netns,
            "ifindex": itf.ifindex,
            "operstate": itf.operstate,
            "up": itf.up,
            "mtu": itf.mtu,
            "mac": itf.mac,
            "addresses": tuple(a.cidr for a in itf.addresses),
            "speed_mbps": itf.speed_mbps,
            "vni": itf.vxlan.vni if itf.vxlan else None,
            "vlan_id": itf.vlan.vlan_id if itf.vlan else None,
        }
    )


def _vrf_attrs(ns: Netns) -> dict[str, Any]:
    return _clean(
        {
            "type": "vrf",
            "label": ns.name,
            "name": ns.name,
            "netns": ns.id,
            "is_host": ns.is_host,
            "container": ns.container,
            "complete": ns.complete,
        }
    )


def _container_attrs(c: Container) -> dict[str, Any]:
    return _clean(
        {
            "type": "container",
            "label": c.name,
            "name": c.name,
            "engine": str(c.engine),
            "state": c.state,
            "image": c.image,
            "pid": c.pid,
            "netns": c.netns,
        }
    )


def _add_ns(g: nx.MultiGraph, ns: Netns) -> None:
    """Nodes and intra-namespace edges of one VRF."""
    g.add_node(ns.id, **_vrf_attrs(ns))
    by_idx = {i.ifindex: i for i in ns.interfaces}
    # l3mdev VRFs: from ns.vrfs, plus any vrf device discovery did not list there.
    l3: dict[int, tuple[str, int, set[int]]] = {}  # device ifindex -> (node, table, members)
    for v in ns.vrfs:
        l3[v.ifindex] = (l3vrf_id(ns.id, v.name), v.table, set(v.members))
    for itf in ns.interfaces:
        if itf.kind == "vrf" and itf.ifindex not in l3:
            l3[itf.ifindex] = (l3vrf_id(ns.id, itf.name), itf.vrf_table or 0, set())
    for itf in ns.interfaces:
        g.add_node(f"{ns.id}/{itf.ifindex}", **_itf_attrs(itf))
    for dev_idx, (node, table, _) in l3.items():
        name = node.rsplit("/", 1)[1]
        g.add_node(node, type="l3vrf", label=name, name=name, netns=ns.id, table=table)
        g.add_edge(node, ns.id, key="member", type="member")
        if dev_idx in by_idx:
            g.add_edge(f"{ns.id}/{dev_idx}", node, key="master", type="master")
    for itf in ns.interfaces:
        key = f"{ns.id}/{itf.ifindex}"
        master = by_idx.get(itf.master) if itf.master is not None else None
        if itf.ifindex in l3:
            pass  # the vrf device is represented by its l3vrf node
        elif master is None:
            g.add_edge(key, ns.id, key="member", type="member")
        elif master.kind == "bridge":
            g.add_edge(key, f"{ns.id}/{master.ifindex}", key="bridge_port", type="bridge_port")
        elif master.ifindex in l3:
            g.add_edge(key, l3[master.ifindex][0], key="l3vrf_member", type="l3vrf_member")
        else:
            g.add_edge(key, f"{ns.id}/{master.ifindex}", key="master", type="master")
        for dev_idx, (node, _, members) in l3.items():
            if itf.ifindex in members and itf.master != dev_idx:
                g.add_edge(key, node, key="l3vrf_member", type="l3vrf_member")
        lower = itf.lower
        vx = itf.vxlan
        if lower is None and vx is not None and vx.underlay is not None and vx.underlay in by_idx:
            lower = by_idx[vx.underlay].ref
        if lower is not None:
            etype = "tunnel" if itf.kind == "vxlan" else "lower"
            target = f"{lower.netns}/{lower.ifindex}"
            if target in g:
                g.add_edge(key, target, key=etype, type=etype)


def build_graph(snapshot: Snapshot, index: SnapshotIndex | None = None) -> nx.MultiGraph:
    """Build the :class:`networkx.MultiGraph` of a snapshot (deterministic order).

    Node and edge insertion follow the snapshot's order, so iteration, exports
    and golden files are stable. Edges to objects outside the snapshot (a veth
    peer in a namespace filtered out, a vanished peer) are left out.
    """
    idx = index or SnapshotIndex(snapshot)
    g = nx.MultiGraph(
        schema_version=snapshot.schema_version,
        taken_at=snapshot.taken_at,
        hostname=snapshot.server.hostname,
    )
    s = snapshot.server
    g.add_node(
        SERVER,
        type="server",
        label=s.hostname,
        hostname=s.hostname,
        kernel=s.kernel,
        arch=s.arch,
        cpu_count=s.cpu_count,
        mem_total=s.mem_total,
    )
    for ns in snapshot.namespaces:
        _add_ns(g, ns)
    for c in snapshot.containers:
        g.add_node(c.id, **_container_attrs(c))
        if c.netns is not None and c.netns in idx.netns:
            g.add_edge(c.id, c.netns, key="container", type="container")
    for pair in snapshot.veth_pairs:
        if pair.b is None:
            continue
        a, b = f"{pair.a.netns}/{pair.a.ifindex}", f"{pair.b.netns}/{pair.b.ifindex}"
        if a in g and b in g:
            g.add_edge(a, b, key="veth", type="veth")
    for itf in snapshot.interfaces():
        if itf.uplink:
            g.add_edge(SERVER, f"{itf.netns}/{itf.ifindex}", key="uplink", type="uplink")
    return g


# --------------------------------------------------------------------------------------
# helpers the views use
# --------------------------------------------------------------------------------------


def neighbours(
    g: nx.MultiGraph, node: str, edge_type: str | Iterable[str] | None = None
) -> list[str]:
    """Nodes adjacent to ``node`` (in insertion order), optionally by edge type(s)."""
    if node not in g:
        return []
    want = {edge_type} if isinstance(edge_type, str) else set(edge_type or ())
    out: list[str] = []
    for other, edges in g.adj[node].items():
        if not want or any(k in want for k in edges):
            out.append(other)
    return out


def bridge_ports(g: nx.MultiGraph, bridge: str) -> list[str]:
    """Node ids of the ports of a bridge node."""
    return neighbours(g, bridge, "bridge_port")


def uplinks(g: nx.MultiGraph) -> list[str]:
    """Node ids of the uplinks (the server's ways out)."""
    return neighbours(g, SERVER, "uplink")


def nodes_of_type(g: nx.MultiGraph, node_type: str) -> list[str]:
    """Node ids whose ``type`` attribute is ``node_type``, in insertion order."""
    return [n for n, t in g.nodes(data="type") if t == node_type]


def _walkable(g: nx.MultiGraph, node: str) -> bool:
    """Paths never pass through the server (it joins every uplink) or a container."""
    return node != SERVER and g.nodes[node].get("type") != "container"


def path_to_uplink(g: nx.MultiGraph, start: str) -> list[str] | None:
    """The shortest node path from ``start`` (a container, VRF or interface) to an uplink.

    Breadth-first in insertion order, so the answer is deterministic; it never
    walks through the server node or another container, and stops as soon as an
    uplink is seen (the host VRF of 1000 containers has 1000 neighbours). ``None``
    when no uplink can be reached (an isolated lab namespace) or ``start`` is
    unknown. For every container at once use :func:`paths_to_uplink`.
    """
    if start not in g:
        return None
    nodes = g.nodes
    if nodes[start].get("type") == "uplink":
        return [start]
    prev: dict[str, str] = {start: start}
    todo: deque[str] = deque([start])
    while todo:
        node = todo.popleft()
        for other in g.adj[node]:
            if other in prev or not _walkable(g, other):
                continue
            prev[other] = node
            if nodes[other].get("type") == "uplink":
                path = [other]
                while path[-1] != start:
                    path.append(prev[path[-1]])
                return path[::-1]
            todo.append(other)
    return None


def paths_to_uplink(g: nx.MultiGraph) -> dict[str, list[str]]:
    """Path to the nearest uplink for every node that has one, in O(nodes + edges).

    One breadth-first search starting from all uplinks at once (in uplink order);
    each node's path follows the node that reached it first. Path lengths equal
    :func:`path_to_uplink`'s; among equally short paths the choice may differ.
    """
    nxt: dict[str, str | None] = {}
    todo: deque[str] = deque()
    for up in uplinks(g):
        nxt[up] = None
        todo.append(up)
    while todo:
        node = todo.popleft()
        if not _walkable(g, node):
            continue  # a container is reached, never walked through
        for other in g.adj[node]:
            if other in nxt or other == SERVER:
                continue
            nxt[other] = node
            todo.append(other)
    out: dict[str, list[str]] = {}
    for node in nxt:
        path = [node]
        while (step := nxt[path[-1]]) is not None:
            path.append(step)
        out[node] = path
    return out


def container_path_to_uplink(g: nx.MultiGraph, container_id: str) -> list[str] | None:
    """How a container reaches the outside: node ids from the container to an uplink."""
    return path_to_uplink(g, container_id)
