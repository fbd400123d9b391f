"""SRC and DST of a trace, from what a user types to a namespace and an address.

Accepted: an IP address (the namespace that owns it; a DST nobody on the host
owns is an outside destination), a container (name, engine:id, a unique engine
id prefix of 4+ characters), a VRF (namespace name, /run/netns name,
netns:<inode>, inode, ``host``), or ``CONTAINER:IFNAME`` / ``VRF:IFNAME``.
A name that matches nothing is a :class:`~netlens.errors.UsageError` with the
closest names offered.
"""

from __future__ import annotations

import difflib
import ipaddress
from dataclasses import dataclass

from netlens.errors import UsageError
from netlens.model.types import Interface, Netns, Snapshot


@dataclass(frozen=True, slots=True)
class Endpoint:
    """``ns`` None: an address outside this host (DST only)."""

    spec: str
    ns: Netns | None
    address: str | None
    iface: Interface | None = None
    label: str = ""


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _owner(snap: Snapshot, ip: str) -> tuple[Netns, Interface] | None:
    want = ipaddress.ip_address(ip)
    hits: list[tuple[Netns, Interface]] = []
    for ns in snap.namespaces:
        for itf in ns.interfaces:
            if itf.kind == "loopback":
                continue
            if any(ipaddress.ip_address(a.address) == want for a in itf.addresses):
                hits.append((ns, itf))
    if len(hits) > 1:
        names = ", ".join(sorted(h[0].name for h in hits))
        raise UsageError(f"{ip} is on more than one namespace ({names}); name the VRF instead")
    return hits[0] if hits else None


def _namespace(snap: Snapshot, sel: str) -> tuple[Netns, str] | None:
    """The namespace a container or VRF name selects, and how to call it."""
    ns_by_id = {n.id: n for n in snap.namespaces}
    exact = [c for c in snap.containers if sel in (c.id, c.name, c.engine_id)]
    if not exact and len(sel) >= 4:
        pre = [c for c in snap.containers if c.engine_id and c.engine_id.startswith(sel)]
        exact = pre if len(pre) == 1 else []
    for c in exact:
        if c.netns in ns_by_id:
            return ns_by_id[c.netns], c.name
    for ns in snap.namespaces:
        if (
            sel in (ns.id, str(ns.inode), ns.name)
            or sel in ns.names
            or (sel == "host" and ns.is_host)
        ):
            return ns, ns.name
    return None


def _suggest(snap: Snapshot, sel: str) -> str:
    names = {c.name for c in snap.containers} | {n.name for n in snap.namespaces}
    names |= {x for n in snap.namespaces for x in n.names}
    close = difflib.get_close_matches(sel, sorted(names), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def primary_address(ns: Netns, family: int | None = None) -> tuple[str, Interface] | None:
    """The address a trace aims at in ``ns``: the first global address of an up,
    non-loopback interface, IPv4 before IPv6 (or only ``family``)."""
    for fam in (family,) if family else (4, 6):
        for itf in ns.interfaces:
            if itf.kind == "loopback":
                continue
            for a in itf.addresses:
                if a.family == fam and a.scope == "global":
                    return a.address, itf
    return None


def resolve(snap: Snapshot, spec: str, *, is_dst: bool) -> Endpoint:
    """One endpoint from what the user typed (see the module doc)."""
    what = "DST" if is_dst else "SRC"
    if not spec:
        raise UsageError(f"{what} is empty")
    if _is_ip(spec):
        owner = _owner(snap, spec)
        if owner is None:
            if not is_dst:
                raise UsageError(f"SRC {spec} is not an address of any namespace on this host")
            return Endpoint(spec, None, str(ipaddress.ip_address(spec)), None, spec)
        return Endpoint(spec, owner[0], spec, owner[1], f"{owner[0].name}")
    found = _namespace(snap, spec)
    iface: Interface | None = None
    if found is None and ":" in spec:
        left, _, ifname = spec.rpartition(":")
        found = _namespace(snap, left)
        if found is not None:
            iface = found[0].by_name(ifname)
            if iface is None:
                names = [i.name for i in found[0].interfaces]
                close = difflib.get_close_matches(ifname, names, n=3, cutoff=0.5)
                hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                raise UsageError(f"{what}: {left!r} has no interface {ifname!r}{hint}")
    if found is None:
        raise UsageError(
            f"{what}: no container, VRF or address matches {spec!r}{_suggest(snap, spec)}"
        )
    ns, label = found
    if iface is not None:
        addr = next((a.address for a in iface.addresses if a.scope == "global"), None)
        if addr is None and is_dst:
            raise UsageError(f"DST {spec!r}: {iface.name} has no global address to trace to")
        return Endpoint(spec, ns, addr, iface, f"{label}:{iface.name}")
    if not is_dst:
        return Endpoint(spec, ns, None, None, label)
    prim = primary_address(ns)
    if prim is None:
        raise UsageError(f"DST {spec!r}: the namespace has no global address to trace to")
    return Endpoint(spec, ns, prim[0], prim[1], label)
