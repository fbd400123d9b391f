"""The fleet view: rows from the fleet document, Enter opens a server, drill-down source."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from fleet_sim import sim_sample, sim_snapshot
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from netlens.errors import SnapshotFileError
from netlens.fleet.merge import ServerResult, fleet_document
from netlens.model.types import Snapshot
from netlens.tui.app import NetlensApp
from netlens.tui.fleet import DumpSource, FleetApp, StaticFleet
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
    dumps = {r.alias: r.snapshot for r in rs if r.snapshot}
    return FleetApp(StaticFleet(fleet_document(rs, "0.1.0"), dumps))


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
    assert a.chosen is not None and a.chosen.server.hostname == "lab2"


class UnreadableDump(StaticFleet):
    def snapshot(self, alias: str) -> Snapshot | None:
        raise SnapshotFileError(f"{alias}'s dump: expected `int`, got `str`")


@run_async
async def test_a_dump_that_does_not_load_is_said_and_the_fleet_stays() -> None:
    rs = results()
    a = FleetApp(UnreadableDump(fleet_document(rs, "0.1.0"), {"a1": rs[0].snapshot}))  # type: ignore[dict-item]
    async with a.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert a.is_running and a.chosen is None
        assert any("expected `int`" in str(n.message) for n in a._notifications)
        await pilot.press("q")
    assert a.return_value is None


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


class ChangingFleet:
    """A source whose document the test replaces, notifying from another thread as
    netlens.fleet.feed.FleetFeed does."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.listener: Callable[[], None] | None = None
        self.reads = 0

    def subscribe(self, listener: Callable[[], None] | None) -> None:
        self.listener = listener
        if listener is not None:
            listener()

    def current(self) -> tuple[dict[str, Any], set[str]]:
        self.reads += 1
        return self.doc, set()

    def snapshot(self, alias: str) -> Snapshot | None:
        raise AssertionError("no drill-down without a dump")

    def change(self, doc: dict[str, Any], notices: int) -> None:
        self.doc = doc
        listener = self.listener
        assert listener is not None
        threads = [threading.Thread(target=listener) for _ in range(notices)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()


async def until_cell(pilot: Pilot[Any], row: int, col: int, want: str) -> list[str]:
    t = pilot.app.query_one(DataTable)
    for _ in range(500):  # a deadline (10 s), not a timing check
        cells = [str(c) for c in t.get_row_at(row)]
        if cells[col] == want:
            return cells
        await pilot.pause(0.02)
    raise AssertionError(f"row {row} column {col} never became {want!r}: {cells}")


@run_async
async def test_rows_follow_the_source_and_notices_coalesce() -> None:
    rs = results()
    src = ChangingFleet(fleet_document(rs, "0.1.0"))
    a = FleetApp(src)
    async with a.run_test(size=SIZE) as pilot:
        await until_cell(pilot, 0, 4, "4 Mb/s")
        await pilot.pause(2 * FleetApp.REDRAW_GAP)
        t = a.query_one(DataTable)
        t.move_cursor(row=1)
        snap = rs[0].snapshot
        assert snap is not None
        rs[0] = ServerResult("a1", snapshot=snap, sample=sim_sample(snap, 8e6, 2e6))
        rs[1] = ServerResult("a2", state="unreachable", reason="agent ended; retrying in 2 s")
        reads = src.reads
        src.change(fleet_document(rs, "0.1.0"), notices=20)
        assert (await until_cell(pilot, 0, 4, "8 Mb/s"))[:2] == ["a1", "ok"]
        cells = await until_cell(pilot, 1, 1, "unreachable")
        assert cells[0] == "a2" and cells[2] == "-"
        await pilot.pause(2 * FleetApp.REDRAW_GAP)
        assert src.reads - reads == 1  # 20 notices, one redraw
        assert t.row_count == 3 and t.cursor_row == 1  # updated in place
        notes = str(a.query_one("#fleet-notes", Static).render())
        assert "a2: unreachable: agent ended; retrying in 2 s" in notes
        assert "vxlan 100" not in notes  # a2's tunnel end is gone with its dump
        assert a.sub_title.endswith("1 ok, 2 unreachable")
        await pilot.press("down", "enter")  # the lost server has no dump now
        await pilot.pause()
        assert a.is_running
        await pilot.press("q")
    assert src.listener is None  # the app stopped listening when it ended


@run_async
async def test_markup_in_an_alias_is_shown_not_obeyed() -> None:
    """Aliases come from a fleet file (often generated from an inventory others edit):
    the table parsed them as Rich markup, so '[/]' stopped the fleet view with a
    MarkupError and '[reverse]' restyled the row."""
    rs = [
        ServerResult("[/]", state="unreachable", reason="refused"),
        ServerResult("[reverse]x", state="unreachable", reason="refused"),
    ]
    a = FleetApp(ChangingFleet(fleet_document(rs, "0.1.0")))
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
