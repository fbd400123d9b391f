"""Cross checks of a lab: what no single value shows, once every node has been read.

Each node on its networks (an address inside the subnet, not the gateway, not
taken twice), each interface name claimed once per node, every route's device
and gateway reachable, every link between two existing nodes with addresses in
one subnet, every flow between nodes that can receive it. Errors name the
file:line of the value that breaks the rule.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from netlens_runtime import ipam, names
from netlens_runtime.errors import BadInput
from netlens_runtime.lab_model import (
    PRIMARY_IFNAME,
    LabFlow,
    LabInterface,
    LabLink,
    LabNetwork,
    LabNode,
    LabRoute,
    Where,
)
from netlens_runtime.lab_yaml import Val, check_rate

_FLOW = frozenset({"from", "to", "proto", "port", "rate"})


@dataclass
class NodeDraft:
    """A node while it is being read: values plus where each came from."""

    name: str
    where: Where
    fields: dict[str, Any]
    vals: dict[str, Val]
    ip_where: Where | None = None


class _Missing:
    """Marker: a node without 'network' in a lab with several networks."""


MISSING: Any = _Missing()


def finish_nodes(
    drafts: list[NodeDraft],
    networks: dict[str, tuple[LabNetwork, Val]],
    links: list[tuple[LabLink, Val]],
) -> list[LabNode]:
    """The nodes, each checked against its networks, interfaces, links and routes."""
    used_ips: dict[tuple[str, str], str] = {}
    for net, _nv in networks.values():
        if net.subnet:  # the runtime's default gateway (the first address) is taken too
            gw = ipam.gateway_for(ipaddress.IPv4Network(net.subnet), net.gateway)
            used_ips[(net.name, gw)] = f"the gateway of network {net.name!r}"
    nodes: list[LabNode] = []
    for d in drafts:
        f = d.fields
        if f.get("network") is MISSING:
            raise d.where.error(
                "field 'network' is required when the lab has several"
                " networks (or 'network: null' for none)"
            )
        network = f.get("network")
        if f.get("impair") is not None and network is None:
            raise d.vals["impair"].err(
                f"node {d.name!r} has no network, so no {PRIMARY_IFNAME} to impair"
                " (impair its links or interfaces instead)"
            )
        if f.get("publish"):  # the rule of ``run -p``
            internal = network is not None and networks[network][0].internal
            try:
                names.check_publish(network, internal)
            except BadInput as err:
                raise d.vals["publish"].err(str(err)) from None
        ip = f.get("ip")
        if ip is not None:
            where = d.ip_where or d.where
            if network is None:
                raise where.error(f"node {d.name!r} has an ip but no network")
            _check_host_ip(ip, networks[network][0], where, d.name, used_ips)
        ifnames: dict[str, str] = {}
        if network is not None:
            ifnames[PRIMARY_IFNAME] = f"its network {network!r}"
        ifaces: list[LabInterface] = []
        for iface, iv in f.get("interfaces", []):
            _claim_ifname(ifnames, iface.ifname, iv, f"network {iface.network!r}")
            if iface.network == network:
                raise iv.err(f"node {d.name!r} is already on network {iface.network!r}")
            if iface.ip is not None:
                _check_host_ip(iface.ip, networks[iface.network][0], iv.where, d.name, used_ips)
            ifaces.append(iface)
        for link, lv in links:
            for node, ifname, peer in (
                (link.a, link.a_ifname, link.b),
                (link.b, link.b_ifname, link.a),
            ):
                if node == d.name:
                    _claim_ifname(ifnames, ifname, lv, f"the link to {peer!r}")
        routes: list[LabRoute] = []
        connected = _connected(d.name, network, ip, ifaces, networks, links)
        for route, rv in f.get("routes", []):
            if route.dev is not None and route.dev not in ifnames:
                raise rv.err(f"node {d.name!r} has no interface {route.dev!r}")
            if route.via is not None and route.dev is None:
                via = ipaddress.ip_address(route.via)
                if not any(via in net for net in connected):
                    raise rv.err(f"gateway {route.via} is not on any network of node {d.name!r}")
            routes.append(route)
        kwargs = {k: v for k, v in f.items() if k not in ("interfaces", "routes", "network")}
        nodes.append(
            LabNode(
                name=d.name,
                network=network,
                interfaces=tuple(ifaces),
                routes=tuple(routes),
                **kwargs,
            )
        )
    return nodes


def _claim_ifname(ifnames: dict[str, str], ifname: str, v: Val, what: str) -> None:
    if ifname in ifnames:
        raise v.err(f"interface {ifname!r} is already used by {ifnames[ifname]}")
    ifnames[ifname] = what


def _check_host_ip(
    ip: str,
    net: LabNetwork,
    where: Where,
    node: str,
    used: dict[tuple[str, str], str],
) -> None:
    if net.subnet is None:
        raise where.error(f"network {net.name!r} has no subnet, so {ip} cannot be placed")
    try:  # the rule of ``run --ip``
        ipam.check_host_address(ipaddress.IPv4Network(net.subnet), ip)
    except BadInput as err:
        raise where.error(f"node {node!r}: {err}") from None
    key = (net.name, ip)
    if key in used:
        raise where.error(f"{ip} (node {node!r}) is already used by {used[key]}")
    used[key] = f"node {node!r}"


def _connected(
    node: str,
    network: str | None,
    ip: str | None,
    ifaces: list[LabInterface],
    networks: dict[str, tuple[LabNetwork, Val]],
    links: list[tuple[LabLink, Val]],
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Subnets a node is directly on: where its route gateways must be."""
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for name in [network, *(i.network for i in ifaces)]:
        if name is not None and networks[name][0].subnet:
            nets.append(ipaddress.ip_network(networks[name][0].subnet or ""))
    for link, _lv in links:
        for end, addr in ((link.a, link.a_addr), (link.b, link.b_addr)):
            if end == node and addr is not None:
                nets.append(ipaddress.ip_interface(addr).network)
    return nets


def check_links(links: list[tuple[LabLink, Val]], drafts: list[NodeDraft]) -> None:
    names = {d.name for d in drafts}
    addrs: dict[str, int] = {}
    for link, lv in links:
        for end in (link.a, link.b):
            if end not in names:
                raise lv.err(f"no node {end!r} in this lab")
        if link.a == link.b:
            raise lv.err("a link needs two different nodes")
        if link.a_addr and link.b_addr:
            a = ipaddress.ip_interface(link.a_addr)
            b = ipaddress.ip_interface(link.b_addr)
            if a.network != b.network:
                raise lv.err(f"{link.a_addr} and {link.b_addr} are not in the same subnet")
            if a.ip == b.ip:
                raise lv.err(f"both ends have the address {a.ip}")
        for addr in (link.a_addr, link.b_addr):
            if addr is None:
                continue
            ip = str(ipaddress.ip_interface(addr).ip)
            if ip in addrs:
                raise lv.err(f"{ip} is already used by the link at line {addrs[ip]}")
            addrs[ip] = lv.where.line


def flows(val: Val | None, nodes: list[LabNode]) -> list[LabFlow]:
    out: list[LabFlow] = []
    if val is None:
        return out
    by_name = {n.name: n for n in nodes}
    ports: set[tuple[str, str, int]] = set()
    for fv in val.sequence():
        f = fv.mapping(_FLOW)
        for req in ("from", "to"):
            if req not in f:
                raise fv.err(f"missing field {req!r}")
        src, dst = f["from"].string(), f["to"].string()
        for key, name in (("from", src), ("to", dst)):
            if name not in by_name:
                raise f[key].err(f"no node {name!r} in this lab")
        if src == dst:
            raise fv.err("a flow needs two different nodes")
        if by_name[dst].ip is None:
            raise f["to"].err(f"node {dst!r} has no fixed ip, so it cannot receive traffic")
        proto = f["proto"].string().lower() if "proto" in f else "tcp"
        if proto not in ("tcp", "udp"):
            raise f["proto"].err(f"{proto!r}: expected tcp or udp")
        lo, hi = check_rate(f["rate"]) if "rate" in f else (1_000_000, 10_000_000)
        port = f["port"].integer(1, 65535) if "port" in f else 5201 + len(out)
        flow_key = (dst, proto, port)
        if flow_key in ports:
            raise fv.err(f"{proto} port {port} on {dst!r} is already used by another flow")
        ports.add(flow_key)
        out.append(
            LabFlow(
                src=src,
                dst=dst,
                proto=proto,
                port=port,
                min_bps=lo,
                max_bps=hi,
            )
        )
    return out
