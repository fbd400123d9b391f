"""Single questions to the kernel of one namespace: route, neighbour, FDB, netconf.

Discovery dumps whole tables; a trace needs the kernel's *decision* for one
packet. ``ip route get`` sends RTM_GETROUTE with the packet's fields and the
kernel runs its own lookup (policy rules, l3mdev VRFs, metrics, input checks
such as ip_forward and rp_filter when an input interface is given): asking it
is the only way to be right, so nothing here matches prefixes itself. Each
function takes a netlink socket that already lives in the namespace to ask
(see :mod:`netlens.kernel.nsquery`) and returns plain data.

Codec pieces come from the discovery package's wire module (one codec for the
project); this module only adds the request and reply shapes it needs.
"""

from __future__ import annotations

import errno
import ipaddress
import socket as _socket
import struct
from dataclasses import dataclass

from netlens.kernel.consts import (
    AF_BRIDGE,
    AF_INET,
    AF_INET6,
    NDA_DST,
    NDA_LLADDR,
    NDA_MASTER,
    NDA_VLAN,
    NETCONFA_FORWARDING,
    NETCONFA_IFINDEX,
    NETCONFA_RP_FILTER,
    NLM_F_REQUEST,
    NLMSG_ERROR,
    ROUTE_TYPES,
    RTA_DPORT,
    RTA_DST,
    RTA_GATEWAY,
    RTA_IIF,
    RTA_IP_PROTO,
    RTA_MARK,
    RTA_METRICS,
    RTA_OIF,
    RTA_PREFSRC,
    RTA_PRIORITY,
    RTA_SPORT,
    RTA_SRC,
    RTA_TABLE,
    RTA_VIA,
    RTAX_MTU,
    RTM_F_FIB_MATCH,
    RTM_F_LOOKUP_TABLE,
    RTM_GETNEIGH,
    RTM_GETNETCONF,
    RTM_GETROUTE,
    RTM_NEWNEIGH,
    RTM_NEWNETCONF,
    RTM_NEWROUTE,
    nud_state,
)
from netlens.kernel.wire import NetlinkError, attr_map, iter_messages, message, nla


def _mac_text(raw: bytes) -> str:
    return raw.hex(":")


IPPROTO = {"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58}

_RTMSG = struct.Struct("=BBBBBBBBI")
_NDMSG = struct.Struct("=BxxxiHBB")
_U16BE = struct.Struct(">H")
_U32 = struct.Struct("=I")
_I32 = struct.Struct("=i")


@dataclass(frozen=True, slots=True)
class RouteAnswer:
    """What the kernel decided for one packet (``ip route get``), or why it refused.

    ``error`` is the errno the kernel answered (ENETUNREACH for no route or an
    unreachable route, EINVAL for blackhole, EACCES for prohibit, EXDEV for a
    strict rp_filter, EHOSTUNREACH...); the other fields are then empty. With
    ``fib_match`` the answer describes the FIB entry itself (its ``dst_len`` and
    ``type``), which names the route that made a lookup fail.
    """

    error: int = 0
    type: str = "unicast"
    table: int | None = None
    dst: str | None = None
    dst_len: int = 0
    oif: int | None = None
    iif: int | None = None
    gateway: str | None = None
    prefsrc: str | None = None
    metric: int | None = None
    mtu: int | None = None

    @property
    def prefix(self) -> str | None:
        """``10.1.0.0/24`` for a FIB match; ``default`` for /0."""
        if self.dst is None:
            return "default" if self.dst_len == 0 and self.error == 0 else None
        return f"{self.dst}/{self.dst_len}"


@dataclass(frozen=True, slots=True)
class NeighAnswer:
    """One neighbour entry (``ip neigh get``); None from :func:`neigh_get` when absent."""

    ip: str
    ifindex: int
    mac: str | None
    state: str


@dataclass(frozen=True, slots=True)
class FdbAnswer:
    """One bridge FDB entry (``bridge fdb get``): the port a frame to ``mac`` leaves by."""

    mac: str
    port: int
    master: int | None
    vlan: int | None
    state: str


def _family(addr: str) -> int:
    return AF_INET6 if ipaddress.ip_address(addr).version == 6 else AF_INET


def _addr(addr: str) -> bytes:
    return ipaddress.ip_address(addr).packed


def _ask(sock: _socket.socket, request: bytes) -> bytes:
    """Send one request and read its single reply; raises NetlinkError for an
    error answer. The socket is used by one question at a time."""
    sock.send(request)
    while True:
        data = sock.recv(65536)
        for typ, _flags, start, _end in iter_messages(data):
            if typ == NLMSG_ERROR:
                err = _I32.unpack_from(data, start)[0]
                if err < 0:
                    raise NetlinkError(-err, errno.errorcode.get(-err, str(-err)))
                return b""
            return data
        if not data:
            return b""


def route_request(
    dst: str,
    *,
    src: str | None = None,
    iif: int | None = None,
    oif: int | None = None,
    proto: str | None = None,
    sport: int | None = None,
    dport: int | None = None,
    mark: int | None = None,
    fib_match: bool = False,
    seq: int = 1,
) -> bytes:
    """The RTM_GETROUTE that ``ip route get DST from SRC iif X ipproto P sport S dport D`` sends."""
    fam = _family(dst)
    bits = 128 if fam == AF_INET6 else 32
    flags = RTM_F_LOOKUP_TABLE | (RTM_F_FIB_MATCH if fib_match else 0)
    body = _RTMSG.pack(fam, bits, bits if src else 0, 0, 0, 0, 0, 0, flags)
    body += nla(RTA_DST, _addr(dst))
    if src:
        body += nla(RTA_SRC, _addr(src))
    if iif is not None:
        body += nla(RTA_IIF, _U32.pack(iif))
    if oif is not None:
        body += nla(RTA_OIF, _U32.pack(oif))
    if mark is not None:
        body += nla(RTA_MARK, _U32.pack(mark))
    if proto is not None:
        # IPv6 route get accepts only tcp, udp and icmpv6 (ENOTSUP for protocol 1)
        wire = "icmpv6" if proto == "icmp" and fam == AF_INET6 else proto
        body += nla(RTA_IP_PROTO, bytes([IPPROTO[wire]]))
        if proto in ("tcp", "udp"):
            if sport is not None:
                body += nla(RTA_SPORT, _U16BE.pack(sport))
            if dport is not None:
                body += nla(RTA_DPORT, _U16BE.pack(dport))
    return message(RTM_GETROUTE, NLM_F_REQUEST, seq, body)


def parse_route_answer(data: bytes) -> RouteAnswer:
    """The first RTM_NEWROUTE of a route-get reply."""
    for typ, _flags, start, end in iter_messages(data):
        if typ != RTM_NEWROUTE:
            continue
        fam, dst_len, _sl, _tos, table, _proto, _scope, rtype, _fl = _RTMSG.unpack_from(data, start)
        a = attr_map(data, start + _RTMSG.size, end)
        ipfam = _socket.AF_INET6 if fam == AF_INET6 else _socket.AF_INET

        def ip(key: int, a: dict[int, bytes] = a, ipfam: int = ipfam) -> str | None:
            raw = a.get(key)
            return _socket.inet_ntop(ipfam, raw) if raw else None

        mtu = None
        if RTA_METRICS in a:
            metrics = attr_map(a[RTA_METRICS], 0, len(a[RTA_METRICS]))
            if RTAX_MTU in metrics:
                mtu = _U32.unpack_from(metrics[RTAX_MTU])[0]
        gateway = ip(RTA_GATEWAY)
        via = a.get(RTA_VIA)
        if gateway is None and via and len(via) >= 6:  # struct rtvia: family + address
            vfam = _socket.AF_INET6 if _U16BE.unpack_from(via)[0] == 0x0A00 else _socket.AF_INET
            gateway = _socket.inet_ntop(vfam, via[2:])
        return RouteAnswer(
            type=ROUTE_TYPES[rtype] if rtype < len(ROUTE_TYPES) else str(rtype),
            table=_U32.unpack_from(a[RTA_TABLE])[0] if RTA_TABLE in a else table,
            dst=ip(RTA_DST),
            dst_len=dst_len,
            oif=_U32.unpack_from(a[RTA_OIF])[0] if RTA_OIF in a else None,
            iif=_U32.unpack_from(a[RTA_IIF])[0] if RTA_IIF in a else None,
            gateway=gateway,
            prefsrc=ip(RTA_PREFSRC),
            metric=_U32.unpack_from(a[RTA_PRIORITY])[0] if RTA_PRIORITY in a else None,
            mtu=mtu,
        )
    return RouteAnswer(error=61)  # ENODATA: an answer without a route


def route_get(sock: _socket.socket, dst: str, **kw: object) -> RouteAnswer:
    """Ask the kernel which route a packet to ``dst`` takes (keywords as in
    :func:`route_request`); a refusal comes back as ``RouteAnswer(error=errno)``."""
    try:
        return parse_route_answer(_ask(sock, route_request(dst, **kw)))  # type: ignore[arg-type]
    except NetlinkError as err:
        return RouteAnswer(error=err.errno or 0)


def neigh_request(ip: str, ifindex: int, seq: int = 1) -> bytes:
    """RTM_GETNEIGH for one address on one device (``ip neigh get IP dev X``)."""
    body = _NDMSG.pack(_family(ip), ifindex, 0, 0, 0) + nla(NDA_DST, _addr(ip))
    return message(RTM_GETNEIGH, NLM_F_REQUEST, seq, body)


def neigh_get(sock: _socket.socket, ip: str, ifindex: int) -> NeighAnswer | None:
    """The neighbour entry for ``ip`` on ``ifindex``; None when the kernel has none."""
    try:
        data = _ask(sock, neigh_request(ip, ifindex))
    except NetlinkError:
        return None
    for typ, _flags, start, end in iter_messages(data):
        if typ != RTM_NEWNEIGH:
            continue
        _fam, idx, state, _nf, _t = _NDMSG.unpack_from(data, start)
        a = attr_map(data, start + _NDMSG.size, end)
        ll = a.get(NDA_LLADDR)
        return NeighAnswer(ip, idx, _mac_text(ll) if ll else None, nud_state(state))
    return None


def fdb_request(mac: str, bridge: int, vlan: int | None = None, seq: int = 1) -> bytes:
    """RTM_GETNEIGH (AF_BRIDGE) for one MAC on one bridge (``bridge fdb get MAC br BR``)."""
    body = _NDMSG.pack(AF_BRIDGE, 0, 0, 0, 0)
    body += nla(NDA_LLADDR, bytes.fromhex(mac.replace(":", "")))
    body += nla(NDA_MASTER, _U32.pack(bridge))
    if vlan is not None:
        body += nla(NDA_VLAN, struct.pack("=H", vlan))
    return message(RTM_GETNEIGH, NLM_F_REQUEST, seq, body)


def fdb_get(sock: _socket.socket, mac: str, bridge: int) -> FdbAnswer | None:
    """The bridge's FDB entry for ``mac``; None when the bridge does not know it
    (a frame to it is then flooded to every port)."""
    try:
        data = _ask(sock, fdb_request(mac, bridge))
    except NetlinkError:
        return None
    for typ, _flags, start, end in iter_messages(data):
        if typ != RTM_NEWNEIGH:
            continue
        _fam, idx, state, _nf, _t = _NDMSG.unpack_from(data, start)
        a = attr_map(data, start + _NDMSG.size, end)
        master = _U32.unpack_from(a[NDA_MASTER])[0] if NDA_MASTER in a else None
        vlan = struct.unpack_from("=H", a[NDA_VLAN])[0] if NDA_VLAN in a else None
        return FdbAnswer(mac, idx, master, vlan, nud_state(state))
    return None


def netconf_request(ifindex: int, family: int = AF_INET, seq: int = 1) -> bytes:
    """RTM_GETNETCONF for one device (-1 ``all``, -2 ``default``)."""
    body = bytes([family]) + b"\0\0\0" + nla(NETCONFA_IFINDEX, _I32.pack(ifindex))
    return message(RTM_GETNETCONF, NLM_F_REQUEST, seq, body)


def netconf_get(sock: _socket.socket, ifindex: int, family: int = AF_INET) -> dict[str, int]:
    """``forwarding`` and ``rp_filter`` of one device (or all/default) as the kernel
    holds them; empty when it does not answer."""
    try:
        data = _ask(sock, netconf_request(ifindex, family))
    except NetlinkError:
        return {}
    out: dict[str, int] = {}
    for typ, _flags, start, end in iter_messages(data):
        if typ != RTM_NEWNETCONF:
            continue
        a = attr_map(data, start + 4, end)
        for key, name in ((NETCONFA_FORWARDING, "forwarding"), (NETCONFA_RP_FILTER, "rp_filter")):
            if key in a:
                out[name] = _I32.unpack_from(a[key])[0]
    return out
