"""What the app calls on a view; views only read the shared :class:`Context`."""

from __future__ import annotations

from typing import Any

from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static

from netlens.tui.context import Context


class View(Vertical):
    """A main view. The app calls ``refresh_index`` on structure changes (and when the
    view becomes visible), ``refresh_frame`` on stats ticks (only while visible)."""

    class Open(Message):
        """Ask the app to open the detail of a node (netns/container id, iface key)."""

        def __init__(self, node: str, kind: str) -> None:
            super().__init__()
            self.node = node
            self.kind = kind

    def __init__(self, ctx: Context, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ctx = ctx
        self._needle = ""  # the filter of the last refresh_index

    def refiltered(self) -> bool:
        """True once per new, non-empty filter (call it in ``refresh_index``): the
        view then moves its cursor to the first match, so Enter opens what the
        filter found rather than the row the cursor happened to be on."""
        needle = self.ctx.needle
        changed = bool(needle) and needle != self._needle
        self._needle = needle
        return changed

    def empty_state(self) -> Static:
        """The line a view shows when its filter matches nothing (hidden otherwise):
        an empty table under a header looked like a view still loading."""
        return Static("  nothing matches the filter", classes="empty-state")

    def show_empty(self, empty: bool) -> None:
        """Show or hide the :meth:`empty_state` line (only with a filter set: a host
        without containers is not a filter's doing)."""
        for line in self.query(".empty-state"):
            line.display = empty and bool(self.ctx.needle)

    def refresh_index(self) -> None:
        """The snapshot, filter or units changed."""

    def refresh_frame(self) -> None:
        """A new stats frame arrived."""

    def focus_main(self) -> None:
        """Give keyboard focus to the view's main widget."""
