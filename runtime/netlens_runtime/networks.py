"""Bridge networks: create (bridge, address, NAT and isolation rules, record), remove, list.

Every mutation holds the state lock and undoes what it made when a step fails.
Subnets and gateways are IPAM's (:mod:`netlens_runtime.ipam`), names and the
MTU the input rules' (:mod:`netlens_runtime.names`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from typing import TYPE_CHECKING, Any

from netlens_runtime import hostlinks, ipam, names, nat, state
from netlens_runtime.errors import Conflict, NotFound, RuntimeFailure, fault, require_root
from netlens_runtime.netlink import Netlink, ifindex

if TYPE_CHECKING:
    from netlens_runtime.args import NetworkLike


def taken_subnets(
    networks: dict[str, dict[str, Any]],
) -> list[tuple[str, ipaddress.IPv4Network]]:
    """(label, subnet) of every network and every other host route: what a new
    network's subnet must not overlap (``network create``, ``lab up``, ``lab check``)."""
    own = {ipaddress.IPv4Network(n["subnet"]) for n in networks.values()}
    taken = [(f"network {k}", ipaddress.IPv4Network(n["subnet"])) for k, n in networks.items()]
    taken += [("a host route", r) for r in ipam.host_routes() if r not in own]
    return taken


def make_network(spec: NetworkLike, networks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Create bridge, address, rules and record; caller holds the lock."""
    names.validate_name(spec.name, "network")
    if spec.name in networks:
        raise Conflict(f"network {spec.name} already exists")
    bridge = names.validate_ifname(spec.bridge or names.bridge_name(spec.name, state.scope()))
    if os.path.exists(f"/sys/class/net/{bridge}"):
        raise Conflict(f"interface {bridge} already exists")
    names.validate_mtu(spec.mtu)
    ipam.check_gateway_subnet(spec.subnet, spec.gateway)
    taken = taken_subnets(networks)
    if spec.subnet:
        subnet = ipam.parse_subnet(spec.subnet)
        ipam.check_free(subnet, taken)
    else:
        subnet = ipam.pick_subnet(taken)
    gateway = ipam.gateway_for(subnet, spec.gateway)
    rec: dict[str, Any] = {
        "name": spec.name,
        "bridge": bridge,
        "subnet": str(subnet),
        "gateway": gateway,
        "nat": spec.nat and not spec.internal,
        "internal": spec.internal,
        "allow_from": names.check_allow_from(spec.name, spec.allow_from),
        "mtu": spec.mtu,
        "created": state.now(),
        "allocations": {},
        "published": {},
    }
    made_bridge = False
    try:
        with Netlink() as nl:
            nl.add_bridge(bridge, spec.mtu)
            nl.commit()
            made_bridge = True
            nl.add_addr(ifindex(bridge), f"{gateway}/{subnet.prefixlen}")
            nl.commit()
        if rec["nat"]:
            nat.need_forwarding()
        state.write_json(state.network_path(spec.name), rec)
        nat.sync([*networks.values(), rec])
        rec["iptables_forward"] = nat.allow_forward(bridge)
        fault("network_rules")
        state.write_json(state.network_path(spec.name), rec)
    except BaseException:
        state.remove_file(state.network_path(spec.name))
        if made_bridge:
            hostlinks.del_links([bridge])
        with contextlib.suppress(RuntimeFailure):
            nat.sync(list(networks.values()))
        nat.disallow_forward(bridge)
        with contextlib.suppress(OSError):
            nat.release_forwarding(list(networks.values()))
        raise
    networks[spec.name] = rec
    return rec


def create_network(spec: NetworkLike) -> dict[str, Any]:
    """Create a bridge network; Conflict if the name, bridge or subnet is taken."""
    require_root("network create")
    names.validate_name(spec.name, "network")
    with state.locked():
        return make_network(spec, state.load_networks())


def remove_network(name: str) -> None:
    """Delete a network (bridge, rules, record); Conflict while containers use it.

    The last NAT network of the state directory also puts ``ip_forward`` back
    if netlens turned it on (:func:`runtime.nat.release_forwarding`).
    """
    require_root("network rm")
    names.validate_name(name, "network")
    with state.locked():
        networks = state.load_networks()
        net = networks.get(name)
        if net is None:
            raise NotFound(f"no network {name}")
        users = sorted(set((net.get("allocations") or {}).values()))
        users = [u for u in users if os.path.exists(state.container_path(u))]
        if users:
            raise Conflict(f"network {name} is used by containers: {', '.join(users[:5])}")
        del networks[name]
        hostlinks.del_links([net["bridge"]])
        nat.disallow_forward(net["bridge"])
        nat.sync(list(networks.values()))
        state.remove_file(state.network_path(name))
        nat.release_forwarding(list(networks.values()))


def list_networks() -> list[dict[str, Any]]:
    out = []
    for net in state.load_networks().values():
        net = dict(net)
        net["containers"] = len(net.get("allocations") or {})
        out.append(net)
    return out
