"""The rtnetlink model builders, attribute by attribute (netlens/discovery/builders.py).

test_discovery_parse.py checks each parser on one realistic message; here each
attribute a builder reads is given present and absent, at its boundary values
(a multicast range's first and last address, an out-of-range enum), so a
builder that reads the wrong attribute, the wrong width or the wrong default is
seen. Messages follow rtnetlink(7); the helpers are those of test_discovery_parse.
"""

from __future__ import annotations

import struct

import pytest
from test_discovery_parse import A, done, msg, u32

from netlens.discovery import builders as nl
from netlens.discovery.builders import LinkRec
from netlens.kernel import consts, wire

pytestmark = pytest.mark.unit


def kind(name: str, **attrs: bytes) -> LinkRec:
    rec = LinkRec(5, "x", name, 0)
    nl._parse_kind_data(rec, {int(k[1:]): v for k, v in attrs.items()})
    return rec


BE16 = struct.Struct(">H")
U32 = struct.Struct("=I")


# --- link kinds ---------------------------------------------------------------------------------
def test_bridge_info_every_field_and_the_defaults() -> None:
    bid = bytes([0x80, 0x00, 2, 0, 0, 0, 0, 1])
    rid = bytes([0x10, 0x01, 2, 0, 0, 0, 0, 2])
    b = kind("bridge", a5=U32.pack(1), a7=b"\1", a1=U32.pack(1500), a4=U32.pack(30000),
             a11=bid, a10=rid).bridge  # fmt: skip
    assert b is not None
    assert (b.stp, b.vlan_filtering, b.forward_delay_cs, b.ageing_time_cs) == (
        True,
        True,
        1500,
        30000,
    )
    assert (b.bridge_id, b.root_id) == ("8000.02:00:00:00:00:01", "1001.02:00:00:00:00:02")
    d = kind("bridge", a5=U32.pack(0), a7=b"\0").bridge
    assert d is not None and (d.stp, d.vlan_filtering) == (False, False)
    e = kind("bridge").bridge
    assert e == nl.BridgeInfo(stp=False, vlan_filtering=False, forward_delay_cs=None,
                              ageing_time_cs=None, bridge_id=None, root_id=None)  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "group", "remote"),
    [
        (bytes([224, 0, 0, 1]), "224.0.0.1", None),
        (bytes([239, 255, 255, 255]), "239.255.255.255", None),
        (bytes([223, 255, 255, 255]), None, "223.255.255.255"),
        (bytes([240, 0, 0, 1]), None, "240.0.0.1"),
    ],
)
def test_vxlan_ipv4_group_or_remote_by_multicast_range(
    raw: bytes, group: str | None, remote: str | None
) -> None:
    v = kind("vxlan", a1=U32.pack(42), a2=raw).vxlan
    assert v is not None and (v.vni, v.group, v.remote) == (42, group, remote)


def test_vxlan_ipv6_local_port_underlay_learning_and_defaults() -> None:
    ff = bytes([0xFF, 0x05] + [0] * 13 + [1])
    fd = bytes([0xFD] + [0] * 14 + [9])
    v = kind("vxlan", a16=ff, a17=fd, a15=BE16.pack(4789), a3=U32.pack(2), a7=b"\0").vxlan
    assert v is not None
    assert (v.group, v.remote, v.local, v.port, v.underlay, v.learning) == (
        "ff05::1", None, "fd00::9", 4789, 2, False)  # fmt: skip
    v = kind("vxlan", a16=fd, a4=bytes([192, 0, 2, 1]), a3=U32.pack(0), a7=b"\1").vxlan
    assert v is not None
    assert (v.group, v.remote, v.local, v.underlay, v.learning) == (
        None, "fd00::9", "192.0.2.1", None, True)  # fmt: skip
    v = kind("vxlan").vxlan
    assert v is not None
    assert (v.vni, v.group, v.remote, v.local, v.port, v.underlay, v.learning) == (
        0, None, None, None, None, None, None)  # fmt: skip


def test_vlan_bond_macvlan_vrf_values_and_unknown_codes() -> None:
    v = kind("vlan", a1=struct.pack("=H", 100), a5=BE16.pack(0x88A8)).vlan
    assert v is not None and (v.vlan_id, v.protocol) == (100, "802.1ad")
    v = kind("vlan", a5=BE16.pack(0x1234)).vlan
    assert v is not None and (v.vlan_id, v.protocol) == (0, "0x1234")
    v = kind("vlan").vlan
    assert v is not None and v.protocol == "802.1Q"
    b = kind("bond", a1=b"\6", a3=U32.pack(100)).bond
    assert b is not None and (b.mode, b.miimon) == ("balance-alb", 100)
    b = kind("bond", a1=b"\7").bond
    assert b is not None and (b.mode, b.miimon) == ("7", None)
    b = kind("bond").bond
    assert b is not None and b.mode == "balance-rr"
    for mode, name in ((1, "private"), (16, "source"), (3, "3")):
        m = kind("macvtap", a1=U32.pack(mode)).macvlan
        assert m is not None and m.mode == name
    m = kind("macvlan").macvlan
    assert m is not None and m.mode == "0"
    assert kind("vrf", a1=U32.pack(1001)).vrf_table == 1001
    assert kind("vrf").vrf_table is None
    other = kind("dummy", a1=U32.pack(1))
    assert (other.bridge, other.vxlan, other.vlan, other.bond, other.macvlan, other.vrf_table) == (
        None, None, None, None, None, None)  # fmt: skip


@pytest.mark.parametrize(
    ("key", "want"),
    [
        ((3, 32, 100, 1, 0, 1), ("forwarding", 32, 100, True, False, True)),
        ((4, 0, 0, 0, 1, 0), ("blocking", 0, 0, False, True, False)),
        ((5, -1, -1, 2, 2, 2), ("5", None, None, None, None, None)),
        ((0, 1, 1, 0, 0, 0), ("disabled", 1, 1, False, False, False)),
    ],
)
def test_bridge_port_values_and_unknowns(key: tuple[int, ...], want: tuple[object, ...]) -> None:
    p = nl._bridge_port(key)
    assert (p.state, p.priority, p.cost, p.hairpin, p.learning, p.flood) == want
    assert nl._bridge_port(key) is p  # equal settings share one object


# --- rules ---------------------------------------------------------------------------------------
def fib(
    fam: int, dlen: int, slen: int, table: int, action: int, flags: int, *attrs: bytes
) -> bytes:
    hdr = struct.pack("=BBBBBBBBI", fam, dlen, slen, 0, table, 0, 0, action, flags)
    return msg(consts.RTM_NEWRULE, hdr + b"".join(attrs))


def test_rules_every_selector_and_the_header_values() -> None:
    data = (
        fib(7, 0, 0, 254, 1, 0)  # AF_BRIDGE: not a routing rule (first: skipped, not the end)
        + msg(consts.RTM_NEWLINK, bytes(16))  # not a rule at all
        + fib(2, 24, 0, 254, 1, 0, A(1, bytes([10, 2, 3, 0])), A(6, u32(5)))
        + fib(10, 0, 64, 100, 6, 0, A(2, bytes([0xFD] + [0] * 15)))  # blackhole, prio 0
        + fib(2, 0, 0, 255, 99, 0, A(19, b"\0"))  # an unknown action; l3mdev attr off
        + done()
    )
    a, b, c = nl.parse_rules(data)
    assert (a.family, a.priority, a.table, a.dst, a.src, a.action, a.invert) == (
        4, 5, 254, "10.2.3.0/24", None, "lookup", False)  # fmt: skip
    assert (a.iif, a.oif, a.fwmark) == (None, None, None)
    assert (b.family, b.priority, b.table, b.src, b.dst, b.action) == (
        6, 0, 100, "fd00::/64", None, "blackhole")  # fmt: skip
    assert (c.table, c.action) == (255, "99")
    assert nl.parse_rules(data) == [a, b, c]  # the second read (memo) gives the same


# --- FDB ---------------------------------------------------------------------------------------
def ndm(fam: int, ifindex: int, state: int, flags: int, *attrs: bytes) -> bytes:
    return msg(
        consts.RTM_NEWNEIGH,
        struct.pack("=BxxxiHBB", fam, ifindex, state, flags, 0) + b"".join(attrs),
    )


MAC = bytes([2, 0, 0, 0, 0, 7])


def test_fdb_states_flags_vlan_and_remote() -> None:
    dropped = (  # first, so that a skip that stopped the walk would lose the rest
        ndm(7, 5, 0x02, consts.NTF_SELF, A(2, MAC), A(9, u32(10)))  # a NIC's own list
        + ndm(7, 3, 0x02, 0, A(2, MAC))  # no master, not kept: dropped
        + ndm(7, 3, 0x02, 0, A(9, u32(10)))  # no MAC: dropped
        + ndm(2, 3, 0x02, 0, A(2, MAC), A(9, u32(10)))  # an ARP entry, not FDB
        + msg(consts.RTM_NEWLINK, bytes(16))
    )
    data = dropped + (
        ndm(7, 3, consts.NUD_PERMANENT, 0, A(2, MAC), A(9, u32(10)), A(5, struct.pack("=H", 20)))
        + ndm(
            7,
            3,
            consts.NUD_NOARP,
            consts.NTF_MASTER | consts.NTF_EXT_LEARNED,
            A(2, MAC),
            A(9, u32(10)),
        )
        + ndm(7, 3, 0x04, consts.NTF_OFFLOADED | consts.NTF_STICKY, A(2, MAC), A(9, u32(10)))
        + ndm(7, 4, 0x02, consts.NTF_SELF, A(2, MAC), A(1, bytes([192, 0, 2, 9])))
        + ndm(7, 4, 0x02, consts.NTF_SELF, A(2, MAC), A(1, bytes([0xFD] + [0] * 15)))
        + done()
    )
    got = nl.parse_fdb(data, keep_self=frozenset({4}))
    assert [(e.ifindex, e.master, e.vlan, e.state, e.flags) for e in got] == [
        (3, 10, 20, "permanent", ("master",)),
        (3, 10, None, "static", ("master", "extern_learn")),
        (3, 10, None, "stale", ("master", "offload", "sticky")),
        (4, None, None, "reachable", ("self", "dst=192.0.2.9")),
        (4, None, None, "reachable", ("self", "dst=fd00::")),
    ]
    assert {e.mac for e in got} == {"02:00:00:00:00:07"}


# --- netconf -------------------------------------------------------------------------------------
def netconf(fam: int, ifindex: int, **values: int) -> bytes:
    body = bytes([fam, 0, 0, 0]) + A(1, struct.pack("=i", ifindex))
    body += b"".join(A(int(k[1:]), struct.pack("=i", v)) for k, v in values.items())
    return msg(consts.RTM_NEWNETCONF, body, flags=0)


def test_netconf_names_each_value_by_family_and_device() -> None:
    data = (
        msg(consts.RTM_NEWLINK, bytes(16))  # not netconf: skipped
        + netconf(2, -1, a2=1, a3=2, a5=0, a4=7)  # 4 (mc_forwarding) is not shown
        + netconf(2, -2, a3=1, a2=0)  # default: only rp_filter is shown
        + netconf(10, -1, a2=1, a5=1)
        + netconf(10, -2, a2=0)  # ipv6 default: nothing shown
        + netconf(2, 3, a2=1)  # a device's own values: not shown
        + msg(consts.RTM_NEWNETCONF, bytes([2, 0, 0, 0]) + A(2, struct.pack("=i", 1)), flags=0)
    )
    assert nl.parse_netconf(data) == {
        "net.ipv4.ip_forward": "1",
        "net.ipv4.conf.all.rp_filter": "2",
        "net.ipv4.conf.all.proxy_arp": "0",
        "net.ipv4.conf.default.rp_filter": "1",
        "net.ipv6.conf.all.forwarding": "1",
        "net.ipv6.conf.all.proxy_ndp": "1",
    }
    assert nl.parse_netconf(data) == nl.parse_netconf(data)  # memo: the same answer


# --- small helpers -------------------------------------------------------------------------------
def test_string_attribute_stops_at_nul_and_replaces_bad_utf8() -> None:
    raw = b"eth0\0junk\0"
    assert nl._str(raw, (0, len(raw))) == "eth0"
    bad = b"e\xfft\0"
    assert nl._str(bad, (0, len(bad))) == "e\ufffdt"
    assert nl._str(b"abc", (0, 3)) == "abc"  # no NUL at all


def test_attrs_masks_flags_and_stops_at_a_broken_length() -> None:
    data = A(0x8000 | 2, b"ab") + A(3, b"") + struct.pack("=HH", 2, 4) + A(5, b"x")
    assert nl.attrs(data, 0, len(data)) == {2: (4, 6), 3: (12, 12)}
    assert nl.nud_state(0x02) == "reachable" and nl.nud_state(0x82) == "reachable"
    assert nl.nud_state(0) == "none"
    assert not nl.dump_interrupted(msg(16, b"") + done())
    assert nl.dump_interrupted(
        msg(16, b"") + done(flags=consts.NLM_F_MULTI | consts.NLM_F_DUMP_INTR)
    )


# --- paths the first measurement left open --------------------------------------------------------
def test_rows_decoded_by_the_helper_build_the_same_records() -> None:
    """The helper process sends decoded rows (``Decoded``) instead of bytes; the
    builders must take them as they are, not decode them again."""
    from test_discovery_parse import ifaddr, ifinfo, rtm, s

    links = ifinfo(2, 0x1043, A(3, s("eth0")), A(4, u32(1400))) + done()
    addrs = ifaddr(2, 24, 0, 2, A(1, bytes([10, 0, 0, 1])), A(2, bytes([10, 0, 0, 1]))) + done()
    routes = rtm(2, 24, 254, 2, 253, 1, 0, A(1, bytes([10, 0, 0, 0])), A(4, u32(2))) + done()
    assert nl.parse_links(wire.Decoded(nl.decode_links(links))) == nl.parse_links(links)
    assert nl.parse_addrs(wire.Decoded(nl.decode_addrs(addrs))) == nl.parse_addrs(addrs)
    names = {2: "eth0"}
    assert nl.parse_routes(wire.Decoded(nl.decode_routes(routes)), names) == nl.parse_routes(
        routes, names
    )


def test_loopback_by_flag_or_by_device_type() -> None:
    from test_discovery_parse import ifinfo, s

    data = (
        ifinfo(1, 0x1, A(3, s("lo")), iftype=772)  # ARPHRD_LOOPBACK without IFF_LOOPBACK
        + ifinfo(2, 0x8, A(3, s("lo2")), iftype=1)  # IFF_LOOPBACK on an ether type
        + ifinfo(3, 0x1, A(3, s("eth0")), iftype=1)
        + done()
    )
    assert [r.kind for r in nl.parse_links(data)] == ["loopback", "loopback", "ether"]


def test_bridge_root_id_needs_its_own_attribute() -> None:
    b = kind("bridge", a11=bytes([0x80, 0, 2, 0, 0, 0, 0, 1])).bridge
    assert b is not None and (b.bridge_id, b.root_id) == ("8000.02:00:00:00:00:01", None)


def test_positional_builder_refuses_classes_it_cannot_fill() -> None:
    import dataclasses

    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclasses.dataclass(frozen=True)
    class Plain:
        a: int

    for cls in (Checked, Plain):
        with pytest.raises(TypeError) as exc:
            nl.positional_builder(cls)
        assert str(exc.value) == f"{cls.__name__}: needs slots and no __post_init__"


def test_neighbours_without_state_or_of_other_families_are_left_out() -> None:
    ip4 = A(1, bytes([10, 0, 0, 9]))
    lladdr = A(2, MAC)
    data = (
        msg(consts.RTM_NEWLINK, bytes(16))  # not a neighbour
        + ndm(2, 3, 0, 0, ip4, lladdr)  # NUD_NONE
        + ndm(7, 3, 0x02, 0, ip4, lladdr)  # AF_BRIDGE: the FDB's, not ARP
        + ndm(2, 3, 0x40, 0, ip4, lladdr)  # noarp
        + ndm(2, 3, 0x02, 0, lladdr)  # no address
        + ndm(2, 3, 0x02, 0, ip4, lladdr)
        + done()
    )
    (n,) = nl.parse_neighbours(data, {3: "eth0"})
    assert (n.ip, n.mac, n.state, n.dev) == ("10.0.0.9", "02:00:00:00:00:07", "reachable", "eth0")


def test_fdb_incomplete_entry_is_reachable_not_stale() -> None:
    data = ndm(7, 3, 0x01, 0, A(2, MAC), A(9, u32(10))) + done()
    assert [e.state for e in nl.parse_fdb(data)] == ["reachable"]


def test_routes_with_codes_netlens_has_no_name_for() -> None:
    from test_discovery_parse import rtm

    data = (
        rtm(2, 24, 254, 77, 100, 30, 0, A(1, bytes([10, 0, 0, 0])), A(4, u32(2)))
        + rtm(2, 24, 254, 2, 253, 1, 0, A(1, bytes([10, 1, 0, 0])), A(4, u32(2)))
        + done()
    )
    odd, usual = nl.parse_routes(data, {2: "eth0"})
    assert (odd.protocol, odd.scope, odd.type) == ("77", "100", "30")
    first_unnamed = len(nl.ROUTE_TYPES)
    edge = rtm(2, 24, 254, 2, 0, first_unnamed, 0, A(1, bytes([10, 2, 0, 0]))) + done()
    assert nl.parse_routes(edge, {})[0].type == str(first_unnamed)
    assert (usual.protocol, usual.scope, usual.type) == ("kernel", "link", "unicast")


def test_an_address_scope_without_a_name_keeps_its_number() -> None:
    from test_discovery_parse import ifaddr

    data = ifaddr(2, 24, 100, 2, A(1, bytes([10, 0, 0, 1])), A(2, bytes([10, 0, 0, 1]))) + done()
    assert [a.scope for a in nl.parse_addrs(data)[2]] == ["100"]  # ip addr add ... scope 100
