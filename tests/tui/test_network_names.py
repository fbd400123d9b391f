"""Bridges are shown by the network that owns them: ``lan-a (br0)`` in every view."""

from __future__ import annotations

import dataclasses

import pytest

from netlens.model.types import Snapshot
from netlens.tui.screens.detail import DetailScreen
from netlens.tui.sources import FixtureSource
from netlens.tui.widgets.fast_table import FastTable
from netlens.tui.widgets.topology_view import TopologyView

from .conftest import SIZE, loaded, make_app, run_async
from .fixture import make_snapshot

pytestmark = pytest.mark.tui

OWNERS = {"br0": "lan-a", "br1": "backend"}


def named_snapshot() -> Snapshot:
    """The fixture host with its two bridges owned by networks (as discovery names them)."""
    snap = make_snapshot()
    namespaces = tuple(
        dataclasses.replace(
            ns,
            interfaces=tuple(
                dataclasses.replace(i, network=OWNERS.get(i.name)) if i.kind == "bridge" else i
                for i in ns.interfaces
            ),
        )
        for ns in snap.namespaces
    )
    return dataclasses.replace(snap, namespaces=namespaces)


def _topology_text(topo: TopologyView) -> list[str]:
    return ["".join(s.text for s in line) for line in topo._layout.lines]


@run_async
async def test_every_view_names_bridges_by_their_network() -> None:
    app = make_app(FixtureSource(named_snapshot()))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        lines = _topology_text(app.query_one(TopologyView))
        assert any("switch lan-a (br0)" in ln for ln in lines)
        assert any("switch backend (br1)" in ln for ln in lines)

        await pilot.press("2")
        bridges = app.query_one("#bridge-table", FastTable)
        shown = {str(bridges.get_row_at(i)[0]) for i in range(bridges.row_count)}
        assert shown == {"lan-a (br0)", "backend (br1)"}

        await pilot.press("3")
        ctrs = app.query_one("#containers-table", FastTable)
        column = [str(ctrs.get_row_at(i)[3]) for i in range(ctrs.row_count)]
        assert "lan-a (br0)" in column and "backend (br1)" in column

        # The filter finds a bridge by its network name too.
        await pilot.press("1", "slash", *"backend", "enter")
        lines = _topology_text(app.query_one(TopologyView))
        assert any("switch backend (br1)" in ln for ln in lines)
        assert not any("(br0)" in ln for ln in lines)


@run_async
async def test_bridge_detail_title_and_overview_name_the_network() -> None:
    app = make_app(FixtureSource(named_snapshot()))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        topo = app.query_one(TopologyView)
        region = next(r for r in topo._layout.regions if r.kind == "bridge")
        topo.selected = region.node
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, DetailScreen)
        title = str(screen.query_one("#detail-title").render())
        assert "lan-a (br0)" in title
