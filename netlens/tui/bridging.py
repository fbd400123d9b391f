"""A bridge's MAC table the way a switch prints it (``show mac address-table``).

Pure functions over the model, so the detail screen only lays the rows out.
"""

from __future__ import annotations

from collections.abc import Iterator

from netlens.model.types import FdbEntry, Interface, Netns
from netlens.tui.index import ViewIndex
from netlens.tui.widgets.tables import Cell

MAC_COLUMNS = (
    ("vlan", "Vlan"),
    ("mac", "Mac Address"),
    ("type", "Type"),
    ("port", "Ports"),
    ("age", "Age"),
    ("ip", "IP (ARP)"),
    ("to", "Behind port"),
)


def fdb_type(f: FdbEntry) -> str:
    """``self/permanent``: the bridge's or a port's own address (the kernel's
    'permanent', a local entry: nothing sits behind the port with it);
    ``static``: added by hand; ``dynamic``: learned."""
    if f.state == "permanent":
        return "self/permanent"
    return "static" if f.state == "static" else "dynamic"


def age_text(f: FdbEntry) -> str:
    """Seconds since the bridge last saw the address, for learned entries only
    (a static or own entry does not age out)."""
    if f.age is None or f.state in ("permanent", "static"):
        return "-"
    return f"{f.age:.0f}s"


def arp_by_mac(ns: Netns) -> dict[str, list[str]]:
    """IPs the namespace's neighbour tables (ARP, NDP) learned per MAC."""
    out: dict[str, list[str]] = {}
    for n in ns.neighbours:
        if n.mac:
            out.setdefault(n.mac.lower(), []).append(n.ip)
    return out


def mac_rows(idx: ViewIndex, ns: Netns, bridge: Interface) -> Iterator[list[str | Cell]]:
    """One row per FDB entry the bridge holds, in the order of :data:`MAC_COLUMNS`."""
    by_idx = {i.ifindex: i for i in ns.interfaces}
    arp = arp_by_mac(ns)
    for f in ns.fdb:
        if f.master != bridge.ifindex:
            continue
        port = by_idx.get(f.ifindex)
        own = f.state == "permanent"
        behind = idx.iface_label(port.peer.key) if port and port.peer and not own else "-"
        age = age_text(f)
        yield [
            str(f.vlan) if f.vlan else "1",
            f.mac,
            fdb_type(f),
            port.name if port else str(f.ifindex),
            Cell(age, f.age if f.age is not None and age != "-" else -1.0, right=True),
            ", ".join(arp.get(f.mac.lower(), ())) or "-",
            behind,
        ]
