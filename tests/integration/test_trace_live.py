"""``netlens trace`` against real topologies the tests build (and remove, pass or fail).

Each test wires its own namespaces (veths made directly inside them, so no name
ever touches the host), breaks one thing, and asserts the verdict, the hop and
the object the trace names. Nothing is sent: the trace only asks the kernels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Lab, sh

from netlens.analysis.endpoints import resolve
from netlens.analysis.trace import trace
from netlens.analysis.tracetypes import TraceResult
from netlens.discovery import discover
from netlens.kernel.nsquery import NsQuery

pytestmark = pytest.mark.integration
SCHEMA = Path(__file__).resolve().parents[2] / "netlens" / "analysis" / "trace_schema.json"


def link(a: str, a_if: str, b: str, b_if: str) -> None:
    """A veth a:a_if <-> b:b_if, both ends up, made inside the namespaces."""
    sh(f"ip -n {a} link add {a_if} type veth peer name {b_if} netns {b}")
    sh(f"ip -n {a} link set {a_if} up && ip -n {b} link set {b_if} up")


def addr(ns: str, itf: str, cidr: str) -> None:
    sh(f"ip -n {ns} addr add {cidr} dev {itf}")


def run_trace(src: str, dst: str, **kw: object) -> TraceResult:
    snap = discover()
    with NsQuery() as q:
        return trace(
            snap, resolve(snap, src, is_dst=False), resolve(snap, dst, is_dst=True), q, **kw
        )  # type: ignore[arg-type]


def build_routed(lab: Lab) -> tuple[Lab, str, str, str]:
    """a (10.66.1.2) -- r (10.66.1.1 | 10.66.2.1) -- b (10.66.2.2), forwarding on in r."""
    a, r, b = lab.add_netns("a"), lab.add_netns("r"), lab.add_netns("b")
    link(a, "eth0", r, "ra")
    link(r, "rb", b, "eth0")
    addr(a, "eth0", "10.66.1.2/24")
    addr(r, "ra", "10.66.1.1/24")
    addr(r, "rb", "10.66.2.1/24")
    addr(b, "eth0", "10.66.2.2/24")
    sh(f"ip -n {a} route add default via 10.66.1.1")
    sh(f"ip -n {b} route add default via 10.66.2.1")
    for ns in (a, r, b):
        sh(f"ip netns exec {ns} sysctl -qw net.ipv4.conf.all.rp_filter=0")
    sh(f"ip netns exec {r} sysctl -qw net.ipv4.ip_forward=1")
    return lab, a, r, b


@pytest.fixture
def routed(lab: Lab) -> Iterator[tuple[Lab, str, str, str]]:
    """The three-namespace routed path of :func:`build_routed`."""
    yield build_routed(lab)


def test_delivered_across_a_bridge_in_a_third_namespace(lab: Lab) -> None:
    a, b, sw = lab.add_netns("a"), lab.add_netns("b"), lab.add_netns("sw")
    sh(f"ip -n {sw} link add br0 type bridge && ip -n {sw} link set br0 up")
    link(a, "eth0", sw, "pa")
    link(b, "eth0", sw, "pb")
    sh(f"ip -n {sw} link set pa master br0 && ip -n {sw} link set pb master br0")
    addr(a, "eth0", "10.67.0.1/24")
    addr(b, "eth0", "10.67.0.2/24")
    res = run_trace(a, b)
    assert res.verdict.result == "delivered", res.verdict
    assert [h.netns_name for h in res.hops] == [a, b]
    step = res.hops[0].l2
    assert step is not None and step.via == "bridge"
    assert step.bridge is not None and step.bridge.name == "br0" and step.bridge.netns_name == sw
    assert step.port is not None and step.port.name == "pb"
    assert step.ingress is not None and step.ingress.name == "eth0"
    assert res.hops[1].iif is not None and res.hops[1].iif.name == "eth0"


def test_listener_named_with_port(lab: Lab) -> None:
    a, b = lab.add_netns("a"), lab.add_netns("b")
    link(a, "eth0", b, "eth0")
    addr(a, "eth0", "10.68.0.1/24")
    addr(b, "eth0", "10.68.0.2/24")
    lab.spawn(["ip", "netns", "exec", b, sys.executable, "-c",
               "import socket,time; s=socket.socket(); s.bind(('0.0.0.0', 8471)); s.listen(); "
               "open('/dev/stdout','w').close(); time.sleep(60)"])  # fmt: skip
    for _ in range(100):
        if "8471" in sh(f"ip netns exec {b} ss -Hltn").stdout:
            break
        time.sleep(0.05)
    res = run_trace(f"{a}:eth0", "10.68.0.2", proto="tcp", dport=8471)
    assert res.verdict.result == "delivered", res.verdict
    assert res.verdict.listener is not None
    assert any(p["comm"].startswith("python") for p in res.verdict.listener["processes"])
    closed = run_trace(a, b, proto="tcp", dport=8472)
    assert closed.verdict.result == "dropped" and "nothing listens" in closed.verdict.reason


def test_routed_via_a_router_namespace(routed: tuple[Lab, str, str, str]) -> None:
    _lab, a, r, b = routed
    sh(f"ip -n {r} link set rb mtu 1400")
    res = run_trace(a, b)
    assert res.verdict.result == "delivered", res.verdict
    assert [h.netns_name for h in res.hops] == [a, r, b]
    assert [h.role for h in res.hops] == ["source", "router", "destination"]
    assert res.hops[1].sysctls.get("ip_forward") == 1
    assert res.hops[0].gateway == "10.66.1.1"
    assert res.min_mtu == 1400 and res.min_mtu_at == f"{r}:rb"
    assert not res.findings


def test_dropped_when_ip_forward_is_off(routed: tuple[Lab, str, str, str]) -> None:
    _lab, a, r, b = routed
    sh(f"ip netns exec {r} sysctl -qw net.ipv4.ip_forward=0")
    res = run_trace(a, b)
    assert res.verdict.result == "dropped" and res.verdict.hop == 2
    assert "ip_forward" in res.verdict.reason and r in res.verdict.reason
    assert res.hops[1].sysctls["ip_forward"] == 0


@pytest.mark.parametrize(
    ("route", "words"),
    [
        ("blackhole 10.66.2.0/24", "blackhole"),
        ("unreachable 10.66.2.0/24", "unreachable"),
        ("prohibit 10.66.2.0/24", "prohibit"),
    ],
)
def test_dropped_by_a_refusing_route(
    routed: tuple[Lab, str, str, str], route: str, words: str
) -> None:
    _lab, a, r, _b = routed
    sh(f"ip -n {r} route del 10.66.2.0/24 dev rb")
    sh(f"ip -n {r} route add {route}")
    res = run_trace(a, "10.66.2.2")
    assert res.verdict.result == "dropped" and res.verdict.hop == 2, res.verdict
    assert words in res.verdict.reason
    assert any("10.66.2.0/24" in e for e in res.verdict.evidence)
    # the CLI reads namespaces without their routes: it reads r's to name this one
    out = subprocess.run([sys.executable, "-m", "netlens", "trace", a, "10.66.2.2", "--json"],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert json.loads(out.stdout)["verdict"] == json.loads(json.dumps(res.to_dict()))["verdict"]


def test_dropped_for_no_route(routed: tuple[Lab, str, str, str]) -> None:
    _lab, a, _r, b = routed
    sh(f"ip -n {a} route del default")
    res = run_trace(a, b)
    assert res.verdict.result == "dropped" and res.verdict.hop == 1
    assert res.verdict.reason.startswith("no route")


def test_failed_neighbour(routed: tuple[Lab, str, str, str]) -> None:
    _lab, a, _r, b = routed
    sh(f"ip -n {a} route replace default via 10.66.1.99")
    # one packet between the test's own namespaces makes the kernel try, and fail, to resolve it
    sh(f"ip netns exec {a} ping -c1 -W1 10.66.2.2", check=False)
    for _ in range(100):  # resolution gives up after 3 probes a second apart
        if "FAILED" in sh(f"ip -n {a} neigh show 10.66.1.99").stdout:
            break
        time.sleep(0.1)
    res = run_trace(a, b)
    assert res.verdict.result == "dropped" and res.verdict.hop == 1, res.verdict
    assert "10.66.1.99" in res.verdict.reason and "FAILED" in res.verdict.reason


def test_forward_drop_rule(routed: tuple[Lab, str, str, str]) -> None:
    _lab, a, r, b = routed
    sh(f"ip netns exec {r} nft add table inet ntf")
    sh(f"ip netns exec {r} nft 'add chain inet ntf fw {{ type filter hook forward priority 0; }}'")
    sh(f"ip netns exec {r} nft add rule inet ntf fw ip daddr 10.66.2.2 tcp dport 22 drop")
    assert run_trace(a, b, proto="tcp", dport=80).hops[1].filter["verdict"] == "accept"  # type: ignore[index]
    res = run_trace(a, b, proto="tcp", dport=22)
    assert res.verdict.result == "dropped" and res.verdict.hop == 2
    assert "FORWARD" in res.verdict.reason and "inet ntf fw" in res.verdict.evidence[0]


def test_forward_policy_drop(routed: tuple[Lab, str, str, str]) -> None:
    _lab, a, r, b = routed
    sh(
        f"ip netns exec {r} nft 'add table ip ntq; add chain ip ntq fw "
        "{ type filter hook forward priority 0; policy drop; }'"
    )
    res = run_trace(a, b)
    assert res.verdict.result == "dropped" and res.verdict.hop == 2
    assert "policy drop" in res.verdict.evidence[0]


def test_asymmetric_return_path(routed: tuple[Lab, str, str, str]) -> None:
    lab, a, _r, b = routed
    c = lab.add_netns("c")
    link(b, "eth1", c, "eth0")
    addr(b, "eth1", "10.66.3.2/24")
    addr(c, "eth0", "10.66.3.1/24")
    sh(f"ip -n {b} route add 10.66.1.0/24 via 10.66.3.1")
    res = run_trace(a, b)
    assert res.verdict.result == "delivered"
    (finding,) = res.findings
    assert finding.hop == 3 and "asymmetric" in finding.text and "eth1" in finding.text
    sh(f"ip netns exec {b} sysctl -qw net.ipv4.conf.all.rp_filter=1")
    strict = run_trace(a, b)
    assert strict.verdict.result == "dropped" and strict.verdict.hop == 3
    assert "rp_filter" in strict.verdict.reason


def test_missing_return_route(routed: tuple[Lab, str, str, str]) -> None:
    _lab, a, _r, b = routed
    sh(f"ip -n {b} route del default")
    res = run_trace(a, b)
    assert any(f.severity == "error" and "no return route" in f.text for f in res.findings)


def test_cli_json_and_exit_codes(routed: tuple[Lab, str, str, str]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    _lab, a, r, b = routed
    out = subprocess.run([sys.executable, "-m", "netlens", "trace", a, b, "--json"],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    assert doc["verdict"]["result"] == "delivered" and len(doc["hops"]) == 3
    sh(f"ip netns exec {r} sysctl -qw net.ipv4.ip_forward=0")
    human = subprocess.run([sys.executable, "-m", "netlens", "trace", a, b],
                           capture_output=True, text=True)  # fmt: skip
    assert human.returncode == 1
    assert "verdict: DROPPED at hop 2" in human.stdout
    bad = subprocess.run([sys.executable, "-m", "netlens", "trace", a + "x", b],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1
    assert f"did you mean '{a}'" in bad.stderr


def test_cli_dst_address_owner_found_after_the_walk(routed: tuple[Lab, str, str, str]) -> None:
    """DST given as an address: the CLI finds its owner from the walk (no search
    of every namespace first), and says the same as when the owner was known."""
    _lab, a, r, b = routed

    def cli(*args: str) -> dict[str, Any]:
        out = subprocess.run([sys.executable, "-m", "netlens", "trace", *args, "--json"],
                             capture_output=True, text=True)  # fmt: skip
        assert out.returncode in (0, 1), out.stderr
        return dict(json.loads(out.stdout))

    ids = {h["netns_name"]: h["netns"] for h in cli(a, b)["hops"]}
    doc = cli(a, "10.66.2.2")
    assert doc["verdict"]["result"] == "delivered" and doc["query"]["dst_netns"] == ids[b]
    # dropped before it gets there: the owner is looked up after, all the same
    sh(f"ip netns exec {r} sysctl -qw net.ipv4.ip_forward=0")
    doc = cli(a, "10.66.2.2")
    assert doc["verdict"]["result"] == "dropped" and doc["query"]["dst_netns"] == ids[b]
    sh(f"ip netns exec {r} sysctl -qw net.ipv4.ip_forward=1")
    # DNAT in r: 10.66.1.1 (r's) is delivered to b, and the warning says so
    sh(f"ip netns exec {r} nft 'add table ip ntn; add chain ip ntn pre "
       "{ type nat hook prerouting priority -100; }; "
       "add rule ip ntn pre ip daddr 10.66.1.1 icmp type echo-request "
       "dnat to 10.66.2.2'")  # fmt: skip
    doc = cli(a, "10.66.1.1")
    assert doc["query"]["dst_netns"] == ids[r], doc["query"]
    assert [h["netns_name"] for h in doc["hops"]] == [a, r, b], doc["hops"]
    assert any(f"not to {r}" in f["text"] for f in doc["findings"]), doc["findings"]


def test_cli_reads_only_the_path_and_answers_as_a_whole_discovery(lab: Lab) -> None:
    """The CLI reads SRC's, DST's and the host's namespaces, then whatever the
    cables lead into (here the bridge's namespace, found by asking a's kernel
    which namespace its veth peer is in); its hops equal those of a trace over a
    whole discovery."""
    a, b, sw = lab.add_netns("a"), lab.add_netns("b"), lab.add_netns("sw")
    lab.add_netns("x")  # not on the path
    sh(f"ip -n {sw} link add br0 type bridge && ip -n {sw} link set br0 up")
    link(a, "eth0", sw, "pa")
    link(b, "eth0", sw, "pb")
    sh(f"ip -n {sw} link set pa master br0 && ip -n {sw} link set pb master br0")
    addr(a, "eth0", "10.67.0.1/24")
    addr(b, "eth0", "10.67.0.2/24")
    out = subprocess.run([sys.executable, "-m", "netlens", "trace", a, b, "--json"],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    whole = json.loads(json.dumps(run_trace(a, b).to_dict()))
    assert doc["hops"] == whole["hops"] and doc["verdict"] == whole["verdict"]
    assert doc["hops"][0]["l2"]["bridge"]["netns_name"] == sw


@pytest.mark.parametrize("thin", [True, False])
def test_cli_across_a_host_bridge_read_thin(lab: Lab, thin: bool) -> None:
    """On a host with many interfaces the CLI reads the host one interface at a
    time (forced here with NETLENS_TRACE_THIN_ABOVE=0): the veth peer, its
    bridge, the FDB's port; all ports only to follow a flooded frame. The answer
    equals a trace over a whole discovery, flooded (no FDB entry yet) and learned."""
    a, b = lab.add_netns("a"), lab.add_netns("b")
    br = lab.add_bridge("br")
    for ns, end in ((a, "ha"), (b, "hb")):
        lab.add_veth(lab.name(end), f"{lab.name(end)}p", None, ns)
        sh(f"ip link set {lab.name(end)} master {br}")
        sh(f"ip -n {ns} link set {lab.name(end)}p name eth0")
    addr(a, "eth0", "10.69.0.1/24")
    addr(b, "eth0", "10.69.0.2/24")
    env = {**os.environ, "NETLENS_TRACE_THIN_ABOVE": "0" if thin else "100000"}

    def both() -> tuple[dict[str, Any], dict[str, Any]]:
        out = subprocess.run([sys.executable, "-m", "netlens", "trace", a, b, "--json"],
                             capture_output=True, text=True, env=env)  # fmt: skip
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout), json.loads(json.dumps(run_trace(a, b).to_dict()))

    doc, whole = both()
    assert doc["hops"][0]["l2"]["fdb"] == "flooded", doc["hops"][0]["l2"]
    assert doc["hops"] == whole["hops"] and doc["verdict"] == whole["verdict"]
    sh(f"ip netns exec {a} ping -c1 -W1 10.69.0.2")  # the bridge learns b's MAC
    doc, whole = both()
    assert doc["hops"][0]["l2"]["fdb"] == "learned", doc["hops"][0]["l2"]
    assert doc["hops"][0]["l2"]["port"]["name"] == lab.name("hb")
    assert doc["hops"] == whole["hops"] and doc["verdict"] == whole["verdict"]


def test_a_flooded_frame_finds_its_port_from_the_destinations_side(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No FDB entry for DST yet: the port is the one whose cable DST's veth ends on,
    asked of the kernel from DST's side, so the host (read thin) is read only for
    the path's interfaces, never for the decoy ports; the answer is a whole
    discovery's. With DST's cable on another bridge, no port of this one leads
    there, as a whole discovery says too."""
    from netlens.analysis.scope import Scope
    from netlens.discovery.nsfind import find_namespaces

    a, b, c = lab.add_netns("a"), lab.add_netns("b"), lab.add_netns("c")
    br, other = lab.add_bridge("br"), lab.add_bridge("bo")
    decoys = [lab.add_netns(f"d{i}") for i in range(3)]
    for ns, end, bridge in [
        (a, "ha", br), (b, "hb", br), (c, "hc", other),
        *((d, f"h{d[-2:]}", br) for d in decoys),
    ]:  # fmt: skip
        lab.add_veth(lab.name(end), f"{lab.name(end)}p", None, ns)
        sh(f"ip link set {lab.name(end)} master {bridge}")
        sh(f"ip -n {ns} link set {lab.name(end)}p name eth0")
    addr(a, "eth0", "10.69.0.1/24")
    addr(b, "eth0", "10.69.0.2/24")
    addr(c, "eth0", "10.69.0.3/24")
    for i, d in enumerate(decoys):
        addr(d, "eth0", f"10.69.0.{10 + i}/24")
    monkeypatch.setenv("NETLENS_TRACE_THIN_ABOVE", "0")

    def scoped(dst: str) -> tuple[TraceResult, Scope]:
        with NsQuery() as q:
            scope = Scope(find_namespaces(), q)
            scope.load([*scope.locate(a), *scope.locate(dst)])
            src_ep = resolve(scope.snap, a, is_dst=False)
            dst_ep = resolve(scope.snap, dst, is_dst=True)
            return trace(scope, src_ep, dst_ep, q), scope

    res, scope = scoped(b)
    l2 = res.hops[0].l2
    assert l2 is not None and l2.fdb == "flooded" and l2.port is not None
    assert l2.port.name == lab.name("hb") and res.verdict.result == "delivered"
    assert scope.host in scope.thin, "the host was read whole"
    host = scope.snap.netns(f"netns:{scope.host}")
    assert host is not None
    read = {i.name for i in host.interfaces}
    assert {lab.name("ha"), lab.name("hb"), br} <= read, read
    assert not read & {lab.name(f"h{d[-2:]}") for d in decoys}, read
    assert res.to_dict()["hops"] == run_trace(a, b).to_dict()["hops"]
    # c's cable ends on the other bridge: no port of br leads to it
    res, _scope = scoped(c)
    whole = run_trace(a, c)
    assert res.verdict == whole.verdict and res.verdict.result == "dropped", res.verdict
    assert "no port of bridge" in res.verdict.reason


def test_owners_of_an_address_in_any_spelling_never_on_loopback(
    routed: tuple[Lab, str, str, str],
) -> None:
    """Who owns an address (SRC given as an IP): compared as the kernel's bytes, so
    any spelling of an IPv6 address finds its owner; an address on loopback, or in
    127/8, owns nothing (every namespace has one); two owners are both named."""
    from netlens.analysis.scope import Scope
    from netlens.discovery.nsfind import find_namespaces
    from netlens.kernel.nsquery import NsQuery

    _lab, a, r, b = routed
    sh(f"ip -n {a} addr add fd79::1/64 dev eth0 nodad")
    sh(f"ip -n {b} addr add 10.66.9.9/32 dev lo")
    sh(f"ip -n {b} addr add 10.66.1.2/32 dev eth0")  # a's address, in b as well
    handles = find_namespaces()
    inode = {n: h.inode for h in handles for n in h.names}
    with NsQuery() as q:
        scope = Scope(handles, q)
        assert scope.owners("fd79:0:0::1") == scope.owners("fd79::1") == [inode[a]]
        assert scope.owners("10.66.2.1") == [inode[r]]
        assert scope.owners("10.66.9.9") == [] and scope.owners("127.0.0.1") == []
        assert sorted(scope.owners("10.66.1.2")) == sorted([inode[a], inode[b]])
    doc = subprocess.run(
        [sys.executable, "-m", "netlens", "trace", "10.66.2.1", b, "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert doc.returncode == 0, doc.stderr
    assert [h["netns_name"] for h in json.loads(doc.stdout)["hops"]] == [r, b]
