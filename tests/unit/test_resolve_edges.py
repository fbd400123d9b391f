"""build_snapshot's own arguments on the recorded lab host: the time it stamps, the
NAT it is handed, the light read the trace asks for, and the garbage collector it
pauses and must switch back on.

Written against the mutants of netlens/discovery/resolve.py that survived once the
trace's light read joined it (``make mutation MODULES=resolve``).
"""

from __future__ import annotations

import gc
import time

import pytest
from conftest import DISCOVERY_FIXTURES

from netlens.discovery.nsfind import find_namespaces
from netlens.discovery.resolve import build_snapshot
from netlens.discovery.sources import FixtureNetlink, FixtureProc
from netlens.model.types import NatRule, Snapshot

pytestmark = pytest.mark.unit

LAB = DISCOVERY_FIXTURES / "lab"


def _build(light: bool = False) -> Snapshot:
    handles = find_namespaces(str(LAB / "proc"))
    return build_snapshot(handles, FixtureNetlink(LAB), FixtureProc(LAB), light=light)


def test_stamped_with_the_time_it_was_taken_and_gc_switched_back_on() -> None:
    assert gc.isenabled()
    before = time.time()
    snap = _build()
    assert before <= snap.taken_at <= time.time()
    assert gc.isenabled()


def test_nat_handed_in_lands_on_its_namespace() -> None:
    handles = find_namespaces(str(LAB / "proc"))
    host = next(h for h in handles if h.is_host)
    rule = NatRule("nftables", "ip", "nat", "POSTROUTING", "postrouting", "masquerade")
    snap = build_snapshot(handles, FixtureNetlink(LAB), FixtureProc(LAB), nat={host.inode: (rule,)})
    (ns,) = [n for n in snap.namespaces if n.is_host]
    assert ns.nat == (rule,)
    assert all(n.nat == () for n in snap.namespaces if not n.is_host)


def test_light_reads_interfaces_and_addresses_only() -> None:
    full, light = _build(), _build(light=True)
    assert any(ns.routes for ns in full.namespaces)
    assert not any(ns.routes for ns in light.namespaces)
    names = [[i.name for i in ns.interfaces] for ns in light.namespaces]
    assert names == [[i.name for i in ns.interfaces] for ns in full.namespaces]
