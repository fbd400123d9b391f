"""Turn raw replies into a :class:`~netlens.model.Snapshot`.

Two phases, as in lxkns: first every namespace is parsed on its own (links,
addresses, routes, rules, neighbours, FDB, sysctls); then cross-namespace
relations are resolved: veth peers, lower devices in other namespaces, uplinks,
l3mdev VRF members. Both read only a :class:`NetlinkSource` and a
:class:`ProcSource`, so live hosts and recorded fixtures take the same path.

Veth pairing is O(N). IFLA_LINK_NETNSID is numbered by the *dumping* namespace,
so a host-side end is resolved with the host's numbering (asked once per
namespace from the host socket). The remaining ends (peer in a non-host
namespace) are matched through an index keyed by (ifindex, peer ifindex), and
each candidate is confirmed by asking the end's own namespace which id it gives
the candidate's namespace. Both ends may share an ifindex; the peer may sit in
the same namespace (no LINK_NETNSID) or have vanished mid-walk (``peer=None``,
``VethPair(a, None)``).
"""

from __future__ import annotations

import dataclasses
import errno
import gc
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from netlens.discovery import builders as nl
from netlens.discovery.builders import positional_builder as positional_builder
from netlens.discovery.nsfind import NsHandle
from netlens.discovery.server import is_physical, link_driver, link_speed, read_server
from netlens.discovery.sources import NetlinkSource, ProcSource
from netlens.discovery.tc import parse_qdiscs, redirect_target
from netlens.errors import DiscoveryError
from netlens.kernel import consts, wire
from netlens.kernel.wire import FIRST_ROUND as FIRST_ROUND  # requests per namespace
from netlens.kernel.wire import TFILTER
from netlens.model import (
    Address,
    Container,
    FdbEntry,
    IfRef,
    Interface,
    L3Vrf,
    NatRule,
    Neighbour,
    Netns,
    Route,
    Rule,
    Snapshot,
    TrafficControl,
    VethPair,
)

_new_interface = positional_builder(Interface)
_new_netns = positional_builder(Netns)

_LOWER_KINDS = frozenset({"vlan", "macvlan", "macvtap", "ipvlan", "ipvtap", "vxlan"})
_NEEDS_FDB = frozenset({"bridge", "vxlan"})
OPTIONAL = frozenset({"qdisc"})
"""Requests whose failure is no error of the namespace: a kernel without traffic
control (or a fixture recorded before netlens read it) simply has no qdiscs."""


@dataclass(slots=True)
class NsData:
    """Everything parsed from one namespace before cross-namespace resolution."""

    handle: NsHandle
    links: list[nl.LinkRec] = field(default_factory=list)
    by_index: dict[int, nl.LinkRec] = field(default_factory=dict)
    addrs: dict[int, list[Address]] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    neighbours: list[Neighbour] = field(default_factory=list)
    fdb: list[FdbEntry] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    tc: dict[int, TrafficControl] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    readable: bool = True


def _replies(
    src: NetlinkSource, ns: NsData, requests: Sequence[str]
) -> dict[str, bytes | wire.Decoded]:
    """Replies to ``requests``; failures become errors of the namespace. A dump the
    kernel flags as changed mid-dump is asked once more."""
    got = src.dumps(ns.handle.inode, requests)
    retry = [r for r, d in got.items() if isinstance(d, wire.Interrupted)]
    if retry:
        again = src.dumps(ns.handle.inode, retry)
        for r in retry:
            data = again.get(r)
            if isinstance(data, wire.Interrupted):
                ns.errors.append(f"{r}: changed during the dump (may be inconsistent)")
            if data is not None:
                got[r] = data
    out: dict[str, bytes | wire.Decoded] = {}
    for r in requests:
        data = got.get(r)
        if isinstance(data, (bytes, wire.Decoded)):
            out[r] = data
        elif r in OPTIONAL or r.startswith(TFILTER):
            continue
        else:
            err = data if data is not None else OSError(errno.EIO, "no reply")
            ns.errors.append(f"{r}: {err.strerror or err}")
    return out


def _ingress_redirects(src: NetlinkSource, ns: NsData) -> None:
    """Where each ingress qdisc's filters redirect arriving packets (an ifb that
    shapes them, for ``netlens link``'s ingress): one filter dump per such device."""
    names = tuple(f"{TFILTER}{i}" for i, tc in sorted(ns.tc.items()) if tc.ingress)
    got = _replies(src, ns, names)
    for name in names:
        raw = got.get(name)
        target = redirect_target(raw) if isinstance(raw, bytes) else None
        if target is not None:
            index = int(name[len(TFILTER) :])
            ns.tc[index] = dataclasses.replace(ns.tc[index], ingress_to=target)


LIGHT_ROUND = ("link", "addr")
"""What ``light`` reads: the interfaces and their addresses (netlens trace asks
the kernel itself for routes, neighbours and FDB entries, one question each)."""


def read_namespaces(
    handles: Sequence[NsHandle], src: NetlinkSource, *, light: bool = False
) -> tuple[list[NsData], dict[int, OSError]]:
    """Open and dump every namespace. Vanished namespaces are dropped; those that
    could not be entered for another reason stay, marked unreadable. ``light``:
    links and addresses only (no routes, rules, neighbours, qdiscs, FDB, bridge
    sysctls): on a host with 1000 veths those cost most of the time."""
    first_round = LIGHT_ROUND if light else FIRST_ROUND
    failed = src.open(handles)
    out: list[NsData] = []
    for h in handles:
        err = failed.get(h.inode)
        if err is not None:
            if err.errno == errno.ENOENT:
                continue
            out.append(NsData(h, errors=[str(err.strerror or err)], readable=False))
            continue
        out.append(NsData(h))
    bridged: list[int] = []
    src.prefetch([ns.handle.inode for ns in out if ns.readable], first_round)
    for ns in out:
        if not ns.readable:
            continue
        got = _replies(src, ns, first_round)
        data = got.get("link")
        if data is not None:
            ns.links = nl.parse_links(data)
            ns.by_index = {rec.ifindex: rec for rec in ns.links}
        names = {rec.ifindex: rec.name for rec in ns.links}
        raw = got.get(wire.NETCONF)
        if isinstance(raw, bytes):
            ns.sysctls = nl.parse_netconf(raw)
        data = got.get("addr")
        if data is not None:
            ns.addrs = nl.parse_addrs(data)
        data = got.get("route")
        if data is not None:
            ns.routes = nl.parse_routes(data, names)
        raw = got.get("rule")
        if isinstance(raw, bytes):
            ns.rules = nl.parse_rules(raw)
        raw = got.get("neigh")
        if isinstance(raw, bytes):
            ns.neighbours = nl.parse_neighbours(raw, names)
        raw = got.get("qdisc")
        if isinstance(raw, bytes):
            ns.tc = parse_qdiscs(raw)
            if any(tc.ingress for tc in ns.tc.values()):
                _ingress_redirects(src, ns)
        kinds = {rec.kind for rec in ns.links}
        if "bridge" in kinds:
            bridged.append(ns.handle.inode)
        if kinds & _NEEDS_FDB and not light:
            raw = _replies(src, ns, ("fdb",)).get("fdb")
            if isinstance(raw, bytes):
                vx = frozenset(r.ifindex for r in ns.links if r.kind == "vxlan")
                ns.fdb = nl.parse_fdb(raw, vx)
        if ns.handle.is_host:
            # Ask the host's numbering now (NsidMap needs it after the walk): with
            # the helper process walking the other namespaces, this process would
            # otherwise wait for it here with nothing to do.
            src.host_nsids()
    if bridged and not light:
        values = src.sysctls(bridged)
        for ns in out:
            ns.sysctls.update(values.get(ns.handle.inode, {}))
    return out, failed


class NsidMap:
    """Translate (asking namespace, nsid) into a namespace inode.

    The host's numbering is asked once for all namespaces; any other
    namespace's numbering is asked lazily, only for the candidates a link
    could point at, and cached.
    """

    def __init__(self, src: NetlinkSource, host: int | None, inodes: Sequence[int]) -> None:
        self.src = src
        self.host = host
        self.inodes = set(inodes)
        self.host_ids = src.host_nsids() if host is not None else {}
        self.host_rev = {nsid: inode for inode, nsid in self.host_ids.items()}
        self.asked: dict[tuple[int, int], int | None] = {}

    def ask(self, asker: int, targets: Sequence[int]) -> None:
        todo = [t for t in dict.fromkeys(targets) if (asker, t) not in self.asked]
        if todo:
            for t, n in zip(todo, self.src.ask_nsids(asker, todo), strict=True):
                self.asked[(asker, t)] = n

    def resolve(self, asker: int, nsid: int, candidates: Sequence[int]) -> int | None:
        """Which of ``candidates`` namespace ``asker`` calls ``nsid``."""
        if asker == self.host:
            target = self.host_rev.get(nsid)
            return target if target in candidates else None
        self.ask(asker, candidates)
        for c in candidates:
            if self.asked.get((asker, c)) == nsid:
                return c
        return None


def pair_veths(
    spaces: Sequence[NsData], nsids: NsidMap
) -> dict[tuple[int, int], tuple[int, int] | None]:
    """Map each veth end (inode, ifindex) to its peer's, or None if it vanished."""
    by_inode = {ns.handle.inode: ns for ns in spaces}
    peer: dict[tuple[int, int], tuple[int, int] | None] = {}
    index: dict[tuple[int, int], list[tuple[int, nl.LinkRec]]] = {}
    ends: list[tuple[int, nl.LinkRec]] = []
    for ns in spaces:
        inode = ns.handle.inode
        for rec in ns.links:
            if rec.kind == "veth":
                ends.append((inode, rec))
                if rec.link:
                    index.setdefault((rec.ifindex, rec.link), []).append((inode, rec))

    def confirm(a_inode: int, a: nl.LinkRec, b_inode: int | None) -> None:
        b = by_inode[b_inode].by_index.get(a.link or 0) if b_inode in by_inode else None
        if b_inode is not None and b is not None and b.kind == "veth" and b.link == a.ifindex:
            peer[(a_inode, a.ifindex)] = (b_inode, b.ifindex)
            peer[(b_inode, b.ifindex)] = (a_inode, a.ifindex)
        else:
            peer[(a_inode, a.ifindex)] = None

    host = nsids.host
    pending: list[tuple[int, nl.LinkRec, list[int]]] = []
    # Host ends first: the host numbering resolves them without asking anyone.
    for inode, rec in ends:
        if inode == host and (inode, rec.ifindex) not in peer:
            if rec.link_netnsid is None:
                confirm(inode, rec, inode)
            else:
                confirm(inode, rec, nsids.host_rev.get(rec.link_netnsid))
    for inode, rec in ends:
        key = (inode, rec.ifindex)
        if key in peer:
            continue
        if not rec.link:
            peer[key] = None
        elif rec.link_netnsid is None:
            confirm(inode, rec, inode)
        else:
            # Candidates not yet paired; a host end the host numbering could not
            # place (its peer None so far) may still be confirmed from this side.
            cands = [
                c_inode
                for c_inode, c in index.get((rec.link, rec.ifindex), ())
                if c_inode != inode and peer.get((c_inode, c.ifindex)) is None
            ]
            if not cands:
                peer[key] = None
            else:
                pending.append((inode, rec, cands))
    # Ask each asking namespace about all its candidates in one batch.
    by_asker: dict[int, list[int]] = {}
    for inode, _rec, cands in pending:
        by_asker.setdefault(inode, []).extend(cands)
    for asker, targets in by_asker.items():
        nsids.ask(asker, targets)
    for inode, rec, cands in pending:
        if (inode, rec.ifindex) in peer:
            continue
        assert rec.link_netnsid is not None
        confirm(inode, rec, nsids.resolve(inode, rec.link_netnsid, cands))
    return peer


def _lower_ref(
    ns: NsData, rec: nl.LinkRec, spaces: Sequence[NsData], nsids: NsidMap
) -> IfRef | None:
    """The device a vlan/macvlan/ipvlan/vxlan sits on, possibly in another namespace."""
    inode = ns.handle.inode
    lower = rec.vxlan.underlay if rec.vxlan is not None else rec.link
    if not lower:
        return None
    if rec.link_netnsid is None:
        return IfRef(ns.handle.id, lower) if lower != rec.ifindex else None
    cands = [s.handle.inode for s in spaces if s.handle.inode != inode and lower in s.by_index]
    host = nsids.host
    if host is not None and host in cands:  # the usual case: a macvlan moved into a container
        cands.remove(host)
        cands.insert(0, host)
    target = nsids.resolve(inode, rec.link_netnsid, cands)
    return IfRef(f"netns:{target}", lower) if target is not None else None


def _uplinks(ns: NsData, proc: ProcSource) -> set[int]:
    """Host NICs with a bus device, plus bonds and VLANs stacked on them."""
    up = {r.ifindex for r in ns.links if r.kind == "ether" and is_physical(proc, r.name)}
    changed = True
    while changed:
        changed = False
        for r in ns.links:
            if r.ifindex in up:
                continue
            over = (r.kind == "vlan" and r.link in up and r.link_netnsid is None) or (
                r.kind == "bond"
                and any(m.master == r.ifindex and m.ifindex in up for m in ns.links)
            )
            if over:
                up.add(r.ifindex)
                changed = True
    return up


def build_snapshot(
    handles: Sequence[NsHandle],
    src: NetlinkSource,
    proc: ProcSource,
    *,
    containers: Sequence[Container] = (),
    nat: Mapping[int, tuple[NatRule, ...]] | None = None,
    root: bool = True,
    warnings: Sequence[str] = (),
    networks: Mapping[str, str] | None = None,
    light: bool = False,
) -> Snapshot:
    """Read every namespace in ``handles`` through ``src`` and resolve relations.
    ``light``: interfaces and addresses only (see :func:`read_namespaces`).

    ``networks``: host bridge name -> the network that owns it (engines' state,
    see :mod:`netlens.discovery.networks`), set on those bridges' ``network``.
    """
    taken_at = time.time()
    # Discovery allocates tens of thousands of small acyclic objects; the cyclic
    # collector would rescan them again and again (about a quarter of the time).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _build(
            handles, src, proc, containers, nat, root, warnings, taken_at, networks or {}, light
        )
    finally:
        if gc_was_enabled:
            gc.enable()


def _build(
    handles: Sequence[NsHandle],
    src: NetlinkSource,
    proc: ProcSource,
    containers: Sequence[Container],
    nat: Mapping[int, tuple[NatRule, ...]] | None,
    root: bool,
    warnings: Sequence[str],
    taken_at: float,
    networks: Mapping[str, str],
    light: bool = False,
) -> Snapshot:
    spaces, _failed = read_namespaces(handles, src, light=light)
    readable = [ns for ns in spaces if ns.readable and ns.links]
    if not readable:
        raise DiscoveryError(
            "could not read any network namespace (netlink refused); "
            "run as root to enter other namespaces"
        )
    host = next((ns.handle.inode for ns in spaces if ns.handle.is_host and ns.readable), None)
    nsids = NsidMap(src, host, [ns.handle.inode for ns in readable])
    peers = pair_veths(readable, nsids)
    server = read_server(proc)
    by_ns_container = {c.netns: c for c in containers if c.netns}
    nat = nat or {}

    netns_list: list[Netns] = []
    pairs: list[VethPair] = []
    for ns in spaces:
        h = ns.handle
        h_id = h.id
        uplinks = _uplinks(ns, proc) if h.is_host else set()
        owners = networks if h.is_host else {}  # engines' bridges live in the host's
        interfaces: list[Interface] = []
        for rec in ns.links:
            peer_ref: IfRef | None = None
            if rec.kind == "veth":
                p = peers.get((h.inode, rec.ifindex))
                peer_ref = IfRef(f"netns:{p[0]}", p[1]) if p else None
                me = IfRef(h_id, rec.ifindex)
                if peer_ref is None:
                    pairs.append(VethPair(me, None))
                elif _first_end(me, peer_ref, host):
                    pairs.append(VethPair(me, peer_ref))
            lower = _lower_ref(ns, rec, readable, nsids) if rec.kind in _LOWER_KINDS else None
            is_uplink = rec.ifindex in uplinks
            interfaces.append(
                _new_interface(  # Interface's fields, in order (positional_builder)
                    h_id,
                    rec.ifindex,
                    rec.name,
                    rec.kind,
                    rec.operstate,
                    bool(rec.flags & consts.IFF_UP),
                    rec.carrier,
                    rec.mtu,
                    rec.mac,
                    rec.alias,
                    rec.master,
                    rec.link,
                    rec.link_netnsid,
                    tuple(ns.addrs.get(rec.ifindex, ())),
                    peer_ref,
                    lower,
                    rec.bridge,
                    rec.port,
                    rec.vxlan,
                    rec.vlan,
                    rec.bond,
                    rec.macvlan,
                    rec.vrf_table,
                    is_uplink,
                    link_speed(proc, rec.name) if is_uplink else None,
                    link_driver(proc, rec.name) if is_uplink else None,
                    rec.counters,
                    owners.get(rec.name) if rec.kind == "bridge" else None,
                    ns.tc.get(rec.ifindex) if ns.tc else None,
                )
            )
        vrfs = tuple(
            L3Vrf(
                r.ifindex,
                r.name,
                r.vrf_table or 0,
                tuple(m.ifindex for m in ns.links if m.master == r.ifindex),
            )
            for r in ns.links
            if r.kind == "vrf"
        )
        container = by_ns_container.get(h.id)
        if h.is_host:
            name = "host"
        elif h.names:
            name = h.names[0]
        elif container is not None:
            name = container.name
        else:
            name = h.id
        netns_list.append(
            _new_netns(  # Netns's fields, in order (positional_builder)
                h.id,
                h.inode,
                h.dev,
                h.is_host,
                name,
                h.names,
                h.mounts,
                h.pids,
                nsids.host_ids.get(h.inode),
                container.id if container else None,
                tuple(interfaces),
                tuple(ns.routes),
                tuple(ns.rules),
                tuple(ns.neighbours),
                tuple(ns.fdb),
                vrfs,
                nat.get(h.inode, ()),
                ns.sysctls,
                ns.readable and not ns.errors,
                tuple(ns.errors),
            )
        )
    netns_list.sort(key=lambda n: (not n.is_host, n.name, n.inode))
    pairs.sort(key=lambda p: (p.a.netns, p.a.ifindex))  # IfRef's order, as plain tuples
    unreadable = sum(1 for ns in spaces if not ns.readable)
    notes = list(warnings)
    if unreadable and root:
        notes.append(f"{unreadable} namespace(s) could not be entered")
    return Snapshot(
        server=server,
        namespaces=tuple(netns_list),
        containers=tuple(containers),
        veth_pairs=tuple(pairs),
        taken_at=taken_at,
        root=root,
        warnings=tuple(notes),
    )


def _first_end(me: IfRef, other: IfRef, host: int | None) -> bool:
    """Each pair is listed once: from its host end, else from the smaller ref."""
    host_id = f"netns:{host}" if host is not None else None
    if me.netns == host_id and other.netns != host_id:
        return True
    if other.netns == host_id and me.netns != host_id:
        return False
    return me < other
