"""Scrape time of `netlens exporter` with N containers (default 1000, ``NETLENS_BENCH_NS``).

Each container is a namespace with a veth to one bridge in the host (as in
test_bench_stats.py). The exporter samples in its background thread at 1 s, as it
runs for real, while /metrics is fetched over loopback 60 times: median and p95
wall time per scrape (a scrape hands out the bytes rendered after the last
sample). Beside it, in the same run: the plain LiveMonitor tick (CPU), the
exporter's render per sample (CPU, background), what prometheus-client's
``generate_latest`` costs on the same collector (what a handler that renders per
scrape would pay), and the ``ip -s -j -n NS link`` loop a naive per-scrape
exporter would run. The scrape median must be <= 50 ms.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from conftest import RUN_TAG, is_root, sh
from prometheus_client import CollectorRegistry, generate_latest
from test_bench_stats import _batch, _container_lines, stand_in_discover

from netlens.exporter.server import Exporter, MetricsServer
from netlens.model.types import IfRef, Interface, Snapshot, VethPair
from netlens.stats.live import LiveMonitor

pytestmark = pytest.mark.bench

N = int(os.environ.get("NETLENS_BENCH_NS", "1000"))
PREFIX = f"ex{RUN_TAG}"


def with_host_side(base: Callable[[], Snapshot], bridge: str) -> Callable[[], Snapshot]:
    """The stand-in discovery plus the host's bridge and veth ends, paired with each
    namespace's eth0: so veth pairs and the bridge are exported too."""

    def discover() -> Snapshot:
        snap = base()
        host = snap.namespaces[0]
        links = json.loads(sh("ip -j link show").stdout)
        by_name = {ln["ifname"]: ln["ifindex"] for ln in links}
        ns_of = {ns.name: ns for ns in snap.namespaces[1:]}
        itfs: list[Interface] = []
        pairs: list[VethPair] = []
        br = by_name.get(bridge)
        if br is not None:
            itfs.append(Interface(netns=host.id, ifindex=br, name=bridge, kind="bridge"))
        for ln in links:
            name = ln["ifname"]
            if not name.startswith(f"{PREFIX}v"):
                continue
            ns = ns_of.get(f"{PREFIX}m{name[len(PREFIX) + 1 :]}")
            if ns is None:
                continue
            ref = IfRef(ns.id, 2)
            itfs.append(
                Interface(netns=host.id, ifindex=ln["ifindex"], name=name, kind="veth",
                          master=br, peer=ref)
            )  # fmt: skip
            pairs.append(VethPair(ref, IfRef(host.id, ln["ifindex"])))
        host2 = dataclasses.replace(host, interfaces=tuple(itfs))
        return dataclasses.replace(
            snap, namespaces=(host2, *snap.namespaces[1:]), veth_pairs=tuple(pairs)
        )

    return discover


@pytest.fixture(scope="module")
def mass_lab() -> Iterator[tuple[list[str], str]]:
    if not is_root():
        pytest.skip("needs root")
    bridge = f"{PREFIX}br"
    names = [f"{PREFIX}m{i}" for i in range(N)]
    try:
        sh(f"ip link add {bridge} type bridge && ip link set {bridge} up")
        lines: list[str] = []
        for i, ns in enumerate(names):
            lines += _container_lines(ns, f"{PREFIX}v{i}", bridge)
        _batch(lines)
        yield names, bridge
    finally:
        _batch([f"netns del {ns}" for ns in names], check=False)
        sh(f"ip link del {bridge}", check=False)


def test_scrape_time_with_many_containers(mass_lab: tuple[list[str], str]) -> None:
    names, bridge = mass_lab
    discover = with_host_side(stand_in_discover(f"{PREFIX}m"), bridge)
    snap = discover()
    assert len(snap.containers) == N and len(snap.veth_pairs) == N

    # baseline 1: the plain live monitor's tick
    mon = LiveMonitor(interval=0.05, discover_fn=lambda: snap, watch_events=False)
    mon.open()
    try:
        tick_cpu = []
        for _ in range(10):
            c0 = time.process_time()
            mon.tick()
            tick_cpu.append(time.process_time() - c0)
    finally:
        mon.close()

    mon = LiveMonitor(interval=1.0, discover_fn=lambda: snap, watch_events=False)
    ex = Exporter(mon, max_series=1_000_000, rates=True, version="bench")
    server = MetricsServer(("127.0.0.1", 0), ex, ipv6=False)
    thread: threading.Thread | None = None
    renders: list[float] = []
    try:
        ex.start()
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        while ex.samples < 2:
            time.sleep(0.05)
        scrapes: list[float] = []
        size = 0
        for _ in range(60):
            w0 = time.perf_counter()
            with urllib.request.urlopen(url, timeout=10) as resp:
                size = len(resp.read())
            scrapes.append(time.perf_counter() - w0)
            renders.append(ex.state.render_seconds)
            time.sleep(0.05)
        reg = CollectorRegistry(auto_describe=False)
        reg.register(ex.collector)  # type: ignore[arg-type]
        g0 = time.process_time()
        generate_latest(reg)
        gen_cpu = time.process_time() - g0
        series = ex.state.series
    finally:
        if thread is not None:
            server.shutdown()
        server.server_close()
        ex.close()

    w0 = time.perf_counter()
    for ns in names[:100]:
        subprocess.run(["ip", "-s", "-j", "-n", ns, "link"], check=True, capture_output=True)
    ip_wall = (time.perf_counter() - w0) * N / 100

    scrapes.sort()
    med = statistics.median(scrapes)
    p95 = scrapes[int(len(scrapes) * 0.95) - 1]
    print(
        f"\n[bench exporter] containers={N} entity series={series} body={size / 1e6:.1f} MB"
        f"\n  scrape over loopback (60, sampler running at 1 s): median {med * 1e3:.1f} ms,"
        f" p95 {p95 * 1e3:.1f} ms, max {scrapes[-1] * 1e3:.1f} ms"
        f"\n  background per sample: render median {statistics.median(renders) * 1e3:.0f} ms;"
        f" plain LiveMonitor tick CPU median {statistics.median(tick_cpu) * 1e3:.1f} ms"
        f"\n  prometheus-client generate_latest on the same collector: {gen_cpu * 1e3:.0f} ms CPU"
        f"\n  ip -s -j -n NS link loop (per-scrape discovery baseline, 100 extrapolated):"
        f" {ip_wall * 1e3:.0f} ms"
    )
    assert med <= 0.050, f"scrape median {med * 1e3:.1f} ms > 50 ms"
