"""After a filter, Enter opens what the filter found; the cursor shows without colour."""

from __future__ import annotations

import html
import re

import pytest
from textual.pilot import Pilot
from textual.widgets import TabbedContent

from netlens.tui.screens.detail import DetailScreen
from netlens.tui.widgets.fast_table import FastTable
from netlens.tui.widgets.tables import CURSOR_MARK, NlTable
from netlens.tui.widgets.topology_view import TopologyView

from .conftest import SIZE, loaded, make_app, run_async

pytestmark = pytest.mark.tui


async def settle(pilot: Pilot[None]) -> None:
    for _ in range(3):
        await pilot.pause()


@run_async
async def test_enter_after_a_filter_opens_the_first_match_in_the_topology() -> None:
    """It opened 'VRF host': the selection stayed on the server, above the matches."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert app.query_one(TopologyView).selected == "server"
        await pilot.press("slash", *"api-2", "enter")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.ns is not None and app.screen.ns.name == "api-2"


@run_async
async def test_a_new_filter_puts_the_table_cursor_on_the_first_match() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("3")
        table = app.query_one("#containers-table", FastTable)
        table.sort_by("ip")  # web-1 first, so the cursor below it
        await pilot.press("g", "j", "j", "j")
        below = table.cursor_key()
        await pilot.press("slash", *"10.10.0", "enter")  # every br0 container, `below` too
        await settle(pilot)
        assert below in table.rows and table.cursor_row == 0
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.ns is not None and app.screen.ns.name == "web-1"


def painted(pilot: Pilot[None]) -> str:
    """The screen's text as painted (the screenshot, tags removed)."""
    text = html.unescape(re.sub(r"<[^>]*>", "", pilot.app.export_screenshot()))
    return text.replace("\xa0", " ")


@run_async
async def test_the_cursor_has_a_marker_besides_its_colour() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        text = painted(pilot)
        assert f"╭{CURSOR_MARK} server" in text  # the topology's selection
        await pilot.press("right")  # the first uplink
        await settle(pilot)
        assert f"{CURSOR_MARK}⇅ eth0" in painted(pilot)
        await pilot.press("3")
        await settle(pilot)
        table = app.query_one("#containers-table", FastTable)
        first, second = (str(table.get_row_at(i)[0]) for i in (0, 1))
        assert f"{CURSOR_MARK}{first}" in painted(pilot)
        await pilot.press("j")
        await settle(pilot)
        text = painted(pilot)
        assert f"{CURSOR_MARK}{second}" in text and f"{CURSOR_MARK}{first}" not in text


@run_async
async def test_detail_tables_mark_their_cursor_row_too() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("3", "enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DetailScreen)
        screen.query_one(TabbedContent).active = "tab-ifaces"
        await settle(pilot)
        table = screen.query_one("#ifaces-table", NlTable)
        table.focus()
        await settle(pilot)
        assert re.search(rf"{CURSOR_MARK}\s*lo\b", painted(pilot))
        await pilot.press("j")
        await settle(pilot)
        text = painted(pilot)
        assert re.search(rf"{CURSOR_MARK}\s*eth0\b", text) and not re.search(
            rf"{CURSOR_MARK}\s*lo\b", text
        )
        table.sort_by("name", reverse=True)  # rows move under the cursor's key
        await settle(pilot)
        assert [str(table.rows[k].label) for k in table.rows].count(CURSOR_MARK) == 1
        assert (
            str(table.rows[table.coordinate_to_cell_key(table.cursor_coordinate).row_key].label)
            == CURSOR_MARK
        )
