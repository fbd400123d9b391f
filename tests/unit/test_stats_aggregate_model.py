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
from hypothesis import given, settings
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


@settings(deadline=None)
@given(samples)
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
