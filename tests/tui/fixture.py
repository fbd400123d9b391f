"""A fixed, deterministic host for the dashboard's tests, screenshots and benchmark.

The dashboard is a view; to test it without root and without the discovery and live
layers we build the model objects directly. ``make_snapshot()`` gives the default lab
(two bridges with ten containers, a router namespace with a point-to-point veth, two
uplinks, a vxlan, routes, neighbours, FDB and NAT); ``make_snapshot(per_bridge=[250] * 4)``
gives the 1000-container host the benchmark uses. Rates come from
:func:`netlens.tui.sources.synthetic_frame`, a pure function of (snapshot, tick).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from netlens.model.types import (
    Address,
    BridgeInfo,
    BridgePortInfo,
    Container,
    Counters,
    FdbEntry,
    IfRef,
    Interface,
    NatRule,
    Neighbour,
    Netns,
    Route,
    Server,
    Snapshot,
    VethPair,
    VxlanInfo,
)
from netlens.tui.sources import FixtureSource

HOST_ID = "netns:4026531840"
FIXED_TIME = 1_785_000_000.0  # a fixed instant so screenshots never change
_ENGINES = ("docker", "podman", "netlens", "lxc", "docker", "containerd")
_NAMES = ("web", "api", "db", "cache", "worker", "queue", "auth", "search", "proxy", "batch")


def bridge_subnet(b: int) -> ipaddress.IPv4Network:
    """The subnet of bridge ``br<b>``: one address plan for every part of the host."""
    return ipaddress.IPv4Network(f"10.{10 + b}.0.0/16")


def gateway_ip(b: int) -> str:
    """The bridge's own address, the containers' default gateway: the first host."""
    return str(bridge_subnet(b)[1])


def container_ip(b: int, i: int) -> str:
    """Container ``i`` (0-based) of bridge ``b``: handed out in order after the gateway,
    as Docker's IPAM does, so the first container is .2."""
    return str(bridge_subnet(b)[2 + i])


def router_ip(b: int) -> str:
    """The router namespace's leg on bridge ``b``: the last-but-one host of the /16's
    first /24, out of the containers' way (they stop at 250 per bridge)."""
    return str(bridge_subnet(b)[254])


def _mac(a: int, b: int) -> str:
    return f"02:42:{(a >> 8) & 0xFF:02x}:{a & 0xFF:02x}:{(b >> 8) & 0xFF:02x}:{b & 0xFF:02x}"


def _ctr(seed: int) -> Counters:
    return Counters(
        rx_bytes=seed * 1_234_567,
        tx_bytes=seed * 987_654,
        rx_packets=seed * 1_200,
        tx_packets=seed * 900,
        rx_dropped=seed % 3,
    )


def _connected(dst: str, dev: str, ifindex: int, src: str) -> Route:
    return Route(
        4, 254, dst, dev=dev, ifindex=ifindex, protocol="kernel", scope="link", prefsrc=src
    )


def make_snapshot(
    per_bridge: Sequence[int] = (6, 4),
    *,
    with_router: bool = True,
    root: bool = True,
    drop: Sequence[str] = (),
    host_container: bool = False,
) -> Snapshot:
    """Build the fixture host.

    ``host_container`` adds the pseudo-container discovery gives the host namespace
    (engine ``host``, named after the hostname ``lab01``), as on a real host.
    ``per_bridge`` gives the number of containers on each bridge ``br0``, ``br1``...
    ``drop`` lists container names to leave out (to simulate containers vanishing).
    Addresses come from :func:`container_ip` and friends, so the containers, the
    router's ARP table, the host's DNAT and the bridges' MAC tables tell one story
    (tests/tui/test_fixture_model.py checks that they do).
    """
    if any(n > 250 for n in per_bridge):
        raise ValueError("at most 250 containers per bridge: .254 is the router's")
    host_ifs: list[Interface] = [
        Interface(
            HOST_ID,
            1,
            "lo",
            "loopback",
            "unknown",
            True,
            mtu=65536,
            addresses=(Address(4, "127.0.0.1", 8, "host"),),
        ),
        Interface(
            HOST_ID,
            2,
            "eth0",
            "ether",
            "up",
            True,
            True,
            mac="52:54:00:12:34:56",
            addresses=(Address(4, "192.0.2.10", 24),),
            uplink=True,
            speed_mbps=10000,
            driver="virtio_net",
            counters=_ctr(900),
        ),
        Interface(
            HOST_ID,
            3,
            "eth1",
            "ether",
            "up",
            True,
            True,
            mac="52:54:00:12:34:57",
            addresses=(Address(4, "198.51.100.10", 24),),
            uplink=True,
            speed_mbps=1000,
            driver="virtio_net",
            counters=_ctr(300),
        ),
    ]
    host_routes: list[Route] = [
        Route(
            4,
            254,
            "default",
            gateway="192.0.2.1",
            dev="eth0",
            ifindex=2,
            protocol="dhcp",
            metric=100,
        ),
        _connected("192.0.2.0/24", "eth0", 2, "192.0.2.10"),
        _connected("198.51.100.0/24", "eth1", 3, "198.51.100.10"),
        Route(
            4,
            255,
            "127.0.0.1",
            type="local",
            dev="lo",
            ifindex=1,
            protocol="kernel",
            scope="host",
            prefsrc="127.0.0.1",
        ),
        Route(
            4,
            255,
            "192.0.2.10",
            type="local",
            dev="eth0",
            ifindex=2,
            protocol="kernel",
            scope="host",
            prefsrc="192.0.2.10",
        ),
    ]
    host_neigh: list[Neighbour] = [
        Neighbour(4, "192.0.2.1", "52:54:00:aa:bb:01", 2, "eth0", "reachable", router=True),
    ]
    fdb: list[FdbEntry] = []
    namespaces: list[Netns] = []
    containers: list[Container] = []
    pairs: list[VethPair] = []
    next_if = 10
    inode = 4026532200
    bridge_ifindex: list[int] = []
    count = 0
    for b, n in enumerate(per_bridge):
        br_idx = next_if
        next_if += 1
        bridge_ifindex.append(br_idx)
        gw = gateway_ip(b)
        host_ifs.append(
            Interface(
                HOST_ID,
                br_idx,
                f"br{b}",
                "bridge",
                "up",
                True,
                True,
                mac=_mac(0xB0, b),
                addresses=(Address(4, gw, 16),),
                bridge=BridgeInfo(stp=b == 1, bridge_id=f"8000.{b}"),
                counters=_ctr(50 + b),
            )
        )
        host_routes.append(_connected(str(bridge_subnet(b)), f"br{b}", br_idx, gw))
        for i in range(n):
            count += 1
            name = f"{_NAMES[(count - 1) % len(_NAMES)]}-{count}"
            if name in drop:
                next_if += 1
                inode += 1
                continue
            engine = _ENGINES[count % len(_ENGINES)]
            ns_id = f"netns:{inode}"
            cid = f"{engine}:{count:04x}c0ffee{b}"
            ip = container_ip(b, i)
            host_veth = f"veth{count:04x}"
            host_ifs.append(
                Interface(
                    HOST_ID,
                    next_if,
                    host_veth,
                    "veth",
                    "up",
                    True,
                    True,
                    mac=_mac(0xAA, count),
                    master=br_idx,
                    link=2,
                    peer=IfRef(ns_id, 2),
                    port=BridgePortInfo(),
                    counters=_ctr(count),
                )
            )
            c_if = Interface(
                ns_id,
                2,
                "eth0",
                "veth",
                "up",
                True,
                True,
                mac=_mac(0xCC, count),
                link=next_if,
                addresses=(Address(4, ip, 16),),
                peer=IfRef(HOST_ID, next_if),
                counters=_ctr(count + 7),
            )
            fdb.append(FdbEntry(_mac(0xCC, count), next_if, br_idx))
            pairs.append(VethPair(IfRef(HOST_ID, next_if), IfRef(ns_id, 2)))
            pid = 2000 + count * 3
            namespaces.append(
                Netns(
                    ns_id,
                    inode,
                    4,
                    False,
                    name,
                    pids=(pid, pid + 1),
                    container=cid,
                    interfaces=(
                        Interface(
                            ns_id,
                            1,
                            "lo",
                            "loopback",
                            "unknown",
                            True,
                            mtu=65536,
                            addresses=(Address(4, "127.0.0.1", 8, "host"),),
                        ),
                        c_if,
                    ),
                    routes=(
                        Route(4, 254, "default", gateway=gw, dev="eth0", ifindex=2),
                        _connected(str(bridge_subnet(b)), "eth0", 2, ip),
                        Route(
                            4,
                            255,
                            ip,
                            type="local",
                            dev="eth0",
                            ifindex=2,
                            protocol="kernel",
                            scope="host",
                            prefsrc=ip,
                        ),
                    ),
                    neighbours=(
                        Neighbour(4, gw, _mac(0xB0, b), 2, "eth0", "reachable", router=True),
                    ),
                    sysctls={"net.ipv4.ip_forward": "0"},
                )
            )
            containers.append(
                Container(
                    cid,
                    engine,
                    name,
                    ns_id,
                    engine_id=f"{count:04x}c0ffee{b}",
                    pid=pid,
                    pids=(pid, pid + 1),
                    command="/usr/sbin/nginx -g daemon off;"
                    if name.startswith("web")
                    else f"/app/{name.split('-')[0]}",
                    image=f"example/{name.split('-')[0]}:1.{count % 4}",
                    state="running",
                    labels={"tier": name.split("-")[0]},
                )
            )
            next_if += 1
            inode += 1
    if len(per_bridge) > 1:
        # a vxlan in br1 towards another site's VTEP
        host_ifs.append(
            Interface(
                HOST_ID,
                next_if,
                "vxlan100",
                "vxlan",
                "unknown",
                True,
                mtu=1450,
                mac="06:00:00:00:01:00",
                master=bridge_ifindex[1],
                lower=IfRef(HOST_ID, 2),
                vxlan=VxlanInfo(
                    100, remote="203.0.113.7", local="192.0.2.10", port=4789, underlay=2
                ),
                port=BridgePortInfo(),
                counters=_ctr(77),
            )
        )
        next_if += 1
    if with_router and len(per_bridge) > 1:
        inode = 4026539000  # fixed, so the router keeps its id when containers change
        r_id, e_id = f"netns:{inode}", f"netns:{inode + 1}"
        r_ifs: list[Interface] = [Interface(r_id, 1, "lo", "loopback", "unknown", True)]
        for b in range(2):
            peer_idx = next_if
            host_ifs.append(
                Interface(
                    HOST_ID,
                    peer_idx,
                    f"vrtr{b}",
                    "veth",
                    "up",
                    True,
                    True,
                    mac=_mac(0xEE, b),
                    master=bridge_ifindex[b],
                    peer=IfRef(r_id, 2 + b),
                    port=BridgePortInfo(),
                    counters=_ctr(400 + b),
                )
            )
            r_ifs.append(
                Interface(
                    r_id,
                    2 + b,
                    f"eth{b}",
                    "veth",
                    "up",
                    True,
                    True,
                    mac=_mac(0xEF, b),
                    addresses=(Address(4, router_ip(b), 16),),
                    peer=IfRef(HOST_ID, peer_idx),
                    counters=_ctr(410 + b),
                )
            )
            pairs.append(VethPair(IfRef(HOST_ID, peer_idx), IfRef(r_id, 2 + b)))
            next_if += 1
        r_ifs.append(
            Interface(
                r_id,
                4,
                "p2p-edge",
                "veth",
                "up",
                True,
                True,
                mac="02:00:00:00:0e:01",
                addresses=(Address(4, "172.31.0.1", 30),),
                peer=IfRef(e_id, 2),
                counters=_ctr(500),
            )
        )
        pairs.append(VethPair(IfRef(r_id, 4), IfRef(e_id, 2)))
        namespaces.append(
            Netns(
                r_id,
                inode,
                4,
                False,
                "router",
                names=("router",),
                pids=(),
                interfaces=tuple(r_ifs),
                routes=(
                    _connected(str(bridge_subnet(0)), "eth0", 2, router_ip(0)),
                    _connected(str(bridge_subnet(1)), "eth1", 3, router_ip(1)),
                    _connected("172.31.0.0/30", "p2p-edge", 4, "172.31.0.1"),
                    Route(
                        4,
                        254,
                        "10.99.0.0/16",
                        gateway="172.31.0.2",
                        dev="p2p-edge",
                        ifindex=4,
                        protocol="static",
                    ),
                    Route(
                        4,
                        254,
                        "default",
                        gateway=gateway_ip(0),
                        dev="eth0",
                        ifindex=2,
                        protocol="static",
                    ),
                    Route(
                        4,
                        100,
                        "default",
                        gateway="172.31.0.2",
                        dev="p2p-edge",
                        ifindex=4,
                        protocol="static",
                    ),
                ),
                neighbours=(
                    Neighbour(4, "172.31.0.2", "02:00:00:00:0e:02", 4, "p2p-edge", "reachable"),
                    # the router answered web-1 (the published web server) lately
                    Neighbour(4, container_ip(0, 0), _mac(0xCC, 1), 2, "eth0", "stale"),
                ),
                nat=(
                    NatRule(
                        "nftables",
                        "ip",
                        "rtr",
                        "post",
                        "postrouting",
                        "masquerade",
                        src="10.11.0.0/16",
                        out_iface="p2p-edge",
                        text="ip saddr 10.11.0.0/16 oifname p2p-edge masquerade",
                    ),
                ),
                sysctls={"net.ipv4.ip_forward": "1"},
            )
        )
        namespaces.append(
            Netns(
                e_id,
                inode + 1,
                4,
                False,
                "edge",
                pids=(9001,),
                container="docker:edge0001",
                interfaces=(
                    Interface(e_id, 1, "lo", "loopback", "unknown", True),
                    Interface(
                        e_id,
                        2,
                        "eth0",
                        "veth",
                        "up",
                        True,
                        True,
                        mac="02:00:00:00:0e:02",
                        addresses=(Address(4, "172.31.0.2", 30),),
                        peer=IfRef(r_id, 4),
                        counters=_ctr(501),
                    ),
                ),
                routes=(
                    _connected("172.31.0.0/30", "eth0", 2, "172.31.0.2"),
                    Route(4, 254, "default", gateway="172.31.0.1", dev="eth0", ifindex=2),
                ),
            )
        )
        containers.append(
            Container(
                "docker:edge0001",
                "docker",
                "edge",
                e_id,
                engine_id="edge0001",
                pid=9001,
                pids=(9001,),
                command="/usr/bin/bird -f",
                image="example/bird:2",
                state="running",
            )
        )
    host = Netns(
        HOST_ID,
        4026531840,
        4,
        True,
        "host",
        pids=(1,),
        interfaces=tuple(host_ifs),
        routes=tuple(host_routes),
        neighbours=tuple(host_neigh),
        fdb=tuple(fdb),
        nat=(
            NatRule(
                "nftables",
                "ip",
                "nat",
                "postrouting",
                "postrouting",
                "masquerade",
                src="10.10.0.0/16",
                out_iface="eth0",
                text="ip saddr 10.10.0.0/16 oifname eth0 masquerade",
            ),
            NatRule(
                "nftables",
                "ip",
                "nat",
                "prerouting",
                "prerouting",
                "dnat",
                proto="tcp",
                in_iface="eth0",
                dport="8080",
                to_addr=container_ip(0, 0),  # web-1's nginx
                to_port="80",
                text=f"iifname eth0 tcp dport 8080 dnat to {container_ip(0, 0)}:80",
            ),
        ),
        sysctls={"net.ipv4.ip_forward": "1"},
    )
    if host_container:
        containers.insert(
            0,
            Container(
                "host:lab01",
                "host",
                "lab01",
                HOST_ID,
                engine_id="lab01",
                pid=1,
                pids=(1,),
                state="running",
            ),
        )
    return Snapshot(
        server=Server("lab01", "6.18.0-netlens", "x86_64", 8, 16 * 1024**3, uptime_s=86400.0),
        namespaces=(host, *namespaces),
        containers=tuple(containers),
        veth_pairs=tuple(pairs),
        taken_at=FIXED_TIME,
        root=root,
    )


def fixture_source(
    per_bridge: Sequence[int] = (6, 4),
    *,
    live: bool = False,
    interval: float = 1.0,
    root: bool = True,
) -> FixtureSource:
    """The deterministic data source used by snapshot tests and screenshots."""
    return FixtureSource(make_snapshot(per_bridge, root=root), live=live, interval=interval)
