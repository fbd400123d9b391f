"""The rtnetlink codec, the namespace finder and the multi-request exchange.

Messages are built byte by byte here (the kernel's layouts from linux/rtnetlink.h)
so each parser is checked against an input whose every field the test chose.
"""

from __future__ import annotations

import os
import socket
import struct
from collections import deque
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netlens.discovery import builders as nl
from netlens.discovery.nsfind import find_namespaces, parse_mountinfo
from netlens.discovery.server import _cpus_from_list
from netlens.kernel import consts, decode, wire

pytestmark = pytest.mark.unit

A = wire.nla


def msg(msg_type: int, body: bytes, seq: int = 1, flags: int = consts.NLM_F_MULTI) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), msg_type, flags, seq, 4242) + body


def done(seq: int = 1, flags: int = consts.NLM_F_MULTI) -> bytes:
    return struct.pack("=IHHIIi", 20, consts.NLMSG_DONE, flags, seq, 4242, 0)


def ifinfo(index: int, flags: int, *attrs: bytes, iftype: int = 1) -> bytes:
    return msg(
        consts.RTM_NEWLINK, struct.pack("=BxHiII", 0, iftype, index, flags, 0) + b"".join(attrs)
    )


def u32(v: int) -> bytes:
    return struct.pack("=I", v)


def s(text: str) -> bytes:
    return text.encode() + b"\0"


def linkinfo(kind: str, data: bytes = b"", slave: str | None = None, sdata: bytes = b"") -> bytes:
    inner = A(1, s(kind)) if kind else b""
    if data:
        inner += A(2, data)
    if slave:
        inner += A(4, s(slave)) + A(5, sdata)
    return A(18, inner)


# --- requests --------------------------------------------------------------------------------
def test_dump_requests_have_the_kernel_layout() -> None:
    for name, (mtype, family) in wire.REQUESTS.items():
        data = wire.dump_request(name, seq=7)
        ln, typ, flags, seq, pid = struct.unpack_from("=IHHII", data)
        assert (ln, typ, seq, pid) == (len(data), mtype, 7, 0)
        assert flags == consts.NLM_F_REQUEST | consts.NLM_F_DUMP
        assert data[16] == family
    nsid = wire.nsid_request(33, seq=2)
    assert struct.unpack_from("=IH", nsid)[1] == consts.RTM_GETNSID
    assert struct.unpack_from("=HHI", nsid, 20) == (8, consts.NETNSA_FD, 33)


# --- links ------------------------------------------------------------------------------------
def test_parse_link_fields_and_counters() -> None:
    stats = struct.pack("=8Q", 10, 20, 1000, 2000, 1, 2, 3, 4) + bytes(8 * 16)
    data = (
        ifinfo(
            5,
            consts.IFF_UP | consts.IFF_LOWER_UP,
            A(3, s("veth-a")),
            A(4, u32(9000)),
            A(1, bytes.fromhex("020000000005")),
            A(16, bytes([6])),
            A(33, bytes([1])),
            A(20, s("uplink to rack 3")),
            A(10, u32(3)),
            A(5, u32(17)),
            A(37, struct.pack("=i", 4)),
            A(23, stats),
            linkinfo("veth"),
        )
        + done()
    )
    (rec,) = nl.parse_links(data)
    assert (rec.ifindex, rec.name, rec.kind, rec.mtu, rec.mac) == (
        5,
        "veth-a",
        "veth",
        9000,
        "02:00:00:00:00:05",
    )
    assert rec.operstate == "up" and rec.carrier is True and rec.alias == "uplink to rack 3"
    assert (rec.master, rec.link, rec.link_netnsid) == (3, 17, 4)
    assert rec.counters is not None
    c = rec.counters
    assert (c.rx_packets, c.tx_packets, c.rx_bytes, c.tx_bytes) == (10, 20, 1000, 2000)
    assert (c.rx_errors, c.tx_errors, c.rx_dropped, c.tx_dropped) == (1, 2, 3, 4)


def test_kind_defaults_loopback_and_ether() -> None:
    data = ifinfo(1, consts.IFF_LOOPBACK, A(3, s("lo")), iftype=772) + ifinfo(2, 0, A(3, s("eth0")))
    assert [(r.name, r.kind, r.operstate) for r in nl.parse_links(data)] == [
        ("lo", "loopback", "unknown"),
        ("eth0", "ether", "unknown"),
    ]


def test_bridge_and_bridge_port() -> None:
    br_id = bytes([0x80, 0x00]) + bytes.fromhex("02aabbccddee")
    bridge = ifinfo(
        3,
        1,
        A(3, s("br0")),
        linkinfo(
            "bridge",
            A(1, u32(1500))
            + A(4, u32(30000))
            + A(5, u32(1))
            + A(7, b"\1")
            + A(11, br_id)
            + A(10, br_id),
        ),
    )
    port = ifinfo(
        4,
        1,
        A(3, s("p1")),
        A(10, u32(3)),
        linkinfo(
            "veth",
            slave="bridge",
            sdata=A(1, b"\4")
            + A(2, struct.pack("=H", 32))
            + A(3, u32(100))
            + A(4, b"\0")
            + A(8, b"\1")
            + A(9, b"\0"),
        ),
    )
    b, p = nl.parse_links(bridge + port)
    assert b.bridge is not None
    assert (b.bridge.stp, b.bridge.vlan_filtering) == (True, True)
    assert (b.bridge.forward_delay_cs, b.bridge.ageing_time_cs) == (1500, 30000)
    assert b.bridge.bridge_id == "8000.02:aa:bb:cc:dd:ee" == b.bridge.root_id
    assert p.kind == "veth" and p.slave_kind == "bridge" and p.port is not None
    assert (p.port.state, p.port.priority, p.port.cost) == ("blocking", 32, 100)
    assert (p.port.hairpin, p.port.learning, p.port.flood) == (False, True, False)


def test_vxlan_unicast_and_multicast() -> None:
    uni = ifinfo(
        6,
        1,
        A(3, s("vx0")),
        linkinfo(
            "vxlan",
            A(1, u32(42))
            + A(2, bytes([192, 0, 2, 7]))
            + A(3, u32(2))
            + A(4, bytes([10, 0, 0, 1]))
            + A(15, struct.pack(">H", 4789))
            + A(7, b"\0"),
        ),
    )
    group6 = socket.inet_pton(socket.AF_INET6, "ff05::42")
    mc = ifinfo(7, 1, A(3, s("vx1")), linkinfo("vxlan", A(1, u32(43)) + A(16, group6)))
    a, b = nl.parse_links(uni + mc)
    assert a.vxlan is not None and b.vxlan is not None
    assert (a.vxlan.vni, a.vxlan.remote, a.vxlan.group, a.vxlan.local) == (
        42,
        "192.0.2.7",
        None,
        "10.0.0.1",
    )
    assert (a.vxlan.port, a.vxlan.underlay, a.vxlan.learning) == (4789, 2, False)
    assert (b.vxlan.vni, b.vxlan.remote, b.vxlan.group) == (43, None, "ff05::42")


def test_vlan_8021ad_and_macvlan_modes() -> None:
    vlan = ifinfo(
        8,
        1,
        A(3, s("q")),
        A(5, u32(2)),
        linkinfo("vlan", A(1, struct.pack("=H", 7)) + A(5, struct.pack(">H", 0x88A8))),
    )
    mv = ifinfo(9, 1, A(3, s("m")), A(5, u32(2)), linkinfo("macvlan", A(1, u32(16))))
    a, b = nl.parse_links(vlan + mv)
    assert a.vlan is not None and (a.vlan.vlan_id, a.vlan.protocol) == (7, "802.1ad")
    assert b.macvlan is not None and b.macvlan.mode == "source" and b.link == 2


# --- addresses, routes, rules, neighbours, fdb ------------------------------------------------
def ifaddr(fam: int, plen: int, scope: int, index: int, *attrs: bytes) -> bytes:
    return msg(
        consts.RTM_NEWADDR, struct.pack("=BBBBI", fam, plen, 0, scope, index) + b"".join(attrs)
    )


def test_parse_addrs() -> None:
    v4 = bytes([10, 1, 2, 3])
    data = (
        ifaddr(
            2,
            24,
            0,
            5,
            A(1, v4),
            A(2, v4),
            A(4, bytes([10, 1, 2, 255])),
            A(3, s("eth0:1")),
            A(6, bytes(16)),
        )
        + ifaddr(10, 64, 253, 5, A(1, socket.inet_pton(socket.AF_INET6, "fe80::1")))
        + ifaddr(7, 0, 0, 5, A(1, b"\0" * 4))  # not v4/v6: ignored
        + done()
    )
    out = nl.parse_addrs(data)
    assert list(out) == [5]
    a, b = out[5]
    assert (a.family, a.address, a.prefixlen, a.scope, a.broadcast, a.label) == (
        4,
        "10.1.2.3",
        24,
        "global",
        "10.1.2.255",
        "eth0:1",
    )
    assert (b.family, b.cidr, b.scope) == (6, "fe80::1/64", "link")


def test_addr_memo_is_not_fooled_by_a_cacheinfo_of_another_size() -> None:
    """Rows are memoized by message bytes minus the cache-info attribute. A
    malformed message whose cache-info is not 20 bytes must not lend its row
    (here its label) to a later, well-formed message."""
    hdr = struct.pack("=BBBBI", 2, 24, 0, 0, 77)
    local = A(2, bytes([10, 9, 8, 7]))
    odd = hdr + local + struct.pack("=HH", 8, 6) + bytes(4) + A(3, s("evil"))
    fine = hdr + local + A(6, bytes(16))
    assert decode.decode_addrs(msg(consts.RTM_NEWADDR, odd))[0][6] == "evil"
    assert decode.decode_addrs(msg(consts.RTM_NEWADDR, fine))[0][6] is None


def rtm(
    fam: int, dlen: int, table: int, proto: int, scope: int, rtype: int, flags: int, *attrs: bytes
) -> bytes:
    hdr = struct.pack("=BBBBBBBBI", fam, dlen, 0, 0, table, proto, scope, rtype, flags)
    return msg(consts.RTM_NEWROUTE, hdr + b"".join(attrs))


def test_parse_routes() -> None:
    names = {3: "eth0"}
    data = (
        rtm(2, 0, 254, 3, 0, 1, 0, A(15, u32(254)), A(5, bytes([10, 0, 0, 1])), A(4, u32(3)))
        + rtm(2, 24, 252, 4, 0, 6, 0, A(15, u32(1000)), A(1, bytes([10, 9, 0, 0])))
        + rtm(
            10,
            128,
            255,
            2,
            0,
            2,
            0,
            A(1, socket.inet_pton(socket.AF_INET6, "::1")),
            A(4, u32(3)),
            A(6, u32(0)),
            A(12, bytes(32)),
        )
        + rtm(
            2, 32, 254, 2, 0, 1, decode.RTM_F_CLONED, A(1, bytes([10, 0, 0, 9]))
        )  # cache: skipped
        + rtm(128, 32, 254, 2, 0, 1, 0, A(1, bytes([239, 0, 0, 1])))  # ipmr: skipped
        + done()
    )
    r1, r2, r3 = nl.parse_routes(data, names)
    assert (r1.dst, r1.gateway, r1.dev, r1.protocol, r1.table, r1.type) == (
        "default",
        "10.0.0.1",
        "eth0",
        "boot",
        254,
        "unicast",
    )
    assert (r2.dst, r2.table, r2.type, r2.protocol, r2.dev) == (
        "10.9.0.0/24",
        1000,
        "blackhole",
        "static",
        None,
    )
    assert (r3.family, r3.dst, r3.type, r3.metric, r3.protocol) == (
        6,
        "::1/128",
        "local",
        0,
        "kernel",
    )
    # identical messages from another namespace give equal routes (memoised parse)
    again = nl.parse_routes(data, {3: "eth9"})
    assert again[0].dev == "eth9" and again[1] == r2


def test_parse_rules() -> None:
    def fib(fam: int, slen: int, action: int, flags: int, *attrs: bytes) -> bytes:
        hdr = struct.pack("=BBBBBBBBI", fam, 0, slen, 0, 0, 0, 0, action, flags)
        return msg(consts.RTM_NEWRULE, hdr + b"".join(attrs))

    data = (
        fib(
            2,
            16,
            1,
            0,
            A(6, u32(100)),
            A(15, u32(300)),
            A(2, bytes([10, 1, 0, 0])),
            A(10, u32(0x10)),
            A(3, s("eth0")),
        )
        + fib(10, 0, 7, consts.FIB_RULE_INVERT, A(6, u32(200)), A(17, s("vrf1")))
        + fib(2, 0, 1, 0, A(6, u32(1000)), A(19, b"\1"))
        + done()
    )
    a, b, c = nl.parse_rules(data)
    assert (a.priority, a.table, a.src, a.fwmark, a.iif, a.action) == (
        100,
        300,
        "10.1.0.0/16",
        0x10,
        "eth0",
        "lookup",
    )
    assert (b.family, b.action, b.invert, b.oif) == (6, "unreachable", True, "vrf1")
    assert c.action == "l3mdev"


def ndm(fam: int, ifindex: int, state: int, flags: int, *attrs: bytes) -> bytes:
    return msg(
        consts.RTM_NEWNEIGH,
        struct.pack("=BxxxiHBB", fam, ifindex, state, flags, 1) + b"".join(attrs),
    )


def test_parse_neighbours() -> None:
    mac = bytes.fromhex("02000000aa01")
    data = (
        ndm(2, 3, 0x02, 0, A(1, bytes([10, 0, 0, 2])), A(2, mac))
        + ndm(
            10,
            3,
            0x04,
            consts.NTF_ROUTER,
            A(1, socket.inet_pton(socket.AF_INET6, "fe80::2")),
            A(2, mac),
        )
        + ndm(2, 3, consts.NUD_NOARP, 0, A(1, bytes([224, 0, 0, 1])))  # like ip neigh: hidden
        + ndm(2, 3, 0x20, 0, A(1, bytes([10, 0, 0, 3])))
    )
    a, b, c = nl.parse_neighbours(data, {3: "eth0"})
    assert (a.ip, a.mac, a.state, a.dev) == ("10.0.0.2", "02:00:00:00:aa:01", "reachable", "eth0")
    assert (b.family, b.state, b.router) == (6, "stale", True)
    assert (c.state, c.mac) == ("failed", None)


def test_parse_fdb_keeps_bridge_rows_and_vxlan_self_rows() -> None:
    mac = bytes.fromhex("02000000bb01")
    data = (
        ndm(7, 4, consts.NUD_NOARP, 0, A(2, mac), A(9, u32(3)), A(5, struct.pack("=H", 10)))
        + ndm(7, 4, consts.NUD_PERMANENT, consts.NTF_SELF, A(2, bytes.fromhex("333300000001")))
        + ndm(
            7, 6, consts.NUD_PERMANENT, consts.NTF_SELF, A(2, bytes(6)), A(1, bytes([10, 0, 0, 7]))
        )
        + ndm(2, 4, 0x02, 0, A(1, bytes([10, 0, 0, 1])))
    )
    rows = nl.parse_fdb(data, frozenset({6}))
    assert [(r.mac, r.ifindex, r.master, r.vlan, r.state) for r in rows] == [
        ("02:00:00:00:bb:01", 4, 3, 10, "static"),
        ("00:00:00:00:00:00", 6, None, None, "permanent"),
    ]
    assert rows[0].flags == ("master",) and rows[1].flags == ("self", "dst=10.0.0.7")


def test_parse_fdb_reads_the_age_from_cacheinfo() -> None:
    """NDA_CACHEINFO: confirmed, used, updated, refcnt in USER_HZ ticks; the age is
    'updated' (what ``bridge -s fdb`` prints), absent when the kernel gave none."""
    mac = A(2, bytes.fromhex("02000000cc01"))
    ci = A(consts.NDA_CACHEINFO, struct.pack("=IIII", 500, 300, 1234, 1))
    data = ndm(7, 4, 0x02, 0, mac, A(9, u32(3)), ci) + ndm(7, 4, 0x02, 0, mac, A(9, u32(3)))
    a, b = nl.parse_fdb(data)
    assert a.age == 12.34 and b.age is None


def test_parse_netconf() -> None:
    def conf(fam: int, idx: int, fwd: int, rp: int) -> bytes:
        body = bytes([fam, 0, 0, 0]) + A(1, struct.pack("=i", idx)) + A(2, u32(fwd)) + A(3, u32(rp))
        return msg(consts.RTM_NEWNETCONF, body, flags=0)

    got = nl.parse_netconf(
        conf(2, -1, 1, 2) + conf(2, -2, 0, 1) + conf(10, -1, 1, 0) + conf(2, 3, 0, 0)
    )
    assert got["net.ipv4.ip_forward"] == "1" and got["net.ipv4.conf.all.rp_filter"] == "2"
    assert got["net.ipv4.conf.default.rp_filter"] == "1"
    assert got["net.ipv6.conf.all.forwarding"] == "1"


@given(st.lists(st.tuples(st.integers(1, 200), st.binary(max_size=40)), max_size=30))
def test_fast_attrs_agrees_with_struct_walk(items: list[tuple[int, bytes]]) -> None:
    blob = b"".join(A(t, p) for t, p in items)
    data, h, _w = decode.views(blob)
    fast = decode.fast_attrs(h, 0, len(blob))
    slow = nl.attrs(data, 0, len(blob))
    assert {t: (o + 4, o + h[o >> 1]) for t, o in fast.items()} == slow
    assert set(slow) == {t for t, _p in items}


# --- the exchange with a fake kernel ----------------------------------------------------------
class FakeKernel:
    """A netlink socket stand-in that serves requests in order like the kernel:
    a dump whose predecessor has not finished gets EBUSY; ``parts`` says in how
    many datagrams each dump answers (DONE rides on the last one)."""

    def __init__(self, parts: dict[int, int], interrupted: frozenset[int] = frozenset()) -> None:
        self.parts = parts
        self.interrupted = interrupted
        self.queue: deque[bytes] = deque()
        self.sends = 0
        self.running: list[bytes] = []

    def send(self, data: bytes) -> int:
        self.sends += 1
        for typ, _fl, start, _end in wire.iter_messages(data):
            seq = struct.unpack_from("=I", data, start - 8)[0]
            if typ == consts.RTM_GETNETCONF:
                self.queue.append(
                    msg(consts.RTM_NEWNETCONF, bytes(4) + A(1, struct.pack("=i", -1)), seq, 0)
                )
                continue
            if self.running:
                self.queue.append(
                    msg(consts.NLMSG_ERROR, struct.pack("=i", -16) + bytes(16), seq, 0)
                )
                continue
            n = self.parts.get(typ, 1)
            body = struct.pack("=BxHiII", 0, 0, seq, 0, 0)
            # the kernel flags the first message after a change, not the DONE
            first = consts.NLM_F_MULTI | (consts.NLM_F_DUMP_INTR if typ in self.interrupted else 0)
            chunks = [
                msg(typ - 2, body, seq, first if i == 0 else consts.NLM_F_MULTI) for i in range(n)
            ]
            chunks[-1] += done(seq)
            self.queue.append(chunks[0])
            self.running = chunks[1:]
        return len(data)

    def recv(self, _size: int) -> bytes:
        if not self.queue and self.running:
            self.queue.append(self.running.pop(0))
        return self.queue.popleft()


def test_exchange_batches_and_retries_busy_dumps() -> None:
    k = FakeKernel({consts.RTM_GETLINK: 3, consts.RTM_GETADDR: 2, consts.RTM_GETROUTE: 2})
    out = wire.exchange(k, ["rule", "neigh", wire.NETCONF, "link", "addr", "route"])  # type: ignore[arg-type]
    assert set(out) == {"rule", "neigh", wire.NETCONF, "link", "addr", "route"}
    assert k.sends == 3  # rule, neigh, netconf and link in one; then addr; then route
    counts = {
        name: sum(1 for t, *_ in wire.iter_messages(data) if t not in (2, 3))
        for name, data in out.items()
        if isinstance(data, bytes)
    }
    assert counts == {"rule": 1, "neigh": 1, wire.NETCONF: 3, "link": 3, "addr": 2, "route": 2}
    assert not any(isinstance(d, wire.Interrupted) for d in out.values())


def test_exchange_marks_interrupted_dumps() -> None:
    k = FakeKernel({consts.RTM_GETROUTE: 2}, interrupted=frozenset({consts.RTM_GETROUTE}))
    out = wire.exchange(k, ["route", "rule"])  # type: ignore[arg-type]
    assert isinstance(out["route"], wire.Interrupted) and not isinstance(
        out["rule"], wire.Interrupted
    )


# --- finding namespaces -----------------------------------------------------------------------
def test_parse_mountinfo() -> None:
    text = (
        "40 30 0:4 net:[4026532001] /run/netns/a rw shared:4 - nsfs nsfs rw\n"
        "41 30 0:4 net:[4026532002] /srv/my\\040ns rw - nsfs nsfs rw\n"
        "42 30 0:4 uts:[4026532003] /run/uts rw - nsfs nsfs rw\n"
        "43 30 0:25 / /run rw - tmpfs tmpfs rw\n"
        "44 30 0:5 net:[1] /weird rw - proc proc rw\n"
    )
    assert parse_mountinfo(text) == [
        (os.makedev(0, 4), 4026532001, "/run/netns/a"),
        (os.makedev(0, 4), 4026532002, "/srv/my ns"),
    ]


def test_find_namespaces_dedupes_every_source(tmp_path: Path) -> None:
    proc = tmp_path / "proc"

    def link(rel: str, inode: int) -> None:
        p = proc / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.symlink_to(f"net:[{inode}]")

    link("self/ns/net", 100)
    link("1/ns/net", 100)
    link("10/ns/net", 200)
    link("11/ns/net", 200)
    link("12/ns/net", 100)
    link("12/task/12/ns/net", 100)
    link("12/task/13/ns/net", 300)  # a thread alone in namespace 300
    (proc / "13").mkdir()  # a process that exited mid-scan
    link("notapid/ns/net", 999)
    (proc / "self" / "mountinfo").write_text(
        "1 0 0:4 net:[200] /run/netns/blue rw - nsfs nsfs rw\n"
        "2 0 0:4 net:[200] /run/docker/netns/abc rw - nsfs nsfs rw\n"
        "3 0 0:4 net:[400] /run/netns/red rw - nsfs nsfs rw\n"
        "4 0 0:4 net:[400] /run/netns/red rw - nsfs nsfs rw\n"  # seen twice (propagation)
    )
    handles = find_namespaces(str(proc))
    assert [h.inode for h in handles] == [100, 200, 300, 400]
    host, blue, thread, red = handles
    assert host.is_host and host.pids == (1, 12) and host.path.endswith("/1/ns/net")
    assert blue.names == ("blue",) and blue.pids == (10, 11) and blue.path == "/run/netns/blue"
    assert blue.mounts == ("/run/docker/netns/abc", "/run/netns/blue")
    assert thread.pids == (12,) and thread.path.endswith("/12/task/13/ns/net")
    assert red.names == ("red",) and red.mounts == ("/run/netns/red",) and red.pids == ()
    assert {h.dev for h in handles} == {os.makedev(0, 4)}
    assert all(h.id == f"netns:{h.inode}" for h in handles)


def test_find_namespaces_without_pid1(tmp_path: Path) -> None:
    """PID 1 unreadable (not root, or a hiding init): the own namespace is the host."""
    (tmp_path / "self" / "ns").mkdir(parents=True)
    (tmp_path / "self" / "ns" / "net").symlink_to("net:[77]")
    (handle,) = find_namespaces(str(tmp_path))
    assert handle.is_host and handle.inode == 77


def test_cpu_list() -> None:
    assert _cpus_from_list("0-3,6\n") == 5
    assert _cpus_from_list("0\n") == 1
    assert _cpus_from_list("garbage") == 0
