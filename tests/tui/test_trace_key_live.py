"""The dashboard's ``t`` and ``p`` on the live host, on namespaces this test builds.

a (10.66.19.1) and b (10.66.19.2) joined by a veth; the VRF table's cursor on a,
``t``, b's address typed into the picker, Enter: the hop table must show the
kernel's answer (a sends out of its veth end, b receives on its own) and the
verdict DELIVERED; ``p`` then sends real echo requests along that path and the
probe must agree.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Lab, is_root, sh
from textual.widgets import DataTable, Static

from netlens.tui.app import NetlensApp
from netlens.tui.screens.trace import TracePicker, TraceScreen
from netlens.tui.sources import LiveSource
from netlens.tui.widgets.topology_view import TopologyView

from .conftest import SIZE, select_live_vrf

pytestmark = [pytest.mark.integration, pytest.mark.tui]


@pytest.fixture
def tklab() -> Iterator[Lab]:
    if not is_root():
        pytest.skip("needs root")
    lab = Lab("tk")
    try:
        yield lab
    finally:
        lab.close()


async def drive(a: str, dst: str) -> dict[str, Any]:
    src = LiveSource(interval=1.0)
    src.open_timeout = 60.0
    app = NetlensApp(src)
    out: dict[str, Any] = {}
    async with app.run_test(size=SIZE) as pilot:
        ns_a = await select_live_vrf(pilot, a)
        await pilot.press("t")
        assert isinstance(app.screen, TracePicker)
        await pilot.press(*dst, "enter")
        screen = app.screen
        assert isinstance(screen, TraceScreen)
        for probe in (False, True):
            if probe:
                await pilot.press("p")
            for _ in range(600):
                o = screen.outcome
                if o is not None and (o.probe is not None) == probe:
                    break
                if "trace:" in str(screen.query_one("#trace-state", Static).render()):
                    break  # failed: the assertions below show why
                await pilot.pause(0.1)
            table = screen.query_one("#trace-hops", DataTable)
            key = "probe" if probe else "static"
            out[key] = {
                "rows": [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)],
                "state": str(screen.query_one("#trace-state", Static).render()),
                "verdict": str(screen.query_one("#trace-verdict", Static).render()),
                "probe": str(screen.query_one("#trace-probe", Static).render()),
            }
        out["path"] = app.query_one(TopologyView).path
        out["ns_a"] = ns_a
    return out


def test_t_then_p_on_two_namespaces(tklab: Lab) -> None:
    LiveSource.check_available()
    a, b = tklab.add_netns("a"), tklab.add_netns("b")
    ia, ib = tklab.name("ea"), tklab.name("eb")
    tklab.add_veth(ia, ib, a, b)
    sh(f"ip -n {a} addr add 10.66.19.1/24 dev {ia}")
    sh(f"ip -n {b} addr add 10.66.19.2/24 dev {ib}")
    out = asyncio.run(drive(a, "10.66.19.2"))
    static = out["static"]
    assert [r[:4] for r in static["rows"]] == [["1", a, "-", ia], ["2", b, ib, "-"]], static
    assert static["verdict"].startswith("verdict: DELIVERED"), static
    assert out["ns_a"] in out["path"]
    probe = out["probe"]
    assert probe["rows"][0][:4] == ["1", a, "-", ia], probe
    assert "probe verdict: DELIVERED" in probe["probe"], probe
    assert "the probe agrees with the static answer" in probe["probe"], probe
    assert [r[-1].split()[0] for r in probe["rows"]] == ["seen", "seen"], probe
