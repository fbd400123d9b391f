"""What the detail of one interface shows: its Overview tab.

Kept apart from :mod:`netlens.tui.screens.detail` (the screen, its tabs and live
updates): the overview is a pure function of the index, the interface and its
counters, rebuilt on every tick.
"""

from __future__ import annotations

from rich.table import Table

from netlens.model.types import BridgePortInfo, Counters, Interface
from netlens.tui import fmt
from netlens.tui.index import ViewIndex
from netlens.tui.topology import egress_text, ingress_text


def _flag(name: str, on: bool | None) -> str:
    return "" if on is None else f" {name} {'on' if on else 'off'}"


def port_text(p: BridgePortInfo) -> str:
    """A bridge port's state as ``bridge link show`` reads: STP state, cost, priority
    and the learning, flooding and hairpin flags the kernel reported."""
    out = p.state
    if p.cost is not None:
        out += f" cost {p.cost}"
    if p.priority is not None:
        out += f" priority {p.priority}"
    return (
        out + _flag("learning", p.learning) + _flag("flood", p.flood) + _flag("hairpin", p.hairpin)
    )


def iface_overview(idx: ViewIndex, itf: Interface, c: Counters | None) -> Table:
    """The Overview tab of an interface: what ``ip -d -s link show`` says of it, and
    the bridge-port state when it is a port (is it forwarding, or blocked by STP?).
    ``c``: the counters as of the latest sample (the snapshot's stop at its moment)."""
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold", min_width=14)
    t.add_column()
    rows: list[tuple[str, str]] = [
        ("name", itf.name),
        *((("alias", itf.alias),) if itf.alias else ()),  # a router's "description"
        ("kind", itf.kind),
        ("VRF", idx.ns_label(itf.netns)),
        ("state", f"{itf.operstate}{' admin-up' if itf.admin_up else ' admin-down'}"),
        ("mtu", str(itf.mtu)),
        ("mac", itf.mac or "-"),
        ("addresses", " ".join(a.cidr for a in itf.addresses) or "-"),
    ]
    if itf.peer is not None:
        rows.append(("veth peer", idx.iface_label(itf.peer.key)))
    if itf.master is not None:
        m = idx.ifaces.get(f"{itf.netns}/{itf.master}")
        rows.append(("master", m.display_name if m else str(itf.master)))
    if itf.port is not None:
        rows.append(("bridge port", port_text(itf.port)))
    if itf.speed_mbps:
        rows.append(("speed", fmt.si(itf.speed_mbps * 1e6, "b/s")))
    if itf.driver:
        rows.append(("driver", itf.driver))
    if itf.vxlan is not None:
        v = itf.vxlan
        rows.append(
            (
                "vxlan",
                f"vni {v.vni} local {v.local or '-'} remote "
                f"{v.remote or v.group or '-'} port {v.port or 4789}",
            )
        )
    if itf.network:
        rows.append(("network", itf.network))
    if itf.tc is not None:
        out, into = egress_text(itf), ingress_text(idx, itf)
        if out:
            rows.append(("sends ≈", f"{out}  ({'+'.join(itf.tc.kinds)})"))
        via = idx.ifaces.get(f"{itf.netns}/{itf.tc.ingress_to}")
        if into and via is not None:
            rows.append(("receives ≈", f"{into}  (via {via.name})"))
        elif itf.tc.ingress:
            rows.append(("receives ≈", "an ingress qdisc filters what arrives"))
    if itf.bridge is not None:
        b = itf.bridge
        rows.append(
            (
                "bridge",
                f"stp {'on' if b.stp else 'off'} vlan_filtering "
                f"{'on' if b.vlan_filtering else 'off'} id {b.bridge_id}",
            )
        )
    if c is not None:
        rows += [
            (
                "rx",
                f"{c.rx_bytes} bytes {c.rx_packets} packets {c.rx_errors} errors"
                f" {c.rx_dropped} dropped",
            ),
            (
                "tx",
                f"{c.tx_bytes} bytes {c.tx_packets} packets {c.tx_errors} errors"
                f" {c.tx_dropped} dropped",
            ),
        ]
    for k, v2 in rows:
        t.add_row(fmt.plain(k), fmt.plain(v2))
    return t
