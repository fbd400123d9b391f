"""Discovery on recorded fixtures: the same parser and resolver as on a live host.

``lab`` was captured from a real topology by tests/fixtures/discovery/capture_lab.sh
(with iproute2's own view recorded next to it); ``kinds`` is built from pyroute2
message classes for device kinds this kernel lacks (vrf, vlan, bond, dummy).
"""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pytest
from conftest import DISCOVERY_FIXTURES, discovery_fixture_module

from netlens.discovery.nsfind import find_namespaces
from netlens.discovery.resolve import build_snapshot
from netlens.discovery.sources import FixtureNetlink, FixtureProc
from netlens.errors import DiscoveryError
from netlens.model import IfRef, Snapshot

pytestmark = pytest.mark.unit

FIXTURES = DISCOVERY_FIXTURES
LAB = FIXTURES / "lab"
KINDS = FIXTURES / "kinds"


oracle = discovery_fixture_module("iproute2_oracle")


def replay(root: Path) -> Snapshot:
    handles = find_namespaces(str(root / "proc"))
    return build_snapshot(handles, FixtureNetlink(root), FixtureProc(root))


@pytest.fixture(scope="module")
def lab() -> Snapshot:
    return replay(LAB)


@pytest.fixture(scope="module")
def kinds() -> Snapshot:
    return replay(KINDS)


def _ns(snap: Snapshot, name: str):  # type: ignore[no-untyped-def]
    found = [ns for ns in snap.namespaces if ns.name == name or name in ns.mounts]
    assert len(found) == 1, [ns.name for ns in snap.namespaces]
    return found[0]


# --- the captured lab ----------------------------------------------------------------------
def test_lab_matches_iproute2(lab: Snapshot) -> None:
    """Links, addresses and routes agree with `ip -j` captured at the same moment."""
    recorded = json.loads((LAB / "iproute2.json").read_text())
    assert set(recorded) >= {str(ns.inode) for ns in lab.namespaces}
    diffs: list[str] = []
    for ns in lab.namespaces:
        # other engineers' objects come and go on the host: compare only ours there
        keep = (lambda n: n.startswith("ndf") or n == "lo") if ns.is_host else (lambda _n: True)
        diffs += oracle.compare(ns, recorded[str(ns.inode)], keep)
    assert diffs == []


def test_oracle_notices_a_difference(lab: Snapshot) -> None:
    """The comparison above can fail: a changed MTU and a missing route show up."""
    recorded = json.loads((LAB / "iproute2.json").read_text())
    ns = _ns(lab, "ndfa")
    view = json.loads(json.dumps(recorded[str(ns.inode)]))
    view["link"][1]["mtu"] = 9000
    view["route4"].pop(0)
    diffs = oracle.compare(ns, view)
    assert any("mtu" in d for d in diffs)
    assert any("routes" in d for d in diffs)


def test_lab_namespaces_found_by_every_kind_of_handle(lab: Snapshot) -> None:
    host = lab.namespaces[0]
    assert host.is_host and host.name == "host"
    a, b = _ns(lab, "ndfa"), _ns(lab, "ndfb")
    assert a.names == ("ndfa",) and a.mounts == ("/run/netns/ndfa",)
    c = _ns(lab, "/run/ndf-netns-c")  # bind mount outside /run/netns, held by a process too
    assert c.names == () and len(c.pids) == 1
    assert len({a.inode, b.inode, c.inode, host.inode}) == 4
    assert all(ns.complete for ns in lab.namespaces)


def test_lab_veth_pairs(lab: Snapshot) -> None:
    host, a, b = lab.namespaces[0], _ns(lab, "ndfa"), _ns(lab, "ndfb")
    c = _ns(lab, "/run/ndf-netns-c")
    ha, hc = host.by_name("ndfha"), host.by_name("ndfhc")
    assert ha is not None and hc is not None
    assert ha.peer == IfRef(a.id, 2) and hc.peer == IfRef(c.id, 2)
    a_eth0 = a.by_name("eth0")
    assert a_eth0 is not None and a_eth0.peer == ha.ref
    ab, ba = a.by_name("ndfab"), b.by_name("ndfba")
    assert ab is not None and ba is not None
    assert ab.peer == ba.ref and ba.peer == ab.ref
    # both ends of ndfs1/ndfs2 have ifindex 77
    s1, s2 = a.by_name("ndfs1"), b.by_name("ndfs2")
    assert s1 is not None and s2 is not None and s1.ifindex == s2.ifindex == 77
    assert s1.peer == s2.ref and s2.peer == s1.ref
    pairs = {frozenset((p.a, p.b)) for p in lab.veth_pairs if p.b is not None}
    for x, y in ((ha.ref, a_eth0.ref), (ab.ref, ba.ref), (s1.ref, s2.ref)):
        assert frozenset((x, y)) in pairs
    # every pair is listed once
    ends = [e for p in lab.veth_pairs for e in (p.a, p.b) if e is not None]
    assert len(ends) == len(set(ends))


def test_lab_bridge_ports_and_fdb(lab: Snapshot) -> None:
    host = lab.namespaces[0]
    br = host.by_name("ndfbr")
    assert br is not None and br.kind == "bridge" and br.bridge is not None
    assert br.bridge.stp is False and br.bridge.bridge_id
    for port in ("ndfha", "ndfhc"):
        itf = host.by_name(port)
        assert itf is not None and itf.master == br.ifindex
        assert itf.port is not None and itf.port.state == "forwarding"
    ha = host.by_name("ndfha")
    assert ha is not None
    static = [f for f in host.fdb if f.mac == "02:00:00:00:00:aa"]
    assert len(static) == 1
    assert static[0].ifindex == ha.ifindex and static[0].master == br.ifindex
    assert static[0].state == "static"
    # the port's own MAC is a permanent entry; NIC multicast lists are not FDB rows
    assert any(f.mac == ha.mac and f.state == "permanent" for f in host.fdb)
    assert not any(f.mac.startswith("33:33:") for f in host.fdb)


def test_lab_vxlan_macvlan_rules_neighbours(lab: Snapshot) -> None:
    a, b = _ns(lab, "ndfa"), _ns(lab, "ndfb")
    vx = a.by_name("ndfvx")
    ab = a.by_name("ndfab")
    assert vx is not None and vx.vxlan is not None and ab is not None
    assert (vx.vxlan.vni, vx.vxlan.remote, vx.vxlan.port) == (4242, "10.231.1.2", 4789)
    assert vx.lower == ab.ref
    assert any("dst=10.231.1.2" in f.flags for f in a.fdb if f.ifindex == vx.ifindex)
    mv, ba = b.by_name("ndfmv"), b.by_name("ndfba")
    assert mv is not None and ba is not None and mv.macvlan is not None
    assert mv.macvlan.mode == "bridge" and mv.lower == ba.ref
    rule = [r for r in a.rules if r.priority == 1000]
    assert len(rule) == 1 and rule[0].table == 100 and rule[0].src == "10.231.0.0/24"
    assert any(r.table == 100 and r.gateway == "10.231.1.2" for r in a.routes)
    assert a.default_gateways() == ("10.231.0.1",)
    perm = [n for n in a.neighbours if n.ip == "10.231.0.9"]
    assert len(perm) == 1 and perm[0].state == "permanent" and perm[0].mac == "02:00:00:00:00:09"
    assert a.sysctls.get("net.ipv4.ip_forward") in ("0", "1")
    assert "net.ipv4.conf.all.rp_filter" in a.sysctls


def test_lab_uplink_and_server(lab: Snapshot) -> None:
    host = lab.namespaces[0]
    uplinks = [i for i in host.interfaces if i.uplink]
    assert uplinks, "the capture host has a NIC with a bus device"
    assert all(i.kind == "ether" for i in uplinks)
    assert not any(i.uplink for ns in lab.namespaces[1:] for i in ns.interfaces)
    assert lab.server.cpu_count >= 1 and lab.server.mem_total > 0 and lab.server.kernel


# --- built kinds ----------------------------------------------------------------------------
def test_kinds_fixture_is_what_the_builder_writes(tmp_path: Path) -> None:
    pytest.importorskip("pyroute2")
    builder = discovery_fixture_module("build_kinds")
    builder.build(tmp_path)
    cmp = filecmp.dircmp(KINDS, tmp_path)
    stack = [cmp]
    while stack:
        c = stack.pop()
        assert not c.left_only and not c.right_only, (c.left_only, c.right_only)
        _, mismatch, errors = filecmp.cmpfiles(c.left, c.right, c.common_files, shallow=False)
        assert not mismatch and not errors
        stack.extend(c.subdirs.values())


def test_kinds_bond_vlan_uplinks(kinds: Snapshot) -> None:
    host = kinds.namespaces[0]
    eth1, eth2, bond, vlan = (host.by_name(n) for n in ("eth1", "eth2", "bond0", "bond0.100"))
    assert eth1 and eth2 and bond and vlan
    assert eth1.uplink and eth1.speed_mbps == 10000 and eth1.driver == "ixgbe"
    assert eth2.uplink and eth2.speed_mbps is None  # the driver says -1
    assert bond.kind == "bond" and bond.bond is not None
    assert (bond.bond.mode, bond.bond.miimon) == ("802.3ad", 100)
    assert bond.uplink and eth1.master == bond.ifindex
    assert vlan.kind == "vlan" and vlan.vlan is not None and vlan.vlan.vlan_id == 100
    assert vlan.vlan.protocol == "802.1Q" and vlan.lower == bond.ref and vlan.uplink
    dummy = host.by_name("dummy0")
    assert dummy is not None and dummy.kind == "dummy" and not dummy.uplink


def test_kinds_l3mdev_vrf(kinds: Snapshot) -> None:
    host = kinds.namespaces[0]
    vrf = host.by_name("vrf-red")
    assert vrf is not None and vrf.kind == "vrf" and vrf.vrf_table == 10
    assert len(host.vrfs) == 1
    l3 = host.vrfs[0]
    members = {host.interface(i).name for i in l3.members}  # type: ignore[union-attr]
    assert (l3.name, l3.table, members) == ("vrf-red", 10, {"bond0.100", "dummy0"})
    assert any(r.action == "l3mdev" and r.priority == 1000 for r in host.rules)
    ecmp = [r for r in host.routes if r.table == 10]
    assert len(ecmp) == 1 and ecmp[0].dst == "10.9.0.0/24"
    assert [(h.gateway, h.dev, h.weight) for h in ecmp[0].nexthops] == [
        ("10.100.0.2", "bond0.100", 1),
        ("10.100.0.3", "bond0.100", 2),
    ]


def test_kinds_cross_namespace_resolution(kinds: Snapshot) -> None:
    host = kinds.namespaces[0]
    x = _ns(kinds, "x")
    y = _ns(kinds, "/run/docker/netns/c0ffee")
    mv = x.by_name("mv0")
    eth1 = host.by_name("eth1")
    assert mv is not None and eth1 is not None and mv.lower == eth1.ref  # via X's own numbering
    hv1, x_eth0 = host.by_name("hv1"), x.by_name("eth0")
    assert hv1 is not None and x_eth0 is not None
    assert hv1.peer == x_eth0.ref and x_eth0.peer == hv1.ref
    # X, Y and Z all hold a veth at ifindex 9 whose peer is ifindex 9: only the
    # nsid answers tell that X pairs with Y and Z's peer is gone.
    xp, yp = x.by_name("p9"), y.by_name("p9")
    assert xp is not None and yp is not None
    assert xp.peer == yp.ref and yp.peer == xp.ref
    z = next(ns for ns in kinds.namespaces if ns.pids == (4243,))
    zp = z.by_name("p9")
    assert zp is not None and zp.peer is None
    assert any(p.a == zp.ref and p.b is None for p in kinds.veth_pairs)


def test_kinds_handles_and_naming(kinds: Snapshot) -> None:
    ids = [ns.id for ns in kinds.namespaces]
    assert len(ids) == len(set(ids)) == 4  # W vanished before it could be read
    assert kinds.namespaces[0].is_host and kinds.namespaces[0].pids == (1, 4243)
    x = _ns(kinds, "x")
    assert x.pids == (4242,) and x.nsid == 0
    y = _ns(kinds, "/run/docker/netns/c0ffee")
    assert y.name == y.id and y.nsid is None
    assert kinds.server.hostname == "kinds-host" and kinds.server.cpu_count == 8
    assert kinds.server.mem_total == 16384000 * 1024 and kinds.server.uptime_s == 1234.5
    names = [ns.name for ns in kinds.namespaces[1:]]
    assert names == sorted(names)


def test_nothing_readable_raises(tmp_path: Path) -> None:
    (tmp_path / "meta.json").write_text(
        json.dumps({"errors": {"4026531840": "Operation not permitted"}})
    )
    handles = find_namespaces(str(KINDS / "proc"))
    with pytest.raises(DiscoveryError):
        build_snapshot(handles, FixtureNetlink(tmp_path), FixtureProc(KINDS), root=False)


def test_unreadable_namespace_is_kept_incomplete(tmp_path: Path) -> None:
    """Not root: the own namespace is read, the others are listed as incomplete."""
    meta = json.loads((KINDS / "meta.json").read_text())
    meta["errors"] = {"4026532001": "Operation not permitted"}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    (tmp_path / "netlink").symlink_to(KINDS / "netlink")
    snap = build_snapshot(
        find_namespaces(str(KINDS / "proc")),
        FixtureNetlink(tmp_path),
        FixtureProc(KINDS),
        root=False,
        warnings=("not root",),
    )
    x = _ns(snap, "x")
    assert not x.complete and x.interfaces == () and x.errors
    assert snap.root is False and snap.warnings == ("not root",)
    host = snap.namespaces[0]
    hv1 = host.by_name("hv1")
    assert hv1 is not None and hv1.peer is None  # its peer's namespace was not readable


def test_pairing_falls_back_to_the_namespace_own_numbering(tmp_path: Path) -> None:
    """Without the host's numbering, X's eth0 still finds its host peer by asking X."""
    meta = json.loads((KINDS / "meta.json").read_text())
    meta["host_nsids"] = {}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    (tmp_path / "netlink").symlink_to(KINDS / "netlink")
    snap = build_snapshot(
        find_namespaces(str(KINDS / "proc")), FixtureNetlink(tmp_path), FixtureProc(KINDS)
    )
    host, x = snap.namespaces[0], _ns(snap, "x")
    hv1, eth0 = host.by_name("hv1"), x.by_name("eth0")
    assert hv1 is not None and eth0 is not None
    assert eth0.peer == hv1.ref and hv1.peer == eth0.ref
    assert x.nsid is None
    assert sum(1 for p in snap.veth_pairs if hv1.ref in (p.a, p.b)) == 1


def test_positional_builder_makes_the_same_frozen_objects() -> None:
    """The resolver's fast Interface constructor: same object as the dataclass's."""
    import dataclasses

    from netlens.discovery.resolve import positional_builder
    from netlens.model import Address, Counters, IfRef, Interface

    values = {
        f.name: f.default if f.default is not dataclasses.MISSING else f.name
        for f in dataclasses.fields(Interface)
    }
    values.update(
        ifindex=7,
        addresses=(Address(4, "10.0.0.1", 24),),
        peer=IfRef("netns:1", 2),
        counters=Counters(1, 2, 3, 4, 5, 6, 7, 8),
    )
    slow = Interface(**values)
    fast = positional_builder(Interface)(*values.values())
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    assert type(fast) is Interface
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):  # every field must be given
        positional_builder(Interface)(*list(values.values())[:-1])

    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        x: int

    with pytest.raises(TypeError):
        positional_builder(NoSlots)


@pytest.mark.parametrize("root", [LAB, KINDS], ids=["lab", "kinds"])
def test_replayed_fixture_is_its_golden_dump_field_for_field(root: Path) -> None:
    """The whole snapshot of a recorded host, every field of every object, against a
    reviewed dump (``golden.json`` beside the recording). The tests above check
    chosen fields against iproute2; this one notices any other field going wrong
    (an interface's alias, a route's scope, a container's name). After a deliberate
    change of the model, regenerate with NETLENS_UPDATE_GOLDEN=1 and read the diff.
    Kept in fixtures/discovery/golden/, apart from the recordings (which
    test_kinds_fixture_is_what_the_builder_writes compares file by file)."""
    import os

    from netlens.model.serialize import snapshot_to_dict

    doc = snapshot_to_dict(replay(root))
    doc["taken_at"] = 0.0  # the only field that is not the recording's
    text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    golden = FIXTURES / "golden" / f"{root.name}.json"
    if os.environ.get("NETLENS_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text()
