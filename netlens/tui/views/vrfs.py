"""View 2: one row per namespace, like a router's ``show vrf``, and the bridges."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widgets import Label

from netlens.tui import fmt
from netlens.tui.context import Context
from netlens.tui.views.base import View
from netlens.tui.widgets.fast_table import FastTable
from netlens.tui.widgets.tables import Cell, LiveCell

VRF_COLUMNS = (
    ("vrf", "VRF"),
    ("container", "Container"),
    ("ifaces", "Interfaces"),
    ("addrs", "Addresses"),
    ("routes", "Routes"),
    ("gw", "Gateway"),
    ("rate", "Rate", "10"),
)
BR_COLUMNS = (
    ("bridge", "Bridge"),
    ("vrf", "In VRF"),
    ("ports", "Ports"),
    ("macs", "MACs"),
    ("stp", "STP"),
    ("vlan", "VLAN filter"),
    ("addrs", "Addresses"),
    ("rate", "Rate", "10"),
)


VRF_FIT = ("container", "ifaces", "routes", ("addrs", 20), ("gw", 15), ("vrf", 12), "gw")
"""On a narrow terminal the VRF, its address and its rate stay."""
BR_FIT = ("vlan", "stp", "vrf", "macs", ("addrs", 18), ("bridge", 10))


class RatePainter:
    """Paints a rate column: ``row`` is (frame table, key)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def bps(self, table: str, key: str) -> float | None:
        fr = self.ctx.frame
        if fr is None:
            return None
        r = fr.server if key == "server" else getattr(fr, table).get(key)
        return r.total_bps if r is not None else None

    def paint(self, row: tuple[str, str], col: str) -> Cell:
        bps = self.bps(*row)
        if bps is None:
            return Cell("—", 0, "dim", True)
        style = self.ctx.style(f"rate-{fmt.level(bps)}")
        return Cell(fmt.rate(bps, self.ctx.bits), 0, style, True)

    def sort_value(self, row: tuple[str, str], col: str) -> float:
        bps = self.bps(*row)
        return -1.0 if bps is None else bps


class VrfsView(View):
    def __init__(self, ctx: Context, **kwargs: Any) -> None:
        super().__init__(ctx, **kwargs)
        self.painter = RatePainter(ctx)

    def compose(self) -> ComposeResult:
        yield self.empty_state()
        yield Label("VRFs (show vrf) - Enter: routes and ARP", classes="section-title")
        yield FastTable(VRF_COLUMNS, id="vrf-table", fit=VRF_FIT)
        yield Label("Bridges (switches) - Enter: MAC address table", classes="section-title")
        yield FastTable(BR_COLUMNS, id="bridge-table", fit=BR_FIT)

    def focus_main(self) -> None:
        self.query_one("#vrf-table", FastTable).focus()

    def _vrf_rows(self) -> dict[str, list[Any]]:
        idx, ctx = self.ctx.index, self.ctx
        if idx is None:
            return {}
        gone_ns = {r.netns for r in ctx.ghosts.values()}
        rows: dict[str, list[Any]] = {}
        for ns in idx.snapshot.namespaces:
            if not idx.matches(ns.id, ctx.needle):
                continue
            c = idx.container_of_ns.get(ns.id)
            st = f"italic {ctx.style('vanished')}" if not ns.complete else ""
            ifs = [i.name for i in ns.interfaces if i.kind != "loopback"]
            addrs = [
                a.cidr
                for i in ns.interfaces
                if i.kind != "loopback"
                for a in i.addresses
                if a.scope != "host"
            ]
            rows[ns.id] = [
                Cell(("★ " if ns.is_host else "") + ns.name, (not ns.is_host, ns.name), st),
                Cell(f"{c.name} ({c.engine})" if c else "-", None, st),
                Cell(
                    ", ".join(ifs[:3]) + (f" +{len(ifs) - 3}" if len(ifs) > 3 else ""), len(ifs), st
                ),
                Cell(
                    ", ".join(addrs[:1]) + (f" +{len(addrs) - 1}" if len(addrs) > 1 else ""),
                    None,
                    st,
                ),
                Cell(str(len(ns.routes)), len(ns.routes), st, True),
                Cell(", ".join(ns.default_gateways()) or "-", None, st),
                self._live("vrfs", "server" if ns.is_host else ns.id),
            ]
        for ns_id in gone_ns - set(rows):
            rows[ns_id] = [
                Cell(f"{idx.ns_label(ns_id)} (gone)", None, f"italic {ctx.style('vanished')}")
            ] + [Cell("—", -1.0, "dim") for _ in range(len(VRF_COLUMNS) - 1)]
        return rows

    def _bridge_rows(self) -> dict[str, list[Any]]:
        idx, ctx = self.ctx.index, self.ctx
        if idx is None:
            return {}
        rows: dict[str, list[Any]] = {}
        for br in idx.bridges:
            key = br.ref.key
            members = idx.members.get(key, [])
            if (
                ctx.needle
                and ctx.needle.lower() not in br.display_name.lower()
                and not any(idx.matches(m, ctx.needle) for m in members)
            ):
                continue
            ns = idx.ns[br.netns]
            ports = [i for i in ns.interfaces if i.master == br.ifindex]
            macs = [f for f in ns.fdb if f.master == br.ifindex]
            info = br.bridge
            rows[key] = [
                Cell(br.display_name),
                Cell(ns.name),
                Cell(str(len(ports)), len(ports), "", True),
                Cell(str(len(macs)), len(macs), "", True),
                Cell("on" if info and info.stp else "off"),
                Cell("on" if info and info.vlan_filtering else "off"),
                Cell(" ".join(a.cidr for a in br.addresses) or "-"),
                self._live("bridges", key),
            ]
        return rows

    def _live(self, table: str, key: str) -> LiveCell:
        return LiveCell(self.painter, (table, key), "rate")

    def refresh_index(self) -> None:
        first = self.refiltered()
        vrfs, bridges = self._vrf_rows(), self._bridge_rows()
        self.show_empty(not vrfs and not bridges)
        for tid, rows in (("#vrf-table", vrfs), ("#bridge-table", bridges)):
            table = self.query_one(tid, FastTable)
            table.sync(rows)
            if first:
                table.action_cursor_to(0)

    def refresh_frame(self) -> None:
        self.query_one("#vrf-table", FastTable).touch()
        self.query_one("#bridge-table", FastTable).touch()

    def on_fast_table_row_selected(self, event: FastTable.RowSelected) -> None:
        event.stop()
        kind = "bridge" if event.table.id == "bridge-table" else "vrf"
        self.post_message(View.Open(event.key, kind))
