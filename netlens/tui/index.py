"""Derived lookups over one Snapshot, built once per structural change.

The snapshot is a plain tree; every view needs the same cross references (which bridge a
container hangs from, which veth carries it, its addresses). Building them once, in the
worker thread that received the snapshot, keeps the event loop free and the views thin.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from netlens.kernel.inert import terminal
from netlens.model.index import SnapshotIndex
from netlens.model.types import Container, Interface, Netns, Snapshot

if TYPE_CHECKING:
    import networkx as nx


@dataclass(frozen=True, slots=True)
class Attachment:
    """A namespace hanging from a bridge: the bridge, the host port and the inside end."""

    bridge: str  # IfRef.key of the bridge
    port: str  # IfRef.key of the bridge-side veth end
    inside: str  # IfRef.key of the namespace-side end
    pair: str  # key the live layer uses for the pair (the pair's `a` end)


@dataclass(frozen=True, slots=True)
class P2PLink:
    """A veth pair whose two ends are in two namespaces, neither a bridge port."""

    a: str
    b: str
    pair: str


@dataclass(frozen=True, slots=True)
class ContainerRow:
    """One row of the containers table: identity and static columns."""

    key: str  # Container.id, or Netns.id for a namespace without a container
    name: str
    engine: str
    ip: str
    bridge: str
    netns: str
    vrf_key: str  # Netns.id, to read VRF rates when the container has none
    privileged: bool = False  # every capability, no seccomp filter: marked in the table
    ports: str = ""  # published ports, as `ps` prints them: "8080->80/tcp, ..."


def _guests(snap: Snapshot, by_ns: dict[str, Container]) -> dict[str, Container]:
    """``by_ns`` without the host namespace's entry.

    Discovery gives the host namespace a pseudo-container (engine ``host``) named after
    the hostname, and a host-network container may claim it too; the dashboard then
    called one namespace "host", "vm" and "vm (host vm)". The host namespace is "host"
    wherever a namespace is named; the hostname is the server's name only.
    """
    host = snap.host
    if host is None or host.id not in by_ns:
        return by_ns  # shared with the model's index: copied only when it must change
    return {k: c for k, c in by_ns.items() if k != host.id}


@dataclass
class ViewIndex:
    """What the dashboard's views look up, derived once per snapshot: which bridge each
    namespace hangs from and by which veth, the point-to-point cables, the containers
    table's rows and the filter predicate.

    Not :class:`netlens.model.index.SnapshotIndex` (plain dicts from ids to model
    objects, shared by the exports and the dump): this one answers the views' questions
    and is built in the data worker, off the event loop.
    """

    snapshot: Snapshot
    ns: dict[str, Netns] = field(default_factory=dict)
    container_of_ns: dict[str, Container] = field(default_factory=dict)
    ifaces: dict[str, Interface] = field(default_factory=dict)
    bridges: list[Interface] = field(default_factory=list)
    uplinks: list[Interface] = field(default_factory=list)
    vxlans: list[Interface] = field(default_factory=list)
    attachments: dict[str, list[Attachment]] = field(default_factory=dict)  # by netns id
    members: dict[str, list[str]] = field(default_factory=dict)  # bridge key -> netns ids
    p2p: list[P2PLink] = field(default_factory=list)
    pair_of: dict[str, str] = field(default_factory=dict)  # iface key -> pair key
    rows: list[ContainerRow] = field(default_factory=list)
    base: SnapshotIndex | None = field(default=None, repr=False)  # the model's lookups
    bridge_of_port: dict[str, str] = field(default_factory=dict)  # port key -> bridge key
    _counts: dict[str, int] | None = field(default=None, init=False, repr=False)
    _graph: nx.MultiGraph | None = field(default=None, init=False, repr=False)

    @property
    def counts(self) -> dict[str, int]:
        """``snapshot.counts()``, once: it walks every interface (~2 ms at 1000
        containers) and the status line, topology title and density view all ask."""
        if self._counts is None:
            self._counts = self.snapshot.counts()
        return self._counts

    @classmethod
    def build(cls, snap: Snapshot, base: SnapshotIndex | None = None) -> ViewIndex:
        """Derive the views' lookups from the model's :class:`SnapshotIndex`: the same
        dicts, node ids (``IfRef.key``) and bridge-port rule that
        :func:`netlens.model.graph.build_graph` turns into ``bridge_port`` and ``veth``
        edges. Walking the networkx graph itself cost 2-3x more CPU per snapshot at 1000
        containers (``tests/bench/test_bench_tui.py``), so the views walk these dicts."""
        base = base or SnapshotIndex(snap)
        idx = cls(snap, base.netns, _guests(snap, base.container_by_netns), base.by_key)
        idx.base = base
        port_bridge = {p: b for b, ports in base.bridge_ports.items() for p in ports}
        idx.bridge_of_port = port_bridge
        for key, itf in idx.ifaces.items():
            if itf.kind == "bridge":
                idx.bridges.append(itf)
                idx.members[key] = []
            if itf.uplink:
                idx.uplinks.append(itf)
            if itf.kind == "vxlan":
                idx.vxlans.append(itf)
        for vp in snap.veth_pairs:
            idx.pair_of[vp.a.key] = vp.a.key
            if vp.b is not None:
                idx.pair_of[vp.b.key] = vp.a.key
        # also pairs the discovery layer resolved on interfaces but not in veth_pairs
        for key, itf in list(idx.ifaces.items()):
            if itf.peer is not None and key not in idx.pair_of:
                a, b = sorted((itf.ref, itf.peer))
                idx.pair_of[key] = a.key
                idx.pair_of.setdefault(itf.peer.key, a.key)
        seen: set[str] = set()
        for key, itf in idx.ifaces.items():
            if itf.kind != "veth" or itf.peer is None:
                continue
            pkey = f"{itf.peer.netns}/{itf.peer.ifindex}"
            peer = idx.ifaces.get(pkey)
            pair = idx.pair_of.get(key, key)
            bridge = port_bridge.get(key)
            if bridge is not None and peer is not None and pkey not in port_bridge:
                if not idx.ns[peer.netns].is_host:
                    att = Attachment(bridge, key, pkey, pair)
                    idx.attachments.setdefault(peer.netns, []).append(att)
                    idx.members[bridge].append(peer.netns)
                continue
            if peer is None or bridge is not None or pkey in port_bridge:
                continue
            if pair in seen:
                continue
            seen.add(pair)
            a, b = sorted((itf.ref, itf.peer))
            idx.p2p.append(P2PLink(a.key, b.key, pair))
        published = published_ports(snap)
        for ns in snap.namespaces:
            if ns.is_host:
                continue
            c = idx.container_of_ns.get(ns.id)
            atts = idx.attachments.get(ns.id, [])
            br_name = idx.ifaces[atts[0].bridge].display_name if atts else ""
            idx.rows.append(
                ContainerRow(
                    key=c.id if c else ns.id,
                    name=c.name if c else ns.name,
                    engine=c.engine if c else "netns",
                    ip=idx.first_ip(ns),
                    bridge=br_name,
                    netns=ns.id,
                    vrf_key=ns.id,
                    privileged=bool(c and c.privileged),
                    ports=", ".join(p for ip in idx.global_ips(ns) for p in published.get(ip, ())),
                )
            )
        return idx

    def graph(self) -> nx.MultiGraph:
        """The snapshot's networkx graph (:mod:`netlens.model.graph`), built once on
        first use from the same index, for path questions the dicts do not answer."""
        if self._graph is None:
            from netlens.model.graph import build_graph  # networkx only when asked

            self._graph = build_graph(self.snapshot, self.base)
        return self._graph

    @staticmethod
    def global_ips(ns: Netns) -> list[str]:
        """The namespace's global addresses, in interface order."""
        return [
            a.address
            for itf in ns.interfaces
            if itf.kind != "loopback"
            for a in itf.addresses
            if a.scope == "global"
        ]

    @staticmethod
    def first_ip(ns: Netns) -> str:
        for itf in ns.interfaces:
            if itf.kind == "loopback":
                continue
            for a in itf.addresses:
                if a.scope == "global":
                    return a.address
        return ""

    def ns_label(self, ns_id: str) -> str:
        """A namespace's display name (its container's, else its own), as inert text:
        labels are only ever drawn, and whoever named it may have put escapes in it."""
        ns = self.ns.get(ns_id)
        c = self.container_of_ns.get(ns_id)
        return terminal(c.name if c else ns.name if ns else ns_id)

    def iface_label(self, key: str) -> str:
        """``vrf:interface`` for display, inert like :meth:`ns_label`."""
        itf = self.ifaces.get(key)
        if itf is None:
            return terminal(key)
        return f"{self.ns_label(itf.netns)}:{terminal(itf.display_name)}"

    def ns_of_key(self, key: str) -> str | None:
        """The namespace a node key belongs to (netns ids, container ids, iface keys)."""
        if key in self.ns:
            return key
        for c in self.snapshot.containers:
            if c.id == key:
                return c.netns
        itf = self.ifaces.get(key)
        return itf.netns if itf else None

    def neighbours(self, key: str) -> set[str]:
        """Node keys one hop from ``key`` in the drawn topology (for focus mode)."""
        out: set[str] = {key}
        if key in self.members:
            out.update(self.members[key])
            return out
        for att in self.attachments.get(key, []):
            out.add(att.bridge)
        for link in self.p2p:
            na, nb = link.a.split("/")[0], link.b.split("/")[0]
            if key in (na, nb, link.a, link.b):  # an end: the cable (its wire is selectable)
                out.update((na, nb))
        return out

    def _peer_name(self, itf: Interface) -> str:
        peer = self.ifaces.get(itf.peer.key) if itf.peer is not None else None
        return peer.name if peer is not None else ""

    def matches(self, ns_id: str, needle: str) -> bool:
        """Filter predicate: name, container, engine, image, addresses, interfaces,
        their MACs and the names of their veth peers ("privileged" finds the privileged
        containers). The peer is what an engineer sees on the host (``ip -br link``
        lists ``veth1a2b3c``, a MAC table names a MAC): either finds the container."""
        if not needle:
            return True
        n = needle.lower()
        ns = self.ns.get(ns_id)
        if ns is None:
            return False
        c = self.container_of_ns.get(ns_id)
        hay: Iterable[str] = (
            ns.name,
            ns.id,
            *(i.name for i in ns.interfaces),
            *(i.mac or "" for i in ns.interfaces),
            *(self._peer_name(i) for i in ns.interfaces),
            *(a.address for i in ns.interfaces for a in i.addresses),
            *((c.name, c.engine, c.image or "", c.id) if c else ()),
            *(("privileged",) if c and c.privileged else ()),
        )
        return any(n in h.lower() for h in hay)


def published_ports(snap: Snapshot) -> dict[str, list[str]]:
    """Container address -> its published ports, read from the host's DNAT rules
    (every engine publishes that way), as ``ps`` prints them: ``[HOSTIP:]PORT->PORT/proto``.

    The host's rules are the truth the kernel acts on, so a port shows here whichever
    engine published it; a rule without a destination port (a whole-address DNAT) is
    not a published port and is left out.
    """
    out: dict[str, list[str]] = {}
    for ns in snap.namespaces:
        if not ns.is_host:
            continue
        for r in ns.nat:
            if r.action != "dnat" or not r.to_addr or not r.dport:
                continue
            host = f"{r.dst.split('/')[0]}:" if r.dst else ""
            text = f"{host}{r.dport}->{r.to_port or r.dport}/{r.proto or 'tcp'}"
            if text not in out.setdefault(r.to_addr, []):
                out[r.to_addr].append(text)
    return out
