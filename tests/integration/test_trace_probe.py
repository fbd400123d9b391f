"""``netlens trace --probe``: real packets between namespaces the tests build.

Every probe goes only between the test's own namespaces. Each test breaks one
thing and asserts where the probe died and what the kernel said (the nft rule,
the drop reason); the teardown tests kill the command mid-probe and assert that
no trace table and no tracefs instance or mount is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from conftest import Lab, sh
from test_trace_live import build_routed

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
    # 192.0.2.1 (TEST-NET-1) is owned by nobody here: refused before anything is sent
    bad = subprocess.run([sys.executable, "-m", "netlens", "trace", a, "192.0.2.1", "--probe"],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1
    assert "--allow-external" in bad.stderr
    assert not leftovers([a, b])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_probe_leaves_nothing(routed: Routed, sig: signal.Signals) -> None:
    _lab, a, r, b = routed
    # a silent drop keeps the probe waiting for an answer: time to interrupt it
    sh(f"ip netns exec {r} nft 'add table ip ntk; add chain ip ntk fw "
       "{ type filter hook forward priority 0; policy drop; }'")  # fmt: skip
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
