"""View 3: the live containers table (name, engine, IP, bridge, rates, trend, drops)."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult

from netlens.stats.types import Rate
from netlens.tui import fmt
from netlens.tui.context import Context
from netlens.tui.index import ContainerRow
from netlens.tui.views.base import View
from netlens.tui.widgets.fast_table import FastTable
from netlens.tui.widgets.tables import Cell, LiveCell

COLUMNS = (
    ("name", "Name"),
    ("engine", "Engine"),
    ("ip", "IP"),
    ("bridge", "Bridge"),
    ("rx", "RX", "9"),
    ("tx", "TX", "9"),
    ("rxp", "RX pkt/s", "9"),
    ("txp", "TX pkt/s", "9"),
    ("trend", "Trend", "12"),
    ("drops", "Drop/s", "6"),
    ("errors", "Err/s", "5"),
    ("ports", "Ports"),
)
SPARK_W = 12
FIT = ("ports", "engine", "bridge", "txp", "rxp", ("name", 16), "ip", ("name", 10), "trend")
"""On a narrow terminal: name, rates, drops and errors stay; the rest goes first."""
LIVE_COLUMNS = ("rx", "tx", "rxp", "txp", "trend", "drops", "errors")


class ContainerPainter:
    """Paints the live columns of a container row from the context's latest frame.

    A row's live cells are painted together, once per frame: the table asks for them
    one cell at a time, and looking the rate and the history up seven times per row
    was half of a tick's repaint. Only rows the table paints (the visible ones) are
    ever computed, and the cache is dropped when the frame, units, theme or
    structure change.
    """

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._stamp: tuple[object, ...] = ()
        self._pinned: tuple[object, ...] = ()
        self._rows: dict[str, dict[str, Cell]] = {}

    def rate(self, row: ContainerRow) -> Rate | None:
        fr = self.ctx.frame
        if fr is None or row.key in self.ctx.ghosts:
            return None
        idx = self.ctx.index
        ns = idx.ns.get(row.netns) if idx else None
        if ns is not None and not ns.complete:
            return None
        return fr.containers.get(row.key) or fr.vrfs.get(row.vrf_key) or Rate()

    def paint(self, row: ContainerRow, col: str) -> Cell:
        """One live cell as of the current frame (called for visible rows only)."""
        ctx = self.ctx
        # frame and roles by identity (a frame compared by value would walk its dicts)
        stamp = (id(ctx.frame), id(ctx.roles), ctx.bits, ctx.generation, len(ctx.ghosts))
        if stamp != self._stamp:
            self._stamp = stamp
            self._pinned = (ctx.frame, ctx.roles)  # keeps the ids above from being reused
            self._rows = {}
        cells = self._rows.get(row.key)
        if cells is None:
            cells = self._rows[row.key] = self.paint_row(row)
        return cells[col]

    def paint_row(self, row: ContainerRow) -> dict[str, Cell]:
        """All live cells of one row."""
        r = self.rate(row)
        ctx = self.ctx
        if r is None:
            gone = Cell("—", 0, "dim", True)
            return {
                col: Cell("", 0, "dim", True) if col == "trend" else gone for col in LIVE_COLUMNS
            }
        lv = ctx.style
        hist_key = row.key if ctx.frame and row.key in ctx.frame.containers else row.vrf_key
        spark = fmt.sparkline(ctx.history.series(hist_key, n=SPARK_W), SPARK_W)
        drops = r.rx_drops + r.tx_drops
        errors = r.rx_errors + r.tx_errors
        return {
            "rx": Cell(fmt.rate(r.rx_bps, ctx.bits), 0, lv(f"rate-{fmt.level(r.rx_bps)}"), True),
            "tx": Cell(fmt.rate(r.tx_bps, ctx.bits), 0, lv(f"rate-{fmt.level(r.tx_bps)}"), True),
            "rxp": Cell(fmt.pps(r.rx_pps), 0, "", True),
            "txp": Cell(fmt.pps(r.tx_pps), 0, "", True),
            "trend": Cell(spark, 0, lv(f"rate-{fmt.level(r.total_bps)}")),
            "drops": Cell(f"{drops:.0f}", 0, lv("rate-mid") if drops else "", True),
            "errors": Cell(f"{errors:.0f}", 0, lv("rate-high") if errors else "", True),
        }

    def sort_value(self, row: ContainerRow, col: str) -> float:
        r = self.rate(row)
        if r is None:
            return -1.0
        return {
            "rx": r.rx_bps,
            "tx": r.tx_bps,
            "rxp": r.rx_pps,
            "txp": r.tx_pps,
            "trend": r.total_bps,
            "drops": r.rx_drops + r.tx_drops,
            "errors": r.rx_errors + r.tx_errors,
        }[col]


class ContainersView(View):
    def __init__(self, ctx: Context, **kwargs: Any) -> None:
        super().__init__(ctx, **kwargs)
        self.painter = ContainerPainter(ctx)

    def compose(self) -> ComposeResult:
        yield self.empty_state()
        # busiest first, as `netlens stats` lists them: the question is "who is loud?"
        yield FastTable(
            COLUMNS, id="containers-table", sort_col="trend", sort_reverse=True, fit=FIT
        )

    @property
    def table(self) -> FastTable:
        return self.query_one(FastTable)

    def focus_main(self) -> None:
        self.table.focus()

    def _static(self, row: ContainerRow, gone: bool) -> list[Cell]:
        st = f"italic {self.ctx.style('vanished')}" if gone else ""
        name = f"{row.name} (gone)" if gone else row.name
        name_st = st
        if row.privileged:  # every capability, no seccomp filter: worth a glance
            name = f"{name} (privileged)"
            name_st = st or self.ctx.style("banner")
        return [
            Cell(name, row.name.lower(), name_st),
            Cell(row.engine, None, st),
            Cell(row.ip, tuple(int(p) if p.isdigit() else 0 for p in row.ip.split(".")), st),
            Cell(row.bridge or "-", None, st),
        ]

    def _rates(self, row: ContainerRow) -> list[LiveCell]:
        return [LiveCell(self.painter, row, col) for col in LIVE_COLUMNS]

    def _ports(self, row: ContainerRow, gone: bool) -> Cell:
        st = f"italic {self.ctx.style('vanished')}" if gone else ""
        return Cell(row.ports or "-", row.ports, st)

    def _wanted(self) -> dict[str, ContainerRow]:
        idx = self.ctx.index
        if idx is None:
            return {}
        out = {r.key: r for r in idx.rows if idx.matches(r.netns, self.ctx.needle)}
        needle = self.ctx.needle.lower()
        for key, row in self.ctx.ghosts.items():
            if key not in out and needle in row.name.lower():
                out[key] = row
        return out

    def refresh_index(self) -> None:
        rows: dict[str, list[Any]] = {}
        idx = self.ctx.index
        wanted = self._wanted()
        vanished = self.ctx.vanished
        for key, row in wanted.items():
            ns = idx.ns.get(row.netns) if idx else None
            gone = key in vanished or (ns is not None and not ns.complete)
            rows[key] = [*self._static(row, gone), *self._rates(row), self._ports(row, gone)]
        self.table.sync(rows)
        self.show_empty(not rows)
        if self.refiltered():
            self.table.action_cursor_to(0)

    def refresh_frame(self) -> None:
        self.table.touch()

    def on_fast_table_row_selected(self, event: FastTable.RowSelected) -> None:
        event.stop()
        self.post_message(View.Open(event.key, "container"))
