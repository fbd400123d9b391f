"""View 1: the topology drawing plus a one-line legend of roles and load levels."""

from __future__ import annotations

import re

from textual.app import ComposeResult
from textual.widgets import Static

from netlens.tui.topology import ViewState
from netlens.tui.views.base import View
from netlens.tui.widgets.topology_view import TopologyView

_LOAD = (
    "load: [$nl-rate-idle]idle[/] [$nl-rate-low]low[/] "
    "[$nl-rate-mid]mid ┃[/] [$nl-rate-high]high ┃[/]"
)
_FINDINGS = (
    "[$nl-finding-error]✖ error[/] [$nl-finding-warning]▲ warning[/] [$nl-finding-info]● info[/]"
)
LEGENDS = (
    "[b]Enter[/] open · [b]c[/] collapse bridge · [b]f[/] focus neighbours · "
    f"[b]/[/] filter · {_LOAD} · findings (5): {_FINDINGS}",
    f"[b]Enter[/] open · [b]c[/] collapse · [b]f[/] focus · {_LOAD} · findings (5): {_FINDINGS}",
    f"[b]c[/] collapse · [b]f[/] focus · {_LOAD} · {_FINDINGS}",
)
"""The legend, longest first: the longest that fits the pane is shown, so its end
(the findings' marks) is never cut off."""


def _plain_len(markup: str) -> int:
    return len(re.sub(r"\[[^\]]*\]", "", markup))  # the legend's own tags only


class TopologyPane(View):
    def compose(self) -> ComposeResult:
        yield TopologyView(id="topology-view")
        yield Static(LEGENDS[0], id="topology-legend")

    def on_resize(self) -> None:
        room = self.size.width - 2  # the legend's padding
        legend = next((t for t in LEGENDS if _plain_len(t) <= room), LEGENDS[-1])
        self.query_one("#topology-legend", Static).update(legend)

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
