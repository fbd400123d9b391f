"""What ``netlens capture TARGET...`` names, resolved against the discovered snapshot.

Accepted forms (each gives one or more interfaces, each with the label Wireshark
will show):

- ``CONTAINER`` or ``VRF`` (a namespace name): its ``eth0``, else its only
  non-loopback interface; label ``web:eth0``.
- ``CONTAINER:IFNAME`` or ``VRF:IFNAME``: that interface.
- ``CONTAINER:all``: every interface of the namespace, loopback included.
- ``IFNAME``: an interface of the host namespace (a bridge, a veth, a NIC);
  label ``host:br0``.
- ``BRIDGE:ports`` (BRIDGE any of the above naming a bridge): every port.
- ``X:pair`` (X naming a veth): both ends, wherever the peer lives.

A container name wins over a host interface of the same name (say
``host:NAME`` for the interface). Unknown names are a :class:`UsageError` with
the closest names offered. The same interface named twice is captured once.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from netlens.errors import UsageError
from netlens.model.types import Interface, Netns, Snapshot


@dataclass(frozen=True, slots=True)
class Target:
    """One interface to capture: its namespace, the interface, the shown label."""

    label: str
    ns: Netns
    iface: Interface


def _hint(word: str, choices: set[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _host(snap: Snapshot) -> Netns | None:
    return next((n for n in snap.namespaces if n.is_host), None)


def _namespace(snap: Snapshot, sel: str) -> tuple[Netns, str] | None:
    """The namespace a container, engine id (4+ characters) or VRF name selects,
    with the name labels use."""
    by_id = {n.id: n for n in snap.namespaces}
    hits = [c for c in snap.containers if sel in (c.id, c.name, c.engine_id)]
    if not hits and len(sel) >= 4:
        pre = [c for c in snap.containers if c.engine_id and c.engine_id.startswith(sel)]
        hits = pre if len(pre) == 1 else []
    for c in hits:
        if c.netns in by_id:
            return by_id[c.netns], c.name
    for ns in snap.namespaces:
        if sel in (ns.id, str(ns.inode), ns.name) or sel in ns.names:
            return ns, ns.name
        if sel == "host" and ns.is_host:
            return ns, "host"
    return None


def _ns_label(ns: Netns, shown: str) -> str:
    return "host" if ns.is_host else shown


def _default_iface(ns: Netns, shown: str) -> Interface:
    eth0 = ns.by_name("eth0")
    if eth0 is not None:
        return eth0
    others = [i for i in ns.interfaces if i.kind != "loopback"]
    if len(others) == 1:
        return others[0]
    names = ", ".join(i.name for i in others) or "none"
    raise UsageError(
        f"{shown!r} has no eth0; name one interface as {shown}:IFNAME (it has {names}) "
        f"or capture all with {shown}:all"
    )


def _all_names(snap: Snapshot) -> set[str]:
    names = {c.name for c in snap.containers} | {n.name for n in snap.namespaces}
    names |= {x for n in snap.namespaces for x in n.names}
    host = _host(snap)
    if host is not None:
        names |= {i.name for i in host.interfaces}
    return names


def _single(snap: Snapshot, spec: str) -> Target:
    """One interface from ``CONTAINER``, ``VRF``, ``HOSTIF`` or ``X:IFNAME``."""
    found = _namespace(snap, spec)
    if found is not None:
        ns, shown = found
        itf = _default_iface(ns, shown)
        return Target(f"{_ns_label(ns, shown)}:{itf.name}", ns, itf)
    host = _host(snap)
    if host is not None:
        hostif = host.by_name(spec)
        if hostif is not None:
            return Target(f"host:{hostif.name}", host, hostif)
    if ":" in spec:
        left, _, ifname = spec.rpartition(":")
        found = _namespace(snap, left)
        if found is not None:
            ns, shown = found
            named = ns.by_name(ifname)
            if named is None:
                hint = _hint(ifname, {i.name for i in ns.interfaces} | {"all", "ports", "pair"})
                raise UsageError(f"{left!r} has no interface {ifname!r}{hint}")
            return Target(f"{_ns_label(ns, shown)}:{named.name}", ns, named)
    raise UsageError(
        f"no container, VRF or host interface matches {spec!r}{_hint(spec, _all_names(snap))}"
    )


def _ports(snap: Snapshot, left: str) -> list[Target]:
    bridge = _single(snap, left)
    if bridge.iface.kind != "bridge":
        raise UsageError(f"{left!r} is a {bridge.iface.kind}, not a bridge: it has no ports")
    prefix = bridge.label.rpartition(":")[0]
    ports = [i for i in bridge.ns.interfaces if i.master == bridge.iface.ifindex]
    if not ports:
        raise UsageError(f"bridge {left!r} has no ports")
    return [Target(f"{prefix}:{p.name}", bridge.ns, p) for p in ports]


def _pair(snap: Snapshot, left: str) -> list[Target]:
    end = _single(snap, left)
    if end.iface.kind != "veth":
        raise UsageError(f"{left!r} is a {end.iface.kind}, not a veth: it has no pair")
    if end.iface.peer is None:
        raise UsageError(f"the peer of veth {left!r} is not visible (gone, or elsewhere)")
    peer_ns = snap.netns(end.iface.peer.netns)
    peer = snap.interface(end.iface.peer)
    if peer_ns is None or peer is None:
        raise UsageError(f"the peer of veth {left!r} is not visible (gone, or elsewhere)")
    shown = "host" if peer_ns.is_host else peer_ns.name
    if peer_ns.container is not None:
        shown = next((c.name for c in snap.containers if c.id == peer_ns.container), shown)
    return [end, Target(f"{shown}:{peer.name}", peer_ns, peer)]


def _one_spec(snap: Snapshot, spec: str) -> list[Target]:
    if not spec:
        raise UsageError("empty TARGET")
    left, sep, word = spec.rpartition(":")
    if sep and left:
        if word == "all":
            found = _namespace(snap, left)
            if found is None:
                raise UsageError(
                    f"no container or VRF matches {left!r}{_hint(left, _all_names(snap))}"
                )
            ns, shown = found
            return [Target(f"{_ns_label(ns, shown)}:{i.name}", ns, i) for i in ns.interfaces]
        if word == "ports":
            return _ports(snap, left)
        if word == "pair":
            return _pair(snap, left)
    return [_single(snap, spec)]


def resolve_targets(snap: Snapshot, specs: list[str]) -> list[Target]:
    """Every interface the specs name, in order, each once."""
    out: list[Target] = []
    seen: set[tuple[int, int]] = set()
    for spec in specs:
        for t in _one_spec(snap, spec):
            key = (t.ns.inode, t.iface.ifindex)
            if key not in seen:
                seen.add(key)
                out.append(t)
    return out


def node_targets(snap: Snapshot, key: str) -> list[Target]:
    """What the dashboard's ``w`` captures on a node: an interface key
    (``NETNS/IFINDEX``) gives that interface, a container or namespace id every
    non-loopback interface of its namespace. Labels as :func:`resolve_targets` makes
    them, so the file reads the same as one the command wrote."""
    netns_id, sep, index = key.rpartition("/")
    if sep and index.isdigit():
        ns = snap.netns(netns_id)
        itf = ns.interface(int(index)) if ns is not None else None
        if ns is None or itf is None:
            raise UsageError("that interface is gone")
        return [Target(f"{_shown(snap, ns)}:{itf.name}", ns, itf)]
    ns_id = next((c.netns for c in snap.containers if c.id == key), None) or key
    ns = snap.netns(ns_id)
    if ns is None:
        raise UsageError("that node is gone")
    ifs = [i for i in ns.interfaces if i.kind != "loopback"]
    if not ifs:
        raise UsageError(f"{_shown(snap, ns)} has no interface to capture")
    return [Target(f"{_shown(snap, ns)}:{i.name}", ns, i) for i in ifs]


def _shown(snap: Snapshot, ns: Netns) -> str:
    """A namespace as labels name it: host, its container's name, else its own name."""
    if ns.is_host:
        return "host"
    if ns.container is not None:
        return next((c.name for c in snap.containers if c.id == ns.container), ns.name)
    return ns.name
