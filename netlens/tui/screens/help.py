"""The ``?`` screen: every binding with its id, so users know what to remap."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from netlens.tui.registry import active_keys, view_bindings


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "app.pop_screen", "Close", id="help.close"),
        *view_bindings(),  # a view key closes the help and shows that view
    ]

    def __init__(self, groups: Mapping[str, Iterable[BindingType]], keymap_file: str) -> None:
        super().__init__()
        self.groups = groups
        self.keymap_file = keymap_file

    def compose(self) -> ComposeResult:
        yield VerticalScroll(
            Static(self._table()),
            Static(
                f'Remap keys in {self.keymap_file}:  [keymap] quit = "ctrl+q"',
                id="help-keymap",
                markup=False,
            ),
            id="help-body",
        )

    def _table(self) -> Table:
        t = Table(title="netlens keys", expand=True, box=None, padding=(0, 2))
        t.add_column("Keys", style="bold")
        t.add_column("Action")
        t.add_column("Binding id (remap in keymap.toml)", style="dim")
        # The user's keymap.toml replaces a binding's keys by id: show what is active,
        # not the defaults the classes declare (the keymap is Textual's, normalised).
        for group, bindings in self.groups.items():
            t.add_row(f"[u]{group}[/]", "", "")
            for b in bindings:
                if isinstance(b, Binding):
                    active = active_keys(self.app, b.id, b.key) if b.id else b.key.split(",")
                    keys = " ".join(
                        self.app.get_key_display(Binding(k.strip(), b.action)) for k in active
                    )
                    # keys come from the user's keymap file: text, never markup
                    t.add_row(Text(keys), Text(b.description or b.action), b.id or "")
        t.add_row("", "", "")
        t.add_row("ctrl+p", "command palette (views, themes, units)", "")
        return t
