"""The ``?`` screen lists the detail pane's keys (tabs, focus, the tables' keys), and
those keys do what it says there."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from textual.widgets import TabbedContent, Tabs

from netlens.tui.screens.detail import DetailScreen
from netlens.tui.screens.help import HelpScreen
from netlens.tui.widgets.tables import NlTable

from .conftest import SIZE, loaded, make_app, run_async
from .fixture import HOST_ID
from .test_detail_tables import open_tab

pytestmark = pytest.mark.tui


def help_rows(screen: HelpScreen) -> list[str]:
    console = Console(width=200, file=io.StringIO(), record=True)
    console.print(screen._table())
    return [" ".join(r.split()) for r in console.export_text().splitlines()]


@run_async
async def test_help_lists_the_detail_panes_keys_and_they_work() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        rows = help_rows(app.screen)
        start = rows.index("Detail")
        detail = rows[start : rows.index("Detail tables")]
        tables = rows[rows.index("Detail tables") :]
        for want in (
            "← Previous tab (tab strip focused)",
            "→ Next tab (tab strip focused)",
            "tab Focus next: tab strip, table",
            "shift+tab Focus previous",
        ):
            assert any(r.startswith(want) for r in detail), want
        for want in (
            "j Down table.down",
            "k Up table.up",
            "g Top table.top",
            "G Bottom table.bottom",
            "s Sort table.sort",
            "r Reverse table.reverse",
            "⏎ Open the interface (Interfaces tab)",
        ):
            assert any(r.startswith(want) for r in tables), want
        await pilot.press("escape")
        # what the help says, in a VRF's detail
        screen = await open_tab(pilot, HOST_ID, "vrf", "tab-vrf")
        assert isinstance(screen, DetailScreen)
        screen.query_one(Tabs).focus()
        await pilot.pause()
        await pilot.press("right")
        await pilot.pause()
        assert screen.query_one(TabbedContent).active == "tab-ifaces"
        await pilot.press("tab")
        await pilot.pause()
        table = screen.query_one("#ifaces-table", NlTable)
        assert app.focused is table
        await pilot.press("j", "j", "G")
        assert table.cursor_row == table.row_count - 1
        await pilot.press("g")
        assert table.cursor_row == 0
        await pilot.press("shift+tab", "left")
        await pilot.pause()
        assert screen.query_one(TabbedContent).active == "tab-vrf"
