"""Benchmark: ``lab up`` / ``lab down`` against a plain iproute2 baseline, same run.

- 100 nodes on one network, three rounds: median milliseconds per node for up
  and for down;
- 1000 nodes on one network (``NETLENS_BENCH_LAB_BIG`` to change): total seconds;
- baseline, on a sample of nodes: ``ip netns add`` plus six ``ip`` commands per
  node (veth into the namespace, master, up, lo up, eth0 up, address), and
  ``ip netns del`` to take it down.

Targets (from the issue): <= 5 ms per node at 100; 1000 up <= 10 s; 1000 down
<= 10 s. Nothing here is asserted against a clock: the figures and their ratio
to the baseline are printed (``make bench`` runs with ``-s``).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import pytest
from conftest import RUN_TAG, sh
from runtime_host import wait_idle

pytestmark = pytest.mark.bench

SMALL = 100
BIG = int(os.environ.get("NETLENS_BENCH_LAB_BIG", "1000"))
ROUNDS = 3
SAMPLE = 20
OCTET = 100 + int(RUN_TAG, 16) % 100


def _lab_text(name: str, n: int) -> str:
    return (
        f"name: {name}\n"
        f"networks:\n  n: {{subnet: 10.{OCTET}.0.0/16, nat: false}}\n"
        f"nodes:\n  h: {{count: {n}, ip: 10.{OCTET}.1.1}}\n"
    )


def _lab_round(name: str, n: int) -> tuple[float, float]:
    """Seconds for lab up and for lab down of an n-node lab (started on a quiet machine)."""
    from netlens_runtime import api, lab_ops
    from netlens_runtime.lab_spec import load_lab

    spec = load_lab(f"{name}.yaml", text=_lab_text(name, n))
    wait_idle()
    t0 = time.perf_counter()
    lab_ops.lab_up(spec)
    t1 = time.perf_counter()
    running = sum(1 for c in api.list_containers() if c["labels"].get("netlens.lab") == name)
    assert running == n
    t2 = time.perf_counter()
    assert lab_ops.lab_down(name) == []
    t3 = time.perf_counter()
    assert api.list_containers() == []
    return t1 - t0, t3 - t2


def _baseline(k: int) -> tuple[float, float]:
    """Median seconds per node for the iproute2 way: netns add + six ip commands, del."""
    prefix = f"nl{RUN_TAG}q"
    bridge = f"{prefix}br"
    made: list[str] = []
    up: list[float] = []
    down: list[float] = []
    sh(f"ip link add {bridge} type bridge && ip link set {bridge} up")
    try:
        for i in range(k):
            ns, veth = f"{prefix}{i}", f"{prefix}v{i}"
            t0 = time.perf_counter()
            sh(f"ip netns add {ns}")
            made.append(ns)
            sh(f"ip link add {veth} type veth peer name eth0 netns {ns}")
            sh(f"ip link set {veth} master {bridge}")
            sh(f"ip link set {veth} up")
            sh(f"ip -n {ns} link set lo up")
            sh(f"ip -n {ns} link set eth0 up")
            sh(f"ip -n {ns} addr add 10.{OCTET}.200.{i + 1}/16 dev eth0")
            up.append(time.perf_counter() - t0)
        for ns in list(made):
            t0 = time.perf_counter()
            sh(f"ip netns del {ns}")
            made.remove(ns)
            down.append(time.perf_counter() - t0)
    finally:
        for ns in made:
            sh(f"ip netns del {ns}", check=False)
        sh(f"ip link del {bridge}", check=False)
    return statistics.median(up), statistics.median(down)


def test_bench_lab_up_down(labstate: Path) -> None:
    base_up, base_down = _baseline(SAMPLE)
    small = [_lab_round(f"nl{RUN_TAG}b{r}", SMALL) for r in range(ROUNDS)]
    up_ms = statistics.median(u for u, _ in small) / SMALL * 1000
    down_ms = statistics.median(d for _, d in small) / SMALL * 1000
    big_up, big_down = _lab_round(f"nl{RUN_TAG}big", BIG)
    print()
    print(f"baseline (ip netns add + 6 ip cmds, {SAMPLE} nodes): up {base_up * 1000:.1f} ms/node,")
    print(f"  down (ip netns del) {base_down * 1000:.1f} ms/node")
    print(
        f"lab {SMALL} nodes (median of {ROUNDS}): up {up_ms:.2f} ms/node"
        f" ({base_up * 1000 / up_ms:.1f}x faster than baseline, target <= 5 ms),"
        f" down {down_ms:.2f} ms/node ({base_down * 1000 / down_ms:.1f}x)"
    )
    print(
        f"lab {BIG} nodes: up {big_up:.2f} s (target <= 10 s;"
        f" baseline would take {base_up * BIG:.1f} s, {base_up * BIG / big_up:.1f}x),"
        f" down {big_down:.2f} s (target <= 10 s; baseline {base_down * BIG:.1f} s,"
        f" {base_down * BIG / big_down:.1f}x)"
    )
