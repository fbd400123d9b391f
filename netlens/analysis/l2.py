"""From an egress interface to the next namespace: veth cables and bridges.

The kernel answers the bridge's own question (``bridge fdb get``: which port a
frame to this MAC leaves by); the rest is the wiring discovery already
resolved (veth peers across namespaces, bridge ports and their STP state).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from netlens.analysis.scope import World
from netlens.analysis.tracetypes import Iface, L2Step
from netlens.kernel.nsquery import NsQuery
from netlens.kernel.routeget import fdb_get
from netlens.model.types import Interface, Netns


def iface(ns: Netns, itf: Interface) -> Iface:
    return Iface(ns.id, ns.name, itf.ifindex, itf.name, itf.mtu)


def ns_paths(ns: Netns) -> list[str]:
    """Paths that may open ``ns`` (checked against its inode when opened)."""
    paths = [f"/run/netns/{n}" for n in ns.names]
    paths += list(ns.mounts)
    paths += [f"/proc/{pid}/ns/net" for pid in ns.pids[:4]]
    if ns.is_host:
        paths.append("/proc/1/ns/net")
    return paths


@dataclass(frozen=True, slots=True)
class Arrival:
    """Where the frame ends up: ``ns`` and its ingress interface; ``leaves`` set
    when it leaves through a port netlens does not follow (an uplink, a vxlan)."""

    step: L2Step
    ns: Netns | None = None
    ingress: Interface | None = None
    leaves: Iface | None = None
    drop: str | None = None


def _owns(itf: Interface, ip: str) -> bool:
    want = ipaddress.ip_address(ip)
    return any(ipaddress.ip_address(a.address) == want for a in itf.addresses)


def _port_of(
    world: World, ns: Netns, bridge: Interface, mac: str | None, nexthop: str
) -> tuple[Interface | None, str]:
    """(egress port or the bridge itself, how it was chosen) without the kernel FDB:
    the port whose far end has ``mac`` or owns ``nexthop`` (a flooded frame reaches it).
    Only namespaces already read are looked at, then (once) the owner of ``nexthop``."""
    if (mac and bridge.mac == mac) or _owns(bridge, nexthop):
        return bridge, "local"
    port = _port_from_owner(world, ns, bridge, mac, nexthop)
    if port is not None:
        return port, "flooded"
    ns = world.full(ns)  # every port of the bridge (a thin namespace has a few)
    for attempt in range(2):
        for port in ns.interfaces:
            if port.master != bridge.ifindex:
                continue
            far = world.far_end(ns, port, load=False)
            if far is not None and ((mac and far[1].mac == mac) or _owns(far[1], nexthop)):
                return port, "flooded"
        if attempt or not world.load_owner(nexthop):
            break
        fresh = world.netns(ns.id)
        if fresh is None:
            break
        ns = fresh
    return None, "flooded"


def _port_from_owner(
    world: World, ns: Netns, bridge: Interface, mac: str | None, nexthop: str
) -> Interface | None:
    """The port of ``bridge`` whose far end has ``mac`` or owns ``nexthop``, found
    from the other side: the owner's veth, whose peer the kernel names. On a bridge
    with a thousand ports that is one question instead of reading every port and
    every far end. Owners among the namespaces read so far, then (once) the ones
    the host's address index names; None when no owner's cable ends on ``bridge``
    (the caller then looks at every port)."""
    for attempt in range(2):
        for other in world.snap.namespaces:
            if other.id == ns.id:
                continue
            for itf in other.interfaces:
                if itf.kind != "veth" or not ((mac and itf.mac == mac) or _owns(itf, nexthop)):
                    continue
                if itf.peer is not None and itf.peer.netns != ns.id:
                    continue  # its cable is known to end elsewhere: nothing to read
                far = world.far_end(other, itf)
                if far is not None and far[0].id == ns.id and far[1].master == bridge.ifindex:
                    return far[1]
        if attempt or not world.load_owner(nexthop):
            break
    return None


def cross_bridge(
    world: World,
    q: NsQuery,
    ns: Netns,
    bridge: Interface,
    in_port: Interface | None,
    mac: str | None,
    nexthop: str,
) -> Arrival:
    """A frame entering ``bridge`` (in ``ns``) by ``in_port`` (None: sent by the bridge's
    own namespace) towards ``mac``/``nexthop``."""
    br = iface(ns, bridge)
    if in_port is not None and in_port.port is not None and in_port.port.state != "forwarding":
        step = L2Step("bridge", br, None, iface(ns, in_port), in_port.port.state)
        return Arrival(step, drop=f"bridge port {in_port.name} is {in_port.port.state}")
    port: Interface | None = None
    how = "flooded"
    if mac:
        entry = fdb_get(q.sock(ns.inode, ns_paths(ns)), mac, bridge.ifindex)
        if entry is not None:
            ns, port = world.interface(ns, entry.port)
            how = (
                "local" if entry.port == bridge.ifindex or "permanent" in entry.state else "learned"
            )
            if how == "local":
                port = bridge if entry.port == bridge.ifindex else port
    if port is None:
        port, how = _port_of(world, ns, bridge, mac, nexthop)
    if port is None:
        step = L2Step("bridge", br, how)
        return Arrival(step, drop=f"no port of bridge {bridge.name} leads to {nexthop}")
    if port.ifindex == bridge.ifindex or (how == "local" and port.master != bridge.ifindex):
        step = L2Step("bridge", br, how, None, None, iface(ns, bridge))
        return Arrival(step, ns, bridge)
    if port.port is not None and port.port.state != "forwarding":
        step = L2Step("bridge", br, how, iface(ns, port), port.port.state)
        return Arrival(step, drop=f"bridge port {port.name} is {port.port.state}")
    state = port.port.state if port.port else None
    far = world.far_end(ns, port)
    if far is None:
        step = L2Step("bridge", br, how, iface(ns, port), state)
        return Arrival(step, leaves=iface(ns, port))
    step = L2Step("bridge", br, how, iface(ns, port), state, iface(*far))
    return Arrival(step, far[0], far[1])


def follow(
    world: World, q: NsQuery, ns: Netns, out: Interface, mac: str | None, nexthop: str
) -> Arrival:
    """Where a frame sent on ``out`` towards ``mac`` (the next hop's, if known) arrives."""
    if out.kind == "bridge":
        return cross_bridge(world, q, ns, out, None, mac, nexthop)
    if out.kind == "veth":
        far = world.far_end(ns, out)
        if far is None:
            return Arrival(L2Step("veth"), drop=f"the veth peer of {out.name} is gone")
        far_ns, far_itf = far
        if not far_itf.up:
            return Arrival(L2Step("veth", ingress=iface(*far)), drop=f"{far_itf.name} is down")
        if far_itf.master is not None:
            far_ns, master = world.interface(far_ns, far_itf.master)
            if master is not None and master.kind == "bridge":
                return cross_bridge(world, q, far_ns, master, far_itf, mac, nexthop)
        return Arrival(L2Step("veth", ingress=iface(*far)), far_ns, far_itf)
    return Arrival(L2Step(out.kind or "link"), leaves=iface(ns, out))
