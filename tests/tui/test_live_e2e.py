"""End to end: the dashboard on the live host sees a lab built here and its traffic.

Two namespaces on a bridge (names carry this run's tag and the ``nv`` prefix), the app
on the real live source, then a ping flood between the two namespaces: the VRFs must
appear in the tables and their rate must become non-zero. Traffic stays inside the
lab's own namespaces.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import shutil
from collections.abc import Iterator

import pytest
from conftest import Lab, is_root, sh

from netlens.tui.app import NetlensApp
from netlens.tui.sources import LiveSource
from netlens.tui.widgets.fast_table import FastTable

pytestmark = [pytest.mark.integration, pytest.mark.tui]


@pytest.fixture
def nvlab() -> Iterator[Lab]:
    if not is_root():
        pytest.skip("needs root")
    lab = Lab("nv")
    try:
        yield lab
    finally:
        lab.close()


def build(lab: Lab) -> tuple[str, str, str]:
    br = lab.add_bridge("br")
    a, b = lab.add_netns("a"), lab.add_netns("b")
    net = int(lab.prefix[-4:], 16) % 250 + 1
    for ns, short, host in ((a, "ea", "ha"), (b, "eb", "hb")):
        inside, outside = lab.name(short), lab.name(host)
        lab.add_veth(outside, inside, None, ns)
        sh(f"ip link set {outside} master {br}")
    sh(f"ip -n {a} addr add 10.229.{net}.1/24 dev {lab.name('ea')}")
    sh(f"ip -n {b} addr add 10.229.{net}.2/24 dev {lab.name('eb')}")
    return a, b, f"10.229.{net}.2"


async def drive(lab: Lab, a: str, b: str, peer: str) -> tuple[set[str], float]:
    src = LiveSource(interval=0.5)
    src.open_timeout = 60.0  # a stuck live layer fails the test, it does not hang it
    app = NetlensApp(src)
    async with app.run_test(size=(120, 40)) as pilot:
        names: set[str] = set()
        for _ in range(750):  # discovery of a busy host can take a while
            idx = app.ctx.index
            if idx is not None:
                names = {ns.name for ns in idx.snapshot.namespaces} | {
                    n for ns in idx.snapshot.namespaces for n in ns.names
                }
                if {a, b} <= names:
                    break
            await pilot.pause(0.1)
        assert {a, b} <= names, "lab namespaces never appeared"
        idx = app.ctx.index
        assert idx is not None
        ns_a = next(ns.id for ns in idx.snapshot.namespaces if a in (ns.name, *ns.names))
        await pilot.press("2")
        vrfs = app.query_one("#vrf-table", FastTable)
        assert ns_a in vrfs.rows
        await pilot.press("3")
        rows = app.query_one("#containers-table", FastTable)
        assert any(r.netns == ns_a for r in idx.rows if r.key in rows.rows)
        lab.spawn(["ip", "netns", "exec", a, "ping", "-f", "-q", "-s", "1200", "-w", "30", peer])
        best = 0.0
        for _ in range(300):
            fr = app.ctx.frame
            r = fr.vrfs.get(ns_a) if fr is not None else None
            best = max(best, r.total_bps if r is not None else 0.0)
            if best > 0:
                break
            await pilot.pause(0.1)
        await pilot.pause(0.6)  # one more tick painted
        row = next(r for r in idx.rows if r.netns == ns_a)
        shown = str(rows.get_row(row.key)[4])
        # the table paints the ping's rate: not a dash, and not "0 b/s" either
        assert shown.endswith("b/s") and float(shown.split()[0]) > 0, shown
        return names, best


def test_live_dashboard_sees_lab_and_traffic(nvlab: Lab) -> None:
    if not shutil.which("ping"):
        pytest.skip("ping not installed")
    LiveSource.check_available()
    a, b, peer = build(nvlab)
    names, bps = asyncio.run(drive(nvlab, a, b, peer))
    assert {a, b} <= names
    assert bps > 0, "no rate seen for the pinging namespace"


def _ip_rx_bytes(ns: str, dev: str) -> int:
    out = sh(f"ip -n {ns} -j -s link show {dev}").stdout
    return int(json.loads(out)[0]["stats64"]["rx"]["bytes"])


async def drive_detail(lab: Lab, a: str, peer: str) -> list[tuple[int, int, int]]:
    """Open the detail of ``a``'s veth during a ping flood; each round reads ``ip -s
    link``, waits for two new frames, reads the painted RX bytes, reads ``ip`` again."""
    from textual.pilot import Pilot

    from netlens.tui.screens.detail import DetailScreen
    from netlens.tui.views.base import View

    dev = lab.name("ea")
    src = LiveSource(interval=0.3)
    src.open_timeout = 60.0
    app = NetlensApp(src)

    async def frames(pilot: Pilot[None], n: int) -> None:
        for _ in range(n):
            fr = app.ctx.frame
            for _ in range(200):
                await pilot.pause(0.05)
                if app.ctx.frame is not fr:
                    break
        await pilot.pause()

    rounds: list[tuple[int, int, int]] = []
    async with app.run_test(size=(120, 40)) as pilot:
        key = None
        for _ in range(750):
            idx = app.ctx.index
            if idx is not None:
                key = next(
                    (
                        k
                        for k, i in idx.ifaces.items()
                        if i.name == dev and a in idx.ns[i.netns].names
                    ),
                    None,
                )
                if key is not None:
                    break
            await pilot.pause(0.1)
        assert key is not None, "the lab's veth never appeared"
        lab.spawn(["ip", "netns", "exec", a, "ping", "-f", "-q", "-s", "1200", "-w", "30", peer])
        app.post_message(View.Open(key, "vrf"))
        await frames(pilot, 1)
        assert isinstance(app.screen, DetailScreen)
        for _ in range(3):
            before = _ip_rx_bytes(a, dev)
            await frames(pilot, 2)
            text = html.unescape(re.sub(r"<[^>]*>", "", app.export_screenshot()))
            m = re.search(r"rx\s*(\d+) bytes", text.replace("\xa0", " "))
            assert m, "no rx line in the overview"
            rounds.append((before, int(m.group(1)), _ip_rx_bytes(a, dev)))
    return rounds


def test_live_detail_counters_follow_ip_s_link(nvlab: Lab) -> None:
    """The byte counters of an interface's detail follow the kernel while it is
    open (they froze at the snapshot's value)."""
    if not shutil.which("ping"):
        pytest.skip("ping not installed")
    LiveSource.check_available()
    a, _b, peer = build(nvlab)
    rounds = asyncio.run(drive_detail(nvlab, a, peer))
    for before, shown, after in rounds:
        assert before <= shown <= after, (before, shown, after)
    assert rounds[-1][1] > rounds[0][1], "the counter never moved under a ping flood"
