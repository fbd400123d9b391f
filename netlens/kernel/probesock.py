"""Real probe packets from inside a namespace, and the interface counters they move.

A probe must be a packet the kernel builds and routes as any program's would,
so it is sent through an ordinary socket opened *inside* the source namespace
(a socket keeps the namespace it was created in; the caller opens it from a
thread that entered it): an ICMP echo on a raw socket, a TCP SYN as a
non-blocking ``connect()``, a UDP datagram on a connected socket (an ICMP port
unreachable comes back as ECONNREFUSED). :func:`link_counters` reads one
interface's 64-bit counters with RTM_GETLINK, before and after.

Sending is the caller's decision: this module never picks a destination.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import select
import socket
import struct
import time
from dataclasses import dataclass
from typing import Protocol

from netlens.kernel.consts import IFLA_STATS64, NLM_F_REQUEST, RTM_GETLINK, RTM_NEWLINK
from netlens.kernel.wire import iter_messages, message

_IFINFO = struct.Struct("=BxHiII")
_NLA = struct.Struct("=HH")
_STATS = struct.Struct("=8Q")  # rx/tx packets, bytes, errors, dropped
_ICMP_ECHO = struct.Struct("!BBHHH")
SO_BINDTODEVICE = 25
IP_RECVERR = 11
IPV6_RECVERR = 25


@dataclass(frozen=True, slots=True)
class Counters:
    rx_packets: int
    tx_packets: int
    rx_dropped: int
    tx_dropped: int


def link_counters(sock: socket.socket, ifindex: int) -> Counters | None:
    """One interface's counters in ``sock``'s namespace; None if it is gone."""
    sock.send(message(RTM_GETLINK, NLM_F_REQUEST, 7, _IFINFO.pack(0, 0, ifindex, 0, 0)))
    data = sock.recv(65536)
    for typ, _flags, start, end in iter_messages(data):
        if typ != RTM_NEWLINK:
            return None
        off = start + _IFINFO.size
        while off + 4 <= end:
            alen, atype = _NLA.unpack_from(data, off)
            if alen < 4:
                break
            if atype & 0x3FFF == IFLA_STATS64 and alen >= 4 + _STATS.size:
                rxp, txp, _rxb, _txb, _rxe, _txe, rxd, txd = _STATS.unpack_from(data, off + 4)
                return Counters(rxp, txp, rxd, txd)
            off += (alen + 3) & ~3
    return None


PAYLOAD_LEN = 69  # an unusual size: the probe's packets are told apart by length


def _payload(seq: int) -> bytes:
    return (b"netlens-probe" + struct.pack("!I", seq)).ljust(PAYLOAD_LEN, b".")


def ip_length(proto: str, six: bool) -> int | None:
    """The probe's IP packet length (what ``skb->len`` is once a device received
    it), or None when the kernel decides it (a TCP SYN's options)."""
    if proto not in ("icmp", "udp"):
        return None
    return (40 if six else 20) + 8 + PAYLOAD_LEN


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return int(~total & 0xFFFF)


class Watcher(Protocol):
    """Evidence about the probe's fate that comes in while its answer is awaited
    (the nft trace monitors' output, the kernel's drop records): with it, a
    probe the kernel already reported dropped is not waited for to the end."""

    def fds(self) -> list[int]:
        """Descriptors to read as soon as they are readable."""
        ...

    def feed(self, fd: int) -> None:
        """Read what ``fd`` has now."""
        ...

    def decided(self) -> bool:
        """Whether the probe's fate is known without an answer (it was dropped)."""
        ...


POLL_S = 0.05  # with a watcher: how often its evidence is looked at between reads
RACE_S = 0.01  # after the watcher decided: a last look for an answer on its way


@dataclass
class ProbeSocket:
    """One probe's socket (opened in the source namespace by :func:`open_probe`)."""

    sock: socket.socket
    proto: str
    dst: str
    dport: int | None
    ident: int

    def send(self, seq: int) -> None:
        """Send probe number ``seq``. An OSError is the source kernel's own refusal
        (ENETUNREACH: no route; EPERM: an output filter dropped it); the caller
        turns it into an answer with :func:`refusal_name`."""
        if self.proto == "icmp":
            six = ":" in self.dst
            typ = 128 if six else 8
            payload = _payload(seq)
            head = _ICMP_ECHO.pack(typ, 0, 0, self.ident, seq)
            csum = 0 if six else _checksum(head + payload)  # the kernel fills ICMPv6's
            self.sock.sendto(
                _ICMP_ECHO.pack(typ, 0, csum, self.ident, seq) + payload, (self.dst, 0)
            )
        elif self.proto == "udp":
            self.sock.send(_payload(seq))
        else:
            err = self.sock.connect_ex((self.dst, self.dport or 0))
            if err not in (0, errno.EINPROGRESS):
                raise OSError(err, os.strerror(err))

    def answer(self, timeout: float, watch: Watcher | None = None) -> str | None:
        """What came back within ``timeout`` s: ``reply`` (echo reply, SYN-ACK),
        ``refused`` (RST, port unreachable), an ICMP error (``net unreachable``,
        ``host unreachable``, ``prohibited``, with ``from ADDR`` when the raw
        ICMP socket shows who sent it), or None: nothing in time, or ``watch``
        decided that nothing will come. The socket is always looked at first, and
        once more after the watcher decided, so an answer that raced the
        evidence is never lost."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if watch is not None and watch.decided():
                return self._ready(RACE_S)
            mine = self.sock.fileno()
            extra = watch.fds() if watch is not None else []
            r, w, _x = select.select(
                [mine, *extra],
                [mine] if self.proto == "tcp" else [],
                [],
                min(left, POLL_S) if watch is not None else left,
            )
            for fd in r:
                if fd != mine and watch is not None:
                    watch.feed(fd)
            if mine in r or w:
                got = self._take()
                if got is not None:
                    return got

    def _ready(self, timeout: float) -> str | None:
        """An answer already waiting (or arriving within ``timeout``), else None."""
        deadline = time.monotonic() + timeout
        while True:
            want_write = self.proto == "tcp"
            left = max(0.0, deadline - time.monotonic())
            r, w, _x = select.select([self.sock], [self.sock] if want_write else [], [], left)
            if not r and not w:
                return None
            got = self._take()
            if got is not None:
                return got

    def _take(self) -> str | None:
        """The answer the readable (or, for TCP, writable) socket holds; None for
        a packet that is not one (another program's echo reply)."""
        if self.proto == "tcp":
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            return _err_name(err) if err else "reply"
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return None
        except OSError as exc:
            return _err_name(exc.errno or 0)
        if self.proto == "udp":
            return "reply"
        return _icmp_answer(data, self.ident, ":" in self.dst, self.dst)

    def close(self) -> None:
        self.sock.close()


_ERRNO_NAMES = {
    errno.ECONNREFUSED: "refused",
    errno.ENETUNREACH: "net unreachable",
    errno.EHOSTUNREACH: "host unreachable",
    errno.EACCES: "prohibited",
    errno.EPERM: "prohibited",
    errno.ETIMEDOUT: "timed out",
}


def _err_name(err: int) -> str:
    return _ERRNO_NAMES.get(err) or errno.errorcode.get(err, str(err)).lower()


def refusal_name(err: OSError) -> str:
    """The answer a send that the source kernel refused stands for."""
    return _err_name(err.errno or 0)


# ICMP destination-unreachable codes, (v4 type 3, v6 type 1), in the answer's words.
_UNREACH4 = {0: "net unreachable", 1: "host unreachable", 3: "refused", 9: "prohibited",
             10: "prohibited", 13: "prohibited"}  # fmt: skip
_UNREACH6 = {0: "net unreachable", 1: "prohibited", 3: "host unreachable", 4: "refused"}


def _icmp_answer(data: bytes, ident: int, six: bool, dst: str) -> str | None:
    """An echo reply to ``ident``, or an ICMP error about one of our echoes
    (raw ICMPv4 includes the IP header; its source names who answered)."""
    sender = ""
    if not six:
        if len(data) < 20:
            return None
        sender = str(ipaddress.IPv4Address(data[12:16]))
        data = data[(data[0] & 0x0F) * 4 :]
    if len(data) < 8:
        return None
    typ, code, _csum, rid, _seq = _ICMP_ECHO.unpack_from(data)
    if typ in (0, 129) and rid == ident:
        return "reply"
    unreach = _UNREACH6 if six else _UNREACH4
    if typ != (1 if six else 3) or not _about_our_echo(data[8:], ident, six):
        return None
    name = unreach.get(code, f"unreachable code {code}")
    return f"{name} from {sender}" if sender and sender != dst else name


def _about_our_echo(inner: bytes, ident: int, six: bool) -> bool:
    """Whether the packet quoted in an ICMP error is one of our echo requests."""
    if six:
        off = 40
    else:
        if len(inner) < 20:
            return False
        off = (inner[0] & 0x0F) * 4
    if len(inner) < off + 8:
        return False
    typ, _code, _csum, rid, _seq = _ICMP_ECHO.unpack_from(inner, off)
    return typ in (8, 128) and rid == ident


def open_probe(
    proto: str,
    dst: str,
    *,
    src: str | None = None,
    device: str | None = None,
    dport: int | None = None,
    sport: int | None = None,
) -> ProbeSocket:
    """A socket for one probe; call from a thread inside the source namespace."""
    six = ipaddress.ip_address(dst).version == 6
    fam = socket.AF_INET6 if six else socket.AF_INET
    if proto == "icmp":
        sock = socket.socket(
            fam, socket.SOCK_RAW, socket.IPPROTO_ICMPV6 if six else socket.IPPROTO_ICMP
        )
    elif proto == "udp":
        sock = socket.socket(fam, socket.SOCK_DGRAM)
    else:
        sock = socket.socket(fam, socket.SOCK_STREAM)
    try:
        if device:
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, device.encode() + b"\0")
        if src or sport:
            sock.bind((src or ("::" if six else "0.0.0.0"), sport or 0))
        sock.setblocking(False)
        if proto == "udp":
            # Report every ICMP error (net and host unreachable too, not only a
            # refused port) as the socket's error: the probe's answer.
            sock.setsockopt(
                socket.IPPROTO_IPV6 if six else socket.IPPROTO_IP,
                IPV6_RECVERR if six else IP_RECVERR,
                1,
            )
            sock.connect((dst, dport or 0))
    except OSError:
        sock.close()
        raise
    ident = (os.getpid() ^ int(time.monotonic() * 1000)) & 0xFFFF
    return ProbeSocket(sock, proto, dst, dport, ident)
