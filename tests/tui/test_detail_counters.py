"""An interface's byte counters in the detail view follow the samples, not the snapshot.

A snapshot is taken only when the structure changes; its counters froze in the detail
(r1 eth0 RX stayed at 217444572 while ``ip -s link`` said 322647996) although the rate
line moved. Here a source reports growing counters on every tick, and the detail's
overview and the VRF's Interfaces tab must show the latest.
"""

from __future__ import annotations

import html
import re

import pytest
from textual.pilot import Pilot
from textual.widgets import TabbedContent

from netlens.model.types import Counters
from netlens.stats.types import StatsFrame
from netlens.tui.screens.detail import DetailScreen
from netlens.tui.sources import FixtureSource
from netlens.tui.views.base import View
from netlens.tui.widgets.tables import NlTable

from .conftest import SIZE, loaded, make_app, run_async
from .fixture import make_snapshot

pytestmark = pytest.mark.tui


class CountingSource(FixtureSource):
    """The fixture, ticking live, with counters that grow by 10**6 bytes per tick."""

    def __init__(self) -> None:
        super().__init__(make_snapshot(), live=True, interval=0.05)
        self.ticks = 0

    def tick(self) -> tuple[object, StatsFrame]:  # type: ignore[override]
        out = super().tick()
        self.ticks += 1
        return out

    def counters(self, key: str) -> Counters | None:
        n = self.ticks
        return Counters(rx_bytes=5_000_000_000 + n * 10**6, tx_bytes=7 + n)


async def open_detail(pilot: Pilot[None], node: str) -> DetailScreen:
    pilot.app.post_message(View.Open(node, "vrf"))
    for _ in range(50):
        await pilot.pause(0.02)
        if isinstance(pilot.app.screen, DetailScreen):
            break
    screen = pilot.app.screen
    assert isinstance(screen, DetailScreen)
    return screen


async def until(pilot: Pilot[None], cond: object) -> None:
    for _ in range(200):
        if callable(cond) and cond():
            return
        await pilot.pause(0.02)
    raise AssertionError("never happened")


def shown_rx(pilot: Pilot[None]) -> int:
    """The overview's RX bytes, as painted (the screenshot's text, tags removed)."""
    text = html.unescape(re.sub(r"<[^>]*>", "", pilot.app.export_screenshot()))
    m = re.search(r"rx\s*(\d+) bytes", text.replace("\xa0", " "))
    assert m, "no rx line in the overview"
    return int(m.group(1))


@run_async
async def test_overview_counters_follow_the_samples() -> None:
    src = CountingSource()
    app = make_app(src)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        idx = app.ctx.index
        assert idx is not None
        key = next(k for k, i in idx.ifaces.items() if i.name == "eth0" and i.uplink)
        await open_detail(pilot, key)
        first = shown_rx(pilot)
        assert first >= 5_000_000_000  # not the snapshot's 900 * 1234567
        start = src.ticks
        await until(pilot, lambda: src.ticks >= start + 3)
        await pilot.pause()
        await until(pilot, lambda: shown_rx(pilot) >= first + 2 * 10**6)


@run_async
async def test_interfaces_tab_counters_follow_the_samples() -> None:
    src = CountingSource()
    app = make_app(src)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        idx = app.ctx.index
        assert idx is not None
        ns = next(n for n in idx.snapshot.namespaces if n.name == "web-1")
        screen = await open_detail(pilot, ns.id)
        screen.query_one(TabbedContent).active = "tab-ifaces"
        await pilot.pause()
        table = screen.query_one("#ifaces-table", NlTable)

        def rx() -> int:
            return int(str(table.get_cell("1", "rx")))  # row 1: eth0

        first = rx()
        assert first >= 5_000_000_000
        await until(pilot, lambda: rx() >= first + 2 * 10**6)
