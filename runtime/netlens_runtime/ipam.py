"""Address management: subnets for networks, addresses for containers.

Pure functions over ``ipaddress`` objects so they are unit-tested without root.
A network's allocations live in its own state file, so allocating an address
reads one small file instead of every container record.
"""

from __future__ import annotations

import contextlib
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


RESERVED: tuple[tuple[IPv4Net, str], ...] = tuple(
    (ipaddress.IPv4Network(net), why)
    for net, why in (
        ("0.0.0.0/8", "'this network' (0.0.0.0/8)"),
        ("127.0.0.0/8", "loopback (127.0.0.0/8)"),
        ("169.254.0.0/16", "link-local (169.254.0.0/16)"),
        ("224.0.0.0/4", "multicast (224.0.0.0/4)"),
        ("240.0.0.0/4", "reserved, class E and broadcast (240.0.0.0/4)"),
    )
)
"""Ranges a bridge network must not use: the kernel treats their addresses
specially (martians, never forwarded, or not unicast at all), so a network there
either does not work or captures the host's own traffic (a 127.0.0.0/24 bridge
steals loopback)."""


def parse_subnet(text: object) -> IPv4Net:
    """A network's subnet: IPv4 CIDR with no host bits, /30 or bigger, outside
    :data:`RESERVED`. IPv4 only: the runtime gives containers IPv4 addresses and
    routes only (their IPv6 stays link-local)."""
    if not isinstance(text, str):
        raise BadInput(f"{text!r} is not a subnet (CIDR like 10.50.0.0/24)")
    try:
        net = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as err:
        raise BadInput(f"invalid subnet {text!r}: {err}") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise BadInput(f"subnet {text!r} is IPv6: the runtime's networks are IPv4 only")
    if net.prefixlen > 30:
        raise BadInput(f"subnet {text!r} is too small: at most /30")
    for reserved, why in RESERVED:
        if net.overlaps(reserved):
            raise BadInput(f"subnet {text!r} overlaps {why}, which no network may use")
    return net


def parse_address(text: object, what: str = "address") -> str:
    """An IPv4 host address (a container's, a gateway's), normalised."""
    try:
        return str(ipaddress.IPv4Address(text.strip() if isinstance(text, str) else text))
    except ValueError:
        raise BadInput(f"{text!r} is not a valid IPv4 {what}") from None


def check_gateway_subnet(subnet: object, gateway: object) -> None:
    """A gateway is chosen inside a subnet the user chose too: alone it has nothing to be in."""
    if gateway is not None and subnet is None:
        raise BadInput("a gateway needs a subnet")


def check_host_address(net: IPv4Net, addr: str) -> str:
    """``addr`` (a valid address) is one of ``net``'s hosts: inside it, neither its
    network nor its broadcast address (``run --ip``, a lab node's ``ip``)."""
    ip = ipaddress.IPv4Address(addr)
    if ip not in net or ip in (net.network_address, net.broadcast_address):
        raise BadInput(f"address {addr} is not a host address of {net}")
    return addr


def parse_iface_address(text: object) -> ipaddress.IPv4Interface:
    """An interface address with its prefix, e.g. ``10.0.0.1/30`` (point-to-point links):
    IPv4, and not the network or broadcast address of a subnet that has them."""
    try:
        iface = ipaddress.IPv4Interface(text)
    except ValueError:
        with contextlib.suppress(ValueError):
            ipaddress.IPv6Interface(text)
            raise BadInput(f"{text!r} is IPv6: the runtime's links are IPv4 only") from None
        raise BadInput(f"{text!r} is not a valid address") from None
    if not isinstance(text, str) or "/" not in text:
        raise BadInput(f"{text!r} needs a prefix length, e.g. {text}/30")
    net = iface.network
    if net.prefixlen < 31 and iface.ip in (net.network_address, net.broadcast_address):
        raise BadInput(f"{text!r} is the network or broadcast address of {net}")
    return iface


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
        wanted = check_host_address(net, parse_address(wanted))
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


def allocate_batch(
    net: IPv4Net, gateway: str, used: Iterable[str], wanted: list[str | None]
) -> list[str]:
    """Addresses for a batch, in ``wanted``'s order: requested ones first, then the rest.

    Every requested address is taken before any automatic one is handed out, so
    an automatic address never takes one that a later member of the batch asked
    for. Raises like :func:`allocate` (a requested address used twice in the
    batch is a Conflict). ``used`` is not changed.
    """
    taken = set(used)
    out: list[str | None] = [None] * len(wanted)
    for i, want in enumerate(wanted):
        if want is not None:
            out[i] = allocate(net, gateway, taken, want)
            taken.add(out[i])  # type: ignore[arg-type]
    hint = 1  # the first host is free when the gateway is elsewhere
    for i, want in enumerate(wanted):
        if want is None:
            addr = allocate(net, gateway, taken, None, hint)
            taken.add(addr)
            out[i] = addr
            hint = int(ipaddress.IPv4Address(addr)) - int(net.network_address)
    return [a for a in out if a is not None]
