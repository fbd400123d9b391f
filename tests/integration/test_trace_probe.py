"""``netlens trace --probe``: real packets between namespaces the tests build.

Every probe goes only between the test's own namespaces. Each test breaks one
thing and asserts where the probe died and what the kernel said (the nft rule,
the drop reason); the teardown tests kill the command mid-probe and assert that
no trace table and no tracefs instance or mount is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Lab, sh
from test_trace_live import SCHEMA, addr, build_routed, link

from netlens.analysis.endpoints import resolve
from netlens.analysis.probe import ProbeResult, run_probe
from netlens.analysis.scope import Whole
from netlens.analysis.trace import trace
from netlens.analysis.tracetypes import TraceResult
from netlens.discovery import discover
from netlens.kernel.nsquery import NsQuery

pytestmark = pytest.mark.integration

Routed = tuple[Lab, str, str, str]


@pytest.fixture
def routed(lab: Lab) -> Routed:
    """a -- r -- b, routed by r (test_trace_live.build_routed)."""
    return build_routed(lab)


TRACEFS = "/sys/kernel/tracing"


def _tracefs_state() -> tuple[bool, str | None, list[str]]:
    """(tracefs mounted at its usual place, the global kfree_skb switch there,
    the instances there): what a probe must leave exactly as it found it."""
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        mounted = any(f" {TRACEFS} tracefs " in line for line in fh)
    if not mounted:
        return False, None, []
    with open(f"{TRACEFS}/events/skb/kfree_skb/enable", encoding="ascii") as fh:
        switch = fh.read().strip()
    return True, switch, sorted(os.listdir(f"{TRACEFS}/instances"))


@pytest.fixture(autouse=True)
def nothing_left(lab: Lab) -> Iterator[None]:
    """After every test, passed or failed (a fixture's teardown runs either way,
    before the lab's namespaces go): no trace table in any of the lab's
    namespaces or the host's, no tracefs instance or private mount of ours,
    and tracefs's global switch as it was."""
    before = _tracefs_state()
    yield
    assert not leftovers(lab.netns), leftovers(lab.netns)
    host = sh("nft list tables").stdout
    assert "netlens_probe_" not in host, host
    assert _tracefs_state() == before


def probe(src: str, dst: str, **kw: Any) -> tuple[TraceResult, ProbeResult]:
    snap = discover()
    s, d = resolve(snap, src, is_dst=False), resolve(snap, dst, is_dst=True)
    with NsQuery() as q:
        res = trace(snap, s, d, q, **kw)
        return res, run_probe(Whole(snap), q, res, s, d)


def leftovers(namespaces: list[str]) -> list[str]:
    """Trace tables of any netlens probe in ``namespaces``, tracefs leftovers."""
    out = [
        f"{ns}: {line}"
        for ns in namespaces
        for line in sh(f"ip netns exec {ns} nft list tables").stdout.splitlines()
        if "netlens_probe_" in line
    ]
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        mounts = fh.read()
    out += [line for line in mounts.splitlines() if "netlens-tracefs-" in line]
    return out


def test_probe_delivered(routed: Routed) -> None:
    _lab, a, r, b = routed
    res, p = probe(a, b)
    assert res.verdict.result == "delivered"
    assert p.result == "delivered" and p.answer == "reply" and p.agrees, p
    assert p.seen_in == [a, r, b]
    rx = {c["interface"]: c["rx_packets"] for c in p.counters}
    assert rx[f"{b}:eth0"] >= 1 and rx[f"{r}:ra"] >= 1
    assert not leftovers([a, r, b])


def test_probe_dropped_by_a_rule_names_it(routed: Routed) -> None:
    _lab, a, r, b = routed
    sh(f"ip netns exec {r} nft add table inet ntp")
    sh(f"ip netns exec {r} nft 'add chain inet ntp fw {{ type filter hook forward priority 0; }}'")
    sh(f"ip netns exec {r} nft add rule inet ntp fw ip daddr 10.66.2.2 tcp dport 22 drop")
    res, p = probe(a, b, proto="tcp", dport=22)
    assert res.verdict.result == "dropped" and res.verdict.hop == 2
    assert p.result == "dropped" and p.died_at == 2, p
    assert any("inet ntp fw" in e and "tcp dport 22 drop" in e for e in p.evidence), p.evidence
    assert p.seen_in == [a, r] and p.agrees
    assert not leftovers([a, r, b])


def test_probe_dropped_by_ip_forward_off_gives_the_kernel_reason(routed: Routed) -> None:
    _lab, a, r, b = routed
    sh(f"ip netns exec {r} sysctl -qw net.ipv4.ip_forward=0")
    res, p = probe(a, b)
    assert res.verdict.result == "dropped" and res.verdict.hop == 2
    assert p.result == "dropped" and p.died_at == 2 and p.agrees, p
    assert p.seen_in == [a, r]
    if not any("no kernel drop reasons" in n for n in p.notes):
        assert any(d["reason"] == "IP_INADDRERRORS" for d in p.drops), p.drops
        assert any("kernel drop reason" in e for e in p.evidence)


def test_probe_dropped_by_a_blackhole(routed: Routed) -> None:
    _lab, a, r, _b = routed
    sh(f"ip -n {r} route del 10.66.2.0/24 dev rb")
    sh(f"ip -n {r} route add blackhole 10.66.2.0/24")
    res, p = probe(a, "10.66.2.2")
    assert res.verdict.result == "dropped" and res.verdict.hop == 2
    assert p.result == "dropped" and p.died_at == 2 and p.agrees, p
    if not any("no kernel drop reasons" in n for n in p.notes):
        assert any("ip_error" in d["location"] for d in p.drops), p.drops


def test_probe_disagrees_with_a_rule_the_static_reading_cannot_judge(routed: Routed) -> None:
    _lab, a, r, b = routed
    sh(f"ip netns exec {r} nft add table inet ntc")
    sh(f"ip netns exec {r} nft 'add chain inet ntc fw {{ type filter hook forward priority 0; }}'")
    sh(f"ip netns exec {r} nft add rule inet ntc fw ct state new drop")
    res, p = probe(a, b)
    assert res.verdict.result == "delivered"  # the ct match is not judged statically
    assert p.result == "dropped" and p.died_at == 2, p
    assert not p.agrees and p.disagreement and "static trace says delivered" in p.disagreement
    assert any("ct state new drop" in e for e in p.evidence)
    assert not leftovers([a, r, b])


def test_cli_probe_json_and_refuses_outside_addresses(routed: Routed) -> None:
    _lab, a, _r, b = routed
    out = subprocess.run([sys.executable, "-m", "netlens", "trace", a, b, "--probe", "--json"],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["probe"]["result"] == "delivered" and doc["probe"]["agrees"]
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    # 192.0.2.1 (TEST-NET-1) is owned by nobody here: refused before anything is sent
    bad = subprocess.run([sys.executable, "-m", "netlens", "trace", a, "192.0.2.1", "--probe"],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1
    assert "--allow-external" in bad.stderr
    assert not leftovers([a, b])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_probe_leaves_nothing(routed: Routed, sig: signal.Signals) -> None:
    _lab, a, r, b = routed
    # A silent loss keeps the probe waiting for an answer: time to interrupt it. A
    # blackhole route, since a filter's drop would be reported at once and end the wait.
    sh(f"ip -n {r} route add blackhole 10.66.2.2/32")
    proc = subprocess.Popen([sys.executable, "-m", "netlens", "trace", a, b, "--probe",
                             "--proto", "tcp", "--port", "9"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    table = f"netlens_probe_{proc.pid}"
    try:
        armed = False
        for _ in range(400):
            if table in sh(f"ip netns exec {a} nft list tables").stdout:
                armed = True
                break
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        assert armed, "the probe never installed its trace table"
        proc.send_signal(sig)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert not leftovers([a, r, b])
    assert not os.path.exists(f"/sys/kernel/tracing/instances/{table}")


def test_probe_udp_to_a_closed_port_is_refused_by_the_destination(routed: Routed) -> None:
    _lab, a, _r, b = routed
    res, p = probe(a, b, proto="udp", dport=9)
    assert res.verdict.result == "dropped" and res.verdict.hop == 3
    assert "nothing listens on udp/9" in res.verdict.reason
    assert p.answer == "refused" and p.result == "delivered" and p.agrees, p
    assert p.seen_in == [a, _r, b]


def test_probe_tcp_syn_answered_by_a_listener(routed: Routed) -> None:
    lab, a, _r, b = routed
    server = "import socket, time\ns = socket.socket()\n" \
             "s.bind(('0.0.0.0', 8080)); s.listen(); time.sleep(120)"  # fmt: skip
    lab.spawn(["ip", "netns", "exec", b, sys.executable, "-c", server])
    for _ in range(200):
        if ":8080" in sh(f"ip netns exec {b} ss -Hltn").stdout:
            break
        time.sleep(0.05)
    res, p = probe(a, b, proto="tcp", dport=8080)
    assert res.verdict.result == "delivered", res.verdict
    assert p.proto == "tcp" and p.sent == 1 and p.answer == "reply", p
    assert p.result == "delivered" and p.agrees


def test_probe_with_no_route_at_the_source(routed: Routed) -> None:
    _lab, a, _r, _b = routed
    sh(f"ip -n {a} route del default")
    res, p = probe(a, "10.66.2.2")
    assert res.verdict.result == "dropped" and res.verdict.hop == 1
    assert p.sent == 0 and p.answer == "net unreachable", p
    assert p.result == "dropped" and p.died_at == 1 and p.agrees
    assert p.refused_at_source and "unreachable" in p.reason


@pytest.mark.parametrize("proto", ["icmp", "udp"])
def test_probe_with_no_route_in_the_router_gets_its_icmp_error(routed: Routed, proto: str) -> None:
    _lab, a, r, _b = routed
    sh(f"ip -n {r} route del 10.66.2.0/24 dev rb")
    kw: dict[str, Any] = {"proto": proto, "dport": 53} if proto == "udp" else {}
    res, p = probe(a, "10.66.2.2", **kw)
    assert res.verdict.result == "dropped" and res.verdict.hop == 2
    assert p.result == "dropped" and p.died_at == 2 and p.agrees, p
    assert p.seen_in == [a, r]
    # the raw ICMP socket also shows who sent the error; the UDP socket only the errno
    want = "net unreachable from 10.66.1.1" if proto == "icmp" else "net unreachable"
    assert p.answer == want, p
    if not any("no kernel drop reasons" in n for n in p.notes):
        assert any(d["reason"] == "IP_INNOROUTES" for d in p.drops), p.drops


def test_probe_dropped_at_the_destinations_input(routed: Routed) -> None:
    _lab, a, r, b = routed
    sh(f"ip netns exec {b} nft 'add table ip nti; add chain ip nti in "
       "{ type filter hook input priority 0; }; "
       "add rule ip nti in ip saddr 10.66.1.2 drop'")  # fmt: skip
    res, p = probe(a, b)
    assert res.verdict.result == "dropped" and res.verdict.hop == 3
    assert p.result == "dropped" and p.died_at == 3 and p.agrees, p
    assert p.seen_in == [a, r, b]
    assert any("ip nti in" in e and "drop" in e for e in p.evidence), p.evidence


def test_probe_refused_by_the_sources_output_rule(routed: Routed) -> None:
    _lab, a, _r, b = routed
    sh(f"ip netns exec {a} nft 'add table ip nto; add chain ip nto out "
       "{ type filter hook output priority 0; }; "
       "add rule ip nto out ip daddr 10.66.2.2 drop'")  # fmt: skip
    res, p = probe(a, b)
    assert res.verdict.result == "dropped" and res.verdict.hop == 1
    assert p.answer == "prohibited" and p.died_at == 1 and p.agrees, p
    assert any("ip nto out" in e for e in p.evidence), p.evidence


def test_a_failure_mid_probe_removes_everything(
    routed: Routed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception after the trace tables and the tracefs instance are in place
    (here: opening the probe socket fails) still removes all of them."""
    _lab, a, r, b = routed
    import netlens.analysis.probe as probe_mod

    seen: list[list[str]] = []

    def broken(*_a: Any, **_k: Any) -> Any:
        seen.append(leftovers([a, r, b]))
        raise RuntimeError("injected")

    monkeypatch.setattr(probe_mod, "open_probe", broken)
    with pytest.raises(RuntimeError, match="injected"):
        probe(a, b)
    assert seen and len(seen[0]) >= 3, seen  # the tables were there when it broke
    assert not leftovers([a, r, b])


def test_a_killed_probes_leftovers_are_swept_by_the_next(routed: Routed) -> None:
    """SIGKILL cannot be caught: the next probe removes what a dead one left (its
    trace table, its tracefs instance), found by the dead pid in the name."""
    _lab, a, r, b = routed
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"netlens_probe_{dead.pid}"
    sh(f"ip netns exec {r} nft add table inet {stale}")
    tmp = tempfile.mkdtemp(prefix="t2-tracefs-")
    try:
        sh(f"mount -t tracefs nodev {tmp}")
        try:
            os.mkdir(f"{tmp}/instances/{stale}")
        finally:
            sh(f"umount {tmp}")
        _res, p = probe(a, b)
        assert any(stale in n and r in n for n in p.notes), p.notes
        assert any(stale in n and "tracefs" in n for n in p.notes), p.notes
        sh(f"mount -t tracefs nodev {tmp}")
        try:
            assert not os.path.exists(f"{tmp}/instances/{stale}")
        finally:
            sh(f"umount {tmp}")
    finally:
        with contextlib.suppress(OSError):
            sh(f"mount -t tracefs nodev {tmp} && rmdir {tmp}/instances/{stale}; umount {tmp}",
               check=False)  # fmt: skip
        os.rmdir(tmp)
    assert not leftovers([a, r, b])


@pytest.fixture
def six(lab: Lab) -> tuple[str, str]:
    """Two namespaces on one veth, IPv6 only: fd77::1 and fd77::2."""
    a, b = lab.add_netns("6a"), lab.add_netns("6b")
    lab.add_veth(lab.name("6x"), lab.name("6y"), a, b)
    sh(f"ip -n {a} addr add fd77::1/64 dev {lab.name('6x')} nodad")
    sh(f"ip -n {b} addr add fd77::2/64 dev {lab.name('6y')} nodad")
    return a, b


def test_probe_over_ipv6_delivered_then_dropped_by_an_ip6_rule(six: tuple[str, str]) -> None:
    a, b = six
    res, p = probe(a, "fd77::2")
    # the static route question for ICMP over IPv6 is asked as icmpv6 (the kernel
    # refuses protocol 1 there with ENOTSUP)
    assert res.verdict.result == "delivered", res.verdict
    assert p.answer == "reply" and p.agrees and p.seen_in == [a, b], p
    sh(f"ip netns exec {b} nft 'add table ip6 n6; add chain ip6 n6 in "
       "{ type filter hook input priority 0; }; "
       "add rule ip6 n6 in ip6 saddr fd77::1 drop'")  # fmt: skip
    res, p = probe(a, "fd77::2")
    assert res.verdict.result == "dropped" and res.verdict.hop == 2
    assert p.result == "dropped" and p.died_at == 2 and p.agrees, p
    assert any("ip6 n6 in" in e for e in p.evidence), p.evidence
    if not any("no kernel drop reasons" in n for n in p.notes):
        assert any(d["reason"] == "NETFILTER_DROP" for d in p.drops), p.drops


def test_probe_across_a_bridge_and_a_disabled_port(lab: Lab) -> None:
    """a and b on a bridge in a third namespace: the bridge's ports count the
    probe; with b's port disabled the probe never leaves a (no reply to its ARP)."""
    a, b, sw = lab.add_netns("a"), lab.add_netns("b"), lab.add_netns("sw")
    sh(f"ip -n {sw} link add br0 type bridge && ip -n {sw} link set br0 up")
    link(a, "eth0", sw, "pa")
    link(b, "eth0", sw, "pb")
    sh(f"ip -n {sw} link set pa master br0 && ip -n {sw} link set pb master br0")
    addr(a, "eth0", "10.67.0.1/24")
    addr(b, "eth0", "10.67.0.2/24")
    res, p = probe(a, b)
    assert res.verdict.result == "delivered" and p.answer == "reply" and p.agrees, p
    moved = {c["interface"]: c for c in p.counters}
    assert moved[f"{sw}:pb"]["tx_packets"] >= 1 and moved[f"{b}:eth0"]["rx_packets"] >= 1
    sh(f"ip -n {b} neigh flush all && ip -n {a} neigh flush all")
    sh(f"bridge -n {sw} link set dev pb state 0")
    res, p = probe(a, b)
    assert res.verdict.result == "dropped" and res.verdict.hop == 1, res.verdict
    assert "pb" in res.verdict.reason
    assert p.result == "dropped" and p.died_at == 1 and p.agrees, p
    assert p.seen_in == [a]


def test_cli_probe_through_a_dnat_follows_the_rewritten_packet(routed: Routed) -> None:
    """r DNATs 10.66.1.1:8080 to b:80. The CLI reads only the namespaces on the
    path (r's NAT rules when the packet gets there); the probe's SYN is known in
    b by its rewritten address, so b's input rule on port 80 is named."""
    lab, a, r, b = routed
    sh(f"ip netns exec {r} nft 'add table ip ntn; add chain ip ntn pre "
       "{ type nat hook prerouting priority -100; }; "
       "add rule ip ntn pre ip daddr 10.66.1.1 tcp dport 8080 dnat to 10.66.2.2:80'")  # fmt: skip
    server = "import socket, time\ns = socket.socket()\n" \
             "s.bind(('0.0.0.0', 80)); s.listen(); time.sleep(120)"  # fmt: skip
    lab.spawn(["ip", "netns", "exec", b, sys.executable, "-c", server])
    for _ in range(200):
        if ":80 " in sh(f"ip netns exec {b} ss -Hltn").stdout:
            break
        time.sleep(0.05)
    argv = [sys.executable, "-m", "netlens", "trace", a, "10.66.1.1", "--port", "8080",
            "--probe", "--json"]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert [h["netns_name"] for h in doc["hops"]] == [a, r, b]
    assert (
        doc["hops"][2]["packet"]["dst"] == "10.66.2.2" and doc["hops"][2]["packet"]["dport"] == 80
    )
    assert doc["verdict"]["result"] == "delivered"
    assert doc["probe"]["answer"] == "reply" and doc["probe"]["seen_in"] == [a, r, b]
    sh(f"ip netns exec {b} nft 'add table ip ntb; add chain ip ntb in "
       "{ type filter hook input priority 0; }; add rule ip ntb in tcp dport 80 drop'")  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True)
    assert out.returncode == 1, out.stderr
    p = json.loads(out.stdout)["probe"]
    assert p["result"] == "dropped" and p["died_at"] == 3, p
    assert any("ip ntb in" in e for e in p["evidence"]), p["evidence"]


def test_without_nft_the_probe_says_what_it_cannot_know(
    routed: Routed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No nft binary (simulated: netlens cannot find it): no trace tables, no
    place of death; the kernel's drop reason is still reported."""
    _lab, a, r, b = routed
    sh(f"ip netns exec {r} nft 'add table ip ntf; add chain ip ntf fw "
       "{ type filter hook forward priority 0; policy drop; }'")  # fmt: skip
    from netlens.kernel import nfttrace

    monkeypatch.setattr(nfttrace, "_nft", lambda: None)
    _res, p = probe(a, b)
    assert p.answer is None and p.died_at is None and p.seen_in == [], p
    assert sum("no nft trace in" in n for n in p.notes) == 3, p.notes
    assert "no nft trace to say where it went" in p.reason
    if any("no kernel drop reasons" in n for n in p.notes):
        assert p.result == "unknown"
    else:
        assert p.result == "dropped" and p.drops[0]["reason"] == "NETFILTER_DROP", p
