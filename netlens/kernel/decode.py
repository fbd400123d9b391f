"""Decode rtnetlink replies into plain tuples (no model classes, no heavy imports).

This is the attribute-walking half of parsing: it turns reply bytes into tuples
of ints, strings and bytes. :mod:`netlens.discovery.builders` turns those rows
into model objects. The split exists for speed: this module imports only
``struct`` and ``_socket``, so the helper process (:mod:`netlens.kernel.serve`) can load it in a
few milliseconds and decode the replies of a thousand namespaces on the second
core; the rows cross the pipe with ``marshal`` and the parent only builds
objects. Live replies read directly, and recorded fixtures, go through the very
same functions in the parent.

Row layouts (positions are part of the contract with ``builders.py``):

- link: (ifindex, iftype, flags, name, operstate, carrier, mtu, mac, alias,
  master, link, link_netnsid, stats8, parent_dev, kind, kind_data, slave_kind,
  port); operstate/carrier are kernel codes (-1: absent), stats8 the first eight
  rtnl_link_stats64 counters, kind_data {IFLA_*_ type: payload bytes}, port
  (state, priority, cost, hairpin, learning, flood) with -1/2 for absent.
- addr: (ifindex, version, address, prefixlen, scope code, broadcast, label)
- route: (version, table, dst, type code, gateway, oif, protocol code, scope
  code, metric, prefsrc, nexthops as ((gateway, ifindex, weight), ...))
"""

from __future__ import annotations

import struct
from _socket import AF_INET6 as _SOCK_AF_INET6
from _socket import inet_ntop

from netlens.kernel.consts import (
    AF_INET,
    AF_INET6,
    IFLA_ADDRESS,
    IFLA_CARRIER,
    IFLA_IFALIAS,
    IFLA_IFNAME,
    IFLA_INFO_DATA,
    IFLA_INFO_KIND,
    IFLA_INFO_SLAVE_DATA,
    IFLA_INFO_SLAVE_KIND,
    IFLA_LINK,
    IFLA_LINK_NETNSID,
    IFLA_LINKINFO,
    IFLA_MASTER,
    IFLA_MTU,
    IFLA_OPERSTATE,
    IFLA_PARENT_DEV_NAME,
    IFLA_STATS64,
    RTM_F_CLONED,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWROUTE,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Row = tuple[Any, ...]  # a decoded message (see the module docstring)


_STATS8 = struct.Struct("=8Q")  # first 8 u64 of rtnl_link_stats64
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTNH = struct.Struct("=HBBi")


def views(data: bytes) -> tuple[bytes, memoryview, memoryview]:
    """The buffer plus 16-bit and 32-bit word views of it.

    Netlink keeps every message and attribute header 4-byte aligned, so lengths and
    types can be read by indexing these views, which costs a fraction of a
    ``struct`` call. A buffer whose length is not a multiple of 4 (never the case
    for kernel replies) is zero-padded first.
    """
    if len(data) & 3:
        data = data + b"\0" * (-len(data) % 4)
    mv = memoryview(data)
    return data, mv.cast("H"), mv.cast("I")


def fast_attrs(h: memoryview, off: int, end: int) -> dict[int, int]:
    """Map attribute type -> offset of its header (payload at +4, length at
    ``h[off >> 1]``). The hot loop of every decoder, kept minimal."""
    out: dict[int, int] = {}
    while off < end:
        alen = h[off >> 1]
        if alen < 4:
            break
        out[h[(off >> 1) + 1] & 0x3FFF] = off
        off += (alen + 3) & -4
    return out


def cstr(data: bytes, h: memoryview, off: int) -> str:
    """The NUL-terminated string attribute whose header is at ``off``."""
    return data[off + 4 : off + h[off >> 1]].split(b"\0", 1)[0].decode("utf-8", "replace")


def ip(family: int, raw: bytes) -> str:
    """Text form of a raw address (inet_ntop)."""
    if len(raw) == 4:
        return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"
    if len(raw) == 16:
        return inet_ntop(_SOCK_AF_INET6, raw)
    return raw.hex()


_IP_CACHE: dict[bytes, str] = {}


def ipat(data: bytes, h: memoryview, off: int) -> str:
    """The address attribute at ``off`` as text (cached: the same few addresses
    repeat across a thousand namespaces)."""
    raw = data[off + 4 : off + h[off >> 1]]
    text = _IP_CACHE.get(raw)
    if text is None:
        text = ip(AF_INET if len(raw) == 4 else AF_INET6, raw)
        if len(_IP_CACHE) < 65536:
            _IP_CACHE[raw] = text
    return text


def memo_key(
    data: bytes, h: memoryview, start: int, end: int, cacheinfo: int | None, size: int
) -> bytes:
    """The message payload minus its cache-info attribute (timestamps, use counts),
    so identical objects in different namespaces share one decode. Cut only when
    that attribute has exactly its kernel size ``size``: otherwise the cut would
    move other attributes' bytes into or out of the key, and a malformed message
    could share a row with a different one."""
    if cacheinfo is None or h[cacheinfo >> 1] != size:
        return data[start:end]
    return data[start:cacheinfo] + data[cacheinfo + size : end]


# --- links ---------------------------------------------------------------------------------
def decode_links(data: bytes) -> list[Row]:
    """Rows of an RTM_GETLINK dump."""
    out: list[Row] = []
    data, h, w = views(data)
    n = len(data)
    off = 0
    stats = _STATS8.unpack_from
    while off + 16 <= n:
        ln = w[off >> 2]
        if ln < 16:
            break
        if h[(off >> 1) + 2] == RTM_NEWLINK:
            start = off + 16
            index = w[(start >> 2) + 1]
            a = fast_attrs(h, start + 16, off + ln)
            o = a.get(IFLA_IFNAME)
            name = cstr(data, h, o) if o else f"if{index}"
            o = a.get(IFLA_OPERSTATE)
            operstate = data[o + 4] if o else -1
            o = a.get(IFLA_CARRIER)
            carrier = data[o + 4] if o else -1
            o = a.get(IFLA_MTU)
            mtu = w[(o >> 2) + 1] if o else -1
            o = a.get(IFLA_ADDRESS)
            mac = data[o + 4 : o + 10].hex(":") if o and h[o >> 1] == 10 else None
            o = a.get(IFLA_IFALIAS)
            alias = (cstr(data, h, o) or None) if o else None
            o = a.get(IFLA_MASTER)
            master = (w[(o >> 2) + 1] or None) if o else None
            o = a.get(IFLA_LINK)
            link = w[(o >> 2) + 1] if o else None
            o = a.get(IFLA_LINK_NETNSID)
            nsid = None
            if o:
                nsid = w[(o >> 2) + 1]
                if nsid & 0x80000000:
                    nsid -= 1 << 32
            o = a.get(IFLA_STATS64)
            st = stats(data, o + 4) if o and h[o >> 1] >= 68 else None
            o = a.get(IFLA_PARENT_DEV_NAME)
            parent = cstr(data, h, o) if o else None
            kind = ""
            kind_data = None
            slave = None
            port = None
            o = a.get(IFLA_LINKINFO)
            if o:
                info = fast_attrs(h, o + 4, o + h[o >> 1])
                k = info.get(IFLA_INFO_KIND)
                if k:
                    kind = cstr(data, h, k)
                    d = info.get(IFLA_INFO_DATA)
                    if d:
                        kind_data = {
                            t: data[x + 4 : x + h[x >> 1]]
                            for t, x in fast_attrs(h, d + 4, d + h[d >> 1]).items()
                        }
                k = info.get(IFLA_INFO_SLAVE_KIND)
                if k:
                    slave = cstr(data, h, k)
                    d = info.get(IFLA_INFO_SLAVE_DATA)
                    if slave == "bridge" and d:
                        port = _port(data, h, fast_attrs(h, d + 4, d + h[d >> 1]))
            out.append(
                (
                    index,
                    h[(start >> 1) + 1],
                    w[(start >> 2) + 2],
                    name,
                    operstate,
                    carrier,
                    mtu,
                    mac,
                    alias,
                    master,
                    link,
                    nsid,
                    st,
                    parent,
                    kind,
                    kind_data,
                    slave,
                    port,
                )
            )
        off += (ln + 3) & -4
    return out


def _port(data: bytes, h: memoryview, d: dict[int, int]) -> tuple[int, ...]:
    """IFLA_BRPORT_* state, priority, cost, mode (hairpin), learning, unicast flood."""
    o = d.get(1)
    st = data[o + 4] if o else 3
    o = d.get(2)
    prio = h[(o >> 1) + 2] if o else -1
    o = d.get(3)
    cost = (h[(o >> 1) + 2] | h[(o >> 1) + 3] << 16) if o else -1
    return (st, prio, cost, *(data[d[k] + 4] if k in d else 2 for k in (4, 8, 9)))


# --- addresses --------------------------------------------------------------------------------
_ADDR_ROWS: dict[bytes, Row] = {}


def decode_addrs(data: bytes) -> list[Row]:
    """Rows of an RTM_GETADDR dump (IPv4 and IPv6 only)."""
    out: list[Row] = []
    data, h, w = views(data)
    n = len(data)
    off = 0
    memo = _ADDR_ROWS
    while off + 16 <= n:
        ln = w[off >> 2]
        if ln < 16:
            break
        start = off + 16
        end = off + ln
        off += (ln + 3) & -4
        if h[(start >> 1) - 6] != RTM_NEWADDR:
            continue
        fam = data[start]
        if fam != AF_INET and fam != AF_INET6:
            continue
        a = fast_attrs(h, start + 8, end)
        key = memo_key(data, h, start, end, a.get(6), 20)
        row = memo.get(key)
        if row is None:
            o = a.get(2) or a.get(1)  # IFA_LOCAL, else IFA_ADDRESS
            if not o:
                continue
            b = a.get(4)
            lab = a.get(3)
            row = (
                w[(start >> 2) + 1],
                4 if fam == AF_INET else 6,
                ipat(data, h, o),
                data[start + 1],
                data[start + 3],
                ipat(data, h, b) if b else None,
                cstr(data, h, lab) if lab else None,
            )
            if len(memo) < 65536:
                memo[key] = row
        out.append(row)
    return out


# --- routes ------------------------------------------------------------------------------
_ROUTE_ROWS: dict[bytes, Row] = {}
_ROUTE_EXACT: dict[bytes, Row] = {}


def decode_routes(data: bytes) -> list[Row]:
    """Rows of an RTM_GETROUTE dump (all tables, v4 and v6; cache clones skipped)."""
    out: list[Row] = []
    data, h, w = views(data)
    n = len(data)
    off = 0
    memo = _ROUTE_ROWS
    exact = _ROUTE_EXACT
    while off + 16 <= n:
        ln = w[off >> 2]
        if ln < 16:
            break
        start = off + 16
        end = off + ln
        off += (ln + 3) & -4
        if h[(start >> 1) - 6] != RTM_NEWROUTE:
            continue
        fam = data[start]
        if fam != AF_INET and fam != AF_INET6:
            continue
        if w[(start >> 2) + 2] & RTM_F_CLONED:
            continue
        whole = data[start:end]
        row = exact.get(whole)
        if row is not None:  # byte-identical to one seen before (most IPv4 local routes)
            out.append(row)
            continue
        a = fast_attrs(h, start + 12, end)
        key = memo_key(data, h, start, end, a.get(12), 36)
        row = memo.get(key)
        if row is None:
            row = _route(data, h, w, start, a)
            if len(memo) < 65536:
                memo[key] = row
                if 12 not in a:
                    exact[whole] = row
        out.append(row)
    return out


def _route(data: bytes, h: memoryview, w: memoryview, start: int, a: dict[int, int]) -> Row:
    fam, dlen, _slen, _tos, table, proto, scope, rtype, _fl = _RTMSG.unpack_from(data, start)
    version = 4 if fam == AF_INET else 6
    o = a.get(15)
    if o:
        table = w[(o >> 2) + 1]
    o = a.get(1)
    if o:
        dst = f"{ipat(data, h, o)}/{dlen}"
    else:
        dst = "default" if dlen == 0 else f"{'0.0.0.0' if version == 4 else '::'}/{dlen}"
    o = a.get(5)
    gateway = ipat(data, h, o) if o else None
    o = a.get(4)
    oif = w[(o >> 2) + 1] if o else None
    o = a.get(6)
    metric = w[(o >> 2) + 1] if o else None
    o = a.get(7)
    prefsrc = ipat(data, h, o) if o else None
    hops: tuple[tuple[Any, ...], ...] = ()
    o = a.get(9)
    if o:
        hops = _nexthops(data, h, o + 4, o + h[o >> 1])
    return (version, table, dst, rtype, gateway, oif, proto, scope, metric, prefsrc, hops)


def _nexthops(data: bytes, h: memoryview, off: int, end: int) -> tuple[tuple[Any, ...], ...]:
    hops: list[tuple[Any, ...]] = []
    while off + 8 <= end:
        ln, _fl, weight, ifindex = _RTNH.unpack_from(data, off)
        if ln < 8:
            break
        a = fast_attrs(h, off + 8, off + ln)
        gw = a.get(5)
        hops.append((ipat(data, h, gw) if gw else None, ifindex or None, weight + 1))
        off += (ln + 3) & ~3
    return tuple(hops)


DECODERS = {"link": decode_links, "addr": decode_addrs, "route": decode_routes}
"""The replies the helper process decodes before sending them to the parent."""
