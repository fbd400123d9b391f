"""The fleet view: rows from the fleet document, Enter opens a server, drill-down source."""

from __future__ import annotations

import pytest
from fleet_sim import sim_sample, sim_snapshot
from textual.widgets import DataTable, Static

from netlens.fleet.merge import ServerResult, fleet_document
from netlens.tui.app import NetlensApp
from netlens.tui.fleet import DumpSource, FleetApp
from netlens.tui.widgets.fast_table import FastTable

from .conftest import SIZE, loaded, run_async

pytestmark = pytest.mark.tui


def results() -> list[ServerResult]:
    out = []
    for alias, host, peer in (("a1", "lab1", "lab2"), ("a2", "lab2", "lab1")):
        snap = sim_snapshot(host, peer)
        out.append(ServerResult(alias, snapshot=snap, sample=sim_sample(snap, 4e6, 2e6)))
    out.append(ServerResult("down\x1b[2J", state="unreachable", reason="refused\x1b]0;x"))
    return out


def app() -> FleetApp:
    rs = results()
    return FleetApp(fleet_document(rs, "0.1.0"), {r.alias for r in rs if r.snapshot})


@run_async
async def test_rows_notes_and_enter_opens_a_server() -> None:
    a = app()
    async with a.run_test(size=SIZE) as pilot:
        await pilot.pause()
        t = a.query_one(DataTable)
        assert t.row_count == 3
        cells = [[str(c) for c in t.get_row_at(i)] for i in range(3)]
        assert cells[0][:4] == ["a1", "ok", "3", "5"]
        assert cells[0][4] == "4 Mb/s"
        assert cells[2][1] == "unreachable" and cells[2][2] == "-"
        assert "\x1b" not in cells[2][0]
        notes = str(a.query_one("#fleet-notes", Static).render())
        assert "vxlan 100: a1:vxlan100 <-> a2:vxlan100" in notes
        assert "unreachable" in notes and "\x1b" not in notes
        await pilot.press("down", "down", "enter")  # the unreachable one: stays
        await pilot.pause()
        assert a.is_running
        await pilot.press("up", "enter")
        await pilot.pause()
    assert a.return_value == "a2"


@run_async
async def test_q_quits_without_a_server() -> None:
    a = app()
    async with a.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await pilot.pause()
    assert a.return_value is None


def test_dump_source_serves_the_received_dump() -> None:
    snap = results()[0].snapshot
    assert snap is not None
    src = DumpSource(snap, "a1")
    assert src.open() is snap and "a1" in src.label and not src.live


@run_async
async def test_drill_down_dashboard_shows_that_servers_containers() -> None:
    snap = results()[1].snapshot
    assert snap is not None
    dash = NetlensApp(DumpSource(snap, "a2"))
    async with dash.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        banner = str(dash.query_one("#banner").render())
        assert "read-only" in banner and "a2 via netlens fleet" in banner
        await pilot.press("3")
        await pilot.pause()
        t = dash.query_one("#containers-table", FastTable)
        shown = {str(t.get_row_at(i)[0]) for i in range(t.row_count)}
        assert {c.name for c in snap.containers} <= shown
        assert dash.ctx.index is not None


@run_async
async def test_markup_in_an_alias_is_shown_not_obeyed() -> None:
    """Aliases come from a fleet file (often generated from an inventory others edit):
    the table parsed them as Rich markup, so '[/]' stopped the fleet view with a
    MarkupError and '[reverse]' restyled the row."""
    rs = [
        ServerResult("[/]", state="unreachable", reason="refused"),
        ServerResult("[reverse]x", state="unreachable", reason="refused"),
    ]
    a = FleetApp(fleet_document(rs, "0.1.0"), set())
    async with a.run_test(size=SIZE) as pilot:
        await pilot.pause()
        t = a.query_one(DataTable)
        assert [str(t.get_row_at(i)[0]) for i in range(2)] == ["[/]", "[reverse]x"]
        await pilot.press("enter")  # no dump: a notification naming the alias
        await pilot.pause()
        assert a.is_running
        await pilot.press("q")
        await pilot.pause()
    assert a.return_value is None
