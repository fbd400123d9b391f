"""The findings view (key 5) and the topology badges, on the fixture host.

The fixture's br1 has a vxlan port with a smaller MTU (one warning); tests that need
more break one more thing in a copy of the snapshot. The doctor itself is tested in
tests/unit/test_doctor_checks.py and tests/integration/test_doctor_live.py: here it is
the dashboard's plumbing (a worker off the event loop, stale reports dropped, findings
mapped onto the nodes the topology draws, roles from the theme).
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pytest
from textual.pilot import Pilot

from netlens.analysis import doctor
from netlens.analysis.findings import Report
from netlens.model.findings import Finding, ObjectRef, Severity
from netlens.model.types import Snapshot
from netlens.tui.app import NetlensApp
from netlens.tui.findings_index import SERVER, Badge, FindingsIndex, node_of
from netlens.tui.index import ViewIndex
from netlens.tui.messages import FindingsReady
from netlens.tui.topology import BADGE_W, badge_text
from netlens.tui.views.findings import FindingsView, matches, row_key, summary
from netlens.tui.widgets.fast_table import FastTable
from netlens.tui.widgets.topology_view import TopologyView

from .conftest import SIZE, loaded, make_app, run_async
from .fixture import HOST_ID, fixture_source, make_snapshot

pytestmark = pytest.mark.tui


def web_down(snap: Snapshot) -> tuple[Snapshot, str]:
    """``snap`` with web-1's eth0 down (its host end stays up): a veth-peer-down
    warning on web-1's VRF; also returns that VRF's id."""
    web = next(c for c in snap.containers if c.name == "web-1")
    ns = next(n for n in snap.namespaces if n.id == web.netns)
    ifs = tuple(
        dataclasses.replace(i, admin_up=False, operstate="down") if i.name == "eth0" else i
        for i in ns.interfaces
    )
    broken = dataclasses.replace(ns, interfaces=ifs)
    spaces = tuple(broken if n is ns else n for n in snap.namespaces)
    return dataclasses.replace(snap, namespaces=spaces), ns.id


def iface(idx: ViewIndex, ns_id: str, name: str) -> ObjectRef:
    itf = next(i for i in idx.ns[ns_id].interfaces if i.name == name)
    return ObjectRef("interface", itf.ref.key, name)


def finding(sev: Severity, *objects: ObjectRef, check: str = "c") -> Finding:
    return Finding(check, sev, f"{check} {sev.value}", objects, ("e",), None)


# -- mapping findings onto topology nodes (no app) ------------------------------------------
def test_objects_map_to_the_nodes_the_topology_draws() -> None:
    idx = ViewIndex.build(make_snapshot())
    br1 = next(b for b in idx.bridges if b.name == "br1")
    vx = idx.vxlans[0]
    web = next(c for c in idx.snapshot.containers if c.name == "web-1").netns
    assert node_of(idx, ObjectRef("interface", br1.ref.key, "host:br1")) == br1.ref.key
    assert node_of(idx, ObjectRef("interface", vx.ref.key, "host:vx")) == vx.ref.key
    # a host end cabled to a bridge: the switch bar it hangs from
    assert node_of(idx, iface(idx, HOST_ID, "veth0007")) == br1.ref.key
    # anything inside a container's namespace: its VRF box
    assert node_of(idx, iface(idx, web, "eth0")) == web
    assert node_of(idx, ObjectRef("route", web, "default")) == web
    # the host's own routes, sysctls and uplinks: the server box
    assert node_of(idx, ObjectRef("netns", HOST_ID, "host")) == SERVER
    assert node_of(idx, iface(idx, HOST_ID, "eth0")) == SERVER
    # a namespace gone since the doctor ran is still shown, on the server
    assert node_of(idx, ObjectRef("netns", "netns:1", "gone")) == SERVER


def test_a_badge_counts_a_nodes_findings_and_shows_the_worst() -> None:
    idx = ViewIndex.build(make_snapshot())
    web = next(c for c in idx.snapshot.containers if c.name == "web-1").netns
    eth0 = iface(idx, web, "eth0")
    report = Report(
        (
            finding(Severity.ERROR, eth0, ObjectRef("route", web, "default"), check="a"),
            finding(Severity.INFO, eth0, check="b"),
            finding(Severity.INFO, ObjectRef("netns", HOST_ID, "host"), check="c"),
        )
    )
    fi = FindingsIndex.build(idx, report)
    assert fi.badges[web] == Badge(Severity.ERROR, 2)  # one finding twice on a node: once
    assert fi.badges[SERVER] == Badge(Severity.INFO, 1)
    assert fi.badges[web].text == "✖2" and fi.badges[web].role == "finding-error"
    assert fi.nodes[0] == (web,)
    assert fi.counts() == {Severity.ERROR: 1, Severity.WARNING: 0, Severity.INFO: 2}


@pytest.mark.parametrize(
    ("slot", "mark", "want"),
    [
        ("─" * BADGE_W, "✖2", "─ ✖2 ─"),
        (" " * BADGE_W, "▲1", "  ▲1  "),
        ("─" * BADGE_W, "●12345", " ●1234"),  # never wider than its slot
    ],
)
def test_badge_text_keeps_its_slot(slot: str, mark: str, want: str) -> None:
    assert badge_text(slot, mark) == want and len(want) == len(slot)


def test_view_helpers() -> None:
    f = finding(Severity.WARNING, ObjectRef("interface", "netns:9/3", "web:eth0"), check="x")
    assert matches(f, "WEB") and matches(f, "netns:9") and matches(f, "x ")
    assert not matches(f, "db")
    assert row_key(0, f) != row_key(1, f)
    assert summary(None) == "running the doctor…"


# -- the app ------------------------------------------------------------------------------
async def wait_for(pilot: Pilot[None], cond: Any, tries: int = 150) -> None:
    for _ in range(tries):
        if cond():
            return
        await pilot.pause(0.03)
    raise AssertionError("condition never became true")


@run_async
async def test_findings_view_and_badges_on_the_fixture() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        fi = app.ctx.findings
        assert fi is not None and [f.check for f in fi.findings] == ["mtu-mismatch"]
        idx = app.ctx.index
        assert idx is not None
        br1 = next(b for b in idx.bridges if b.name == "br1").ref.key
        topo = app.screen.query_one(TopologyView)
        assert topo.badges[br1] == Badge(Severity.WARNING, 1)
        # the badge is painted on br1's switch line, in the theme's warning colour
        line = next(
            y
            for y, spans in enumerate(topo._layout.lines)
            if any(s.badge and s.node == br1 for s in spans)
        )
        seg = next(s for s in topo._layout.lines[line] if s.badge)
        painted = topo._segment(seg, topo._base_style(), topo._base_style())
        assert painted.text.strip() == "▲1"
        warn = app.theme_variables["nl-finding-warning"]
        assert painted.style is not None and painted.style.color is not None
        assert painted.style.color.name.lower() == warn.lower()
        await pilot.press("5")
        view = app.screen.query_one(FindingsView)
        table = view.query_one(FastTable)
        assert table.has_focus and table.row_count == 1
        cell = table.get_row_at(0)[0]
        assert "warning" in str(cell) and warn.lower() in str(getattr(cell, "style", "")).lower()
        await pilot.press("enter")
        assert "fix: ip link set dev" in str(view.query_one("#findings-detail").render())


@run_async
async def test_a_new_snapshot_gets_new_findings_from_a_worker_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[threading.Thread] = []
    real = doctor.report_for

    def spy(snapshot: Snapshot, live: bool, source: str = "dump") -> Report:
        threads.append(threading.current_thread())
        return real(snapshot, live, source)

    monkeypatch.setattr(doctor, "report_for", spy)
    src = fixture_source(live=True, interval=0.05)
    app = NetlensApp(src)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        broken, web = web_down(make_snapshot())
        src.push_snapshot(broken)
        await wait_for(
            pilot, lambda: app.ctx.findings is not None and len(app.ctx.findings.findings) == 2
        )
        topo = app.screen.query_one(TopologyView)
        await wait_for(pilot, lambda: web in topo.badges)
        assert topo.badges[web] == Badge(Severity.WARNING, 1)
        await pilot.press("5")
        table = app.screen.query_one(FindingsView).query_one(FastTable)
        await wait_for(pilot, lambda: table.row_count == 2)
        # the filter narrows the findings like every other view
        await pilot.press("slash", "w", "e", "b")
        await wait_for(pilot, lambda: table.row_count == 1)
    assert len(threads) >= 2
    assert all(t is not threading.main_thread() for t in threads)


@run_async
async def test_stale_findings_are_dropped_and_a_failing_doctor_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(snapshot: Snapshot, live: bool, source: str = "dump") -> Report:
        raise RuntimeError("boom")

    monkeypatch.setattr(doctor, "report_for", broken)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        fi = app.ctx.findings
        assert fi is not None and fi.findings == ()
        assert any("doctor: failed" in s and "boom" in s for s in fi.skipped)
        await pilot.press("5")
        detail = str(app.screen.query_one(FindingsView).query_one("#findings-detail").render())
        assert "boom" in detail
        # a report on another snapshot than the one shown is ignored
        other = ViewIndex.build(make_snapshot((2,)))
        late = FindingsIndex.build(other, Report((finding(Severity.ERROR, check="late"),)))
        app.post_message(FindingsReady(late))
        await pilot.pause()
        assert app.ctx.findings is fi


@run_async
async def test_one_doctor_run_at_a_time_and_the_newest_snapshot_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Snapshots arriving while the doctor runs do not stack runs: the one in progress
    finishes, then only the newest snapshot is checked."""
    gate = threading.Event()
    lock = threading.Lock()
    running = [0, 0]  # now, most at once
    seen: list[Snapshot] = []
    real = doctor.report_for

    def slow(snapshot: Snapshot, live: bool, source: str = "dump") -> Report:
        with lock:
            running[0] += 1
            running[1] = max(running)
        try:
            gate.wait(30)
            seen.append(snapshot)
            return real(snapshot, live, source)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(doctor, "report_for", slow)
    src = fixture_source(live=True, interval=0.05)
    app = NetlensApp(src)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.ctx.index is not None and running[0] == 1)
        first = app.ctx.index
        for n in (1, 2, 3):
            src.push_snapshot(make_snapshot((6, 4, n)))
            await wait_for(pilot, lambda prev=first: app.ctx.index is not prev)
            first = app.ctx.index
        newest = app.ctx.index
        assert newest is not None and app.ctx.findings is None
        gate.set()
        await wait_for(pilot, lambda: app.ctx.findings is not None)
        assert app.ctx.findings.index is newest
    assert running[1] == 1
    assert len(seen) == 2 and seen[-1] is newest.snapshot  # the first, then the newest
