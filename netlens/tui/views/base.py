"""What the app calls on a view; views only read the shared :class:`Context`."""

from __future__ import annotations

from typing import Any

from textual.containers import Vertical
from textual.message import Message

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

    def refresh_index(self) -> None:
        """The snapshot, filter or units changed."""

    def refresh_frame(self) -> None:
        """A new stats frame arrived."""

    def focus_main(self) -> None:
        """Give keyboard focus to the view's main widget."""
