"""The networkx graph and the O(1) index built from the fixture snapshot."""

from __future__ import annotations

import dataclasses

import pytest
from fixtures.model.sample import DB, HOST, MV, RT, WEB, sample_snapshot

from netlens.model.graph import (
    EDGE_TYPES,
    NODE_TYPES,
    SERVER,
    bridge_ports,
    build_graph,
    container_path_to_uplink,
    l3vrf_id,
    neighbours,
    nodes_of_type,
    path_to_uplink,
    paths_to_uplink,
    uplinks,
)
from netlens.model.index import SnapshotIndex
from netlens.model.types import IfRef, VethPair

pytestmark = pytest.mark.unit


def edge_types(g, u: str, v: str) -> set[str]:  # type: ignore[no-untyped-def]
    return set(g.get_edge_data(u, v) or {})


def test_node_ids_and_types() -> None:
    snap = sample_snapshot()
    g = build_graph(snap)
    types = dict(g.nodes(data="type"))
    assert set(types.values()) <= set(NODE_TYPES)
    assert types[SERVER] == "server"
    for ns in snap.namespaces:
        assert types[ns.id] == "vrf"
        for itf in ns.interfaces:
            expect = "bridge" if itf.kind == "bridge" else "uplink" if itf.uplink else "interface"
            assert types[itf.ref.key] == expect
    for c in snap.containers:
        assert types[c.id] == "container"
    assert types[l3vrf_id(RT, "blue")] == "l3vrf"
    n_itf = sum(len(ns.interfaces) for ns in snap.namespaces)
    assert g.number_of_nodes() == 1 + len(snap.namespaces) + n_itf + len(snap.containers) + 1


def test_edges() -> None:
    g = build_graph(sample_snapshot())
    assert {k for _, _, k in g.edges(keys=True)} == set(EDGE_TYPES)
    for _, _, k, d in g.edges(keys=True, data=True):
        assert d["type"] == k
    assert edge_types(g, f"{HOST}/10", f"{WEB}/2") == {"veth"}
    assert edge_types(g, f"{HOST}/10", f"{HOST}/4") == {"bridge_port"}
    # a bridge port does not route: no member edge to the VRF
    assert edge_types(g, f"{HOST}/10", HOST) == set()
    assert edge_types(g, f"{HOST}/4", HOST) == {"member"}
    assert edge_types(g, SERVER, f"{HOST}/2") == {"uplink"}
    assert edge_types(g, f"{HOST}/5", f"{HOST}/2") == {"tunnel"}
    assert edge_types(g, f"{MV}/7", f"{HOST}/2") == {"lower"}
    assert edge_types(g, f"{RT}/4", f"{RT}/3") == {"lower"}
    assert edge_types(g, f"{HOST}/3", f"{HOST}/6") == {"master"}
    assert edge_types(g, f"{RT}/4", l3vrf_id(RT, "blue")) == {"l3vrf_member"}
    assert edge_types(g, l3vrf_id(RT, "blue"), RT) == {"member"}
    assert edge_types(g, f"{RT}/2", l3vrf_id(RT, "blue")) == {"master"}
    assert edge_types(g, "docker:1f2e3d4c5b6a7980", WEB) == {"container"}
    # the vanished veth peer has no edge
    assert list(g.adj[f"{RT}/5"]) == [RT]


def test_helpers() -> None:
    g = build_graph(sample_snapshot())
    assert bridge_ports(g, f"{HOST}/4") == [f"{HOST}/5", f"{HOST}/10", f"{HOST}/11"]
    assert uplinks(g) == [f"{HOST}/2", f"{HOST}/3", f"{HOST}/6"]
    assert neighbours(g, WEB) == [f"{WEB}/1", f"{WEB}/2", "docker:1f2e3d4c5b6a7980"]
    assert neighbours(g, WEB, "container") == ["docker:1f2e3d4c5b6a7980"]
    assert neighbours(g, "nope") == []
    assert nodes_of_type(g, "l3vrf") == [l3vrf_id(RT, "blue")]


def test_container_path_follows_the_traffic() -> None:
    g = build_graph(sample_snapshot())
    assert container_path_to_uplink(g, "docker:1f2e3d4c5b6a7980") == [
        "docker:1f2e3d4c5b6a7980",
        WEB,
        f"{WEB}/2",
        f"{HOST}/10",
        f"{HOST}/4",
        HOST,
        f"{HOST}/2",
    ]
    assert container_path_to_uplink(g, "process:5001") == [
        "process:5001",
        MV,
        f"{MV}/7",
        f"{HOST}/2",
    ]
    # a vlan leaves through its lower device, not through the VRF
    assert path_to_uplink(g, f"{RT}/4") == [f"{RT}/4", f"{RT}/3", f"{HOST}/12", HOST, f"{HOST}/2"]
    assert path_to_uplink(g, l3vrf_id(RT, "blue")) == [
        l3vrf_id(RT, "blue"),
        RT,
        f"{RT}/3",
        f"{HOST}/12",
        HOST,
        f"{HOST}/2",
    ]
    assert container_path_to_uplink(g, "nope") is None


def test_isolated_container_has_no_path() -> None:
    snap = sample_snapshot()
    # drop the host namespace: nothing leads out any more
    snap = dataclasses.replace(snap, namespaces=snap.namespaces[1:])
    g = build_graph(snap)
    assert container_path_to_uplink(g, "netlens:db") is None
    # edges to the missing host ends are left out, not dangling
    assert f"{HOST}/11" not in g
    assert list(g.adj[f"{DB}/2"]) == [DB]


def test_vrf_device_without_vrfs_entry_still_gets_an_l3vrf() -> None:
    snap = sample_snapshot()
    rt = dataclasses.replace(snap.namespaces[3], vrfs=())
    snap = dataclasses.replace(snap, namespaces=(*snap.namespaces[:3], rt, snap.namespaces[4]))
    g = build_graph(snap)
    assert g.nodes[l3vrf_id(RT, "blue")]["table"] == 10
    assert edge_types(g, f"{RT}/4", l3vrf_id(RT, "blue")) == {"l3vrf_member"}


def test_graph_is_deterministic_and_attrs_have_no_none() -> None:
    a, b = build_graph(sample_snapshot()), build_graph(sample_snapshot())
    assert list(a.nodes(data=True)) == list(b.nodes(data=True))
    assert list(a.edges(keys=True)) == list(b.edges(keys=True))
    for _, data in a.nodes(data=True):
        assert None not in data.values()
    assert a.nodes[f"{HOST}/2"]["addresses"] == ("192.0.2.10/24", "2001:db8::10/64")


def test_index_lookups() -> None:
    snap = sample_snapshot()
    idx = SnapshotIndex(snap)
    assert idx.netns[WEB] is snap.namespaces[1]
    assert idx.netns_by_name["rt1"].id == RT
    assert idx.netns_by_name["nl-db"].id == DB
    eth0 = idx.interface(IfRef(WEB, 2))
    assert eth0 is not None and eth0.name == "eth0"
    assert idx.interface(f"{HOST}/10") is snap.namespaces[0].interfaces[6]
    assert idx.interface("netns:1/1") is None
    peer = idx.peer(eth0)
    assert peer is not None and peer.name == "vethweb"
    assert idx.container_of(WEB) is snap.containers[0]
    assert idx.container_of(RT) is None
    assert [i.name for i in idx.ports(IfRef(HOST, 4))] == ["vxlan100", "vethweb", "vethdb"]
    assert idx.ports(f"{WEB}/2") == []
    assert idx.containers["netlens:db"].name == "db"


def test_index_agrees_with_linear_lookups() -> None:
    snap = sample_snapshot()
    idx = SnapshotIndex(snap)
    for itf in snap.interfaces():
        assert idx.interface(itf.ref) == snap.interface(itf.ref)
    for ns in snap.namespaces:
        assert idx.netns[ns.id] == snap.netns(ns.id)
    extra = dataclasses.replace(snap, veth_pairs=(VethPair(IfRef(WEB, 2), IfRef("netns:9", 9)),))
    assert "netns:9/9" not in build_graph(extra)


def test_bulk_paths_agree_with_single_paths() -> None:
    snap = sample_snapshot()
    g = build_graph(snap)
    bulk = paths_to_uplink(g)
    for node in g.nodes:
        single = path_to_uplink(g, node)
        if node == SERVER:
            assert node not in bulk
            continue
        if single is None:
            assert node not in bulk, node
        else:
            assert len(bulk[node]) == len(single), node
            assert bulk[node][0] == node and g.nodes[bulk[node][-1]]["type"] == "uplink"
    assert path_to_uplink(g, f"{HOST}/2") == [f"{HOST}/2"]
    # the orphan veth's VRF still reaches out through the router's veth
    assert bulk[f"{RT}/5"][-1] == f"{HOST}/2"


def test_paths_never_cross_another_container() -> None:
    g = build_graph(sample_snapshot())
    for c in ("docker:1f2e3d4c5b6a7980", "netlens:db", "process:5001"):
        path = container_path_to_uplink(g, c)
        assert path is not None
        assert [n for n in path if g.nodes[n]["type"] == "container"] == [c]
        assert SERVER not in path
