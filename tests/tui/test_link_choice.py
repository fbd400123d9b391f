"""Which cable the dashboard's link key acts on (netlens.tui.link_choice), on the fixture host.

The fixture's containers are Docker's, Podman's, netlens's, LXC's and containerd's;
its router is a plain namespace with a point-to-point veth to a Docker container.
The key must take a netlens container's cable from either end, name it the way
``netlens link`` does, and refuse everything else with a line saying why (the
host's uplink above all).
"""

from __future__ import annotations

import dataclasses

import pytest

from netlens.errors import UsageError
from netlens.model.types import Container, Interface, Snapshot
from netlens.tui.index import ViewIndex
from netlens.tui.link_choice import choose

from .fixture import make_snapshot

pytestmark = pytest.mark.tui


def _netlens(idx: ViewIndex) -> Container:
    return next(c for c in idx.snapshot.containers if c.engine == "netlens")


def _eth0(idx: ViewIndex, c: Container) -> Interface:
    assert c.netns is not None
    itf = idx.ns[c.netns].by_name("eth0")
    assert itf is not None and itf.peer is not None
    return itf


def _with(snap: Snapshot, key: str, **changes: object) -> Snapshot:
    """``snap`` with the interface ``key`` changed."""
    nss = []
    for ns in snap.namespaces:
        ifs = tuple(
            dataclasses.replace(i, **changes) if i.ref.key == key else i  # type: ignore[arg-type]
            for i in ns.interfaces
        )
        nss.append(dataclasses.replace(ns, interfaces=ifs))
    return dataclasses.replace(snap, namespaces=tuple(nss))


def test_a_netlens_containers_cable_from_either_end() -> None:
    idx = ViewIndex.build(make_snapshot())
    c = _netlens(idx)
    eth0 = _eth0(idx, c)
    assert eth0.peer is not None
    host_end = idx.ifaces[eth0.peer.key]
    for key in (eth0.ref.key, host_end.ref.key, c.id, c.netns):
        assert key is not None
        got = choose(idx, key)
        assert got.target == f"{c.name}:eth0", key
        assert got.label == f"{c.name}:eth0"
        assert got.peer_label == f"host:{host_end.name}"
        assert got.down is True


def test_a_cable_with_an_end_down_is_plugged_back() -> None:
    snap = make_snapshot()
    idx = ViewIndex.build(snap)
    c = _netlens(idx)
    eth0 = _eth0(idx, c)
    assert eth0.peer is not None
    for down_end in (eth0.ref.key, eth0.peer.key):
        idx2 = ViewIndex.build(_with(snap, down_end, admin_up=False, operstate="down"))
        got = choose(idx2, eth0.ref.key)
        assert got.down is False and got.verb == "up"


def test_a_lab_node_is_named_lab_node_if() -> None:
    snap = make_snapshot()
    c = _netlens(ViewIndex.build(snap))
    lab = dataclasses.replace(c, labels={"netlens.lab": "lk", "netlens.lab.node": "r1"})
    snap = dataclasses.replace(
        snap, containers=tuple(lab if x.id == c.id else x for x in snap.containers)
    )
    got = choose(ViewIndex.build(snap), c.id)
    assert (got.target, got.label) == (f"{c.name}:eth0", "lk:r1:eth0")


@pytest.mark.parametrize(
    ("what", "said"),
    [
        ("uplink", "uplink"),
        ("bridge", "not a cable"),
        ("docker", "docker container"),
        ("docker-host-end", "docker container"),
        ("router-p2p", "namespace router"),
        ("server", "host itself"),
        ("nothing", "select a lab link"),
    ],
)
def test_everything_else_is_refused_with_a_reason(what: str, said: str) -> None:
    idx = ViewIndex.build(make_snapshot())
    docker = next(c for c in idx.snapshot.containers if c.engine == "docker")
    d_eth0 = _eth0(idx, docker)
    assert d_eth0.peer is not None
    router = next(n for n in idx.snapshot.namespaces if n.name == "router")
    p2p = router.by_name("p2p-edge")
    assert p2p is not None
    key = {
        "uplink": idx.uplinks[0].ref.key,
        "bridge": idx.bridges[0].ref.key,
        "docker": docker.id,
        "docker-host-end": d_eth0.peer.key,
        "router-p2p": p2p.ref.key,
        "server": "server",
        "nothing": None,
    }[what]
    with pytest.raises(UsageError) as err:
        choose(idx, key)
    assert said in str(err.value)
    assert "\n" not in str(err.value)


def test_a_node_with_several_cables_asks_which() -> None:
    snap = make_snapshot()
    idx = ViewIndex.build(snap)
    c = _netlens(idx)
    assert c.netns is not None
    ns = idx.ns[c.netns]
    extra = dataclasses.replace(_eth0(idx, c), ifindex=9, name="eth1", peer=None)
    snap = dataclasses.replace(
        snap,
        namespaces=tuple(
            dataclasses.replace(n, interfaces=(*n.interfaces, extra)) if n.id == ns.id else n
            for n in snap.namespaces
        ),
    )
    idx = ViewIndex.build(snap)
    with pytest.raises(UsageError, match=r"2 cables \(eth0, eth1\).*Interfaces tab"):
        choose(idx, c.id)
    assert choose(idx, extra.ref.key).target == f"{c.name}:eth1"  # the row itself is fine
