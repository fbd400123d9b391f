"""One name for the host: its namespace is "host" wherever a namespace is named, the
hostname names the server only (as on a real host, where discovery gives the host
namespace a pseudo-container named after the hostname)."""

from __future__ import annotations

import html
import re

import pytest
from textual.pilot import Pilot
from textual.widgets import Label, TabbedContent

from netlens.model.index import SnapshotIndex
from netlens.tui.app import NetlensApp
from netlens.tui.index import ViewIndex
from netlens.tui.screens.detail import DetailScreen
from netlens.tui.sources import FixtureSource
from netlens.tui.widgets.fast_table import FastTable
from netlens.tui.widgets.tables import NlTable

from .conftest import SIZE, loaded, make_app, run_async
from .fixture import HOST_ID, make_snapshot

pytestmark = pytest.mark.tui


def _app() -> NetlensApp:
    return make_app(FixtureSource(make_snapshot(host_container=True)))


def painted(pilot: Pilot[None]) -> str:
    text = html.unescape(re.sub(r"<[^>]*>", "", pilot.app.export_screenshot()))
    return text.replace("\xa0", " ")


def hostnames(text: str) -> list[str]:
    """Every place the hostname is written, with what precedes it."""
    return [h.strip() for h in re.findall(r"\S*\s?lab01\S*", text)]


async def settle(pilot: Pilot[None]) -> None:
    for _ in range(3):
        await pilot.pause()


def test_labels_name_the_host_namespace_host() -> None:
    snap = make_snapshot(host_container=True)
    idx = ViewIndex.build(snap, SnapshotIndex(snap))
    assert idx.ns_label(HOST_ID) == "host"
    assert idx.iface_label(f"{HOST_ID}/2") == "host:eth0"
    web = next(ns for ns in snap.namespaces if ns.name == "web-1")
    eth0 = next(i for i in web.interfaces if i.name == "eth0")
    assert eth0.peer is not None and idx.iface_label(eth0.peer.key) == "host:veth0001"
    assert HOST_ID not in idx.container_of_ns
    assert [r.name for r in idx.rows][:1] == ["web-1"]  # no row for the host
    # the model's own index still knows the pseudo-container (dump, ps use it)
    assert SnapshotIndex(snap).container_by_netns[HOST_ID].name == "lab01"


@run_async
async def test_the_hostname_only_names_the_server() -> None:
    app = _app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        text = painted(pilot)  # the topology
        assert sorted(hostnames(text)) == ["server lab01", "server lab01:"]  # box, status
        await pilot.press("2")
        await settle(pilot)
        vrfs = app.query_one("#vrf-table", FastTable)
        host_row = vrfs.get_row(HOST_ID)
        assert (str(host_row[0]), str(host_row[1])) == ("★ host", "-")
        assert hostnames(painted(pilot)) == ["server lab01:"]
        await pilot.press("enter")  # the host's VRF (first row)
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DetailScreen)
        title = str(screen.query_one("#detail-title", Label).render())
        assert title == "VRF host"
        text = painted(pilot)
        assert hostnames(text) == ["lab01"] and re.search(r"server\s+lab01", text)
        screen.query_one(TabbedContent).active = "tab-ifaces"
        await settle(pilot)
        rows = screen.query_one("#ifaces-table", NlTable)
        col = rows.get_column_index("peer")
        peers = {str(rows.get_row_at(i)[col]) for i in range(rows.row_count)}
        assert "web-1:eth0" in peers


@run_async
async def test_peers_and_bridges_are_on_host() -> None:
    app = _app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("2", "tab", "enter")  # br0's detail
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DetailScreen)
        assert str(screen.query_one("#detail-title", Label).render()) == "switch host:br0"
        await pilot.press("escape", "3")
        table = app.query_one("#containers-table", FastTable)
        table.sort_by("ip")
        await pilot.press("g", "enter")  # web-1
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DetailScreen)
        screen.query_one(TabbedContent).active = "tab-ifaces"
        await settle(pilot)
        rows = screen.query_one("#ifaces-table", NlTable)
        col = rows.get_column_index("peer")
        peers = [str(rows.get_row_at(i)[col]) for i in range(rows.row_count)]
        assert "host:veth0001" in peers
        assert not any("lab01" in p for p in peers)
