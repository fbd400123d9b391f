"""trace without a kernel: arguments, endpoint names, filter reading, rendering, JSON shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from netlens.analysis import filters
from netlens.analysis.endpoints import resolve
from netlens.analysis.render import render
from netlens.analysis.tracetypes import (
    Finding,
    Hop,
    Iface,
    L2Step,
    Packet,
    TraceResult,
    Verdict,
)
from netlens.cli import build_parser, main
from netlens.commands.trace import check_args
from netlens.errors import UsageError
from netlens.model.types import Address, Container, Interface, Netns, Server, Snapshot

pytestmark = pytest.mark.unit
SCHEMA = Path(__file__).resolve().parents[2] / "netlens" / "analysis" / "trace_schema.json"


def _ns(inode: int, name: str, *itfs: tuple[str, str], host: bool = False) -> Netns:
    interfaces = tuple(
        Interface(f"netns:{inode}", i + 2, ifname, "veth", "up", True,
                  addresses=(Address(4, ip, 24),))
        for i, (ifname, ip) in enumerate(itfs)
    )  # fmt: skip
    lo = Interface(f"netns:{inode}", 1, "lo", "loopback", addresses=(Address(4, "127.0.0.1", 8),))
    return Netns(
        f"netns:{inode}", inode, 4, host, name, names=(name,), interfaces=(lo, *interfaces)
    )


SNAP = Snapshot(
    Server("h", "6.18", "x86_64", 2, 1),
    (
        _ns(1, "host", ("eth0", "192.0.2.10"), host=True),
        _ns(2, "web", ("eth0", "10.0.0.2"), ("eth1", "10.0.1.2")),
        _ns(3, "db", ("eth0", "10.0.0.3")),
    ),
    (Container("docker:abcdef123456", "docker", "webapp", "netns:2", "abcdef123456"),),
)


# --- arguments ------------------------------------------------------------------------
def test_port_means_tcp_and_icmp_refuses_ports() -> None:
    args = build_parser().parse_args(["trace", "a", "b", "--port", "80"])
    assert check_args(args) == "tcp"
    assert check_args(build_parser().parse_args(["trace", "a", "b"])) == "icmp"
    udp = build_parser().parse_args(["trace", "a", "b", "--proto", "udp", "--port", "53"])
    assert check_args(udp) == "udp"
    with pytest.raises(UsageError, match="--port and --sport need"):
        check_args(build_parser().parse_args(["trace", "a", "b", "--proto", "icmp", "--port", "1"]))


@pytest.mark.parametrize("bad", [["--port", "0"], ["--port", "65536"], ["--sport", "x"],
                                 ["--proto", "sctp"]])  # fmt: skip
def test_bad_options_are_one_line_and_exit_2(
    bad: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["trace", "a", "b", *bad])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "trace" in err


# --- endpoints ------------------------------------------------------------------------
def test_endpoints_by_container_vrf_ip_and_interface() -> None:
    by_container = resolve(SNAP, "webapp", is_dst=True)
    assert by_container.ns is not None and by_container.ns.name == "web"
    assert by_container.address == "10.0.0.2"  # the first global address, loopback skipped
    assert resolve(SNAP, "abcd", is_dst=False).ns.name == "web"  # type: ignore[union-attr]
    assert resolve(SNAP, "netns:3", is_dst=True).address == "10.0.0.3"
    assert resolve(SNAP, "3", is_dst=True).ns.name == "db"  # type: ignore[union-attr]
    assert resolve(SNAP, "host", is_dst=True).address == "192.0.2.10"
    by_ip = resolve(SNAP, "10.0.1.2", is_dst=True)
    assert by_ip.ns is not None and by_ip.ns.name == "web" and by_ip.iface.name == "eth1"  # type: ignore[union-attr]
    itf = resolve(SNAP, "webapp:eth1", is_dst=True)
    assert itf.address == "10.0.1.2" and itf.label == "webapp:eth1"
    src = resolve(SNAP, "web", is_dst=False)
    assert src.address is None  # the kernel picks the source address


def test_outside_destination_and_bad_names() -> None:
    out = resolve(SNAP, "198.51.100.7", is_dst=True)
    assert out.ns is None and out.address == "198.51.100.7"
    with pytest.raises(UsageError, match="not an address of any namespace"):
        resolve(SNAP, "198.51.100.7", is_dst=False)
    with pytest.raises(UsageError, match="did you mean 'webapp'"):
        resolve(SNAP, "webap", is_dst=True)
    with pytest.raises(UsageError, match="has no interface 'eth9'; did you mean 'eth1' or 'eth0'"):
        resolve(SNAP, "webapp:eth9", is_dst=True)
    with pytest.raises(UsageError, match=r"no container, VRF or address matches 'zzz'$"):
        resolve(SNAP, "zzz", is_dst=False)
    with pytest.raises(UsageError, match="is empty"):
        resolve(SNAP, "", is_dst=False)


# --- filter reading -------------------------------------------------------------------
def _chain(name: str, hook: str, policy: str = "accept", family: str = "inet") -> dict[str, Any]:
    return {"chain": {"family": family, "table": "t", "name": name, "hook": hook,
                      "type": "filter", "prio": 0, "policy": policy}}  # fmt: skip


def _rule(
    chain: str, *expr: dict[str, Any], family: str = "inet", handle: int = 5
) -> dict[str, Any]:
    return {"rule": {"family": family, "table": "t", "chain": chain, "handle": handle,
                     "expr": list(expr)}}  # fmt: skip


def _m(left: dict[str, Any], right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


DADDR = {"payload": {"protocol": "ip", "field": "daddr"}}
DPORT = {"payload": {"protocol": "tcp", "field": "dport"}}
PKT = Packet("10.0.0.2", "10.0.1.9", "tcp", 40000, 22)


def test_rule_that_matches_drops_and_names_itself() -> None:
    rs = [_chain("fw", "forward"),
          _rule("fw", _m(DADDR, {"prefix": {"addr": "10.0.1.0", "len": 24}}), _m(DPORT, 22),
                {"counter": None}, {"drop": None})]  # fmt: skip
    v = filters.evaluate(rs, "forward", PKT, "eth0", "eth1", ("ip", "inet"))
    assert v.verdict == "drop" and v.rule == "inet t fw handle 5: drop"
    other = filters.evaluate(rs, "forward", Packet("10.0.0.2", "10.0.1.9", "tcp", 1, 80),
                             "eth0", "eth1", ("ip", "inet"))  # fmt: skip
    assert other.verdict == "accept"
    assert filters.evaluate(rs, "input", PKT, "eth0", None, ("ip", "inet")).verdict == "accept"
    assert filters.evaluate(rs, "forward", PKT, "e", "f", ("ip6",)).verdict == "accept"


def test_policy_jump_and_unknown_matches() -> None:
    rs = [_chain("fw", "forward", policy="drop"), _chain("sub", ""),
          _rule("fw", {"match": {"op": "in", "left": {"ct": {"key": "state"}},
                                 "right": ["established"]}}, {"accept": None}),
          _rule("fw", _m({"meta": {"key": "iifname"}}, "eth*"), {"jump": {"target": "sub"}}),
          _rule("sub", {"xt": {"type": "match", "name": "conntrack"}}, {"drop": None}, handle=9),
          _rule("sub", _m(DPORT, {"set": [22, 80]}), {"accept": None}, handle=10)]  # fmt: skip
    v = filters.evaluate(rs, "forward", PKT, "eth0", "eth1", ("ip", "inet"))
    assert v.verdict == "accept"  # accepted in the jumped-to chain
    assert v.maybe == ["inet t sub handle 9: drop under conditions not evaluated"]
    udp = Packet("10.0.0.2", "10.0.1.9", "udp", 1, 22)
    pol = filters.evaluate(rs, "forward", udp, "eth0", "eth1", ("ip", "inet"))
    assert pol.verdict == "drop" and pol.rule == "policy drop of chain fw (table inet t)"
    assert filters.evaluate(None, "forward", PKT, None, None, ("ip",)).verdict == "unknown"


# --- rendering and JSON ---------------------------------------------------------------
def _result() -> TraceResult:
    evil = "we\x1b[31mb"
    a = Iface("netns:2", evil, 2, "eth0", 1500)
    b = Iface("netns:3", "db", 2, "eth0", 1400)
    br = Iface("netns:9", "sw", 3, "br0", 1500)
    hops = (
        Hop(1, "netns:2", evil, "source", PKT, None,
            {"type": "unicast", "table": 254, "gateway": None, "prefsrc": "10.0.0.2", "oif": 2,
             "metric": None, "mtu": None, "error": None},
            a, None, {"ip": "10.0.1.9", "mac": "02:00:00:00:00:03", "state": "reachable"},
            L2Step("bridge", br, "learned", Iface("netns:9", "sw", 4, "pb", 1500), "forwarding", b),
            notes=("a note",)),
        Hop(2, "netns:3", "db", "destination", PKT, b,
            {"type": "local", "table": 255, "gateway": None, "prefsrc": None, "oif": 1,
             "metric": None, "mtu": None, "error": None}, sysctls={"rp_filter": 0}),
    )  # fmt: skip
    verdict = Verdict("delivered", 2, "delivered to db (10.0.1.9)")
    return TraceResult({"src": evil, "dst": "db", "src_netns": "netns:2", "dst_netns": "netns:3",
                        "proto": "tcp", "sport": None, "dport": 22, "src_address": "10.0.0.2"},
                       hops, verdict, 1400, "db:eth0",
                       (Finding("warning", 2, "asymmetric \x1b]52;c;x\x07"),))  # fmt: skip


def test_render_reads_like_a_hop_table_and_escapes_names() -> None:
    text = render(_result())
    assert "\x1b" not in text and "we\\x1b[31mb" in text
    lines = text.splitlines()
    assert lines[1].split() == [
        "#",
        "VRF",
        "IN",
        "PACKET",
        "ROUTE",
        "NEXT",
        "HOP",
        "L2",
        "/",
        "NEXT",
        "VRF",
    ]
    assert "bridge br0 fdb learned port pb -> db:eth0" in lines[2]
    assert "unicast dev eth0 table 254" in lines[2]
    assert "smallest MTU on the path: 1400 (db:eth0)" in text
    assert "warning at hop 2: asymmetric \\x1b]52;c;x\\x07" in text
    assert lines[-1] == "verdict: DELIVERED: delivered to db (10.0.1.9)"


def test_json_matches_the_shipped_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    doc = json.loads(json.dumps(_result().to_dict()))
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(doc, schema)
    assert doc["schema"] == "netlens-trace/1"
    broken = {**doc, "verdict": {**doc["verdict"], "result": "maybe"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
