"""Shared views of a snapshot the checks reason with: L2 segments, connected
subnets, a static route lookup.

The lookup here is only a reading of the snapshot's tables (longest prefix in the
main table), used where a check must guess which way the kernel would send
something (a vxlan's underlay, a reply's way back) and the snapshot is all there
is (``--from FILE``). It ignores policy rules and marks on purpose: the checks
that depend on them say so in their evidence. ``netlens trace`` asks the kernel.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from netlens.model.types import Interface, Netns, Route, Snapshot

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=65536)
def network(text: str) -> IPNetwork | None:
    """``10.0.0.1/24`` (or a route's ``dst``) as a network; None for ``default``
    spelled per family by the caller, or for text that is not an address."""
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


@lru_cache(maxsize=65536)
def address(text: str) -> IPAddr | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def route_net(route: Route) -> IPNetwork | None:
    if route.dst == "default":
        return network("0.0.0.0/0" if route.family == 4 else "::/0")
    return network(route.dst)


def overlaps(a: IPNetwork, b: IPNetwork) -> bool:
    return a.version == b.version and a.overlaps(b)


def within(a: IPNetwork, b: IPNetwork) -> bool:
    """``a`` lies inside ``b`` (equal counts)."""
    return a.version == b.version and a.subnet_of(b)  # type: ignore[arg-type]


def connected(itf: Interface) -> Iterator[IPNetwork]:
    """The subnets ``itf`` sits on (its addresses' networks), host-scope left out."""
    for a in itf.addresses:
        if a.scope == "host":
            continue
        net = network(a.cidr)
        if net is not None:
            yield net


def lookup(ns: Netns, dst: str, family: int) -> Route | None:
    """The main-table route for ``dst`` by longest prefix, lowest metric (a static
    reading of the snapshot; see the module docstring). Connected routes are in
    the table as kernel routes, so a destination on a link finds that link."""
    addr = address(dst)
    if addr is None:
        return None
    best: tuple[int, int] | None = None
    found: Route | None = None
    for r in ns.routes:
        if r.table != 254 or r.family != family or r.type not in ("unicast", "local"):
            continue
        net = route_net(r)
        if net is None or addr not in net:
            continue
        key = (net.prefixlen, -(r.metric or 0))
        if best is None or key > best:
            best, found = key, r
    return found


def route_devices(route: Route) -> set[int]:
    """ifindexes a route leaves through (every ECMP leg)."""
    devs = {nh.ifindex for nh in route.nexthops if nh.ifindex is not None}
    if route.ifindex is not None:
        devs.add(route.ifindex)
    return devs


def route_gateways(route: Route) -> list[tuple[str, int | None]]:
    """(gateway, ifindex) of each leg that has a gateway."""
    if route.nexthops:
        return [(nh.gateway, nh.ifindex) for nh in route.nexthops if nh.gateway]
    return [(route.gateway, route.ifindex)] if route.gateway else []


class Segments:
    """L2 segments: interfaces joined by a veth cable, a bridge, or a macvlan's lower.

    Union-find over interface keys (``netns:I/idx``); ``of(key)`` gives the
    segment's representative. A vlan starts a segment of its own, and a vxlan's
    far side is not in the snapshot, so neither joins its lower device.
    """

    def __init__(self, snapshot: Snapshot) -> None:
        self.parent: dict[str, str] = {}
        for ns in snapshot.namespaces:
            kinds = {i.ifindex: i.kind for i in ns.interfaces}
            for itf in ns.interfaces:
                key = itf.ref.key
                self.parent.setdefault(key, key)
                if itf.peer is not None:
                    self.union(key, itf.peer.key)
                if itf.master is not None and kinds.get(itf.master) == "bridge":
                    self.union(key, f"{ns.id}/{itf.master}")
                if itf.kind in ("macvlan", "macvtap", "ipvlan") and itf.lower is not None:
                    self.union(key, itf.lower.key)

    def find(self, key: str) -> str:
        parent = self.parent.setdefault(key, key)
        while parent != key:
            grand = self.parent.setdefault(parent, parent)
            self.parent[key] = grand
            key, parent = parent, grand
        return key

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def of(self, key: str) -> str:
        return self.find(key)


_shared = threading.local()


@contextmanager
def shared_segments(snapshot: Snapshot) -> Iterator[None]:
    """While the block runs, :func:`segments` of ``snapshot`` is built once: four of
    the doctor's checks join the same L2 segments, and at 1000 namespaces each
    union-find cost about 9 ms. Per thread (the dashboard and the exporter run the
    doctor in their own); nothing is kept after the block."""
    _shared.entry = (snapshot, None)
    try:
        yield
    finally:
        _shared.entry = None


def segments(snapshot: Snapshot) -> Segments:
    """The L2 segments of ``snapshot``: shared inside :func:`shared_segments`,
    else built for the caller."""
    entry: tuple[Snapshot, Segments | None] | None = getattr(_shared, "entry", None)
    if entry is None or entry[0] is not snapshot:
        return Segments(snapshot)
    if entry[1] is None:
        entry = _shared.entry = (snapshot, Segments(snapshot))
    assert entry[1] is not None
    return entry[1]
