"""One line per captured packet, as tcpdump prints without ``-w``.

``12:00:01.000123 web:eth0 10.0.0.1.40000 -> 10.0.0.2.80 TCP length 60``: time
of day, target label, source and destination (addresses, ports for TCP and
UDP), protocol, length on the wire. Only the headers needed for that are read
(Ethernet, 802.1Q, IPv4, IPv6, ARP); anything else shows its EtherType. The
label comes from names others chose, so it goes through
:func:`netlens.kernel.inert.terminal`; the rest is formatted from numbers.
"""

from __future__ import annotations

import ipaddress
import struct
import time

from netlens.kernel.consts import LINKTYPE_RAW

_IP_PROTOS = {1: "ICMP", 2: "IGMP", 6: "TCP", 17: "UDP", 47: "GRE", 58: "ICMP6", 132: "SCTP"}


def _l4(proto: int, data: bytes, off: int, src: str, dst: str) -> tuple[str, str, str]:
    name = _IP_PROTOS.get(proto, f"ip-proto-{proto}")
    if proto in (6, 17, 132) and len(data) >= off + 4:
        sport, dport = struct.unpack_from("!HH", data, off)
        return f"{src}.{sport}", f"{dst}.{dport}", name
    return src, dst, name


def _ip(data: bytes, off: int) -> tuple[str, str, str] | None:
    if len(data) < off + 1:
        return None
    version = data[off] >> 4
    if version == 4 and len(data) >= off + 20:
        ihl = (data[off] & 0x0F) * 4
        src = str(ipaddress.IPv4Address(data[off + 12 : off + 16]))
        dst = str(ipaddress.IPv4Address(data[off + 16 : off + 20]))
        return _l4(data[off + 9], data, off + ihl, src, dst)
    if version == 6 and len(data) >= off + 40:
        src = str(ipaddress.IPv6Address(data[off + 8 : off + 24]))
        dst = str(ipaddress.IPv6Address(data[off + 24 : off + 40]))
        return _l4(data[off + 6], data, off + 40, src, dst)
    return None


def summary(data: bytes, linktype: int) -> tuple[str, str, str]:
    """(source, destination, protocol) of one frame."""
    if linktype == LINKTYPE_RAW:
        return _ip(data, 0) or ("?", "?", "raw")
    if len(data) < 14:
        return "?", "?", "truncated"
    off = 12
    etype = struct.unpack_from("!H", data, off)[0]
    while etype in (0x8100, 0x88A8) and len(data) >= off + 6:
        off += 4
        etype = struct.unpack_from("!H", data, off)[0]
    off += 2
    if etype in (0x0800, 0x86DD):
        got = _ip(data, off)
        if got is not None:
            return got
    mac_src = data[6:12].hex(":")
    mac_dst = data[0:6].hex(":")
    if etype == 0x0806 and len(data) >= off + 28:
        sip = str(ipaddress.IPv4Address(data[off + 14 : off + 18]))
        tip = str(ipaddress.IPv4Address(data[off + 24 : off + 28]))
        op = {1: "request", 2: "reply"}.get(struct.unpack_from("!H", data, off + 6)[0], "")
        return sip, tip, f"ARP {op}".strip()
    return mac_src, mac_dst, f"ethertype 0x{etype:04x}"


def line(ts_ns: int, label: str, data: bytes, origlen: int, linktype: int) -> str:
    """The printed line for one packet (``label`` already made inert)."""
    sec, ns = divmod(ts_ns, 1_000_000_000)
    clock = time.strftime("%H:%M:%S", time.localtime(sec))
    src, dst, proto = summary(data, linktype)
    return f"{clock}.{ns // 1000:06d} {label} {src} -> {dst} {proto} length {origlen}"
