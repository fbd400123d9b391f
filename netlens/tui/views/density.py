"""View 4: how full the server is - counts, memory, CPU, bandwidth against uplinks.

Painted as plain text rows of fixed-width columns (a Rich Table re-laid out every tick
was the most expensive thing in the app at 1000 containers); counts are computed once
per structural change.
"""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Label, Sparkline, Static

from netlens.kernel.inert import terminal
from netlens.tui import fmt
from netlens.tui.context import Context
from netlens.tui.views.base import View

LABEL_W = 24
BAR_W = 32


class DensityView(View):
    def __init__(self, ctx: Context, **kwargs: Any) -> None:
        super().__init__(ctx, **kwargs)
        self._counts: tuple[int, dict[str, int]] | None = None
        self._heights: dict[str, int] = {}  # static id -> lines it was laid out with

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(id="density-gauges")
            yield Label("Container traffic (all containers, bit/s)", classes="section-title")
            yield Sparkline([], id="density-server-spark")
            yield Static(id="density-uplinks")

    def _row(self, out: Text, label: str, value: Text | str, note: str = "") -> None:
        out.append(label.ljust(LABEL_W), style="bold")
        out.append_text(value if isinstance(value, Text) else Text(value))
        if note:
            out.append("  " + note)
        out.append("\n")

    def _gauge(self, out: Text, label: str, used: float, total: float | None, note: str) -> None:
        frac = used / total if total else 0.0
        lvl = "low" if frac < 0.5 else "mid" if frac < 0.8 else "high"
        self._row(out, label, Text(fmt.bar(frac, BAR_W), style=self.ctx.style(f"rate-{lvl}")), note)

    def _count(self) -> dict[str, int]:
        idx = self.ctx.index
        assert idx is not None
        if self._counts is None or self._counts[0] != self.ctx.generation:
            self._counts = (self.ctx.generation, idx.counts)
        return self._counts[1]

    def refresh_index(self) -> None:
        self.refresh_frame()

    def refresh_frame(self) -> None:
        idx, fr, ctx = self.ctx.index, self.ctx.frame, self.ctx
        if idx is None:
            return
        counts = self._count()
        d = fr.density if fr else None
        srv = idx.snapshot.server
        out = Text()
        self._row(
            out,
            f"server {terminal(srv.hostname)}",
            fmt.plain(
                f"{srv.cpu_count} cores · {fmt.size(srv.mem_total)} · {srv.arch}"
                f" · kernel {srv.kernel}",
                style=ctx.style("server"),
            ),
        )
        for name in ("containers", "namespaces", "veths", "bridges", "uplinks"):
            self._row(out, name, Text(str(counts[name]), style="bold"))
        cpus = max(1, srv.cpu_count)
        self._row(out, "containers per core", f"{counts['containers'] / cpus:.1f}")
        if d is not None:
            self._gauge(
                out,
                "memory",
                d.mem_used,
                d.mem_total,
                f"{fmt.size(d.mem_used)} of {fmt.size(d.mem_total)}"
                f" (containers {fmt.size(d.containers_mem)})",
            )
            usage = fr.usage.values() if fr else ()
            known = [u.cpu_percent for u in usage if u.cpu_percent is not None]
            cpu = sum(known)
            # not measured yet (the first sample, no cgroup to read) is "-", as in `stats`
            label = f"{cpu:.0f}% of {cpus * 100}%" if known else f"- of {cpus * 100}%"
            self._gauge(out, "containers CPU", cpu, 100.0 * cpus, label)
            for name, (used, mx) in sorted(d.headroom.items()):
                self._gauge(out, name, used, mx, f"{used} of {mx}")
        else:
            self._row(out, "memory", f"{fmt.size(srv.mem_total)} total", "usage needs live stats")
        cap = sum((u.speed_mbps or 0) * 1e6 for u in idx.uplinks) or (
            d.uplink_capacity_bps if d else None
        )
        total = fr.server.total_bps if fr else 0.0
        of = fmt.rate(cap, ctx.bits) if cap else "? (speed unknown)"
        self._gauge(out, "bandwidth vs uplinks", total, cap, f"{fmt.rate(total, ctx.bits)} of {of}")
        out.rstrip()
        self._update("#density-gauges", out)
        self.query_one("#density-server-spark", Sparkline).data = ctx.history.series(
            "server", n=120
        )
        up = Text()
        for u in idx.uplinks:
            key = u.ref.key
            r = fr.uplinks.get(key) if fr else None
            ucap = (u.speed_mbps or 0) * 1e6 or None
            bps = r.total_bps if r else 0.0
            up.append(f"uplink {terminal(u.name)}".ljust(LABEL_W), style=ctx.style("uplink"))
            up.append(
                fmt.sparkline(ctx.history.series(key, n=40), 40),
                style=ctx.style(f"rate-{fmt.level(bps, ucap)}"),
            )
            up.append(
                f"  {fmt.rate(bps, ctx.bits)} / {fmt.si(ucap, 'b/s') if ucap else 'speed ?'}\n"
            )
        up.rstrip()
        self._update("#density-uplinks", up)

    def _update(self, selector: str, text: Text) -> None:
        """Replace a static's text; lay the screen out again only when its number of
        lines changed (a tick changes numbers, not lines: a layout would re-arrange
        and repaint the whole screen every second)."""
        static = self.query_one(selector, Static)
        lines = text.plain.split("\n")
        fits = max(cell_len(line) for line in lines) <= static.content_size.width
        layout = not fits or self._heights.get(selector) != len(lines)
        self._heights[selector] = len(lines) if fits else -1  # wrapped: always lay out
        static.update(text, layout=layout)
