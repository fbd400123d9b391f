"""Packet sockets inside a namespace: classic BPF filters, TPACKET_V3 rings, statistics.

A packet socket belongs to the namespace it was created in, whatever thread
uses it later (the same rule as netlink sockets, see :mod:`netlens.kernel.nsenter`).
So only :func:`open_in` runs inside the target namespace; filter, ring and bind
are set up from the calling thread, on the socket.

The order avoids foreign packets: the socket is created with protocol 0 (it
receives nothing), gets its filter and ring, and only then is bound to one
interface with ETH_P_ALL. The filter is classic BPF as ``tcpdump -dd`` prints it
(:func:`compile_filter`): its return value is the snap length, so the kernel
copies only that much of each packet. Without a user filter a one-instruction
program (``ret #snaplen``) still truncates in the kernel.

Two readers, same interface (``fileno``, ``read``, ``stats``, ``close``):

- :class:`RingSource`: a TPACKET_V3 ring mapped into the process. The kernel
  fills blocks of packets and hands over a whole block at once; Python walks it
  with ``struct.unpack_from`` and gives it back. One poll per block.
- :class:`RecvSource`: ``recvmsg`` per packet with PACKET_AUXDATA (original
  length, VLAN tag) and SO_TIMESTAMPNS. One system call per packet.

tests/bench/test_bench_capture.py measures both; the ring is the default.
Drops come from PACKET_STATISTICS, which resets on every read, so the sources
add them up. A socket whose interface vanishes reports ENETDOWN: the reader
raises :class:`InterfaceGone` after handing over what was still queued.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os
import shutil
import socket
import struct
import subprocess

from netlens.kernel.consts import (
    ARPHRD_NONE,
    ETH_P_ALL,
    LINKTYPE_ETHERNET,
    LINKTYPE_RAW,
    PACKET_AUXDATA,
    PACKET_RX_RING,
    PACKET_STATISTICS,
    PACKET_VERSION,
    SIOCGIFHWADDR,
    SIOCGIFINDEX,
    SO_ATTACH_FILTER,
    SO_TIMESTAMPNS,
    SOL_PACKET,
    TP_STATUS_KERNEL,
    TP_STATUS_USER,
    TP_STATUS_VLAN_TPID_VALID,
    TP_STATUS_VLAN_VALID,
    TPACKET_V3,
)

Packet = tuple[int, bytes, int]
"""(timestamp in ns, captured bytes, original length)."""

BpfProgram = list[tuple[int, int, int, int]]


class FilterError(ValueError):
    """tcpdump rejected the filter expression (its message, one line)."""


class InterfaceGone(OSError):
    """The captured interface disappeared (ENETDOWN on its socket)."""


def compile_filter(expr: str, linktype: int, snaplen: int) -> BpfProgram:
    """Classic BPF for ``expr`` (tcpdump syntax) via ``tcpdump -dd``.

    tcpdump is only the compiler here: with ``-y`` it opens no device. An empty
    expression gives ``ret #snaplen`` (accept everything, truncated).
    """
    if not expr.strip():
        return [(0x06, 0, 0, snaplen)]
    tcpdump = shutil.which("tcpdump") or (
        "/usr/sbin/tcpdump" if os.path.exists("/usr/sbin/tcpdump") else None
    )
    if tcpdump is None:
        raise FilterError("filters are compiled by tcpdump -dd; install tcpdump")
    dlt = "RAW" if linktype == LINKTYPE_RAW else "EN10MB"
    res = subprocess.run(
        [tcpdump, "-dd", "-y", dlt, "-s", str(snaplen), "--", expr],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        why = lines[-1] if lines else f"tcpdump exited {res.returncode}"
        raise FilterError(why.removeprefix("tcpdump: "))
    prog: BpfProgram = []
    for line in res.stdout.splitlines():
        line = line.strip().strip("{},").strip()
        if not line:
            continue
        parts = [p.strip().rstrip("}").strip() for p in line.split(",")]
        parts = [p for p in parts if p]
        code, jt, jf, k = (int(p, 0) for p in parts)
        prog.append((code, jt, jf, k))
    if not prog:
        raise FilterError("tcpdump -dd printed no program")
    return prog


def open_in() -> socket.socket:
    """A packet socket in the *calling thread's* namespace that receives nothing yet."""
    return socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)


def _ifreq(sock: socket.socket, request: int, name: str) -> bytes:
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) > 15:
        raise OSError(errno.ENODEV, f"interface name too long: {name!r}")
    return fcntl.ioctl(sock, request, struct.pack("16s16x", raw))


def interface_info(sock: socket.socket, name: str) -> tuple[int, int]:
    """(ifindex, capture link type) of ``name`` in the socket's namespace."""
    index = struct.unpack_from("=i", _ifreq(sock, SIOCGIFINDEX, name), 16)[0]
    hatype = struct.unpack_from("=H", _ifreq(sock, SIOCGIFHWADDR, name), 16)[0]
    return index, LINKTYPE_RAW if hatype == ARPHRD_NONE else LINKTYPE_ETHERNET


def attach_filter(sock: socket.socket, prog: BpfProgram) -> None:
    """SO_ATTACH_FILTER: the kernel copies the program, so the buffer may go after."""
    insns = b"".join(struct.pack("=HBBI", c, jt, jf, k) for c, jt, jf, k in prog)
    buf = ctypes.create_string_buffer(insns, len(insns))
    fprog = struct.pack("=HxxxxxxQ", len(prog), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def _vlan_insert(data: bytes, status: int, tci: int, tpid: int) -> bytes:
    """Put back the 802.1Q tag the driver took off (the kernel reports it aside)."""
    if not status & TP_STATUS_VLAN_VALID or len(data) < 12:
        return data
    if not status & TP_STATUS_VLAN_TPID_VALID or not tpid:
        tpid = 0x8100
    return data[:12] + struct.pack("!HH", tpid, tci & 0xFFFF) + data[12:]


class PacketSource:
    """What both readers share: the socket, bind, drop counters, close."""

    def __init__(self, sock: socket.socket, ifname: str) -> None:
        self.sock = sock
        self.ifname = ifname
        self.ifindex = 0
        self.received = 0
        self.dropped = 0
        self.taken = 0

    def bind(self) -> None:
        self.sock.bind((self.ifname, ETH_P_ALL))
        self.ifindex = interface_info(self.sock, self.ifname)[0]

    def vanished(self, err: int) -> bool:
        """ENETDOWN comes both when the interface goes down and when it is deleted;
        only the second ends the capture (a downed link may come back up)."""
        if err not in (errno.ENETDOWN, errno.ENODEV, errno.ENXIO):
            return False
        try:
            return interface_info(self.sock, self.ifname)[0] != self.ifindex
        except OSError:
            return True

    def fileno(self) -> int:
        return self.sock.fileno()

    def stats(self) -> tuple[int, int]:
        """(packets the filter passed, packets the kernel dropped) since the start.

        The kernel counts a dropped packet in both numbers, so once every queued
        packet has been read, ``taken + dropped == received``.
        """
        if self.sock.fileno() >= 0:
            try:
                raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)
                packets, drops = struct.unpack_from("=II", raw)
                self.received += packets
                self.dropped += drops
            except OSError:
                pass
        return self.received, self.dropped

    def _check_error(self) -> None:
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if self.vanished(err):
            raise InterfaceGone(err, "interface vanished")

    def read(self) -> list[Packet]:
        raise NotImplementedError

    def pending(self) -> bool:
        """Whether packets the kernel accepted are still queued (a ring's block the
        kernel has not handed over yet: it does so at most 50 ms after its first packet)."""
        received, dropped = self.stats()
        return self.taken + dropped < received

    def close(self) -> None:
        self.stats()
        self.sock.close()


class RingSource(PacketSource):
    """A TPACKET_V3 receive ring of ``block_nr`` blocks of ``block_size`` bytes."""

    _HDR = struct.Struct("=IIIIIIHHIIH")  # tpacket3_hdr up to vlan_tpid

    def __init__(
        self, sock: socket.socket, ifname: str, block_size: int = 1 << 18, block_nr: int = 32
    ) -> None:
        super().__init__(sock, ifname)
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        frame = 2048
        req = struct.pack(
            "=7I", block_size, block_nr, frame, block_size // frame * block_nr, 50, 0, 0
        )  # retire a partly filled block after 50 ms, no private area, no features
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
        self.block_size = block_size
        self.block_nr = block_nr
        self.ring = mmap.mmap(sock.fileno(), block_size * block_nr, mmap.MAP_SHARED)
        self.next_block = 0

    def read(self) -> list[Packet]:
        """Every packet of every block the kernel has handed over, blocks given back."""
        out: list[Packet] = []
        ring = self.ring
        unpack = self._HDR.unpack_from
        size = self.block_size
        while True:
            base = self.next_block * size
            status, count, first = struct.unpack_from("=III", ring, base + 8)
            if not status & TP_STATUS_USER:
                break
            off = base + first
            for _ in range(count):
                nxt, sec, nsec, snap, length, st, mac, _n, _h, tci, tpid = unpack(ring, off)
                data = ring[off + mac : off + mac + snap]
                if st & TP_STATUS_VLAN_VALID:
                    data = _vlan_insert(data, st, tci, tpid)
                    length += 4
                out.append((sec * 1_000_000_000 + nsec, data, length))
                off += nxt
            struct.pack_into("=I", ring, base + 8, TP_STATUS_KERNEL)
            self.next_block = (self.next_block + 1) % self.block_nr
        self.taken += len(out)
        if not out:
            self._check_error()
        return out

    def close(self) -> None:
        self.ring.close()
        super().close()


class RecvSource(PacketSource):
    """``recvmsg`` per packet, original length and VLAN tag from PACKET_AUXDATA."""

    _AUX = struct.Struct("=IIIHHHH")  # tpacket_auxdata
    _CMSG = socket.CMSG_SPACE(20) + socket.CMSG_SPACE(16)

    def __init__(self, sock: socket.socket, ifname: str, snaplen: int, batch: int = 256) -> None:
        super().__init__(sock, ifname)
        sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sock.setblocking(False)
        self.snaplen = snaplen
        self.batch = batch

    def read(self) -> list[Packet]:
        out: list[Packet] = []
        recvmsg = self.sock.recvmsg
        aux = self._AUX.unpack_from
        for _ in range(self.batch):
            try:
                data, anc, _flags, _addr = recvmsg(self.snaplen, self._CMSG)
            except BlockingIOError:
                break
            except OSError as err:
                if self.vanished(err.errno or 0):
                    raise InterfaceGone(err.errno, "interface vanished") from None
                if err.errno in (errno.ENETDOWN, errno.ENODEV, errno.ENXIO):
                    break  # the link went down; it may come back up
                raise
            ts = 0
            length = len(data)
            for level, kind, value in anc:
                if level == SOL_PACKET and kind == PACKET_AUXDATA:
                    st, length, _snap, _mac, _net, tci, tpid = aux(value)
                    if st & TP_STATUS_VLAN_VALID:
                        data = _vlan_insert(data, st, tci, tpid)
                        length += 4
                elif level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack_from("=qq", value)
                    ts = sec * 1_000_000_000 + nsec
            out.append((ts, data, length))
        self.taken += len(out)
        return out


def make_source(
    sock: socket.socket, ifname: str, prog: BpfProgram, snaplen: int, *, ring: bool, ring_mb: int
) -> PacketSource:
    """Filter, reader and bind, in the order that lets no foreign packet in."""
    attach_filter(sock, prog)
    src: PacketSource
    if ring:
        block = 1 << 18
        src = RingSource(sock, ifname, block, max(4, (ring_mb << 20) // block))
    else:
        src = RecvSource(sock, ifname, snaplen)
    src.bind()
    return src
