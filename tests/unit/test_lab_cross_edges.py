"""The lab checks that look across a whole file (netlens_runtime.lab_cross): nodes
against networks, links, routes and traffic flows, each refusal one exact line.

Written against the mutants that survived the first mutation run of lab_cross.py
(``make mutation MODULES=lab_cross``): errors with no text or the wrong place, a
flow's default port and rate, a route's device looked up the wrong way round, a
gateway reachable only over a point-to-point link.
"""

from __future__ import annotations

import pytest

from netlens_runtime.errors import BadInput
from netlens_runtime.lab_spec import load_lab

pytestmark = pytest.mark.unit

TWO = "networks:\n  n: {subnet: 10.0.0.0/24}\nnodes:\n  a: {ip: 10.0.0.2}\n  b: {ip: 10.0.0.3}\n"

CASES = [
    (
        "name: x\nnetworks:\n  n: {}\nnodes:\n  a: {ip: 10.0.0.2}\n",
        "lab.yaml:5: nodes.a.ip: network 'n' has no subnet, so 10.0.0.2 cannot be placed",
    ),
    (
        "name: x\nnodes:\n  a: {ip: 10.0.0.2, network: null}\n",
        "lab.yaml:3: nodes.a.ip: node 'a' has an ip but no network",
    ),
    (
        "name: x\nnodes:\n  a: {network: null, impair: {delay: 5ms}}\n",
        "lab.yaml:3: nodes.a.impair: node 'a' has no network, so no eth0 to impair"
        " (impair its links or interfaces instead)",
    ),
    (
        "name: x\nnetworks:\n  n: {subnet: 10.0.0.0/24}\n  m: {subnet: 10.0.1.0/24}\n"
        "nodes:\n  a:\n    network: n\n    interfaces: [{network: n, ifname: e1}]\n",
        "lab.yaml:8: nodes.a.interfaces[0]: node 'a' is already on network 'n'",
    ),
    (
        "name: x\nnetworks:\n  n: {subnet: 10.0.0.0/24}\n  m: {subnet: 10.0.1.0/24}\n"
        "nodes:\n  a:\n    network: n\n    interfaces: [{network: m, ifname: eth0}]\n",
        "lab.yaml:8: nodes.a.interfaces[0]: interface 'eth0' is already used by its network 'n'",
    ),
    (
        "name: x\nnetworks:\n  n: {subnet: 10.0.0.0/24}\n  m: {subnet: 10.0.1.0/24}\n"
        "nodes:\n  a:\n    network: n\n    interfaces: [{network: m, ifname: e1, ip: 10.0.1.0}]\n",
        "lab.yaml:8: nodes.a.interfaces[0]: node 'a': address 10.0.1.0 is not a host address"
        " of 10.0.1.0/24",
    ),
    (
        "name: x\nnodes:\n  a:\n    links: [{peer: b, ifname: e1}, {peer: c, ifname: e1}]\n"
        "  b: {}\n  c: {}\n",
        "lab.yaml:4: nodes.a.links[1]: interface 'e1' is already used by the link to 'b'",
    ),
    (
        "name: x\nnodes:\n  a:\n    routes: [{to: 10.9.0.0/16, dev: e7}]\n",
        "lab.yaml:4: nodes.a.routes[0]: node 'a' has no interface 'e7'",
    ),
    (
        "name: x\nnodes:\n  a:\n    links: [{peer: b, ifname: e1, addr: 10.0.0.1/30}]\n"
        "    routes: [{to: 10.9.0.0/16, via: 10.0.0.9}]\n  b: {}\n",
        "lab.yaml:5: nodes.a.routes[0]: gateway 10.0.0.9 is not on any network of node 'a'",
    ),
    (
        "name: x\nnodes:\n  a: {}\nlinks:\n"
        "  - a: {node: a, ifname: e1}\n    b: {node: a, ifname: e2}\n",
        "lab.yaml:5: links[0]: a link needs two different nodes",
    ),
    (
        "name: x\nnodes:\n  a: {}\n  b: {}\nlinks:\n"
        "  - a: {node: a, ifname: e1, addr: 10.0.0.1/30}\n"
        "    b: {node: b, ifname: e1, addr: 10.0.0.1/30}\n",
        "lab.yaml:6: links[0]: both ends have the address 10.0.0.1",
    ),
    (
        "name: x\nnodes:\n  a: {}\n  b: {}\n  c: {}\nlinks:\n"
        "  - a: {node: a, ifname: e1, addr: 10.0.0.1/30}\n    b: {node: b, ifname: e1}\n"
        "  - a: {node: c, ifname: e1}\n    b: {node: b, ifname: e2, addr: 10.0.0.1/30}\n",
        "lab.yaml:9: links[1]: 10.0.0.1 is already used by the link at line 7",
    ),
    (
        "name: x\n" + TWO + "traffic:\n  - {from: a}\n",
        "lab.yaml:8: traffic[0]: missing field 'to'",
    ),
    (
        "name: x\n" + TWO + "traffic:\n  - {to: a}\n",
        "lab.yaml:8: traffic[0]: missing field 'from'",
    ),
    (
        "name: x\n" + TWO + "traffic:\n  - {from: z, to: a}\n",
        "lab.yaml:8: traffic[0].from: no node 'z' in this lab",
    ),
    (
        "name: x\n" + TWO + "traffic:\n  - {from: a, to: z}\n",
        "lab.yaml:8: traffic[0].to: no node 'z' in this lab",
    ),
    (
        "name: x\n" + TWO + "traffic:\n  - {from: a, to: a}\n",
        "lab.yaml:8: traffic[0]: a flow needs two different nodes",
    ),
    (
        "name: x\nnetworks:\n  n: {subnet: 10.0.0.0/24}\nnodes:\n  a: {ip: 10.0.0.2}\n  b: {}\n"
        "traffic:\n  - {from: a, to: b}\n",
        "lab.yaml:8: traffic[0].to: node 'b' has no fixed ip, so it cannot receive traffic",
    ),
    (
        "name: x\n" + TWO + "traffic:\n  - {from: a, to: b, proto: sctp}\n",
        "lab.yaml:8: traffic[0].proto: 'sctp': expected tcp or udp",
    ),
    (
        "name: x\n" + TWO + "traffic:\n  - {from: a, to: b, port: 0}\n",
        "lab.yaml:8: traffic[0].port: 0 is out of range (1..65535)",
    ),
    (
        "name: x\n" + TWO + "traffic:\n  - {from: a, to: b, prot: tcp}\n",
        "lab.yaml:8: traffic[0].prot: unknown field (expected one of: from, port, proto, rate, to)",
    ),
]


@pytest.mark.parametrize(
    ("text", "message"), CASES, ids=[c[1].split(": ", 2)[-1][:40] for c in CASES]
)
def test_refused_with_file_line_field_and_reason(text: str, message: str) -> None:
    with pytest.raises(BadInput) as info:
        load_lab("lab.yaml", text=text)
    assert str(info.value) == message


def test_flow_defaults_and_bounds() -> None:
    spec = load_lab(
        "lab.yaml",
        text="name: x\n"
        + TWO
        + "traffic:\n  - {from: a, to: b}\n  - {from: b, to: a, proto: UDP}\n"
        "  - {from: a, to: b, port: 1}\n  - {from: a, to: b, port: 65535, rate: 3mbit}\n",
    )
    got = [(f.src, f.dst, f.proto, f.port, f.min_bps, f.max_bps) for f in spec.traffic]
    assert got == [
        ("a", "b", "tcp", 5201, 1_000_000, 10_000_000),
        ("b", "a", "udp", 5202, 1_000_000, 10_000_000),
        ("a", "b", "tcp", 1, 1_000_000, 10_000_000),
        ("a", "b", "tcp", 65535, 3_000_000, 3_000_000),
    ]


def test_routes_via_a_link_or_a_network_gateway_and_by_device() -> None:
    spec = load_lab(
        "lab.yaml",
        text="name: x\nnetworks:\n  n: {subnet: 10.0.0.0/24, gateway: 10.0.0.254}\nnodes:\n"
        "  a:\n    network: n\n    ip: 10.0.0.1\n"
        "    links: [{peer: b, ifname: e1, addr: 10.9.0.1/30, peer_addr: 10.9.0.2/30}]\n"
        "    routes: [{to: 10.8.0.0/16, via: 10.9.0.2}, {to: 10.7.0.0/16, dev: e1},"
        " {to: 10.6.0.0/16, via: 10.0.0.9}]\n"
        "  b:\n    network: n\n    routes: [{to: 10.5.0.0/16, via: 10.9.0.1}]\n",
    )
    assert [(r.to, r.via, r.dev) for r in spec.node("a").routes] == [
        ("10.8.0.0/16", "10.9.0.2", None),
        ("10.7.0.0/16", None, "e1"),
        ("10.6.0.0/16", "10.0.0.9", None),
    ]
    assert [r.via for r in spec.node("b").routes] == ["10.9.0.1"]  # b's end of the link
    one_sided = load_lab(
        "lab.yaml",
        text="name: x\nnodes:\n  a:\n    links: [{peer: b, ifname: e1, addr: 10.9.0.1/30}]\n"
        "    routes: [{to: 10.8.0.0/16, via: 10.9.0.2}]\n  b: {}\n",
    )  # only a's end has an address: a's own subnet carries the gateway
    assert [r.via for r in one_sided.node("a").routes] == ["10.9.0.2"]


def test_a_node_may_take_address_1_when_the_gateway_is_elsewhere() -> None:
    spec = load_lab(
        "lab.yaml",
        text="name: x\nnetworks:\n  n: {subnet: 10.0.0.0/24, gateway: 10.0.0.254}\n"
        "nodes:\n  a: {ip: 10.0.0.1}\n",
    )
    assert spec.node("a").ip == "10.0.0.1"
    with pytest.raises(BadInput) as info:
        load_lab(
            "lab.yaml",
            text="name: x\nnetworks:\n  n: {subnet: 10.0.0.0/24, gateway: 10.0.0.254}\n"
            "nodes:\n  a: {ip: 10.0.0.254}\n",
        )
    assert str(info.value) == (
        "lab.yaml:5: nodes.a.ip: 10.0.0.254 (node 'a') is already used by the gateway of"
        " network 'n'"
    )
