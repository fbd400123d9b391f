"""A VRF's Interfaces tab: MTU, drops and errors per interface, and Enter opens the
interface (counters, peer, bridge-port state)."""

from __future__ import annotations

import dataclasses
import html
import re

import pytest
from textual.pilot import Pilot
from textual.widgets import Label

from netlens.model.types import BridgePortInfo, Snapshot
from netlens.tui.screens.detail import DetailScreen
from netlens.tui.sources import FixtureSource
from netlens.tui.widgets.tables import NlTable

from .conftest import SIZE, loaded, make_app, run_async
from .fixture import HOST_ID, make_snapshot
from .test_detail_tables import open_tab, rows

pytestmark = pytest.mark.tui


def blocked_vrtr1(snap: Snapshot) -> Snapshot:
    """The router's leg on br1 blocked by STP, with a cost: what a port shows."""
    host = snap.namespaces[0]
    ifs = tuple(
        dataclasses.replace(
            i, port=BridgePortInfo("blocking", cost=100, priority=32, learning=True, flood=False)
        )
        if i.name == "vrtr1"
        else i
        for i in host.interfaces
    )
    return dataclasses.replace(
        snap, namespaces=(dataclasses.replace(host, interfaces=ifs), *snap.namespaces[1:])
    )


def painted(pilot: Pilot[None]) -> str:
    """The screen's text as painted, blanks collapsed."""
    text = html.unescape(re.sub(r"<[^>]*>", "", pilot.app.export_screenshot()))
    return " ".join(text.replace("\xa0", " ").split())


@run_async
async def test_interfaces_tab_has_mtu_drops_errors_and_enter_opens_the_interface() -> None:
    app = make_app(FixtureSource(blocked_vrtr1(make_snapshot())))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        screen = await open_tab(pilot, HOST_ID, "vrf", "tab-ifaces")
        table = screen.query_one("#ifaces-table", NlTable)
        labels = [str(c.label) for c in table.ordered_columns]
        assert labels[3] == "MTU" and labels[-2:] == ["Drops", "Errors"]
        got = {r[0]: r for r in rows(table)}
        # veth0001's counters: rx_dropped = 1 (the fixture's seed % 3), no errors
        assert (got["veth0001"][3], got["veth0001"][-2], got["veth0001"][-1]) == ("1500", "1", "0")
        assert got["lo"][3] == "65536"
        assert screen.ns is not None
        n = next(i for i, itf in enumerate(screen.ns.interfaces) if itf.name == "vrtr1")
        table.focus()
        table.move_cursor(row=table.get_row_index(str(n)), animate=False)
        await pilot.pause()
        await pilot.press("enter")
        for _ in range(50):
            await pilot.pause(0.02)
            if app.screen is not screen:
                break
        opened = app.screen
        assert isinstance(opened, DetailScreen) and opened.iface is not None
        assert opened.iface.name == "vrtr1" and opened.kind == "iface"
        assert str(opened.query_one("#detail-title", Label).render()) == "interface host:vrtr1"
        text = painted(pilot)
        assert "bridge port blocking cost 100 priority 32 learning on flood off" in text
        assert "veth peer router:eth1" in text and "master br1" in text
        await pilot.press("escape")
        assert app.screen is screen  # back to the VRF


@run_async
async def test_a_port_in_forwarding_state_says_so() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        screen = await open_tab(pilot, f"{HOST_ID}/2", "iface", "tab-overview")
        assert screen.iface is not None and screen.iface.name == "eth0"
        text = painted(pilot)
        assert "bridge port" not in text  # eth0 is no bridge's port
        await pilot.press("escape")
        key = next(
            i.ref.key for i in make_snapshot().namespaces[0].interfaces if i.name == "veth0002"
        )
        screen = await open_tab(pilot, key, "iface", "tab-overview")
        assert screen.iface is not None and screen.iface.name == "veth0002"
        text = painted(pilot)
        assert "bridge port forwarding" in text
