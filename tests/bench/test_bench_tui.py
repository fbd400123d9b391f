"""Dashboard responsiveness with 1000 containers at 1 Hz (marker bench; `make bench`).

A synthetic fixture source (4 bridges x 250 containers, rates changing every tick)
feeds the real app headless at 120x40. We press keys a user would press (switch views,
move the cursor, sort, toggle units) while ticks arrive, and time each press from the
key event to the first repaint the app hands to its driver after the key's binding ran
(that repaint shows what the key did). Budget: p95 <= 100 ms, RSS <= 300 MB.

Also printed, "settled": the key event to the last repaint before the app went idle
again (what the pilot waits for). It also counts a stats tick that happens to land in
that window, its sampling in the source thread included; it was the only figure until
the number above was measured separately. For scale the run also times one
`ip -s link show` (the baseline a network engineer would otherwise run) and prints
the ratio.
"""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "runtime"))

from netlens.tui.app import NetlensApp
from tests.tui.fixture import fixture_source

pytestmark = pytest.mark.bench

KEYS = (
    ["3"]
    + ["j"] * 10
    + ["s"]
    + ["j"] * 5
    + ["s", "s", "s", "s", "r"]
    + ["k"] * 5
    + ["b", "b"]
    + ["1"]
    + ["l"] * 8
    + ["j"] * 8
    + ["c", "c"]
    + ["2"]
    + ["j"] * 8
    + ["4", "3"]
    + ["G", "g"]
)


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.95) - 1)]


async def run_bench() -> dict[str, Any]:
    src = fixture_source((250, 250, 250, 250), live=True, interval=1.0)
    app = NetlensApp(src)
    paints: list[float] = []
    paint_cpu: list[float] = []
    applies: list[float] = []
    handled: list[float] = []  # when a key binding finished running (its action included)
    real_display = app._display
    real_apply = app._apply
    real_check = app._check_bindings

    async def check_bindings(key: str, priority: bool = False) -> bool:
        done = await real_check(key, priority)
        handled.append(time.perf_counter())
        return done

    def display(screen: Any, renderable: Any) -> None:
        real_display(screen, renderable)
        paints.append(time.perf_counter())
        paint_cpu.append(time.thread_time())  # the event loop thread's CPU clock

    def apply(msg: Any) -> None:
        t0 = time.perf_counter()
        real_apply(msg)
        applies.append(time.perf_counter() - t0)

    app._display = display  # type: ignore[method-assign]
    app._apply = apply  # type: ignore[method-assign]
    app._check_bindings = check_bindings  # type: ignore[method-assign]
    latencies: list[float] = []
    settled: list[float] = []
    cpu: list[float] = []
    full_gcs: list[float] = []  # seconds per generation-2 collection (the app freezes data)
    gc_start = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            gc_start[0] = time.perf_counter()
        else:
            full_gcs.append(time.perf_counter() - gc_start[0])

    gc.callbacks.append(on_gc)
    t_start = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        while app.ctx.index is None:
            await pilot.pause(0.05)
        await pilot.pause(0.5)
        startup = time.perf_counter() - t_start
        for key in KEYS:
            n0 = len(paints)
            h0 = len(handled)
            t0 = time.perf_counter()
            c0 = time.thread_time()
            await pilot.press(key)
            deadline = t0 + 2.0
            while len(paints) == n0 and time.perf_counter() < deadline:
                await asyncio.sleep(0.001)
            settled.append((paints[-1] if len(paints) > n0 else deadline) - t0)
            # the first paint after the last binding check of this key (its action ran)
            done = handled[-1] if len(handled) > h0 else t0
            first = next((n for n in range(n0, len(paints)) if paints[n] >= done), None)
            while first is None and time.perf_counter() < deadline:
                await asyncio.sleep(0.001)
                first = next((n for n in range(n0, len(paints)) if paints[n] >= done), None)
            latencies.append((paints[first] if first is not None else deadline) - t0)
            cpu.append((paint_cpu[first] if first is not None else time.thread_time()) - c0)
            await asyncio.sleep(0.05)
        ticks = len(applies)
    gc.callbacks.remove(on_gc)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "lat": latencies,
        "settled": settled,
        "cpu": cpu,
        "applies": applies,
        "ticks": ticks,
        "rss": rss_mb,
        "startup": startup,
        "full_gcs": full_gcs,
        "rows": app.ctx.index.rows if app.ctx.index else [],
    }


def test_keypress_to_repaint_with_1000_containers() -> None:
    t0 = time.perf_counter()
    subprocess.run(["ip", "-s", "link", "show"], capture_output=True, check=False)
    baseline = time.perf_counter() - t0
    res = asyncio.run(run_bench())
    lat = [x * 1000 for x in res["lat"]]
    cpu = [x * 1000 for x in res["cpu"]]
    apply_ms = [x * 1000 for x in res["applies"]]
    print(f"\n[bench tui] containers={len(res['rows'])} presses={len(lat)} ticks={res['ticks']}")
    print(
        f"[bench tui] key->repaint ms: median {statistics.median(lat):.1f} "
        f"p95 {p95(lat):.1f} max {max(lat):.1f} (budget p95 100)"
    )
    settled = [x * 1000 for x in res["settled"]]
    print(
        f"[bench tui] key->settled (last repaint before idle, ticks included) ms: median "
        f"{statistics.median(settled):.1f} p95 {p95(settled):.1f} max {max(settled):.1f}"
    )
    print(
        f"[bench tui] event-loop CPU per press ms (load-independent): median "
        f"{statistics.median(cpu):.1f} p95 {p95(cpu):.1f} max {max(cpu):.1f}"
    )
    with open("/proc/loadavg") as f:
        print(
            f"[bench tui] load average during run: {f.read().split()[0]} on "
            f"{os.cpu_count()} cores (other work shares this machine)"
        )
    slow = sorted(zip(lat, KEYS, strict=False), reverse=True)[:6]
    print("[bench tui] slowest presses: " + ", ".join(f"{k!r} {ms:.0f} ms" for ms, k in slow))
    if apply_ms:
        print(
            f"[bench tui] tick apply ms: median {statistics.median(apply_ms):.1f} "
            f"p95 {p95(apply_ms):.1f} max {max(apply_ms):.1f}"
        )
    gcs = [x * 1000 for x in res["full_gcs"]]
    print(
        f"[bench tui] full GC collections: {len(gcs)}, longest "
        f"{max(gcs) if gcs else 0:.1f} ms (long-lived data is frozen out of them)"
    )
    print(
        f"[bench tui] startup to first paint {res['startup']:.2f} s, "
        f"peak RSS {res['rss']:.0f} MB (budget 300)"
    )
    print(
        f"[bench tui] baseline `ip -s link show` {baseline * 1000:.1f} ms; "
        f"p95 key->repaint / baseline = {p95(lat) / (baseline * 1000):.2f}"
    )
    assert len(res["rows"]) >= 1000
    # printed, not asserted: timings on a shared machine are for people to read
    verdict = {True: "met", False: "NOT met"}
    print(
        f"[bench tui] verdicts: key->repaint p95 <= 100 ms: {verdict[p95(lat) <= 100.0]}; "
        f"settled p95 <= 100 ms: {verdict[p95(settled) <= 100.0]}; "
        f"RSS <= 300 MB: {verdict[res['rss'] <= 300.0]}"
    )


def topology_from_graph(snap: Any) -> dict[str, Any]:
    """The topology view's cross references walked on the networkx graph: bridges, the
    namespaces hanging from each (bridge_port then veth edges) and the point-to-point
    veths. Rows, uplinks and labels are left out, which only flatters this path."""
    from netlens.model.graph import bridge_ports, build_graph, neighbours, nodes_of_type
    from netlens.model.index import SnapshotIndex

    base = SnapshotIndex(snap)
    g = build_graph(snap, base)
    nodes = g.nodes
    members: dict[str, list[str]] = {}
    attachments: dict[str, list[tuple[str, str, str]]] = {}
    in_bridge: set[str] = set()
    for br in nodes_of_type(g, "bridge"):
        ports = bridge_ports(g, br)
        in_bridge.update(ports)
        members[br] = []
        for port in ports:
            for inside in neighbours(g, port, "veth"):
                if "bridge_port" in g.adj[inside]:
                    continue
                ns = nodes[inside]["netns"]
                if not nodes[ns].get("is_host"):
                    attachments.setdefault(ns, []).append((br, port, inside))
                    members[br].append(ns)
    p2p = set()
    for a, b, key in g.edges(keys=True):
        if key == "veth" and a not in in_bridge and b not in in_bridge:
            p2p.add(tuple(sorted((a, b))))
    return {"members": members, "attachments": attachments, "p2p": p2p}


def test_topology_from_graph_vs_view_index() -> None:
    """Issue 15: should the topology view walk the networkx graph? Same run,
    interleaved, CPU time (process_time) medians at 1000 containers; the two paths
    must agree on what they derive before their cost is compared."""
    from netlens.model.index import SnapshotIndex
    from netlens.tui.index import ViewIndex
    from tests.tui.fixture import make_snapshot

    snap = make_snapshot((250, 250, 250, 250))
    idx = ViewIndex.build(snap)
    via_graph = topology_from_graph(snap)
    assert {k: sorted(v) for k, v in via_graph["members"].items()} == {
        k: sorted(v) for k, v in idx.members.items()
    }
    assert {k: sorted(v) for k, v in via_graph["attachments"].items()} == {
        k: sorted((a.bridge, a.port, a.inside) for a in v) for k, v in idx.attachments.items()
    }
    assert via_graph["p2p"] == {tuple(sorted((p.a, p.b))) for p in idx.p2p}
    runs: dict[str, list[float]] = {"graph": [], "index": [], "model": []}
    jobs = {
        "graph": lambda: topology_from_graph(snap),
        "index": lambda: ViewIndex.build(snap),
        "model": lambda: SnapshotIndex(snap),
    }
    for _ in range(15):
        for name, job in jobs.items():
            t0 = time.process_time()
            job()
            runs[name].append(time.process_time() - t0)
    med = {k: statistics.median(v) * 1000 for k, v in runs.items()}
    print(
        f"\n[bench tui] topology at {len(idx.rows)} containers, CPU ms median of 15: "
        f"networkx graph + walk {med['graph']:.1f}; ViewIndex.build {med['index']:.1f} "
        f"(of which the model SnapshotIndex {med['model']:.1f}); "
        f"graph/index = {med['graph'] / med['index']:.1f}x"
    )
