"""The dashboard fixture is one consistent host: addresses, ARP, NAT and FDB agree.

The snapshots and README screenshots are drawn from this fixture, so a
contradiction in it (a DNAT to an address no container has, an ARP entry giving
one container's MAC for another's address) is what users see in the docs. The
checker below reads the fixture the way an engineer reads a router and lists
every statement that another part of the host contradicts; a broken copy of the
fixture proves it would notice.
"""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from netlens.model.types import Address, IfRef, Interface, Snapshot

from .fixture import container_ip, gateway_ip, make_snapshot

pytestmark = pytest.mark.tui


class Segments:
    """Layer-2 segments: a veth cable joins its two ends, a bridge joins its ports."""

    def __init__(self, snap: Snapshot) -> None:
        self.parent: dict[str, str] = {}
        for ns in snap.namespaces:
            for itf in ns.interfaces:
                ref = IfRef(ns.id, itf.ifindex)
                if itf.peer is not None:
                    self.join(ref.key, itf.peer.key)
                if itf.master is not None:
                    self.join(ref.key, IfRef(ns.id, itf.master).key)

    def find(self, key: str) -> str:
        while self.parent.get(key, key) != key:
            key = self.parent[key]
        return key

    def join(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


def inconsistencies(snap: Snapshot) -> list[str]:
    """Every statement of ``snap`` that another part of it contradicts."""
    out: list[str] = []
    seg = Segments(snap)
    owners: dict[str, list[tuple[str, Interface]]] = {}
    by_ref: dict[str, Interface] = {}
    for ns in snap.namespaces:
        for itf in ns.interfaces:
            by_ref[IfRef(ns.id, itf.ifindex).key] = itf
            for a in itf.addresses:
                if not a.address.startswith("127."):
                    owners.setdefault(a.address, []).append((ns.name or ns.id, itf))
    for addr, held in owners.items():
        if len(held) > 1:
            out.append(f"{addr} is held by {[f'{n}:{i.name}' for n, i in held]}")

    def holder(addr: str) -> Interface | None:
        held = owners.get(addr)
        return held[0][1] if held else None

    def same_segment(a: Interface, b: Interface) -> bool:
        return seg.find(IfRef(a.netns, a.ifindex).key) == seg.find(IfRef(b.netns, b.ifindex).key)

    for ns in snap.namespaces:
        ifs = {i.ifindex: i for i in ns.interfaces}
        names = {i.name for i in ns.interfaces}
        connected = {
            (r.dev, r.dst) for r in ns.routes if r.protocol == "kernel" and r.scope == "link"
        }
        for itf in ns.interfaces:
            for a in itf.addresses:
                net = str(ipaddress.ip_interface(a.cidr).network)
                if a.scope != "host" and (itf.name, net) not in connected:
                    out.append(f"{ns.name}:{itf.name} {a.cidr} has no connected route")
        for nb in ns.neighbours:
            dev = ifs.get(nb.ifindex)
            if dev is None or dev.name != nb.dev:
                out.append(f"{ns.name}: neighbour {nb.ip} on a missing device {nb.dev}")
                continue
            if dev.uplink:
                continue  # the upstream router is outside the fixture
            owner = holder(nb.ip)
            if owner is None:
                out.append(f"{ns.name}: ARP {nb.ip} -> {nb.mac}, which no interface holds")
            elif owner.mac != nb.mac:
                out.append(f"{ns.name}: ARP {nb.ip} -> {nb.mac}, but {owner.name} has {owner.mac}")
            elif not same_segment(dev, owner):
                out.append(f"{ns.name}: ARP {nb.ip} learned off-segment on {dev.name}")
        for r in ns.routes:
            if r.gateway is None or r.ifindex is None:
                continue
            dev = ifs.get(r.ifindex)
            if dev is None or dev.uplink:
                continue
            gw = holder(r.gateway)
            if gw is None or not same_segment(dev, gw):
                out.append(f"{ns.name}: route {r.dst} via {r.gateway}, not on {dev.name}'s segment")
        for rule in ns.nat:
            for iface in (rule.in_iface, rule.out_iface):
                if iface is not None and iface.lstrip("!") not in names:
                    out.append(f"{ns.name}: NAT rule names a missing interface {iface}")
            if rule.action == "dnat" and rule.to_addr is not None and holder(rule.to_addr) is None:
                out.append(f"{ns.name}: DNAT to {rule.to_addr}, which no interface holds")
            if rule.src is not None and not any(dst == rule.src for _dev, dst in connected):
                out.append(f"{ns.name}: NAT source {rule.src} is not a connected subnet")
        for e in ns.fdb:
            port = ifs.get(e.ifindex)
            if port is None or port.master != e.master:
                out.append(f"{ns.name}: FDB {e.mac} on a port not in bridge {e.master}")
                continue
            far = by_ref.get(port.peer.key) if port.peer is not None else None
            if far is None or far.mac != e.mac:
                out.append(f"{ns.name}: FDB {e.mac} on {port.name}, whose far end is not it")
    return out


@pytest.mark.parametrize("per_bridge", [(6, 4), (3, 9), (250, 250, 250, 250)])
def test_fixture_host_contradicts_itself_nowhere(per_bridge: tuple[int, ...]) -> None:
    assert inconsistencies(make_snapshot(per_bridge)) == []


def test_first_container_is_the_published_web_server_at_dot_2() -> None:
    snap = make_snapshot()
    web1 = next(ns for ns in snap.namespaces if ns.name == "web-1")
    assert web1.interfaces[1].addresses[0].address == container_ip(0, 0) == "10.10.0.2"
    assert gateway_ip(0) == "10.10.0.1"
    host = next(ns for ns in snap.namespaces if ns.is_host)
    (dnat,) = [r for r in host.nat if r.action == "dnat"]
    assert dnat.to_addr == "10.10.0.2" and dnat.text.endswith("dnat to 10.10.0.2:80")


def test_the_checker_sees_the_old_contradiction() -> None:
    """The fixture as it was: the first container at .3, ARP and DNAT still at .2."""
    snap = make_snapshot()
    spaces = []
    for ns in snap.namespaces:
        if ns.name == "web-1":
            eth0 = ns.interfaces[1]
            moved = dataclasses.replace(eth0, addresses=(Address(4, "10.10.0.3", 16),))
            ns = dataclasses.replace(ns, interfaces=(ns.interfaces[0], moved))
        spaces.append(ns)
    found = inconsistencies(dataclasses.replace(snap, namespaces=tuple(spaces)))
    assert "router: ARP 10.10.0.2 -> 02:42:00:cc:00:01, which no interface holds" in found
    assert "host: DNAT to 10.10.0.2, which no interface holds" in found
    assert "web-1:eth0 10.10.0.3/16 has no connected route" not in found


def test_the_checker_sees_a_wrong_fdb_port_and_a_foreign_mac() -> None:
    snap = make_snapshot()
    host = snap.namespaces[0]
    first, second = host.fdb[0], host.fdb[1]
    bad = (dataclasses.replace(first, ifindex=second.ifindex), *host.fdb[1:])
    host2 = dataclasses.replace(host, fdb=bad)
    found = inconsistencies(dataclasses.replace(snap, namespaces=(host2, *snap.namespaces[1:])))
    assert len(found) == 1 and found[0].startswith(f"host: FDB {first.mac} on veth")
