"""A VRF's routes and policy rules the way a router prints them (pure functions).

``show ip route``: one-letter origin codes, prefixes in numeric order per family
(text order put 10.77.254.0/30 before 10.77.32.0/20). ``show ip policy``: the
``ip rule`` list, which decides which table a packet is looked up in at all.
"""

from __future__ import annotations

import ipaddress

from netlens.model.types import Route, Rule

TABLE_NAMES = {253: "default", 254: "main", 255: "local"}
_PROTO_CODE = {
    "static": "S",
    "boot": "S",  # `ip route add` without a protocol: an operator's static
    "dhcp": "D",
    "bird": "B",
    "bgp": "B",
    "ospf": "O",
    "isis": "I",
    "rip": "R",
    "zebra": "Z",
    "ra": "R",
    "redirect": "R",
}
_TYPE_CODE = {"local": "L", "anycast": "L", "broadcast": "b", "multicast": "m"}
ROUTE_LEGEND = (
    "Codes: C - connected, S - static, K - kernel, L - local, D - DHCP, "
    "R - RA/RIP, B - BGP/bird, O - OSPF, b - broadcast, m - multicast, * - candidate default"
)


def route_code(r: Route) -> str:
    """One-letter origin code, the way a router prints it.

    The local table also holds broadcast and multicast routes: they are not local
    addresses ('b', 'm'). The kernel's own routes without a gateway are the
    prefixes of configured addresses, connected ones, in IPv6 too (where the
    kernel gives them universe scope, not link scope).
    """
    code = _TYPE_CODE.get(r.type)
    if code is None:
        if r.protocol == "kernel" and r.gateway is None and not r.nexthops:
            code = "C"
        elif r.protocol == "kernel":
            code = "K"
        else:
            code = _PROTO_CODE.get(r.protocol, "K")
    return code + ("*" if r.dst == "default" else "")


def table_name(t: int) -> str:
    return TABLE_NAMES.get(t, str(t))


def prefix_text(r: Route) -> str:
    """The destination as a prefix (``0.0.0.0/0`` and ``::/0`` for default)."""
    if r.dst == "default":
        return "0.0.0.0/0" if r.family == 4 else "::/0"
    return r.dst


def route_sort_key(r: Route) -> tuple[bool, int, int, bool, int, int, str]:
    """main first, then by table; IPv4 before IPv6; the default first; then the
    prefix in numeric order (network address, then the shorter prefix)."""
    try:
        net = ipaddress.ip_network(prefix_text(r), strict=False)
        addr, plen = int(net.network_address), net.prefixlen
    except ValueError:  # not a prefix (a dump from elsewhere): after the others
        addr, plen = 1 << 128, 0
    return (r.table != 254, r.table, r.family, r.dst != "default", addr, plen, r.dst)


def rule_selector(r: Rule) -> str:
    """``from 10.0.0.0/8 to all iif eth0 fwmark 0x7``, as ``ip rule`` prints it."""
    words = (["not"] if r.invert else []) + ["from", r.src or "all"]
    if r.dst:
        words += ["to", r.dst]
    if r.iif:
        words += ["iif", r.iif]
    if r.oif:
        words += ["oif", r.oif]
    if r.fwmark is not None:
        words += ["fwmark", hex(r.fwmark)]
    return " ".join(words)


def rule_action(r: Rule) -> str:
    """``lookup main``, ``blackhole``, ``l3mdev`` (a VRF device's own table)."""
    if r.action == "lookup":
        return f"lookup {table_name(r.table)}"
    return r.action
