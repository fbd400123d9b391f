"""The traffic generator on namespaces this test builds with iproute2.

Checks that bytes really cross the veth (kernel counters, not only the
generator's own bookkeeping), that the rate stays bounded, that a destination
outside the allowed set is refused, and that stopping leaves no socket behind
(the namespace can be deleted and no fd of this process points into it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from conftest import Lab, is_root, sh

from netlens_runtime.traffic import Flow, TrafficGenerator

pytestmark = pytest.mark.integration


@pytest.fixture
def pair() -> Iterator[tuple[Lab, str, str]]:
    """Two namespaces joined by a veth: a (10.231.77.1/30) and b (10.231.77.2/30)."""
    if not is_root():
        pytest.skip("needs root")
    lb = Lab("nl")
    try:
        a, b = lb.add_netns("ta"), lb.add_netns("tb")
        lb.add_veth(lb.name("va"), lb.name("vb"), a, b)
        sh(f"ip -n {a} addr add 10.231.77.1/30 dev {lb.name('va')}")
        sh(f"ip -n {b} addr add 10.231.77.2/30 dev {lb.name('vb')}")
        yield lb, a, b
    finally:
        lb.close()


def _rx_bytes(ns: str, ifname: str) -> int:
    return int(sh(f"ip netns exec {ns} cat /sys/class/net/{ifname}/statistics/rx_bytes").stdout)


def _fds_into(ns_path: str) -> int:
    """How many of this process's fds refer to the namespace at ns_path."""
    target = os.stat(ns_path).st_ino
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link == f"net:[{target}]":
            count += 1
    return count


def test_tcp_and_udp_flows_move_bytes_between_namespaces(pair: tuple[Lab, str, str]) -> None:
    lb, a, b = pair
    pa, pb = f"/run/netns/{a}", f"/run/netns/{b}"
    flows = [
        Flow("t", pa, pb, "10.231.77.2", 15201, "tcp", 4_000_000, 8_000_000),
        Flow("u", pb, pa, "10.231.77.1", 15202, "udp", 2_000_000, 4_000_000),
    ]
    rx_b0, rx_a0 = _rx_bytes(b, lb.name("vb")), _rx_bytes(a, lb.name("va"))
    gen = TrafficGenerator(flows, allowed={"10.231.77.1", "10.231.77.2"}, seed=7)
    t0 = time.monotonic()
    with gen:
        assert gen.running
        time.sleep(1.5)
    elapsed = time.monotonic() - t0
    assert not gen.running
    stats = gen.stats()
    assert stats["t"].error is None and stats["u"].error is None
    assert stats["t"].received > 100_000 and stats["u"].received > 50_000
    # Bounded: never above the flow's max rate (plus one burst) over the run.
    assert stats["t"].sent * 8 <= 8_000_000 * elapsed + 8 * 64 * 1024
    assert stats["u"].sent * 8 <= 4_000_000 * elapsed + 8 * 64 * 1024
    # The kernel saw it: the payload crossed the veth in both directions.
    assert _rx_bytes(b, lb.name("vb")) - rx_b0 >= stats["t"].received
    assert _rx_bytes(a, lb.name("va")) - rx_a0 >= stats["u"].received
    # Nothing left: no fd of ours still pins either namespace.
    assert _fds_into(pa) == 0 and _fds_into(pb) == 0


def test_destination_outside_the_lab_is_refused(pair: tuple[Lab, str, str]) -> None:
    _lb, a, b = pair
    flow = Flow("x", f"/run/netns/{a}", f"/run/netns/{b}", "192.0.2.1", 15203)
    with pytest.raises(ValueError, match="not an address of the lab"):
        TrafficGenerator([flow], allowed={"10.231.77.2"})


def test_failed_start_closes_every_socket(pair: tuple[Lab, str, str]) -> None:
    _lb, a, b = pair
    pa, pb = f"/run/netns/{a}", f"/run/netns/{b}"
    flows = [
        Flow("ok", pa, pb, "10.231.77.2", 15204, "tcp", 1_000_000, 2_000_000),
        # 10.231.77.9 is nobody's address in a: binding the receiver there fails.
        Flow("bad", pb, pa, "10.231.77.9", 15205, "tcp", 1_000_000, 2_000_000),
    ]
    gen = TrafficGenerator(flows, allowed={"10.231.77.2", "10.231.77.9"})
    with pytest.raises(OSError):
        gen.start()
    assert not gen.running
    assert _fds_into(pa) == 0 and _fds_into(pb) == 0
