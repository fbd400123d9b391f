"""Aggregation on a hand-built snapshot: who sent what, counted once."""

from __future__ import annotations

import pytest

from netlens.model.types import (
    Container,
    IfRef,
    Interface,
    Netns,
    Server,
    Snapshot,
    VethPair,
)
from netlens.stats.aggregate import aggregate, build_plan
from netlens.stats.types import ZERO, Rate

pytestmark = pytest.mark.unit

H, A, B = "netns:1", "netns:2", "netns:3"


def itf(ns: str, idx: int, name: str, kind: str, **kw: object) -> Interface:
    return Interface(netns=ns, ifindex=idx, name=name, kind=kind, **kw)  # type: ignore[arg-type]


def snapshot() -> Snapshot:
    """Host: uplink eth0 (1 Gb/s), bridge br0 (idx 3) with host veths vA (4) and vB (5).
    Container ns A and B each have lo and eth0 (idx 2) peered with vA / vB.
    Containers: a in A; b and b-sidecar share B (a pod); hostnet in the host ns."""
    host = Netns(
        id=H,
        inode=1,
        dev=4,
        is_host=True,
        name="host",
        interfaces=(
            itf(H, 1, "lo", "loopback"),
            itf(H, 2, "eth0", "ether", uplink=True, speed_mbps=1000),
            itf(H, 3, "br0", "bridge"),
            itf(H, 4, "vA", "veth", master=3, peer=IfRef(A, 2)),
            itf(H, 5, "vB", "veth", master=3, peer=IfRef(B, 2)),
        ),
    )
    ns_a = Netns(
        id=A,
        inode=2,
        dev=4,
        is_host=False,
        name="a",
        interfaces=(itf(A, 1, "lo", "loopback"), itf(A, 2, "eth0", "veth", peer=IfRef(H, 4))),
    )
    ns_b = Netns(
        id=B,
        inode=3,
        dev=4,
        is_host=False,
        name="b",
        interfaces=(itf(B, 1, "lo", "loopback"), itf(B, 2, "eth0", "veth", peer=IfRef(H, 5))),
    )
    return Snapshot(
        server=Server("h", "6.18", "x86_64", 2, 2**33),
        namespaces=(host, ns_a, ns_b),
        containers=(
            Container(id="host:h", engine="host", name="h", netns=H),
            Container(id="t:a", engine="netlens", name="a", netns=A),
            Container(id="t:b", engine="netlens", name="b", netns=B),
            Container(id="t:b2", engine="netlens", name="b-sidecar", netns=B),
            Container(id="t:hostnet", engine="netlens", name="hn", netns=H),
        ),
        veth_pairs=(VethPair(IfRef(A, 2), IfRef(H, 4)), VethPair(IfRef(B, 2), IfRef(H, 5))),
    )


def r(rx: float, tx: float, rx_drops: float = 0.0, tx_drops: float = 0.0) -> Rate:
    return Rate(
        rx_bps=rx,
        tx_bps=tx,
        rx_pps=rx / 8000,
        tx_pps=tx / 8000,
        rx_drops=rx_drops,
        tx_drops=tx_drops,
    )


def rates_for_traffic() -> dict[str, Rate]:
    """A sends 100 to the uplink and 10 to B; B sends 5 to A; A's lo is busy (ignored)."""
    return {
        f"{A}/1": r(999, 999),
        f"{A}/2": r(5, 110),
        f"{B}/1": ZERO,
        f"{B}/2": r(10, 5, rx_drops=1),
        f"{H}/1": r(7, 7),
        f"{H}/2": r(0, 100),
        f"{H}/3": r(0, 0),
        f"{H}/4": r(110, 5, tx_drops=2),
        f"{H}/5": r(5, 10),
    }


def test_containers_are_seen_from_inside_and_pods_share() -> None:
    f = aggregate(build_plan(snapshot()), rates_for_traffic(), 1.0, 1.0)
    assert f.containers["t:a"].tx_bps == 110  # what a sent
    assert f.containers["t:a"].rx_bps == 5
    assert f.containers["t:b"] == f.containers["t:b2"]
    assert f.containers["t:b"].tx_bps == 5
    assert f.containers["t:hostnet"] == ZERO  # shares the host's counters, no own traffic
    assert "host:h" not in f.containers


def test_server_counts_each_namespace_once() -> None:
    f = aggregate(build_plan(snapshot()), rates_for_traffic(), 1.0, 1.0)
    assert f.server.tx_bps == 110 + 5  # not 110 + 5 + 5 for the pod
    assert f.uplink_capacity_bps == 1e9
    assert f.server_utilisation == pytest.approx(115 / 1e9)
    assert f.uplinks == {f"{H}/2": r(0, 100)}
    assert f.uplink_total.tx_bps == 100


def test_missing_namespace_falls_back_to_the_host_end_swapped() -> None:
    rates = rates_for_traffic()
    del rates[f"{A}/2"], rates[f"{A}/1"]  # A could not be sampled
    f = aggregate(build_plan(snapshot()), rates, 1.0, 1.0)
    assert f.containers["t:a"].tx_bps == 110  # host vA received 110
    assert f.containers["t:a"].rx_bps == 5
    assert f.containers["t:a"].rx_drops == 2  # vA tx drops: frames lost on their way to a


def test_bridge_is_ports_plus_its_own_device_swapped() -> None:
    rates = rates_for_traffic()
    rates[f"{H}/3"] = r(3, 4)  # host stack: got 3 from the switch, sent 4 into it
    f = aggregate(build_plan(snapshot()), rates, 1.0, 1.0)
    br = f.bridges[f"{H}/3"]
    assert br.rx_bps == 110 + 5 + 4  # switch ingress: from vA, vB and the host
    assert br.tx_bps == 5 + 10 + 3


def test_vrf_excludes_loopback_and_bridge_ports() -> None:
    f = aggregate(build_plan(snapshot()), rates_for_traffic(), 1.0, 1.0)
    assert f.vrfs[A].tx_bps == 110  # lo's 999 ignored
    host = f.vrfs[H]  # eth0 + br0, not the ports vA/vB
    assert host.tx_bps == 100
    assert host.rx_bps == 0


def test_veth_pair_adds_drops_of_both_ends() -> None:
    f = aggregate(build_plan(snapshot()), rates_for_traffic(), 1.0, 1.0)
    pair = f.veth_pairs[f"{B}/2"]
    assert pair.rx_bps == 10 and pair.tx_bps == 5  # seen from the a end
    assert pair.rx_drops == 1  # b end (vB) has no tx drops: just a's own
    pa = f.veth_pairs[f"{A}/2"]
    assert pa.rx_drops == 2  # vA dropped on tx towards a


def test_unknown_speed_gives_no_utilisation() -> None:
    snap = snapshot()
    host = snap.namespaces[0]
    itfs = tuple(
        Interface(netns=i.netns, ifindex=i.ifindex, name=i.name, kind=i.kind, uplink=i.uplink)
        for i in host.interfaces
    )
    snap2 = Snapshot(
        server=snap.server,
        namespaces=(Netns(id=H, inode=1, dev=4, is_host=True, name="host", interfaces=itfs),),
    )
    f = aggregate(build_plan(snap2), {f"{H}/2": r(1, 1)}, 1.0, 1.0)
    assert f.uplink_capacity_bps is None and f.server_utilisation is None
