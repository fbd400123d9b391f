"""The filter finds containers by what the host shows of them (MACs, host veth names),
and a view with no match says so."""

from __future__ import annotations

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from netlens.model.index import SnapshotIndex
from netlens.tui.index import ViewIndex
from netlens.tui.widgets.fast_table import FastTable
from netlens.tui.widgets.tables import LiveCell

from .conftest import SIZE, loaded, make_app, run_async
from .fixture import HOST_ID, make_snapshot

pytestmark = pytest.mark.tui


def _index() -> ViewIndex:
    snap = make_snapshot()
    return ViewIndex.build(snap, SnapshotIndex(snap))


def _ns_named(idx: ViewIndex, name: str) -> str:
    return next(ns.id for ns in idx.snapshot.namespaces if ns.name == name)


def test_a_containers_own_mac_and_its_host_veth_find_it() -> None:
    idx = _index()
    db3 = _ns_named(idx, "db-3")
    inside = next(i for i in idx.ns[db3].interfaces if i.kind == "veth")
    assert inside.mac is not None and inside.peer is not None
    host_veth = idx.ifaces[inside.peer.key].name
    for needle in (inside.mac, inside.mac.upper(), host_veth):
        hits = [r.name for r in idx.rows if idx.matches(r.netns, needle)]
        assert hits == ["db-3"], needle


def test_the_host_is_found_by_its_uplinks_mac() -> None:
    idx = _index()
    assert idx.matches(HOST_ID, "52:54:00:12:34:57")
    assert not any(idx.matches(r.netns, "52:54:00:12:34:57") for r in idx.rows)


def _names(table: FastTable) -> list[str]:
    """The first column of every row, in order."""
    out = []
    for key in table.rows:
        cell = table.get_row(key)[0]
        out.append(cell.cell().text if isinstance(cell, LiveCell) else cell.text)
    return out


async def _settle(pilot: Pilot[None]) -> None:
    for _ in range(3):
        await pilot.pause()


@run_async
async def test_the_containers_view_filters_by_host_veth_and_says_when_nothing_matches() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("3")
        table = app.query_one("#containers-table", FastTable)
        line = app.query_one("#view-containers .empty-state", Static)
        assert not line.display
        await pilot.press("slash", *"veth0004", "enter")
        await _settle(pilot)
        assert _names(table) == ["cache-4"]
        assert not line.display
        await pilot.press("slash", *"zz-none", "enter")
        await _settle(pilot)
        assert table.row_count == 0
        assert line.display and "nothing matches the filter" in str(line.render())


@run_async
async def test_the_vrfs_view_says_when_nothing_matches() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("2")
        line = app.query_one("#view-vrfs .empty-state", Static)
        await pilot.press("slash", *"02:42:00:cc:00:02", "enter")  # api-2's MAC
        await _settle(pilot)
        vrfs = app.query_one("#vrf-table", FastTable)
        assert _names(vrfs) == ["api-2"]
        assert not line.display
        await pilot.press("slash", *"zz-none", "enter")
        await _settle(pilot)
        assert vrfs.row_count == 0 and app.query_one("#bridge-table", FastTable).row_count == 0
        assert line.display
