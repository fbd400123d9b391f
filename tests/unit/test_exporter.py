"""The exporter's collector on a hand-built snapshot: names, labels, escaping, the cap.

The fast renderer must write exactly what prometheus-client's ``generate_latest``
writes for the same collector (so the client stays the reference for the format),
and hostile container or interface names must come back intact from the client's
own parser, never as extra samples.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from netlens.commands.exporter import parse_listen
from netlens.exporter.collector import build_exposition, render
from netlens.exporter.hostmetrics import ExporterState, host_extras
from netlens.exporter.series import KINDS, build_layout, family_names
from netlens.exporter.server import Exporter
from netlens.exporter.totals import Totals
from netlens.model.types import Container, IfRef, Interface, Netns, Server, Snapshot, VethPair
from netlens.stats.aggregate import aggregate, build_plan
from netlens.stats.rates import CounterTuple
from netlens.stats.types import Rate

pytestmark = pytest.mark.unit

H, A, B = "netns:1", "netns:2", "netns:3"
EVIL = 'we"b\\x\n} 1\nnetlens_fake 1 {é'  # quote, backslash, newline, a forged sample


def itf(ns: str, idx: int, name: str, kind: str, **kw: object) -> Interface:
    return Interface(netns=ns, ifindex=idx, name=name, kind=kind, **kw)  # type: ignore[arg-type]


def ns_itfs(ns: str, host_peer: int) -> tuple[Interface, ...]:
    return (itf(ns, 1, "lo", "loopback"), itf(ns, 2, "eth0", "veth", peer=IfRef(H, host_peer)))


def snapshot(a_name: str = EVIL, b_name: str = "b", with_b: bool = True) -> Snapshot:
    """Host: uplink eth0, bridge br0 (3) with veths vA (4), vB (5); containers a, b."""
    host_itfs = [
        itf(H, 1, "lo", "loopback"),
        itf(H, 2, "eth0", "ether", uplink=True, speed_mbps=1000),
        itf(H, 3, "br0", "bridge"),
        itf(H, 4, EVIL, "veth", master=3, peer=IfRef(A, 2)),
    ]
    namespaces = [
        Netns(id=A, inode=2, dev=4, is_host=False, name=a_name, interfaces=ns_itfs(A, 4)),
    ]
    containers = [Container(id="t:a", engine="netlens", name=a_name, netns=A)]
    pairs = [VethPair(IfRef(A, 2), IfRef(H, 4))]
    if with_b:
        host_itfs.append(itf(H, 5, "vB", "veth", master=3, peer=IfRef(B, 2)))
        namespaces.append(
            Netns(id=B, inode=3, dev=4, is_host=False, name=b_name, interfaces=ns_itfs(B, 5))
        )
        containers.append(Container(id="t:b", engine="netlens", name=b_name, netns=B))
        pairs.append(VethPair(IfRef(B, 2), IfRef(H, 5)))
    host = Netns(id=H, inode=1, dev=4, is_host=True, name="host", interfaces=tuple(host_itfs))
    return Snapshot(
        server=Server("h", "6.18", "x86_64", 2, 2**33),
        namespaces=(host, *namespaces),
        containers=tuple(containers),
        veth_pairs=tuple(pairs),
    )


def counters(rx_bytes: int, tx_bytes: int, rx_pk: int = 0, tx_pk: int = 0) -> CounterTuple:
    """In the kernel's order: rx/tx packets, rx/tx bytes, errors, drops."""
    return (rx_pk, tx_pk, rx_bytes, tx_bytes, 0, 0, 0, 0)


def all_keys(snap: Snapshot) -> list[str]:
    return [i.ref.key for ns in snap.namespaces for i in ns.interfaces]


def parse(body: bytes) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def exporter_on(snap: Snapshot, max_series: int = 100_000, rates: bool = True) -> Exporter:
    ex = Exporter(None, max_series=max_series, rates=rates, version="t")
    ex.adopt(snap)
    return ex


def publish(ex: Exporter, snap: Snapshot, sample: dict[str, CounterTuple]) -> bytes:
    """Fold one sample of absolute counters and render."""
    ex.totals.update(ex._plan, all_keys(snap), sample.get)
    frame = aggregate(ex._plan, {k: Rate(rx_bps=8.0) for k in sample}, 1.0, 1.0)
    ex.publish(frame)
    return ex.body


def two_samples(ex: Exporter, snap: Snapshot) -> bytes:
    """Container a sends 1000 bytes (10 packets) to the uplink, through its veth."""
    base = {f"{A}/2": counters(0, 0), f"{H}/4": counters(0, 0), f"{H}/2": counters(0, 0)}
    publish(ex, snap, base)
    moved = {
        f"{A}/2": counters(0, 1000, 0, 10),
        f"{H}/4": counters(1000, 0, 10, 0),
        f"{H}/2": counters(0, 1000, 0, 10),
    }
    return publish(ex, snap, moved)


def test_names_labels_and_counter_values() -> None:
    snap = snapshot(a_name="a")
    body = two_samples(exporter_on(snap), snap)
    m = parse(body)
    a = (("container", "a"), ("engine", "netlens"), ("netns", "a"))
    assert m["netlens_container_transmit_bytes_total"][a] == 1000
    assert m["netlens_container_transmit_packets_total"][a] == 10
    assert m["netlens_container_receive_bytes_total"][a] == 0
    assert m["netlens_netns_transmit_bytes_total"][(("netns", "a"),)] == 1000
    up = (("interface", "eth0"), ("kind", "ether"))
    assert m["netlens_uplink_transmit_bytes_total"][up] == 1000
    assert m["netlens_uplink_capacity_bytes_per_second"][()] == 1000e6 / 8
    veth = (("interface", "eth0"), ("netns", "a"), ("peer", EVIL), ("peer_netns", "host"))
    assert m["netlens_veth_transmit_bytes_total"][veth] == 1000
    br = (("interface", "br0"), ("netns", "host"))
    assert m["netlens_bridge_receive_bytes_total"][br] == 1000  # the switch took it in
    # rates: the frame's bits per second as bytes per second
    assert m["netlens_uplink_receive_bytes_per_second"][up] == 1.0
    for name in m:
        assert name.startswith("netlens_"), name
    assert m["netlens_discovery_duration_seconds_count"][()] == 0


def test_render_equals_generate_latest_with_hostile_names() -> None:
    snap = snapshot()
    ex = exporter_on(snap)
    body = two_samples(ex, snap)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(ex.collector)  # type: ignore[arg-type]
    assert body == generate_latest(reg)


def test_hostile_names_round_trip_and_forge_nothing() -> None:
    snap = snapshot()
    m = parse(two_samples(exporter_on(snap), snap))
    assert "netlens_fake" not in m
    labels = m["netlens_container_transmit_bytes_total"]
    evil = (("container", EVIL), ("engine", "netlens"), ("netns", EVIL))
    assert labels[evil] == 1000
    veth = m["netlens_veth_receive_bytes_total"]
    assert any(dict(k)["peer"] == EVIL for k in veth)


def test_clashing_names_get_their_id_not_a_duplicate_sample() -> None:
    snap = snapshot(a_name="web", b_name="web")
    m = parse(two_samples(exporter_on(snap), snap))
    names = {dict(k)["container"] for k in m["netlens_container_transmit_bytes_total"]}
    assert names == {"web@t:a", "web@t:b"}
    netns = {dict(k)["netns"] for k in m["netlens_netns_transmit_bytes_total"]}
    assert netns == {"host", f"web@{A}", f"web@{B}"}


def test_cap_keeps_whole_entities_in_priority_and_counts_the_rest() -> None:
    snap = snapshot()
    per = len(family_names(KINDS[0], True))
    # uplink (1) + bridge (1) + 2 containers fit; namespaces and veths do not
    ex = exporter_on(snap, max_series=4 * per + per - 1)
    m = parse(two_samples(ex, snap))
    assert len(m["netlens_uplink_transmit_bytes_total"]) == 1
    assert len(m["netlens_container_transmit_bytes_total"]) == 2
    assert (
        "netlens_netns_transmit_bytes_total" not in m or not m["netlens_netns_transmit_bytes_total"]
    )
    assert (
        "netlens_veth_transmit_bytes_total" not in m or not m["netlens_veth_transmit_bytes_total"]
    )
    dropped = (3 + 2) * per  # 3 namespaces (host too), 2 veth pairs
    assert m["netlens_exporter_series_dropped"][()] == dropped
    assert m["netlens_exporter_series"][()] == 4 * per
    assert m["netlens_exporter_dropped_series_total"][()] == 2 * dropped  # two samples
    # whatever is kept, never more series than the cap (host-level families aside)
    entity = sum(len(v) for k, v in m.items() if k.split("_")[1] in {"uplink", "bridge",
                 "container", "netns", "veth"} and k.endswith(("_total", "_second")))  # fmt: skip
    assert entity - 2 <= 5 * per  # the two host-level uplink families aside


def test_cap_zero_and_no_rates() -> None:
    snap = snapshot()
    ex = exporter_on(snap, max_series=0)
    m = parse(two_samples(ex, snap))
    assert not m.get("netlens_container_transmit_bytes_total")
    ex = exporter_on(snap, rates=False)
    m = parse(two_samples(ex, snap))
    assert "netlens_container_transmit_bytes_per_second" not in m
    assert m["netlens_exporter_series"][()] == 8 * (1 + 1 + 2 + 3 + 2)


def test_counters_never_go_down_when_a_link_disappears() -> None:
    """Container b's veth vanishes: the bridge loses a port, its counter must not drop."""
    snap = snapshot(a_name="a")
    ex = exporter_on(snap)
    totals = Totals()
    plan = build_plan(snap)
    totals.update(plan, all_keys(snap), {f"{H}/4": counters(0, 0), f"{H}/5": counters(0, 0)}.get)
    totals.update(plan, all_keys(snap), {f"{H}/4": counters(10, 0), f"{H}/5": counters(20, 0)}.get)
    before = totals.get("bridges", f"{H}/3")
    assert before is not None and before[0] == 30
    smaller = snapshot(a_name="a", with_b=False)
    plan = build_plan(smaller)
    totals.forget_missing(plan)
    totals.update(plan, all_keys(smaller), {f"{H}/4": counters(15, 0)}.get)
    after = totals.get("bridges", f"{H}/3")
    assert after is not None and after[0] == 35
    assert totals.get("containers", "t:b") is None  # forgotten: bounded memory
    assert ex.state.series > 0


def test_counter_reset_adds_nothing() -> None:
    snap = snapshot(a_name="a")
    totals, plan = Totals(), build_plan(snap)
    for c in (counters(0, 100), counters(0, 300), counters(0, 5), counters(0, 10)):
        totals.update(plan, all_keys(snap), {f"{A}/2": c}.get)
    got = totals.get("containers", "t:a")
    assert got is not None and got[1] == 200 + 5  # baseline 100, +200, reset (0), +5


def test_doctor_hook_absent_means_no_family() -> None:
    snap = snapshot(a_name="a")
    state = ExporterState(version="t")
    names = {e.name for e in host_extras(None, state, snap)}
    assert not any("doctor" in n for n in names)
    got = host_extras(None, state, snap, findings=lambda s: {"warning": 2, "error": 1})
    doc = next(e for e in got if e.name == "netlens_doctor_findings")
    assert doc.rows == [("", ("error",), 1.0), ("", ("warning",), 2.0)]


def test_exposition_without_frame_has_zero_counters() -> None:
    snap = snapshot(a_name="a")
    plan = build_plan(snap)
    layout = build_layout(snap, plan, 100_000, True)
    state = ExporterState(version="t")
    body = render(build_exposition(layout, None, Totals(), host_extras(None, state)))
    m = parse(body)
    assert set(m["netlens_container_transmit_bytes_total"].values()) == {0.0}


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("127.0.0.1:9417", ("127.0.0.1", 9417, False)),
        ("localhost:0", ("127.0.0.1", 0, False)),
        ("[::1]:9417", ("::1", 9417, True)),
        ("0.0.0.0:80", ("0.0.0.0", 80, False)),
    ],
)
def test_parse_listen(text: str, want: tuple[str, int, bool]) -> None:
    assert parse_listen(text) == want


@pytest.mark.parametrize("text", ["9417", ":9417", "host:1", "1.2.3.4:70000", "1.2.3.4:x", ""])
def test_parse_listen_refuses(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_listen(text)


@pytest.mark.parametrize(
    "args", [["--listen", "nope"], ["--max-series", "-1"], ["--interval", "0"]]
)
def test_bad_flags_one_line_exit_2(args: list[str]) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "netlens", "exporter", *args],
        capture_output=True,
        text=True,
        env={"NETLENS_NO_LOG": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)},
        timeout=60,
    )
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.stderr
