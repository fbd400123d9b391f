"""Unit tests of the runtime's pure parts: names, IPAM, flags, NAT rendering, netlink bytes."""

from __future__ import annotations

import ipaddress
import json
import os
import struct
from pathlib import Path

import pytest
from nft_text import rules

from netlens.kernel import consts
from netlens_runtime import ipam, names, nat, netlink, state
from netlens_runtime.errors import BadInput, Conflict

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", ["a", "web-1", "r1.core", "A_b", "x" * 63])
def test_valid_names(name: str) -> None:
    assert names.validate_name(name) == name


@pytest.mark.parametrize("name", ["", "-a", ".a", "a b", "a/b", "x" * 64, "é"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(BadInput):
        names.validate_name(name)


@pytest.mark.parametrize("name", ["eth0", "x" * 15])
def test_ifname_ok(name: str) -> None:
    assert names.validate_ifname(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "", "x" * 16, "a/b", "a:b", "a b", "..", ".", "a\tb", "a\0b",
        # special to nft (wildcard, quoting) or iptables (wildcard, options)
        'x";drop;#', "+", "eth+", "eth*", "a'b", "a\\b", "-x", "a;b", "a{b}", "a$b",
        "\x1b[31mbr", "é", "a@b",
    ],
)  # fmt: skip
def test_ifname_bad(name: str) -> None:
    with pytest.raises(BadInput):
        names.validate_ifname(name)
    assert names.ifname_problem(name)


def test_derived_names_fit_and_differ() -> None:
    seen = set()
    for i in range(2000):
        veth = names.host_veth_name(f"c{i}")
        assert len(veth.encode()) <= 15 and names.HOST_VETH_RE.match(veth)
        seen.add(veth)
    assert len(seen) == 2000
    assert names.host_veth_name("c1") == names.host_veth_name("c1")
    assert names.host_veth_name("c1", "abcd1234") != names.host_veth_name("c1")
    assert names.bridge_name("default") == "netlens0"
    assert names.bridge_name("default", "abcd1234") != "netlens0"
    assert len(names.bridge_name("a" * 63).encode()) <= 15
    assert names.cgroup_leaf("c1", "") == "c1"
    assert names.cgroup_leaf("c1", "ab") == "c1.ab"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("64m", 64 << 20),
        ("1g", 1 << 30),
        ("8192k", 8 << 20),
        ("64MB", 64 << 20),
        ("5242880", 5 << 20),
    ],
)
def test_parse_memory(text: str, value: int) -> None:
    assert names.parse_memory(text) == value


@pytest.mark.parametrize("text", ["", "x", "-1m", "1m", "10q"])
def test_parse_memory_bad(text: str) -> None:
    with pytest.raises(BadInput):
        names.parse_memory(text)


def test_parse_cpus() -> None:
    assert names.parse_cpus("0.5") == 0.5
    for bad in ("0", "x", "-1"):
        with pytest.raises(BadInput):
            names.parse_cpus(bad)


def test_parse_publish() -> None:
    assert names.parse_publish("8080:80") == {
        "host_ip": None, "host_port": 8080, "port": 80, "proto": "tcp",
    }  # fmt: skip
    got = names.parse_publish("127.0.0.1:53:5353/udp")
    assert got == {"host_ip": "127.0.0.1", "host_port": 53, "port": 5353, "proto": "udp"}
    # 0.0.0.0 is every host address, like no address at all (Docker's meaning)
    assert names.parse_publish("0.0.0.0:18090:8000") == names.parse_publish("18090:8000")
    for bad in ("80", "a:b", "0:80", "80:70000", "1:2/sctp", "x:1:2"):
        with pytest.raises(BadInput):
            names.parse_publish(bad)


def test_parse_kv() -> None:
    assert names.parse_kv("A=b=c", "--env") == ("A", "b=c")
    with pytest.raises(BadInput):
        names.parse_kv("A", "--env")


def test_cap_mask() -> None:
    mask = names.cap_mask([])
    assert not mask & (1 << names.CAPS["SYS_ADMIN"])
    assert not mask & (1 << names.CAPS["NET_ADMIN"])
    assert mask & (1 << names.CAPS["NET_RAW"])
    assert names.cap_mask(["CAP_NET_ADMIN"]) & (1 << names.CAPS["NET_ADMIN"])
    assert names.cap_mask(["net_admin"]) == names.cap_mask(["NET_ADMIN"])
    with pytest.raises(BadInput):
        names.cap_mask(["FLY"])


def test_sysctl_validation() -> None:
    assert names.validate_sysctl("net.ipv4.ip_forward")
    for bad in ("kernel.panic", "net/../x", "vm.swappiness"):
        with pytest.raises(BadInput):
            names.validate_sysctl(bad)


def _net(text: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(text)


def test_pick_subnet_avoids_routes_and_networks() -> None:
    assert ipam.pick_subnet([]) == _net("10.88.0.0/16")
    taken = [("route", _net("10.88.5.0/24")), ("net", _net("10.89.0.0/24"))]
    assert ipam.pick_subnet(taken) == _net("10.89.1.0/24")


def test_check_free_refuses_overlap() -> None:
    with pytest.raises(Conflict, match="overlaps"):
        ipam.check_free(_net("10.88.1.0/24"), [("network default", _net("10.88.0.0/16"))])
    ipam.check_free(_net("10.90.0.0/24"), [("network default", _net("10.88.0.0/16"))])


def test_allocate() -> None:
    net = _net("10.0.0.0/29")
    gw = ipam.gateway_for(net, None)
    assert gw == "10.0.0.1"
    used: set[str] = set()
    got = []
    for _ in range(5):
        ip = ipam.allocate(net, gw, used)
        used.add(ip)
        got.append(ip)
    assert got == [f"10.0.0.{i}" for i in range(2, 7)]
    with pytest.raises(Conflict, match="no free address"):
        ipam.allocate(net, gw, used)
    with pytest.raises(Conflict, match="already in use"):
        ipam.allocate(net, gw, used, "10.0.0.3")
    with pytest.raises(Conflict, match="gateway"):
        ipam.allocate(net, gw, set(), "10.0.0.1")
    for bad in ("10.0.0.7", "10.0.0.0", "10.0.1.2", "x"):
        with pytest.raises(BadInput):
            ipam.allocate(net, gw, set(), bad)


def test_gateway_validation() -> None:
    net = _net("10.0.0.0/24")
    assert ipam.gateway_for(net, "10.0.0.254") == "10.0.0.254"
    for bad in ("10.0.1.1", "10.0.0.255", "nope"):
        with pytest.raises(BadInput):
            ipam.gateway_for(net, bad)


def test_parse_subnet() -> None:
    assert ipam.parse_subnet("10.1.0.0/16") == _net("10.1.0.0/16")
    for bad in ("10.1.0.1/16", "10.1.0.0/31", "x"):
        with pytest.raises(BadInput):
            ipam.parse_subnet(bad)


def test_host_routes(tmp_path: Path) -> None:
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\n"
        "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n"
    )
    assert ipam.host_routes(str(table)) == [_net("192.0.2.0/24")]


def test_nat_render() -> None:
    nets = [
        {
            "name": "a", "bridge": "nlbA", "subnet": "10.5.0.0/24", "nat": True,
            "published": {"web": [
                {"host_ip": None, "host_port": 8080, "port": 80, "proto": "tcp", "ip": "10.5.0.2"}
            ]},
        },
        {"name": "b", "bridge": "nlbB", "subnet": "10.6.0.0/24", "nat": False, "published": {}},
    ]  # fmt: skip
    cmds = json.loads(nat.render(nets, "netlens"))["nftables"]
    table = {"family": "ip", "name": "netlens"}
    assert cmds[:2] == [{"add": {"table": table}}, {"delete": {"table": table}}]
    post = rules(cmds, "postrouting")
    assert "ip saddr 10.5.0.0/24 oifname != @bridges masquerade" in post
    assert not [r for r in post if "10.6.0.0/24" in r]  # no NAT for b
    assert 'iifname "nlbB" accept' in rules(cmds, "forward")
    dnat = "fib daddr type local tcp dport 8080 dnat to 10.5.0.2:80"
    assert rules(cmds, "prerouting") == rules(cmds, "output") == [dnat]
    assert json.loads(nat.render([], "netlens"))["nftables"] == cmds[:2]


def test_nat_table_scoped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NETLENS_STATE_DIR", "/run/netlens")
    assert nat.table_name() == "netlens"
    monkeypatch.setenv("NETLENS_STATE_DIR", str(tmp_path))
    assert nat.table_name().startswith("netlens_") and nat.table_name() != "netlens"


def test_state_atomic_and_pending(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NETLENS_STATE_DIR", str(tmp_path))
    rec = {"name": "c1", "id": "1", "pid": 0, "netns_inode": 0, "state": "exited",
           "created": "2024-01-01T00:00:00.000Z", "command": ["true"]}  # fmt: skip
    with state.locked():
        state.write_json(state.container_path("c1"), rec)
    assert json.loads((tmp_path / "containers" / "c1.json").read_text()) == rec
    assert not [p for p in os.listdir(tmp_path / "containers") if ".tmp" in p]
    assert state.load_containers() == {"c1": rec}
    path = state.write_pending(["c1", "c2"])
    assert state.load_pending() == [(path, {"owner": os.getpid(), "names": ["c1", "c2"]})]


def _attrs(body: bytes) -> dict[int, bytes]:
    out = {}
    off = 0
    while off + 4 <= len(body):
        alen, kind = struct.unpack_from("=HH", body, off)
        out[kind & 0x3FFF] = body[off + 4 : off + alen]
        off += (alen + 3) & ~3
    return out


def test_netlink_messages() -> None:
    nl = netlink.Netlink.__new__(netlink.Netlink)
    nl.seq = 0
    nl.queue = []
    nl.add_addr(7, "10.1.2.3/24")
    nl.add_default_route("10.1.2.1", 7)
    nl.add_veth("nlvx", "eth0", peer_netns_fd=9, master=4, mtu=1400)
    (s1, addr, _), (s2, route, _), (_, veth, what) = nl.queue
    assert (s1, s2) == (1, 2)
    length, mtype, flags, seq, _ = struct.unpack_from("=IHHII", addr)
    assert (length, mtype, seq) == (len(addr), consts.RTM_NEWADDR, 1)
    assert flags & consts.NLM_F_ACK and flags & consts.NLM_F_CREATE
    _fam, plen, _, _, index = struct.unpack_from("=BBBBI", addr, 16)
    assert (plen, index) == (24, 7)
    attrs = _attrs(addr[24:])
    assert attrs[consts.IFA_LOCAL] == bytes([10, 1, 2, 3])
    assert attrs[consts.IFA_BROADCAST] == bytes([10, 1, 2, 255])
    rattrs = _attrs(route[28:])
    assert rattrs[consts.RTA_GATEWAY] == bytes([10, 1, 2, 1])
    assert struct.unpack("=I", rattrs[consts.RTA_OIF])[0] == 7
    vattrs = _attrs(veth[32:])
    assert vattrs[consts.IFLA_IFNAME] == b"nlvx\0"
    assert struct.unpack("=I", vattrs[consts.IFLA_MASTER])[0] == 4
    info = _attrs(vattrs[consts.IFLA_LINKINFO])
    assert info[consts.IFLA_INFO_KIND] == b"veth\0"
    peer = _attrs(info[consts.IFLA_INFO_DATA])[consts.VETH_INFO_PEER]
    pattrs = _attrs(peer[16:])
    assert pattrs[consts.IFLA_IFNAME] == b"eth0\0"
    assert struct.unpack("=I", pattrs[consts.IFLA_NET_NS_FD])[0] == 9
    assert "nlvx" in what
