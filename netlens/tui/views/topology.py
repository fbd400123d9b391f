"""View 1: the topology drawing plus a one-line legend of roles and load levels."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from netlens.tui.topology import ViewState
from netlens.tui.views.base import View
from netlens.tui.widgets.topology_view import TopologyView


class TopologyPane(View):
    def compose(self) -> ComposeResult:
        yield TopologyView(id="topology-view")
        yield Static(
            "[b]Enter[/] open · [b]c[/] collapse bridge · [b]f[/] focus neighbours · "
            "[b]/[/] filter · load: [$nl-rate-idle]idle[/] [$nl-rate-low]low[/] "
            "[$nl-rate-mid]mid ┃[/] [$nl-rate-high]high ┃[/] · findings (5): "
            "[$nl-finding-error]✖ error[/] [$nl-finding-warning]▲ warning[/] "
            "[$nl-finding-info]● info[/]",
            id="topology-legend",
        )

    @property
    def view(self) -> TopologyView:
        return self.query_one(TopologyView)

    def focus_main(self) -> None:
        self.view.focus()

    def refresh_index(self) -> None:
        v = self.view
        v.bits = self.ctx.bits
        if self.ctx.index is not None:
            v.index = self.ctx.index
        v.frame = self.ctx.frame
        fi = self.ctx.findings  # may have come before this screen was mounted
        v.set_badges(dict(fi.badges) if fi is not None else {})
        v.set_state(ViewState(v.state.collapsed, self.ctx.needle, v.state.focus))

    def refresh_frame(self) -> None:
        self.view.set_frame(self.ctx.frame)

    def on_topology_view_opened(self, event: TopologyView.Opened) -> None:
        event.stop()
        self.post_message(View.Open(event.node, event.kind))
