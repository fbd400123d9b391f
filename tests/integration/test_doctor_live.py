"""`netlens doctor` on broken topologies the tests build in real namespaces.

One topology per check: the test breaks exactly one thing, runs discovery and
the doctor (with its live reads), and asserts the finding's severity, the
objects it names and the evidence. Only findings about this test's own objects
are looked at (the shared host has namespaces of its own). Every namespace,
link and rule is made inside namespaces the test created, and removed by the
``lab`` fixture also when the test fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Lab, sh

from netlens.analysis import checks_host
from netlens.analysis.doctor import diagnose, gather
from netlens.analysis.findings import Finding, Severity
from netlens.discovery import discover
from netlens.model.types import Snapshot

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _mine(lab: Lab, findings: tuple[Finding, ...] | list[Finding]) -> list[Finding]:
    return [f for f in findings if any(lab.prefix in o.name for o in f.objects)]


def run_doctor(lab: Lab) -> tuple[Snapshot, list[Finding]]:
    snap = discover()
    report = diagnose(snap, gather(snap))
    return snap, _mine(lab, report.findings)


def one(findings: list[Finding], check: str) -> Finding:
    hits = [f for f in findings if f.check == check]
    assert len(hits) == 1, (check, findings)
    return hits[0]


def names(f: Finding) -> set[str]:
    return {o.name for o in f.objects}


def ex(ns: str, cmd: str) -> None:
    sh(f"ip netns exec {ns} {cmd}")


def pair(lab: Lab, a: str, b: str, ena: str = "e0", enb: str = "e0") -> tuple[str, str]:
    """Two namespaces joined by a veth (ends named ``ena``/``enb`` inside)."""
    nsa, nsb = lab.add_netns(a), lab.add_netns(b)
    tmp_a, tmp_b = lab.name(f"{a}x"), lab.name(f"{b}y")
    lab.add_veth(tmp_a, tmp_b, nsa, nsb)
    sh(f"ip -n {nsa} link set {tmp_a} down && ip -n {nsa} link set {tmp_a} name {ena} up")
    sh(f"ip -n {nsb} link set {tmp_b} down && ip -n {nsb} link set {tmp_b} name {enb} up")
    return nsa, nsb


def bridged(lab: Lab, hub: str, leaves: list[str]) -> tuple[str, list[str]]:
    """Namespace ``hub`` with bridge br0; each leaf namespace has eth0 on a port pN."""
    h = lab.add_netns(hub)
    ex(h, "ip link add br0 type bridge")
    ex(h, "ip link set br0 up")
    out = []
    for n, leaf in enumerate(leaves):
        ns = lab.add_netns(leaf)
        tmp_h, tmp_l = lab.name(f"{leaf}h"), lab.name(f"{leaf}l")
        lab.add_veth(tmp_h, tmp_l, h, ns)
        ex(h, f"ip link set {tmp_h} down")
        ex(h, f"ip link set {tmp_h} name p{n} master br0 up")
        ex(ns, f"ip link set {tmp_l} down")
        ex(ns, f"ip link set {tmp_l} name eth0 up")
        out.append(ns)
    return h, out


# --- layer 2 ---------------------------------------------------------------------------------
def test_veth_peer_down(lab: Lab) -> None:
    a, b = pair(lab, "a", "b")
    sh(f"ip -n {b} link set e0 down")
    _snap, found = run_doctor(lab)
    f = one(found, "veth-peer-down")
    assert f.severity is Severity.WARNING
    assert names(f) == {f"{a}:e0", f"{b}:e0"}
    assert any("admin down" in e and b in e for e in f.evidence)
    assert f.fix == f"ip -n {b} link set dev e0 up"


def test_veth_mtu_mismatch(lab: Lab) -> None:
    a, b = pair(lab, "a", "b")
    sh(f"ip -n {b} link set e0 mtu 1400")
    _snap, found = run_doctor(lab)
    f = one(found, "mtu-mismatch")
    assert f.severity is Severity.WARNING
    assert names(f) == {f"{a}:e0", f"{b}:e0"}
    assert f"{b}:e0 mtu 1400" in f.evidence and f"{a}:e0 mtu 1500" in f.evidence


def test_bridge_ports_mtu_mismatch(lab: Lab) -> None:
    h, (x, _y) = bridged(lab, "h", ["x", "y"])
    ex(h, "ip link set p0 mtu 1400")
    ex(x, "ip link set eth0 mtu 1400")  # the cable itself agrees: only the bridge is odd
    _snap, found = run_doctor(lab)
    f = one(found, "mtu-mismatch")
    assert f"{h}:br0" in names(f) and f"{h}:p0" in names(f)
    assert "p0 mtu 1400" in f.evidence and "p1 mtu 1500" in f.evidence


def test_vxlan_larger_than_underlay(lab: Lab) -> None:
    v, _w = pair(lab, "v", "w")
    ex(v, "ip addr add 10.9.0.1/24 dev e0")
    ex(v, "ip link add vx0 type vxlan id 42 remote 10.9.0.2 dstport 4789")
    ex(v, "ip link set vx0 mtu 1500 up")
    _snap, found = run_doctor(lab)
    f = one(found, "mtu-mismatch")
    assert names(f) == {f"{v}:vx0", f"{v}:e0"}
    assert any("1500 + 50 bytes" in e for e in f.evidence)
    assert f.fix == f"ip -n {v} link set dev vx0 mtu 1450"


def test_duplicate_ip_on_a_bridge(lab: Lab) -> None:
    _h, (x, y) = bridged(lab, "h", ["x", "y"])
    for ns in (x, y):
        ex(ns, "ip addr add 10.10.0.5/24 dev eth0 nodad")
    _snap, found = run_doctor(lab)
    f = one(found, "duplicate-ip")
    assert f.severity is Severity.ERROR
    assert names(f) == {f"{x}:eth0", f"{y}:eth0"}
    assert f"{x}:eth0 has 10.10.0.5" in f.evidence


def test_duplicate_mac_on_a_bridge(lab: Lab) -> None:
    _h, (x, y) = bridged(lab, "h", ["x", "y"])
    for ns in (x, y):
        ex(ns, "ip link set eth0 address 02:00:00:00:be:ef")
    _snap, found = run_doctor(lab)
    f = one(found, "duplicate-mac")
    assert f.severity is Severity.ERROR
    assert names(f) == {f"{x}:eth0", f"{y}:eth0"}


def test_bridge_port_disabled(lab: Lab) -> None:
    h, _leaves = bridged(lab, "h", ["x", "y"])
    ex(h, "bridge link set dev p1 state 0")
    _snap, found = run_doctor(lab)
    f = one(found, "bridge-port-not-forwarding")
    assert f.severity is Severity.WARNING
    assert names(f) == {f"{h}:p1", f"{h}:br0"}
    assert "p1 port state disabled" in f.evidence
    assert f.fix == f"ip netns exec {h} bridge link set dev p1 state 3"


def test_forward_drop_cuts_a_bridge(lab: Lab) -> None:
    """The test's hub namespace plays the Docker host: FORWARD policy DROP and
    bridge-nf-call-iptables=1 (both per namespace); an ACCEPT for the bridge cures it."""
    if not os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables"):
        pytest.skip("br_netfilter is not loaded")
    h, _leaves = bridged(lab, "h", ["x", "y"])
    ex(h, "sysctl -qw net.bridge.bridge-nf-call-iptables=1")
    ex(h, "iptables -P FORWARD DROP")
    _snap, found = run_doctor(lab)
    f = one(found, "forward-drop-bridge")
    assert f.severity is Severity.ERROR
    assert {f"{h}:br0", f"{h}:p0", f"{h}:p1"} <= names(f)
    assert "net.bridge.bridge-nf-call-iptables = 1" in f.evidence
    assert any("FORWARD policy drop" in e for e in f.evidence)
    ex(h, "iptables -A FORWARD -i br0 -o br0 -j ACCEPT")
    _snap, found = run_doctor(lab)
    assert not [f for f in found if f.check == "forward-drop-bridge"]


# --- layer 3 ---------------------------------------------------------------------------------
def router(lab: Lab) -> tuple[str, str, str]:
    """a (10.1.0.2) -- r (10.1.0.1 | 10.2.0.1) -- b (10.2.0.2)."""
    a, r = pair(lab, "a", "r", "e0", "ra")
    b = lab.add_netns("b")
    tmp_r, tmp_b = lab.name("rb"), lab.name("br")
    lab.add_veth(tmp_r, tmp_b, r, b)
    sh(f"ip -n {r} link set {tmp_r} down && ip -n {r} link set {tmp_r} name rb up")
    sh(f"ip -n {b} link set {tmp_b} down && ip -n {b} link set {tmp_b} name e0 up")
    ex(a, "ip addr add 10.1.0.2/24 dev e0")
    ex(r, "ip addr add 10.1.0.1/24 dev ra")
    ex(r, "ip addr add 10.2.0.1/24 dev rb")
    ex(b, "ip addr add 10.2.0.2/24 dev e0")
    return a, r, b


def test_ip_forward_off_on_a_router(lab: Lab) -> None:
    a, r, _b = router(lab)
    ex(a, "ip route add 10.2.0.0/24 via 10.1.0.1")
    ex(r, "sysctl -qw net.ipv4.ip_forward=0")
    _snap, found = run_doctor(lab)
    f = one(found, "ip-forward-off")
    assert f.severity is Severity.ERROR
    assert r in names(f) and f"{r}:ra" in names(f)
    assert f"{r}: net.ipv4.ip_forward = 0" in f.evidence
    assert f.fix == f"ip netns exec {r} sysctl -w net.ipv4.ip_forward=1"
    ex(r, "sysctl -qw net.ipv4.ip_forward=1")
    _snap, found = run_doctor(lab)
    assert not [f for f in found if f.check == "ip-forward-off"]


def test_strict_rp_filter_with_asymmetric_route(lab: Lab) -> None:
    a, r, _b = router(lab)
    ex(a, "ip addr add 10.7.0.1/32 dev lo")
    ex(a, "ip route add 10.8.0.0/24 via 10.1.0.1 src 10.7.0.1")
    ex(r, "ip route add default via 10.2.0.2")
    ex(r, "sysctl -qw net.ipv4.conf.ra.rp_filter=1")
    _snap, found = run_doctor(lab)
    f = one(found, "rp-filter-asymmetric")
    assert f.severity is Severity.WARNING
    assert f"{r}:ra" in names(f) and a in names(f)
    assert any("ra=1" in e and "strict" in e for e in f.evidence)
    assert any("10.7.0.1" in e and "rb" in e for e in f.evidence)


def test_gateway_on_no_connected_subnet(lab: Lab) -> None:
    a, _b = pair(lab, "a", "b")
    ex(a, "ip addr add 10.3.0.2/24 dev e0")
    ex(a, "ip route add 10.50.0.0/24 via 10.99.0.1 dev e0 onlink")
    _snap, found = run_doctor(lab)
    f = one(found, "gateway-not-connected")
    assert f.severity is Severity.WARNING
    assert f"{a}:e0" in names(f)
    assert "subnets of e0: 10.3.0.0/24" in f.evidence
    assert "neighbour 10.99.0.1: no entry" in f.evidence


def test_blackhole_route_and_prohibit_rule_hide_routes(lab: Lab) -> None:
    a, _b = pair(lab, "a", "b")
    ex(a, "ip addr add 10.3.0.2/24 dev e0")
    ex(a, "ip route add 10.60.0.0/24 via 10.3.0.1 metric 100")
    ex(a, "ip route add blackhole 10.60.0.0/24 metric 10")
    ex(a, "ip route add 10.61.0.0/24 via 10.3.0.1")
    ex(a, "ip rule add to 10.61.0.0/24 prohibit priority 100")
    _snap, found = run_doctor(lab)
    f = one(found, "route-hidden")
    assert f.severity is Severity.ERROR
    assert f"{a}: blackhole 10.60.0.0/24 metric 10" in names(f)
    assert any("metric 10 <= 100" in e for e in f.evidence)
    g = one(found, "rule-hides-routes")
    assert g.severity is Severity.WARNING
    assert any("100: from all to 10.61.0.0/24 prohibit" in n for n in names(g))
    assert "hidden route: 10.61.0.0/24 via 10.3.0.1 dev e0" in g.evidence


def test_default_gateway_neighbour_failed(lab: Lab) -> None:
    a, _b = pair(lab, "a", "b")
    ex(a, "ip addr add 10.4.0.2/24 dev e0")
    ex(a, "ip route add default via 10.4.0.1")
    sh(f"ip netns exec {a} ping -c1 -W1 10.4.0.1", check=False)
    for _ in range(100):  # the kernel gives up after its probes (about 3 s)
        if "FAILED" in sh(f"ip -n {a} neigh show 10.4.0.1").stdout:
            break
        time.sleep(0.1)
    _snap, found = run_doctor(lab)
    f = one(found, "default-gateway-failed")
    assert f.severity is Severity.ERROR
    assert f"{a}:e0" in names(f) and f"{a}: 10.4.0.1 dev e0" in names(f)
    assert "neighbour 10.4.0.1 dev e0: failed" in f.evidence


def test_overlapping_subnets_on_two_bridges(lab: Lab) -> None:
    h = lab.add_netns("h")
    for br, cidr in (("br1", "10.20.0.1/24"), ("br2", "10.20.1.1/16")):
        ex(h, f"ip link add {br} type bridge")
        ex(h, f"ip addr add {cidr} dev {br}")
        ex(h, f"ip link set {br} up")
    _snap, found = run_doctor(lab)
    f = one(found, "overlapping-subnets")
    assert f.severity is Severity.WARNING
    assert names(f) == {f"{h}:br1", f"{h}:br2"}
    assert "br2 (bridge) 10.20.0.0/16" in f.evidence


# --- the host ----------------------------------------------------------------------------------
def test_unused_namespace(lab: Lab) -> None:
    x = lab.add_netns("x")
    _snap, found = run_doctor(lab)
    f = one(found, "unused-namespace")
    assert f.severity is Severity.INFO
    assert names(f) == {x}
    assert "processes: none" in f.evidence
    assert f.fix == f"ip netns delete {x}"


def test_capacity_checks_at_lowered_limits(lab: Lab) -> None:
    """Filling a bridge with 1000 ports, conntrack or the neighbour table would
    disturb the shared host: the checks run on this real lab with the limits
    lowered to what the lab holds."""
    h, (x, _y) = bridged(lab, "h", ["x", "y"])
    ex(x, "ip neigh add 10.30.0.9 lladdr 02:00:00:00:00:09 dev eth0 nud permanent")
    snap = discover()
    f = [g for g in checks_host.bridge_ports(snap, limit=2) if lab.prefix in g.title]
    assert len(f) == 1 and f[0].severity is Severity.ERROR
    assert f[0].objects[0].name == f"{h}:br0"
    assert "2 ports enslaved to br0" in f[0].evidence
    ns_h = next(ns for ns in snap.namespaces if ns.name == h)
    cts = checks_host.conntrack_full(snap, {ns_h.id: 95}, 100)
    assert [(c.severity, c.objects[0].name) for c in cts] == [(Severity.WARNING, h)]
    v4 = sum(1 for ns in snap.namespaces for e in ns.neighbours if e.family == 4)
    assert v4 >= 1
    nb = checks_host.neighbour_tables(snap, {4: v4, 6: 10**9})
    assert [(n.check, n.severity) for n in nb] == [("neighbour-table-near-limit", Severity.ERROR)]
    assert f"net.ipv4.neigh.default.gc_thresh3 = {v4}" in nb[0].evidence
    assert checks_host.neighbour_tables(snap, {4: v4 * 2 + 10}) == []


# --- a clean lab, and the command --------------------------------------------------------------
def test_clean_topology_has_no_findings(lab: Lab) -> None:
    _h, (x, y) = bridged(lab, "h", ["x", "y"])
    ex(x, "ip addr add 10.30.0.2/24 dev eth0")
    ex(y, "ip addr add 10.30.0.3/24 dev eth0")
    lab.spawn(["ip", "netns", "exec", x, "sleep", "60"])  # used: not a leftover
    lab.spawn(["ip", "netns", "exec", y, "sleep", "60"])
    h = lab.name("h")
    lab.spawn(["ip", "netns", "exec", h, "sleep", "60"])
    time.sleep(0.2)
    _snap, found = run_doctor(lab)
    assert found == []


def _doctor_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=f"{REPO}:{REPO / 'runtime'}", NETLENS_NO_LOG="1")
    return subprocess.run(
        [sys.executable, "-m", "netlens", "doctor", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_from_file_json_and_exit_codes(lab: Lab, tmp_path: Path) -> None:
    """--from a saved dump: findings from the snapshot, live checks listed as skipped;
    exit 1 while an error is found, 0 once it is fixed."""
    _h, (x, y) = bridged(lab, "h", ["x", "y"])
    for ns in (x, y):
        ex(ns, "ip addr add 10.10.0.5/24 dev eth0 nodad")
    dump = tmp_path / "dump.json"
    sh(
        f"PYTHONPATH={REPO}:{REPO / 'runtime'} NETLENS_NO_LOG=1 {sys.executable} -m netlens dump "
        f"--json --netns {x} --netns {y} --netns {lab.name('h')} -o {dump}"
    )
    res = _doctor_cli("--from", str(dump), "--json")
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    assert doc["doctor_version"].startswith("1.")
    assert doc["source"] == str(dump)
    dup = [f for f in doc["findings"] if f["check"] == "duplicate-ip"]
    assert len(dup) == 1 and dup[0]["severity"] == "error"
    assert {o["name"] for o in dup[0]["objects"]} == {f"{x}:eth0", f"{y}:eth0"}
    assert {s["check"] for s in doc["skipped"]} >= {"forward-drop-bridge", "conntrack-near-max"}
    text = _doctor_cli("--from", str(dump))
    assert text.returncode == 1
    assert "ERROR (1)" in text.stdout and "[duplicate-ip]" in text.stdout
    ex(y, "ip addr del 10.10.0.5/24 dev eth0")
    sh(
        f"PYTHONPATH={REPO}:{REPO / 'runtime'} NETLENS_NO_LOG=1 {sys.executable} -m netlens dump "
        f"--json --netns {x} --netns {y} -o {dump}"
    )
    clean = _doctor_cli("--from", str(dump), "--severity", "warning")
    assert clean.returncode == 0, clean.stdout
    assert "no findings" in clean.stdout


def test_cli_bad_input_is_one_line(tmp_path: Path) -> None:
    res = _doctor_cli("--from", str(tmp_path / "missing.json"))
    assert res.returncode != 0 and res.stderr.count("\n") == 1
    assert "Traceback" not in res.stderr
