"""What a VRF's and a bridge's detail tables hold: routes, policy rules, MAC table."""

from __future__ import annotations

import dataclasses

import pytest
from fixtures.model.sample import HOST, sample_snapshot
from textual.pilot import Pilot
from textual.widgets import TabbedContent

from netlens.model.types import FdbEntry, Neighbour, Route, Snapshot
from netlens.tui.screens.detail import DetailScreen
from netlens.tui.sources import FixtureSource
from netlens.tui.views.base import View
from netlens.tui.widgets.tables import NlTable

from .conftest import SIZE, loaded, make_app, run_async

pytestmark = pytest.mark.tui


def with_host(snap: Snapshot, **changes: object) -> Snapshot:
    ns = tuple(
        dataclasses.replace(n, **changes) if n.id == HOST else n  # type: ignore[arg-type]
        for n in snap.namespaces
    )
    return dataclasses.replace(snap, namespaces=ns)


async def open_tab(pilot: Pilot[None], node: str, kind: str, tab: str) -> DetailScreen:
    pilot.app.post_message(View.Open(node, kind))
    for _ in range(50):
        await pilot.pause(0.02)
        if isinstance(pilot.app.screen, DetailScreen):
            break
    screen = pilot.app.screen
    assert isinstance(screen, DetailScreen)
    screen.query_one(TabbedContent).active = tab
    await pilot.pause()
    return screen


def rows(table: NlTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


@run_async
async def test_routes_in_numeric_order_and_the_policy_rules() -> None:
    snap = sample_snapshot()
    host = snap.namespaces[0]
    extra = (
        Route(4, 254, "10.77.254.0/30", dev="eth0", protocol="kernel", scope="link"),
        Route(4, 254, "10.77.32.0/20", gateway="192.0.2.1", protocol="static"),
        Route(4, 255, "172.17.255.255", type="broadcast", protocol="kernel", scope="link"),
        Route(6, 254, "2001:db8::/64", dev="eth0", protocol="kernel", metric=256),
    )
    app = make_app(FixtureSource(with_host(snap, routes=host.routes + extra)))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        screen = await open_tab(pilot, HOST, "vrf", "tab-routes")
        got = [(r[2], r[1], r[0]) for r in rows(screen.query_one("#routes-table", NlTable))]
        assert got == [
            ("main", "0.0.0.0/0", "S*"),
            ("main", "10.50.0.0/16", "S"),
            ("main", "10.77.32.0/20", "S"),
            ("main", "10.77.254.0/30", "C"),  # text order put it before 10.77.32.0/20
            ("main", "172.17.0.0/16", "C"),
            ("main", "192.0.2.0/24", "C"),
            ("main", "::/0", "R*"),
            ("main", "2001:db8::/64", "C"),  # was coded K
            ("local", "172.17.255.255", "b"),  # was coded L
            ("local", "192.0.2.10", "L"),
        ]
        screen.query_one(TabbedContent).active = "tab-rules"
        await pilot.pause()
        assert rows(screen.query_one("#rules-table", NlTable)) == [
            ["0", "IPv4", "from all", "lookup local"],
            ["100", "IPv4", "from 10.10.0.0/16 fwmark 0x7", "lookup 200"],
            ["32766", "IPv4", "from all", "lookup main"],
            ["32767", "IPv4", "from all", "lookup default"],
        ]


@run_async
async def test_mac_table_says_self_and_shows_age_and_the_arp_ip() -> None:
    """A port's own MAC is self/permanent with nothing behind it; learned entries
    show their age and the IP the bridge's VRF learned for them by ARP."""
    snap = sample_snapshot()
    host = snap.namespaces[0]
    fdb = (
        FdbEntry("02:42:ac:11:00:02", 10, 4, None, "reachable", ("master",), 42.4),
        FdbEntry("9a:1b:2c:3d:4e:01", 10, 4, None, "permanent", ("master",), 900.0),
        FdbEntry("02:00:00:00:0d:01", 11, 4, None, "static", ("master",), 5.0),
    )
    neigh = (*host.neighbours, Neighbour(4, "172.17.0.2", "02:42:ac:11:00:02", 4, "br0", "stale"))
    app = make_app(FixtureSource(with_host(snap, fdb=fdb, neighbours=neigh)))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        screen = await open_tab(pilot, f"{HOST}/4", "bridge", "tab-mac")
        assert rows(screen.query_one("#mac-table", NlTable)) == [
            ["1", "02:42:ac:11:00:02", "dynamic", "vethweb", "42s", "172.17.0.2", "web:eth0"],
            ["1", "9a:1b:2c:3d:4e:01", "self/permanent", "vethweb", "-", "-", "-"],
            ["1", "02:00:00:00:0d:01", "static", "vethdb", "-", "-", "db:eth0"],
        ]
