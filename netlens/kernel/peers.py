"""Small questions that find one namespace among many without dumping them all.

A trace reads only the namespaces on its path. Two facts decide which those
are, and both have a cheap kernel answer:

- where a veth cable leads: RTM_GETLINK for the one interface gives the peer's
  ifindex and the id (nsid) *this* namespace gives the peer's namespace; asking
  RTM_GETNSID with each candidate's nsfs fd (one batch) says which one that is;
- who owns an address: one RTM_GETADDR dump per namespace (:func:`addresses_here`,
  run inside each by :func:`~netlens.kernel.nsenter.run_in_netns`), far less
  than a whole discovery.

Read-only: RTM_GETNSID never assigns an id (only RTM_NEWNSID would).
"""

from __future__ import annotations

import socket
import struct

from netlens.kernel.consts import (
    AF_INET,
    AF_INET6,
    IFA_ADDRESS,
    IFA_LOCAL,
    IFLA_LINK,
    IFLA_LINK_NETNSID,
    IFLA_MASTER,
    NLM_F_REQUEST,
    RTM_GETLINK,
    RTM_NEWADDR,
    RTM_NEWLINK,
)
from netlens.kernel.nsenter import netlink_socket
from netlens.kernel.wire import (
    NetlinkError,
    ask_nsids,
    attr_map,
    dump,
    iter_messages,
    message,
)

_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBi")
_I32 = struct.Struct("=i")
_U32 = struct.Struct("=I")


def link_peer(sock: socket.socket, ifindex: int) -> tuple[int | None, int | None]:
    """(peer ifindex, nsid of the peer's namespace as ``sock``'s namespace numbers
    it; None: same namespace) of interface ``ifindex``; (None, None) if unknown."""
    sock.send(message(RTM_GETLINK, NLM_F_REQUEST, 1, _IFINFO.pack(0, 0, ifindex, 0, 0)))
    data = sock.recv(65536)
    for typ, _flags, start, end in iter_messages(data):
        if typ != RTM_NEWLINK:
            break
        attrs = attr_map(data, start + _IFINFO.size, end)
        link = _U32.unpack(attrs[IFLA_LINK])[0] if IFLA_LINK in attrs else None
        nsid = _I32.unpack(attrs[IFLA_LINK_NETNSID])[0] if IFLA_LINK_NETNSID in attrs else None
        return (link or None), (nsid if nsid is None or nsid >= 0 else None)
    return None, None


def which_nsid(sock: socket.socket, nsid: int, fds: list[int]) -> int | None:
    """The position in ``fds`` (nsfs fds) of the namespace ``sock``'s namespace
    calls ``nsid``; None when none of them is it."""
    try:
        answers = ask_nsids(sock, fds)
    except (NetlinkError, OSError):
        return None
    for pos, got in enumerate(answers):
        if got == nsid:
            return pos
    return None


def addresses_here(_target: object = None) -> list[tuple[int, bytes]]:
    """(ifindex, packed address) of every IPv4 and IPv6 address of the calling
    thread's namespace (run inside it: the socket is opened there). Packed, not
    text: with a thousand namespaces, making text of every address was a third of
    finding who owns one."""
    out: list[tuple[int, bytes]] = []
    with netlink_socket(rcvbuf=1 << 18) as sock:
        sock.settimeout(5.0)
        data = dump(sock, "addr")
    for typ, _flags, start, end in iter_messages(data):
        if typ != RTM_NEWADDR:
            continue
        family, _plen, _fl, _scope, index = _IFADDR.unpack_from(data, start)
        attrs = attr_map(data, start + _IFADDR.size, end)
        raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
        if raw is None or len(raw) != (4 if family == AF_INET else 16 if family == AF_INET6 else 0):
            continue
        out.append((index, bytes(raw)))
    return out


def links_raw(sock: socket.socket, ifindexes: list[int]) -> tuple[bytes, set[int]]:
    """RTM_NEWLINK messages of just ``ifindexes`` in ``sock``'s namespace (as a dump
    of them would have them), and the masters they name: a namespace with a
    thousand veths is read one interface at a time where a trace crosses it."""
    out: list[bytes] = []
    masters: set[int] = set()
    for seq, ifindex in enumerate(ifindexes, start=100):
        sock.send(message(RTM_GETLINK, NLM_F_REQUEST, seq, _IFINFO.pack(0, 0, ifindex, 0, 0)))
        data = sock.recv(65536)
        for typ, _flags, start, end in iter_messages(data):
            if typ != RTM_NEWLINK:
                continue
            out.append(data[start - 16 : end])
            attrs = attr_map(data, start + _IFINFO.size, end)
            if IFLA_MASTER in attrs:
                masters.add(_U32.unpack(attrs[IFLA_MASTER])[0])
    padded = [m + b"\0" * (-len(m) % 4) for m in out]
    return b"".join(padded), masters


def addrs_raw(sock: socket.socket, ifindexes: set[int]) -> bytes:
    """The RTM_NEWADDR messages of an address dump that belong to ``ifindexes``."""
    data = dump(sock, "addr")
    keep: list[bytes] = []
    for typ, _flags, start, end in iter_messages(data):
        if typ == RTM_NEWADDR and _IFADDR.unpack_from(data, start)[4] in ifindexes:
            msg = data[start - 16 : end]
            keep.append(msg + b"\0" * (-len(msg) % 4))
    return b"".join(keep)
