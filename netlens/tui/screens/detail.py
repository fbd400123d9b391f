"""The detail pane of any node: a VRF (routes, policy, ARP, NAT), a bridge (MAC table),
a link.

Routing tables read like ``show ip route vrf X`` (codes and order from
:mod:`netlens.tui.routing`), ``ip rule`` like ``show ip policy``, the neighbours like
``show arp vrf X`` and a bridge's FDB like ``show mac address-table``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Label, Static, TabbedContent, TabPane

from netlens.model.types import Counters, Interface, Netns
from netlens.stats.types import Rate
from netlens.tui import fmt
from netlens.tui.bridging import MAC_COLUMNS, mac_rows
from netlens.tui.context import Context
from netlens.tui.index import ViewIndex
from netlens.tui.registry import view_bindings
from netlens.tui.routing import (
    ROUTE_LEGEND,
    prefix_text,
    route_code,
    route_sort_key,
    rule_action,
    rule_selector,
    table_name,
)
from netlens.tui.screens.iface_info import iface_overview
from netlens.tui.topology import shaping_text
from netlens.tui.widgets.tables import Cell, NlTable


def _table(columns: Sequence[tuple[str, str]], rows: Iterable[Sequence[Any]], tid: str) -> NlTable:
    """A detail table. Every plain ``str`` becomes a :class:`Cell`: DataTable reads a
    str cell as markup with emoji codes (a MAC's ``:ab:`` was drawn as an emoji, a
    name holding ``[/]`` raised a MarkupError), and a Cell shows it as inert text."""
    t = NlTable(columns, id=tid)
    for i, row in enumerate(rows):
        t.add_row(*(c if isinstance(c, Cell) else Cell(str(c)) for c in row), key=str(i))
    return t


COUNTER_COLUMNS = ("rx", "tx", "drops", "errors")


def _state_text(idx: ViewIndex, itf: Interface) -> str:
    """The Interfaces tab's State cell: operstate, and what shapes the link if anything."""
    shaping = shaping_text(idx, itf) if itf.tc else ""
    return f"{itf.operstate} ≈ {shaping}" if shaping else itf.operstate


class DetailScreen(Screen[None]):
    """Everything about one node; Escape goes back."""

    OWN_BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,backspace", "app.pop_screen", "Back", id="detail.back"),
    ]
    # a view key goes back to the main screen and shows that view
    BINDINGS: ClassVar[list[BindingType]] = [*OWN_BINDINGS, *view_bindings()]

    def __init__(self, ctx: Context, node: str, kind: str) -> None:
        super().__init__()
        self.ctx = ctx
        self.node = node
        self.kind = kind
        assert ctx.index is not None
        idx = ctx.index
        self.iface: Interface | None = idx.ifaces.get(node)
        ns_id = idx.ns_of_key(node)
        if kind == "server":
            host = idx.snapshot.host
            ns_id = host.id if host else None
        self.ns: Netns | None = idx.ns.get(ns_id) if ns_id else None
        if self.iface is not None and kind not in ("bridge", "uplink", "vxlan"):
            self.kind = "bridge" if self.iface.kind == "bridge" else "iface"

    # -- composition ----------------------------------------------------------------------
    def _title(self) -> str:
        idx = self.ctx.index
        assert idx is not None
        if self.iface is not None:
            what = {"bridge": "switch", "uplink": "uplink", "vxlan": "tunnel"}.get(
                self.kind, "interface"
            )
            return f"{what} {idx.iface_label(self.iface.ref.key)}"
        if self.ns is not None:
            c = idx.container_of_ns.get(self.ns.id)
            return f"VRF {self.ns.name}" + (f" - container {c.name} ({c.engine})" if c else "")
        return f"{self.node} (gone)"

    def compose(self) -> ComposeResult:
        yield Label(fmt.plain(self._title()), id="detail-title")
        yield Static(id="detail-rate")
        with TabbedContent(id="detail-tabs"):
            if self.iface is not None:
                yield from self._iface_tabs(self.iface)
            if self.ns is not None and self.kind not in ("bridge",):
                yield from self._ns_tabs(self.ns)
            if self.iface is None and self.ns is None:
                with TabPane("Gone", id="tab-gone"):
                    yield Static("This node is no longer on the host.")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_frame()

    def _iface_tabs(self, itf: Interface) -> ComposeResult:
        idx = self.ctx.index
        assert idx is not None
        with TabPane("Overview", id="tab-overview"):
            yield Static(self._iface_overview(itf), id="iface-overview")
        if itf.kind == "bridge":
            ns = idx.ns[itf.netns]
            ports = [i for i in ns.interfaces if i.master == itf.ifindex]
            with TabPane("Ports", id="tab-ports"):
                yield _table(
                    (("port", "Port"), ("state", "State"), ("peer", "Peer"), ("mac", "MAC")),
                    (
                        [
                            p.name,
                            p.port.state if p.port else "-",
                            idx.iface_label(p.peer.key) if p.peer else "-",
                            p.mac or "-",
                        ]
                        for p in ports
                    ),
                    "ports-table",
                )
            with TabPane("MAC table", id="tab-mac"):
                yield Label(
                    fmt.plain(f"show mac address-table (bridge {itf.display_name})"),
                    classes="section-title",
                )
                yield _table(
                    MAC_COLUMNS,
                    mac_rows(idx, ns, itf),
                    "mac-table",
                )

    def _iface_overview(self, itf: Interface) -> Table:
        idx = self.ctx.index
        assert idx is not None
        return iface_overview(idx, itf, self._counters(itf))

    # -- counters -------------------------------------------------------------------------
    def _counters(self, itf: Interface) -> Counters | None:
        """The counters as of the latest sample, else the snapshot's: a snapshot is
        only taken when the structure changes, so its counters stop at that moment."""
        src = self.ctx.source
        live = src.counters(itf.ref.key) if src is not None else None
        return live if live is not None else itf.counters

    def _counter_cells(self, itf: Interface) -> tuple[Cell, ...]:
        """RX and TX bytes, drops and errors (both directions) of the Interfaces tab:
        the figures ``ip -s link`` gives, followed on every tick."""
        c = self._counters(itf)
        if c is None:
            return tuple(Cell("-", -1, right=True) for _ in COUNTER_COLUMNS)
        drops, errors = c.rx_dropped + c.tx_dropped, c.rx_errors + c.tx_errors
        return tuple(Cell(str(v), v, right=True) for v in (c.rx_bytes, c.tx_bytes, drops, errors))

    def _refresh_counters(self) -> None:
        """Bring the counters on screen up to the latest sample (every tick)."""
        if self.iface is not None:
            shown = self.query("#iface-overview")
            if shown:
                shown.first(Static).update(self._iface_overview(self.iface))
        if self.ns is not None:
            tables = self.query("#ifaces-table")
            if tables:
                cells = {str(n): self._counter_cells(i) for n, i in enumerate(self.ns.interfaces)}
                table = tables.first(NlTable)
                table.update_columns(COUNTER_COLUMNS, cells)

    def selected_interface(self) -> Interface | None:
        """The interface this screen points at: its own (an interface's detail), else the
        Interfaces tab's cursor row while that tab is shown (keys such as the link key
        act on it); None on a VRF's other tabs."""
        if self.iface is not None:
            return self.iface
        if self.ns is None:
            return None
        tabs = self.query("#detail-tabs")
        if not tabs or tabs.first(TabbedContent).active != "tab-ifaces":
            return None
        key = self.query_one("#ifaces-table", NlTable).cursor_key()
        n = int(key) if key is not None and key.isdigit() else -1
        return self.ns.interfaces[n] if 0 <= n < len(self.ns.interfaces) else None

    def structure_changed(self) -> None:
        """A new snapshot: follow this node's interfaces into it (their state: a cable
        pulled by the link key, or by anyone, shows here without reopening). Rows are
        matched by ifindex; a namespace whose interfaces changed keeps its old rows."""
        idx = self.ctx.index
        if idx is None:
            return
        if self.iface is not None:
            self.iface = idx.ifaces.get(self.iface.ref.key, self.iface)
        if self.ns is None:
            return
        new = idx.ns.get(self.ns.id)
        if new is None or [i.ifindex for i in new.interfaces] != [
            i.ifindex for i in self.ns.interfaces
        ]:
            return
        self.ns = new
        tables = self.query("#ifaces-table")
        if tables:
            cells = {str(n): (Cell(_state_text(idx, i)),) for n, i in enumerate(new.interfaces)}
            tables.first(NlTable).update_columns(("state",), cells)

    def on_data_table_row_selected(self, event: NlTable.RowSelected) -> None:
        """Enter on a row of the Interfaces tab opens that interface (its counters,
        rates, peer and bridge port); the other tables have nothing to open."""
        if event.data_table.id != "ifaces-table" or self.ns is None:
            return
        event.stop()
        n = int(event.row_key.value or 0)
        if 0 <= n < len(self.ns.interfaces):
            itf = self.ns.interfaces[n]
            self.app.push_screen(DetailScreen(self.ctx, itf.ref.key, "iface"))

    def _ns_tabs(self, ns: Netns) -> ComposeResult:
        idx = self.ctx.index
        assert idx is not None
        with TabPane("VRF", id="tab-vrf"):
            yield Static(self._ns_overview(ns))
        with TabPane("Interfaces", id="tab-ifaces"):
            yield _table(
                (
                    ("name", "Interface"),
                    ("kind", "Kind"),
                    ("state", "State"),
                    ("mtu", "MTU"),
                    ("addr", "Addresses"),
                    ("mac", "MAC"),
                    ("peer", "Veth peer / master"),
                    ("rx", "RX bytes"),
                    ("tx", "TX bytes"),
                    ("drops", "Drops"),
                    ("errors", "Errors"),
                ),
                (
                    [
                        i.name,
                        i.kind,
                        _state_text(idx, i),
                        Cell(str(i.mtu), i.mtu, right=True),
                        " ".join(a.cidr for a in i.addresses) or "-",
                        i.mac or "-",
                        idx.iface_label(i.peer.key)
                        if i.peer
                        else (f"master {i.master}" if i.master else "-"),
                        *self._counter_cells(i),
                    ]
                    for i in ns.interfaces
                ),
                "ifaces-table",
            )
        with TabPane("Routes", id="tab-routes"):
            yield Label(
                fmt.plain(f"show ip route vrf {ns.name}   {ROUTE_LEGEND}"), classes="section-title"
            )
            routes = sorted(ns.routes, key=route_sort_key)
            yield _table(
                (
                    ("code", "Code"),
                    ("dst", "Prefix"),
                    ("table", "Table"),
                    ("via", "Via"),
                    ("dev", "Interface"),
                    ("proto", "Proto"),
                    ("metric", "Metric"),
                    ("src", "Src"),
                ),
                (
                    [
                        route_code(r),
                        prefix_text(r),
                        table_name(r.table),
                        r.gateway or ("directly connected" if r.scope == "link" else "-"),
                        r.dev or (str(r.ifindex) if r.ifindex else "-"),
                        r.protocol,
                        str(r.metric) if r.metric is not None else "-",
                        r.prefsrc or "-",
                    ]
                    for r in routes
                ),
                "routes-table",
            )
        with TabPane("ARP", id="tab-arp"):
            yield Label(fmt.plain(f"show arp vrf {ns.name}"), classes="section-title")
            yield _table(
                (
                    ("ip", "Address"),
                    ("mac", "Hardware Addr"),
                    ("dev", "Interface"),
                    ("state", "State"),
                    ("router", "Router"),
                ),
                (
                    [
                        n.ip,
                        n.mac or "(incomplete)",
                        n.dev or str(n.ifindex),
                        n.state,
                        "yes" if n.router else "",
                    ]
                    for n in ns.neighbours
                ),
                "arp-table",
            )
        with TabPane("NAT", id="tab-nat"):
            yield _table(
                (
                    ("action", "Action"),
                    ("hook", "Hook"),
                    ("match", "Match"),
                    ("to", "To"),
                    ("rule", "Rule"),
                ),
                (
                    [
                        n.action,
                        n.hook or "-",
                        " ".join(
                            x
                            for x in (
                                n.proto,
                                f"src {n.src}" if n.src else "",
                                f"dst {n.dst}" if n.dst else "",
                                f"in {n.in_iface}" if n.in_iface else "",
                                f"out {n.out_iface}" if n.out_iface else "",
                                f"dport {n.dport}" if n.dport else "",
                            )
                            if x
                        )
                        or "any",
                        f"{n.to_addr or ''}{':' + n.to_port if n.to_port else ''}" or "-",
                        n.text,
                    ]
                    for n in ns.nat
                ),
                "nat-table",
            )
        with TabPane("Processes", id="tab-procs"):
            c = idx.container_of_ns.get(ns.id)
            pids = c.pids if c and c.pids else ns.pids
            yield _table(
                (("pid", "PID"), ("role", "Role"), ("cmd", "Command")),
                (
                    [
                        str(p),
                        "main" if c and p == c.pid else "",
                        (c.command or "-") if c and p == c.pid else "",
                    ]
                    for p in pids
                ),
                "procs-table",
            )
        with TabPane("Policy", id="tab-rules"):
            yield Label(
                fmt.plain(f"show ip policy vrf {ns.name} (ip rule: which table, in order)"),
                classes="section-title",
            )
            yield _table(
                (("prio", "Prio"), ("family", "AF"), ("match", "Match"), ("action", "Action")),
                (
                    [
                        Cell(str(r.priority), r.priority, right=True),
                        f"IPv{r.family}",
                        rule_selector(r),
                        rule_action(r),
                    ]
                    for r in sorted(ns.rules, key=lambda r: (r.family, r.priority))
                ),
                "rules-table",
            )

    def _ns_overview(self, ns: Netns) -> Table:
        idx = self.ctx.index
        assert idx is not None
        t = Table.grid(padding=(0, 2))
        t.add_column(style="bold", min_width=14)
        t.add_column()
        c = idx.container_of_ns.get(ns.id)
        rows = [
            ("VRF", ns.name),
            ("id", f"{ns.id} (dev {ns.dev})"),
            ("names", ", ".join(ns.names) or "-"),
            ("host", "yes" if ns.is_host else "no"),
            *((("server", idx.snapshot.server.hostname),) if ns.is_host else ()),
            ("interfaces", str(len(ns.interfaces))),
            ("routes", str(len(ns.routes))),
            ("default gw", ", ".join(ns.default_gateways()) or "-"),
            ("neighbours", str(len(ns.neighbours))),
            ("NAT rules", str(len(ns.nat))),
        ]
        if c is not None:
            rows += [
                ("container", f"{c.name} ({c.engine} {c.engine_id or ''})"),
                ("image", c.image or "-"),
                ("state", c.state or "-"),
                ("command", c.command or "-"),
                ("pid", str(c.pid or "-")),
                ("published", next((r.ports for r in idx.rows if r.netns == ns.id), "") or "-"),
            ]
            if c.privileged is not None:
                rows.append(
                    (
                        "privileged",
                        "yes: every capability, no seccomp filter" if c.privileged else "no",
                    )
                )
        for k, v in sorted(ns.sysctls.items()):
            rows.append((k.removeprefix("net."), v))
        if not ns.complete:
            rows.append(("status", "vanished or unreadable during discovery"))
        for e in ns.errors:
            rows.append(("error", e))
        for k, v in rows:
            t.add_row(fmt.plain(k), fmt.plain(v))
        return t

    # -- live -----------------------------------------------------------------------------
    def _rate_key(self) -> tuple[str, str] | None:
        idx = self.ctx.index
        if idx is None:
            return None
        if self.iface is not None:
            table = {"bridge": "bridges", "uplink": "uplinks"}.get(self.kind, "interfaces")
            return table, self.iface.ref.key
        if self.ns is not None:
            c = idx.container_of_ns.get(self.ns.id)
            return ("containers", c.id) if c else ("vrfs", self.ns.id)
        return None

    def refresh_frame(self) -> None:
        """Update the live rate line and the counters (called by the app on every
        tick; a tick can come between the push of this screen and its compose)."""
        line = self.query("#detail-rate")
        if not line:
            return
        rk = self._rate_key()
        fr = self.ctx.frame
        out = Text()
        if rk is None or fr is None:
            out.append("no live rates for this source", style="dim")
        else:
            table = getattr(fr, rk[0], {})
            r: Rate = table.get(rk[1], Rate()) if isinstance(table, dict) else Rate()
            bits = self.ctx.bits
            lvl = self.ctx.style(f"rate-{fmt.level(r.total_bps)}")
            out.append(
                f"rx {fmt.rate(r.rx_bps, bits)}  tx {fmt.rate(r.tx_bps, bits)}  ",
                style=f"bold {lvl}",
            )
            out.append(
                f"rx {fmt.pps(r.rx_pps)} tx {fmt.pps(r.tx_pps)}  drops "
                f"{r.rx_drops + r.tx_drops:.0f}/s errors {r.rx_errors + r.tx_errors:.0f}/s  "
            )
            hist = self.ctx.history
            out.append(fmt.sparkline(hist.series(rk[1], n=40), 40), style=lvl)
            try:
                a2, a10, a40 = hist.averages(rk[1])
                vals = [getattr(a, "total_bps", a) for a in (a2, a10, a40)]
                out.append("  avg 2s/10s/40s " + " / ".join(fmt.rate(float(v), bits) for v in vals))
            except (KeyError, TypeError, ValueError):
                pass
        line.first(Static).update(out)
        self._refresh_counters()
