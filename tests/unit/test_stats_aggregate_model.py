"""Aggregation against the definitions written out naively, on every Rate field.

test_stats_aggregate.py checks the perspectives on chosen numbers with most
fields zero; here every interface gets all eight fields distinct and any subset
of interfaces may be missing from the sample (a namespace that could not be
read). Each aggregate is recomputed from the module docstring's definitions with
Rate's own ``+`` and ``swap``: a field taken from the wrong side, a drop not
added, a missing link not replaced by its peer shows as a difference.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_stats_aggregate import A, B, H, snapshot

from netlens.model.types import Snapshot
from netlens.stats.aggregate import aggregate, build_plan
from netlens.stats.rates import swap
from netlens.stats.types import ZERO, Rate

pytestmark = pytest.mark.unit

KEYS = [f"{A}/1", f"{A}/2", f"{B}/1", f"{B}/2", f"{H}/1", f"{H}/2", f"{H}/3", f"{H}/4", f"{H}/5"]
whole = st.integers(0, 1000).map(float)
rates = st.builds(Rate, whole, whole, whole, whole, whole, whole, whole, whole)
samples = st.dictionaries(st.sampled_from(KEYS), rates | st.just(ZERO))


def total(parts: list[Rate]) -> Rate:
    out = ZERO
    for p in parts:
        out = out + p
    return out


def vrf(snap: Snapshot, ns_id: str, got: dict[str, Rate]) -> Rate:
    """Traffic through a namespace's stack: not loopback, not bridge ports; a link
    missing from the sample is replaced by its veth peer, swapped."""
    ns = next(n for n in snap.namespaces if n.id == ns_id)
    bridges = {i.ifindex for i in ns.interfaces if i.kind == "bridge"}
    parts = []
    for i in ns.interfaces:
        if i.kind == "loopback" or i.master in bridges:
            continue
        if i.ref.key in got:
            parts.append(got[i.ref.key])
        elif i.peer is not None and i.peer.key in got:
            parts.append(swap(got[i.peer.key]))
    return total(parts)


def _all(keys: list[str]) -> dict[str, Rate]:
    return {k: Rate(*(float(10 * i + j) for j in range(8))) for i, k in enumerate(keys)}


@settings(deadline=None)
@given(samples)
@example(_all(KEYS))  # everything sampled
@example(_all([f"{H}/4", f"{H}/5", f"{H}/3"]))  # the containers' namespaces unreadable
@example(_all([f"{A}/2", f"{B}/2"]))  # only the container ends
@example({})
def test_every_aggregate_and_field_matches_the_definitions(got: dict[str, Rate]) -> None:
    snap = snapshot()
    f = aggregate(build_plan(snap), got, 12.0, 3.0)
    assert (f.taken_at, f.interval, f.interfaces) == (12.0, 3.0, got)
    vrfs = {ns.id: vrf(snap, ns.id, got) for ns in snap.namespaces}
    assert f.vrfs == vrfs
    assert f.containers == {
        "t:a": vrfs[A],
        "t:b": vrfs[B],
        "t:b2": vrfs[B],  # a pod: both show the namespace's total
        "t:hostnet": ZERO,  # host network: no traffic of its own
    }
    assert f.server == vrfs[A] + vrfs[B]  # B once, not once per container
    assert f.uplinks == {f"{H}/2": got.get(f"{H}/2", ZERO)}
    assert f.uplink_capacity_bps == 1e9
    ports = [got[k] for k in (f"{H}/4", f"{H}/5") if k in got]
    own = got.get(f"{H}/3")
    assert f.bridges == {f"{H}/3": total(ports) + (swap(own) if own is not None else ZERO)}
    for a, b in ((f"{A}/2", f"{H}/4"), (f"{B}/2", f"{H}/5")):
        ra, rb = got.get(a), got.get(b)
        if ra is None and rb is None:
            want = ZERO
        elif rb is None:
            assert ra is not None
            want = ra
        elif ra is None:
            want = swap(rb)
        else:  # bytes and packets from a; drops and errors lost anywhere on the cable
            want = Rate(
                ra.rx_bps,
                ra.tx_bps,
                ra.rx_pps,
                ra.tx_pps,
                ra.rx_drops + rb.tx_drops,
                ra.tx_drops + rb.rx_drops,
                ra.rx_errors + rb.tx_errors,
                ra.tx_errors + rb.rx_errors,
            )
        assert f.veth_pairs[a] == want, a


def test_plan_lists_what_each_aggregate_reads() -> None:
    plan = build_plan(snapshot())
    assert plan.containers == {"t:a": A, "t:b": B, "t:b2": B, "t:hostnet": None}
    assert plan.server_netns == [A, B]
    assert plan.uplinks == [f"{H}/2"]
    assert plan.bridges == {f"{H}/3": ([f"{H}/4", f"{H}/5"], f"{H}/3")}
    assert plan.veth_pairs == {f"{A}/2": (f"{A}/2", f"{H}/4"), f"{B}/2": (f"{B}/2", f"{H}/5")}
    assert [s.key for s in plan.ns_sources[H]] == [f"{H}/2", f"{H}/3"]
    assert [(s.key, s.peer) for s in plan.ns_sources[A]] == [(f"{A}/2", f"{H}/4")]


def test_plan_takes_peers_from_the_pairs_and_skips_what_is_not_traffic() -> None:
    """Interfaces without a peer of their own get it from the snapshot's veth pairs; a
    loopback is skipped by kind or by name; a port of a bond (not a bridge) is the
    namespace's own link; uplink speeds add up; a pair whose peer vanished stays."""
    from netlens.model.types import Container, IfRef, Interface, Netns, Server, VethPair

    def itf(ns: str, idx: int, name: str, kind: str, **kw: object) -> Interface:
        return Interface(netns=ns, ifindex=idx, name=name, kind=kind, **kw)  # type: ignore[arg-type]

    host = Netns(
        id=H, inode=1, dev=4, is_host=True, name="host",
        interfaces=(
            itf(H, 1, "lo", "unknown"),  # named lo, kind not reported
            itf(H, 2, "eth0", "ether", uplink=True, speed_mbps=1000),
            itf(H, 3, "eth1", "ether", uplink=True, speed_mbps=1, master=9),
            itf(H, 9, "bond0", "bond"),
            itf(H, 4, "vA", "veth"),  # no peer on the interface: the pair says it
            itf(H, 6, "lo2", "loopback"),
            itf(H, 7, "vGone", "veth"),
        ),
    )  # fmt: skip
    ns_a = Netns(
        id=A, inode=2, dev=4, is_host=False, name="a",
        interfaces=(itf(A, 2, "eth0", "veth"),),
    )  # fmt: skip
    snap = Snapshot(
        server=Server("h", "6.18", "x86_64", 2, 2**33),
        namespaces=(host, ns_a),
        containers=(
            Container(id="t:hostnet", engine="netlens", name="hn", netns=H),
            Container(id="t:none", engine="netlens", name="nn", netns=None),
            Container(id="t:a", engine="netlens", name="a", netns=A),
        ),
        veth_pairs=(VethPair(IfRef(A, 2), IfRef(H, 4)), VethPair(IfRef(H, 7), None)),
    )  # fmt: skip
    plan = build_plan(snap)
    assert plan.containers == {"t:hostnet": None, "t:none": None, "t:a": A}
    assert plan.server_netns == [A]
    assert plan.uplink_capacity_bps == 1001e6
    assert [(s.key, s.peer) for s in plan.ns_sources[H]] == [
        (f"{H}/2", None),
        (f"{H}/3", None),
        (f"{H}/9", None),
        (f"{H}/4", f"{A}/2"),
        (f"{H}/7", None),
    ]
    assert [(s.key, s.peer) for s in plan.ns_sources[A]] == [(f"{A}/2", f"{H}/4")]
    assert plan.veth_pairs[f"{H}/7"] == (f"{H}/7", None)
    f = aggregate(plan, {f"{H}/4": Rate(rx_bps=5.0, tx_bps=7.0), f"{H}/7": Rate(rx_pps=2.0)}, 1, 1)
    assert f.containers["t:a"] == Rate(rx_bps=7.0, tx_bps=5.0)  # a unreadable: vA swapped
    assert f.veth_pairs[f"{H}/7"] == Rate(rx_pps=2.0)
    assert f.containers["t:hostnet"] == ZERO and f.containers["t:none"] == ZERO
