"""What the topology draws in a VRF box under a bridge (pure layout, no app)."""

from __future__ import annotations

import dataclasses

import pytest

from netlens.tui.index import ViewIndex
from netlens.tui.topology import ViewState, build_layout

from .fixture import make_snapshot

pytestmark = pytest.mark.tui


def box_first_lines(idx: ViewIndex, ns_id: str) -> dict[str, str]:
    """For each bridge the VRF hangs from: the first content line of its box there."""
    lay = build_layout(idx, ViewState(), 120)
    heads = [r for r in lay.regions if r.kind == "bridge"]
    out: dict[str, str] = {}
    boxes = [
        r
        for r in lay.regions
        if r.node == ns_id and any(s.node == ns_id and s.text == "┌─" for s in lay.lines[r.y])
    ]
    for r in boxes:
        bridge = max((h for h in heads if h.y < r.y), key=lambda h: h.y).node
        line = "".join(s.text for s in lay.lines[r.y + 1] if s.node == ns_id)
        out[bridge] = line.strip("│ ")
    return out


def test_a_router_box_shows_the_interface_on_that_bridge_first() -> None:
    """demo-r1 under the dmz bridge showed its eth0 (on another bridge), not eth1."""
    snap = make_snapshot()
    router = next(ns for ns in snap.namespaces if ns.name == "router")
    # the p2p leg first, as a kernel may list it: the bridge legs were pushed off the box
    lo, eth0, eth1, p2p = router.interfaces
    router2 = dataclasses.replace(router, interfaces=(lo, p2p, eth0, eth1))
    snap = dataclasses.replace(
        snap, namespaces=tuple(router2 if ns is router else ns for ns in snap.namespaces)
    )
    idx = ViewIndex.build(snap)
    names = {b.ref.key: b.name for b in idx.bridges}
    shown = {names[k]: v for k, v in box_first_lines(idx, router.id).items()}
    assert shown["br0"].startswith("eth0 10.10.0.254/16"), shown
    assert shown["br1"].startswith("eth1 10.11.0.254/16"), shown
