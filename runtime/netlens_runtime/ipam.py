"""Address management: subnets for networks, addresses for containers.

Pure functions over ``ipaddress`` objects so they are unit-tested without root.
A network's allocations live in its own state file, so allocating an address
reads one small file instead of every container record.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from netlens_runtime.errors import BadInput, Conflict

IPv4Net = ipaddress.IPv4Network
DEFAULT_SUBNET = "10.88.0.0/16"


def host_routes(path: str = "/proc/net/route") -> list[IPv4Net]:
    """Destinations of the host's IPv4 routes (the default route excluded)."""
    nets: list[IPv4Net] = []
    try:
        with open(path) as fh:
            lines = fh.read().splitlines()[1:]
    except OSError:
        return nets
    for line in lines:
        f = line.split()
        if len(f) < 8:
            continue
        dest = ipaddress.IPv4Address(int(f[1], 16).to_bytes(4, "little"))
        mask = ipaddress.IPv4Address(int(f[7], 16).to_bytes(4, "little"))
        net = ipaddress.IPv4Network(f"{dest}/{mask}", strict=False)
        if net.prefixlen:
            nets.append(net)
    return nets


def parse_subnet(text: str) -> IPv4Net:
    try:
        net = ipaddress.IPv4Network(text, strict=True)
    except ValueError as err:
        raise BadInput(f"invalid subnet {text!r}: {err}") from None
    if net.prefixlen > 30:
        raise BadInput(f"subnet {text!r} is too small: at most /30")
    return net


def check_free(net: IPv4Net, taken: Iterable[tuple[str, IPv4Net]]) -> None:
    """Raise Conflict if ``net`` overlaps a network or route in ``taken`` (label, net)."""
    for label, other in taken:
        if net.overlaps(other):
            raise Conflict(f"subnet {net} overlaps {other} ({label})")


def pick_subnet(taken: list[tuple[str, IPv4Net]], first: str = DEFAULT_SUBNET) -> IPv4Net:
    """First free subnet: ``first`` if free, else /24s from 10.89.0.0 upward."""
    candidates: list[IPv4Net] = [ipaddress.IPv4Network(first)]
    for second in range(89, 128):
        base = ipaddress.IPv4Network(f"10.{second}.0.0/16")
        candidates.extend(base.subnets(new_prefix=24))
    for cand in candidates:
        if not any(cand.overlaps(o) for _, o in taken):
            return cand
    raise Conflict("no free private subnet left: pass --subnet")


def gateway_for(net: IPv4Net, gateway: str | None) -> str:
    """The gateway: given (must be inside the subnet) or the first host address."""
    if gateway is None:
        return str(net.network_address + 1)
    try:
        gw = ipaddress.IPv4Address(gateway)
    except ValueError:
        raise BadInput(f"invalid gateway {gateway!r}") from None
    if gw not in net or gw in (net.network_address, net.broadcast_address):
        raise BadInput(f"gateway {gateway} is not a host address of {net}")
    return str(gw)


def allocate(
    net: IPv4Net, gateway: str, used: set[str], wanted: str | None = None, start: int = 2
) -> str:
    """One address: ``wanted`` if free and valid, else the lowest free host address.

    ``start`` is a hint (offset into the subnet) so batch allocation stays O(n).
    """
    if wanted is not None:
        try:
            addr = ipaddress.IPv4Address(wanted)
        except ValueError:
            raise BadInput(f"invalid address {wanted!r}") from None
        if addr not in net or addr in (net.network_address, net.broadcast_address):
            raise BadInput(f"address {wanted} is not a host address of {net}")
        if wanted == gateway:
            raise Conflict(f"address {wanted} is the gateway of {net}")
        if wanted in used:
            raise Conflict(f"address {wanted} is already in use on {net}")
        return wanted
    base = int(net.network_address)
    last = int(net.broadcast_address)
    for value in range(base + max(start, 1), last):
        text = str(ipaddress.IPv4Address(value))
        if text != gateway and text not in used:
            return text
    raise Conflict(f"no free address left in {net}")
