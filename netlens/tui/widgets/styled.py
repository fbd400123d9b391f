"""A scroll view that paints many lines over its own style, asked once per CSS update.

``rich_style`` walks every ancestor and blends their backgrounds; asked per painted
line it was a quarter of a table row's paint time. It only changes when the
stylesheet is re-applied, so the widgets that paint hundreds of lines per frame
(the tables and the topology) ask it once per style update through this class.
"""

from __future__ import annotations

from rich.style import Style
from textual.scroll_view import ScrollView


class StyledScrollView(ScrollView):
    """Caches ``rich_style``; :meth:`base_style_changed` drops line caches built on it."""

    _base: Style | None = None
    _last_base: Style | None = None

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._base = None

    def forget_base_style(self) -> None:
        """Ask ``rich_style`` again at the next paint (e.g. after a theme change)."""
        self._base = None

    def _base_style(self) -> Style:
        base = self._base
        if base is None:
            base = self._base = self.rich_style
            if base != self._last_base:
                self._last_base = base
                self.base_style_changed()
        return base

    def base_style_changed(self) -> None:
        """Drop what was painted over the old style (cached segments compare their style)."""
