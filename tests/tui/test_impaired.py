"""Impaired links in the dashboard: the topology marks them with their settings.

The fixture host gets a shaped point-to-point veth (tbf + netem on one end) and a
rate-limited container eth0, as discovery reads them from the kernel
(``Interface.tc``); an unshaped host draws no mark at all.
"""

from __future__ import annotations

import dataclasses
import io

import pytest

from netlens.model.types import Netns, Snapshot, TrafficControl
from netlens.tui.index import ViewIndex
from netlens.tui.topology import IMPAIRED, ViewState, build_layout, p2p_impairment

from .fixture import make_snapshot

pytestmark = pytest.mark.tui

P2P = TrafficControl(("tbf", "netem"), rate_bps=10_000_000, delay_us=20_000, jitter_us=5_000)
ETH0 = TrafficControl(("tbf",), rate_bps=2_000_000, ingress=True, ingress_to=99)
IFB = TrafficControl(("tbf",), rate_bps=5_000_000)


def _shaped() -> tuple[Snapshot, str, str]:
    """The fixture with the router's p2p end and web-1's eth0 shaped."""
    snap = make_snapshot()
    idx = ViewIndex.build(snap)
    p2p = idx.p2p[0]
    router_end = idx.ifaces[p2p.a]
    web = next(r for r in idx.rows if r.name == "web-1")

    def shape(ns: Netns) -> Netns:
        ifs = []
        for itf in ns.interfaces:
            if itf.ref.key == router_end.ref.key:
                itf = dataclasses.replace(itf, tc=P2P)
            elif ns.id == web.netns and itf.name == "eth0":
                itf = dataclasses.replace(itf, tc=ETH0)
                # the ifb netlens redirects eth0's ingress to, shaped on its own
                ifs.append(dataclasses.replace(itf, ifindex=99, name="nlifb0", kind="ifb", tc=IFB))
            ifs.append(itf)
        return dataclasses.replace(ns, interfaces=tuple(ifs))

    return (
        dataclasses.replace(snap, namespaces=tuple(shape(n) for n in snap.namespaces)),
        idx.ns_label(router_end.netns),
        web.netns,
    )


def _text(snap: Snapshot) -> list[tuple[str, list[str]]]:
    lay = build_layout(ViewIndex.build(snap), ViewState(), 160)
    return [("".join(s.text for s in line), [s.token for s in line]) for line in lay.lines]


def test_unshaped_host_draws_no_mark() -> None:
    assert not any(IMPAIRED in text for text, _ in _text(make_snapshot()))


def test_p2p_line_and_container_box_show_the_settings() -> None:
    snap, router, _web = _shaped()
    lines = _text(snap)
    p2p = [(t, tok) for t, tok in lines if "p2p-edge" in t and "────" in t]
    assert len(p2p) == 1
    text, tokens = p2p[0]
    assert text.rstrip().endswith(f"{IMPAIRED} {router}→edge 10mbit 20ms~5ms")
    assert tokens[-1] == "role:impaired"
    boxes = [t for t, _ in lines if f"{IMPAIRED} eth0 2mbit, in 5mbit" in t]
    assert len(boxes) == 1  # web-1's box, second content line; the ifb is plumbing
    assert not any("nlifb0" in t for t, _ in lines)


def test_both_ends_are_named_in_their_direction() -> None:
    snap, _router, _web = _shaped()
    idx = ViewIndex.build(snap)
    a = idx.ifaces[idx.p2p[0].a]
    b = dataclasses.replace(a, tc=TrafficControl(loss_pct=1.0))
    assert p2p_impairment(a, b, "r1", "r2") == (f"{IMPAIRED} r1→r2 10mbit 20ms~5ms · r2→r1 loss 1%")
    assert p2p_impairment(None, dataclasses.replace(a, tc=None), "r1", "r2") == ""
    # the receiver's shaped ingress counts for the direction it receives
    web = next(i for i in idx.ifaces.values() if i.tc == ETH0)
    assert p2p_impairment(None, web, "x", "web", idx) == f"{IMPAIRED} x→web 5mbit · web→x 2mbit"


def test_an_ingress_filter_without_a_shaped_redirect_is_named() -> None:
    snap, _router, web = _shaped()
    idx = ViewIndex.build(snap)
    eth0 = next(i for i in idx.ns[web].interfaces if i.name == "eth0")
    bare = dataclasses.replace(eth0, tc=TrafficControl(ingress=True))
    from netlens.tui.topology import shaping_text

    assert shaping_text(idx, bare) == "ingress filter"
    assert shaping_text(idx, eth0) == "2mbit, in 5mbit"


def test_detail_screen_says_what_shapes_an_interface() -> None:
    import asyncio

    from rich.console import Console

    from netlens.tui.screens.detail import DetailScreen
    from netlens.tui.sources import FixtureSource

    from .conftest import SIZE, loaded, make_app

    snap, _router, web = _shaped()

    async def go() -> str:
        app = make_app(FixtureSource(snap))
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            idx = app.ctx.index
            assert idx is not None
            eth0 = next(i for i in idx.ns[web].interfaces if i.name == "eth0")
            screen = DetailScreen(app.ctx, eth0.ref.key, "iface")
            await app.push_screen(screen)
            await pilot.pause()
            console = Console(width=120, record=True, file=io.StringIO())
            console.print(screen._iface_overview(eth0))
            return console.export_text()

    text = asyncio.run(go())
    line = next(ln for ln in text.splitlines() if "sends ≈" in ln)
    assert "2mbit  (tbf)" in line
    assert "5mbit  (via nlifb0)" in next(ln for ln in text.splitlines() if "receives" in ln)
