"""At 80x24 columns drop or shrink by importance instead of falling off the right
edge: the containers' drops and errors, a bridge's rate and the key bar stay."""

from __future__ import annotations

import dataclasses
import html
import re
from typing import Any

import pytest
from textual.pilot import Pilot

from netlens.model.types import Address, Interface, Snapshot
from netlens.tui.sources import FixtureSource
from netlens.tui.topology import _bridge_head
from netlens.tui.widgets.fast_table import FastTable

from .conftest import loaded, make_app, run_async
from .fixture import make_snapshot

pytestmark = pytest.mark.tui

NARROW = (80, 24)
V6 = (Address(6, "fd00:10::1", 64), Address(6, "fe80::42:aff:fe00:1", 64, "link"))


def with_v6_on_br0(snap: Snapshot) -> Snapshot:
    """br0 with a ULA and a link-local address besides its IPv4, as Docker's are."""
    host = snap.namespaces[0]
    ifs = tuple(
        dataclasses.replace(i, addresses=i.addresses + V6) if i.name == "br0" else i
        for i in host.interfaces
    )
    return dataclasses.replace(
        snap, namespaces=(dataclasses.replace(host, interfaces=ifs), *snap.namespaces[1:])
    )


def painted(pilot: Pilot[None]) -> list[str]:
    """The screen's rows as painted: the screenshot's text runs, joined by row."""
    svg = pilot.app.export_screenshot()
    rows: dict[float, list[tuple[float, str]]] = {}
    for m in re.finditer(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', svg):
        rows.setdefault(float(m[2]), []).append((float(m[1]), html.unescape(m[3])))
    return [
        "".join(t for _, t in sorted(runs)).replace("\xa0", " ").rstrip()
        for _, runs in sorted(rows.items())
    ]


def test_bridge_head_drops_link_local_first_then_the_other_addresses() -> None:
    br = Interface("n", 3, "br0", "bridge", addresses=(Address(4, "10.10.0.1", 16), *V6))
    name, tail = "▾ ▣ switch br0", " · 7 VRFs "
    full = _bridge_head(name, br, tail, 200)
    assert full == f"{name} 10.10.0.1/16 fd00:10::1/64 fe80::42:aff:fe00:1/64{tail}"
    assert _bridge_head(name, br, tail, 60) == f"{name} 10.10.0.1/16 fd00:10::1/64 +1{tail}"
    assert _bridge_head(name, br, tail, 40) == f"{name} 10.10.0.1/16 +2{tail}"
    assert _bridge_head(name, br, tail, 30) == f"{name} +3{tail}"
    assert len(_bridge_head(name, br, tail, 12)) <= 12


@pytest.mark.parametrize(
    ("name", "press", "v6"),
    [("topology", [], True), ("vrfs", ["2"], False), ("containers", ["3"], False)],
)
def test_narrow(snap_compare: Any, name: str, press: list[str], v6: bool) -> None:
    snap = make_snapshot()
    app = make_app(FixtureSource(with_v6_on_br0(snap) if v6 else snap))
    assert snap_compare(app, press=press, terminal_size=NARROW, run_before=loaded)


@run_async
async def test_containers_keep_rates_drops_and_errors_and_get_the_rest_back() -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await loaded(pilot)
        await pilot.press("3")
        await pilot.pause()
        table = app.query_one("#containers-table", FastTable)
        lines = painted(pilot)
        head = next(line for line in lines if line.lstrip().startswith("Name"))
        assert head.split() == ["Name", "IP", "RX", "TX", "Trend▼", "Drop/s", "Err/s"]
        assert lines[0].endswith("2 bridges")  # the theme's name made room
        bar = lines[-1]
        assert "? keys" in bar and "q quit" in bar and "palette" not in bar
        assert table.virtual_size.width <= table.size.width  # nothing to scroll to
        await pilot.resize_terminal(160, 40)
        await pilot.pause()
        await pilot.pause()
        head = next(line for line in painted(pilot) if line.lstrip().startswith("Name"))
        assert head.split()[:4] == ["Name", "Engine", "IP", "Bridge"] and "Err/s" in head
        assert "^p palette" in painted(pilot)[-1]


@run_async
async def test_the_topology_keeps_the_bridge_rate_at_80_columns() -> None:
    app = make_app(FixtureSource(with_v6_on_br0(make_snapshot())))
    async with app.run_test(size=NARROW) as pilot:
        await loaded(pilot)
        line = next(x for x in painted(pilot) if "switch br0" in x)
        assert "fe80::" not in line and "fd00:10::1/64 +1" in line
        assert re.search(r"\d b/s\s*$", line) or re.search(r"[kMG]b/s\s*$", line), line
        lines = painted(pilot)
        assert lines[-2].endswith("● info")  # the legend's end is not cut either
        assert lines[-1].endswith("q quit")


@run_async
async def test_a_long_name_is_cut_before_rates_drops_and_errors_go() -> None:
    snap = make_snapshot()
    long = "a-very-long-container-name-for-testing-xx"
    named = tuple(
        dataclasses.replace(c, name=long) if c.name == "web-1" else c for c in snap.containers
    )
    app = make_app(FixtureSource(dataclasses.replace(snap, containers=named)))
    async with app.run_test(size=NARROW) as pilot:
        await loaded(pilot)
        await pilot.press("3")
        await pilot.pause()
        lines = painted(pilot)
        head = next(line for line in lines if line.lstrip().startswith("Name"))
        assert head.split() == ["Name", "RX", "TX", "Trend▼", "Drop/s", "Err/s"]
        row = next(line for line in lines if "a-very-long" in line)
        assert "…" in row and long not in row
        table = app.query_one("#containers-table", FastTable)
        # the room the IP column left is the name's again: the row fills the width
        assert table.size.width - 2 <= table.virtual_size.width <= table.size.width
