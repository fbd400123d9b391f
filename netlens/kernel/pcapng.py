"""Capture files: pcapng (several interfaces in one stream) and classic pcap.

pcapng is a sequence of blocks, each ``type, total length, body, total length``
(the length twice so a reader can walk backwards), every body padded to 4
bytes. A file is one Section Header Block, then one Interface Description Block
per captured interface (its ``if_name`` option is what Wireshark shows, e.g.
``web:eth0``; ``if_tsresol`` 9 says timestamps count nanoseconds), then one
Enhanced Packet Block per packet naming its interface by IDB index, and here at
the end one Interface Statistics Block per interface (received, dropped), so a
reader sees the kernel's drop count too. Blocks are written in host byte order,
which the SHB's byte-order magic announces.

Classic pcap (``--pcap``) has one interface per file: a 24-byte header with the
nanosecond magic, then a 16-byte record header before each packet.

Writers only format bytes into a binary file object and flush per batch, so a
pipe into ``tshark -r -`` sees packets as they come; a stopped capture leaves a
complete file because every block is whole when written. Standard library only.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

SHB_TYPE = 0x0A0D0D0A
IDB_TYPE = 0x00000001
ISB_TYPE = 0x00000005
EPB_TYPE = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D

OPT_ENDOFOPT = 0
OPT_COMMENT = 1
SHB_USERAPPL = 4
IF_NAME = 2
IF_DESCRIPTION = 3
IF_TSRESOL = 9
ISB_IFRECV = 4
ISB_IFDROP = 5

PCAP_MAGIC_NS = 0xA1B23C4D
"""Classic pcap's magic for nanosecond timestamps."""

_EPB_HEAD = struct.Struct("=IIIIIII")  # type, length, ifid, ts hi, ts lo, caplen, origlen
_U32 = struct.Struct("=I")
_PCAP_REC = struct.Struct("=IIII")
_PADS = (b"", b"\0\0\0", b"\0\0", b"\0")


def _pad(n: int) -> bytes:
    """Zero bytes that bring a length of ``n`` to a multiple of 4."""
    return _PADS[n & 3]


def option(code: int, value: bytes) -> bytes:
    """One option: code, length, value padded to 4 bytes."""
    return struct.pack("=HH", code, len(value)) + value + _pad(len(value))


def _options(opts: list[bytes]) -> bytes:
    return b"".join(opts) + struct.pack("=HH", OPT_ENDOFOPT, 0) if opts else b""


def block(kind: int, body: bytes) -> bytes:
    """A whole block around ``body`` (already padded to 4)."""
    total = 12 + len(body)
    return _U32.pack(kind) + _U32.pack(total) + body + _U32.pack(total)


def section_header(application: str) -> bytes:
    """The Section Header Block: byte order, version 1.0, section length unknown (-1)."""
    body = struct.pack("=IHHq", BYTE_ORDER_MAGIC, 1, 0, -1)
    body += _options([option(SHB_USERAPPL, application.encode())])
    return block(SHB_TYPE, body)


def interface_description(linktype: int, snaplen: int, name: str, description: str = "") -> bytes:
    """An Interface Description Block: link type, snaplen, name, nanosecond stamps."""
    opts = [option(IF_NAME, name.encode("utf-8", "surrogateescape"))]
    if description:
        opts.append(option(IF_DESCRIPTION, description.encode("utf-8", "surrogateescape")))
    opts.append(option(IF_TSRESOL, b"\x09"))
    body = struct.pack("=HHI", linktype, 0, snaplen) + _options(opts)
    return block(IDB_TYPE, body)


def enhanced_packet(ifid: int, ts_ns: int, data: bytes, origlen: int) -> bytes:
    """An Enhanced Packet Block (no options): one captured packet."""
    caplen = len(data)
    total = 32 + caplen + (-caplen & 3)
    head = _EPB_HEAD.pack(EPB_TYPE, total, ifid, ts_ns >> 32, ts_ns & 0xFFFFFFFF, caplen, origlen)
    return head + data + _pad(caplen) + _U32.pack(total)


def interface_statistics(ifid: int, ts_ns: int, received: int, dropped: int) -> bytes:
    """An Interface Statistics Block: packets the filter passed and the kernel dropped."""
    opts = [
        option(ISB_IFRECV, struct.pack("=Q", received)),
        option(ISB_IFDROP, struct.pack("=Q", dropped)),
    ]
    body = struct.pack("=III", ifid, ts_ns >> 32, ts_ns & 0xFFFFFFFF) + _options(opts)
    return block(ISB_TYPE, body)


class PcapngWriter:
    """One section, its interfaces declared up front, then packets as they come."""

    def __init__(self, out: BinaryIO, interfaces: list[tuple[int, int, str]], app: str) -> None:
        """``interfaces``: (link type, snaplen, name) per interface, in IDB order."""
        self.out = out
        head = [section_header(app)]
        head += [interface_description(lt, snap, name) for lt, snap, name in interfaces]
        out.write(b"".join(head))
        out.flush()

    def write(self, packets: list[tuple[int, int, bytes, int]]) -> None:
        """(timestamp ns, interface index, data, original length) each, then flush."""
        if packets:
            self.out.write(b"".join(enhanced_packet(i, t, d, o) for t, i, d, o in packets))
            self.out.flush()

    def close(self, stats: list[tuple[int, int, int]], ts_ns: int) -> None:
        """End with one statistics block per interface: (index, received, dropped)."""
        self.out.write(b"".join(interface_statistics(i, ts_ns, r, d) for i, r, d in stats))
        self.out.flush()


class PcapWriter:
    """Classic pcap, nanosecond timestamps, one interface (``--pcap``)."""

    def __init__(self, out: BinaryIO, linktype: int, snaplen: int) -> None:
        self.out = out
        out.write(struct.pack("=IHHiIII", PCAP_MAGIC_NS, 2, 4, 0, 0, snaplen, linktype))
        out.flush()

    def write(self, packets: list[tuple[int, int, bytes, int]]) -> None:
        if packets:
            parts = []
            for t, _i, d, o in packets:
                parts.append(_PCAP_REC.pack(t // 1_000_000_000, t % 1_000_000_000, len(d), o))
                parts.append(d)
            self.out.write(b"".join(parts))
            self.out.flush()

    def close(self, stats: list[tuple[int, int, int]], ts_ns: int) -> None:
        self.out.flush()
