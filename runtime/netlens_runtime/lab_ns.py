"""Configure a node's network namespace with one batch of rtnetlink requests.

A netlink socket opened inside a namespace configures that namespace
(addresses, links, routes) with one batch of requests per node: no ``ip`` exec,
no ``nsenter``. Entering the namespace is :func:`netlens.kernel.nsenter.in_netns`
(a worker thread; the rest of the process never leaves the host namespace), and
the codec and numbers are :mod:`netlens.kernel`'s: the runtime shares them with
discovery and defines here only the requests a lab node needs.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from netlens.kernel import wire
from netlens.kernel.consts import (
    IFA_ADDRESS,
    IFA_LOCAL,
    IFF_UP,
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    NLMSG_ERROR,
    RT_SCOPE_LINK,
    RT_SCOPE_UNIVERSE,
    RT_TABLE_MAIN,
    RTA_DST,
    RTA_GATEWAY,
    RTA_OIF,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWROUTE,
    RTN_UNICAST,
    RTPROT_BOOT,
)


def netns_path(pid: int) -> str:
    """The namespace handle of a node's init process."""
    return f"/proc/{pid}/ns/net"


# ------------------------------------------------------------ rtnetlink batch


@dataclass(frozen=True, slots=True)
class LinkUp:
    """Set an interface up."""

    ifname: str


@dataclass(frozen=True, slots=True)
class AddAddr:
    """Add ``cidr`` (``10.0.0.1/24``) to an interface."""

    ifname: str
    cidr: str


@dataclass(frozen=True, slots=True)
class AddRoute:
    """Add or replace a route: ``to`` is a CIDR or ``default``."""

    to: str
    via: str | None = None
    dev: str | None = None


NodeOp = LinkUp | AddAddr | AddRoute


def _describe(op: NodeOp) -> str:
    if isinstance(op, LinkUp):
        return f"link set {op.ifname} up"
    if isinstance(op, AddAddr):
        return f"addr add {op.cidr} dev {op.ifname}"
    words = (
        ["route add", op.to]
        + (["via", op.via] if op.via else [])
        + (["dev", op.dev] if op.dev else [])
    )
    return " ".join(words)


def _index(ifname: str) -> int:
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        raise OSError(errno.ENODEV, f"no interface {ifname!r}") from None


def _message(op: NodeOp, seq: int) -> bytes:
    """One rtnetlink request; interface names are resolved in the current namespace."""
    if isinstance(op, LinkUp):
        index = _index(op.ifname)
        body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP)
        mtype, flags = RTM_NEWLINK, 0
    elif isinstance(op, AddAddr):
        iface = ipaddress.ip_interface(op.cidr)
        family = socket.AF_INET if iface.version == 4 else socket.AF_INET6
        index = _index(op.ifname)
        body = struct.pack("=BBBBI", family, iface.network.prefixlen, 0, 0, index)
        body += wire.nla(IFA_LOCAL, iface.ip.packed) + wire.nla(IFA_ADDRESS, iface.ip.packed)
        mtype, flags = RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL
    else:
        dst = ipaddress.ip_network("0.0.0.0/0" if op.to == "default" else op.to)
        if op.to == "default" and op.via and ipaddress.ip_address(op.via).version == 6:
            dst = ipaddress.ip_network("::/0")
        family = socket.AF_INET if dst.version == 4 else socket.AF_INET6
        scope = RT_SCOPE_UNIVERSE if op.via else RT_SCOPE_LINK
        body = struct.pack(
            "=BBBBBBBBI", family, dst.prefixlen, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, scope,
            RTN_UNICAST, 0,
        )  # fmt: skip
        if dst.prefixlen:
            body += wire.nla(RTA_DST, dst.network_address.packed)
        if op.via:
            body += wire.nla(RTA_GATEWAY, ipaddress.ip_address(op.via).packed)
        if op.dev:
            body += wire.nla(RTA_OIF, struct.pack("=I", _index(op.dev)))
        mtype, flags = RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE
    return wire.message(mtype, flags | NLM_F_REQUEST | NLM_F_ACK, seq, body)


def apply_ops(ops: Sequence[NodeOp]) -> None:
    """Apply ``ops`` in order in the *current thread's* namespace (call it from
    :func:`in_netns`); raise OSError naming the first request the kernel refused.

    Requests go out as one batch; the kernel handles them in order, so a route
    can rely on an address added just before it.
    """
    if not ops:
        return
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
    try:
        sock.bind((0, 0))
        msgs = [_message(op, seq) for seq, op in enumerate(ops, 1)]
        sock.sendall(b"".join(msgs))
        pending = set(range(1, len(ops) + 1))
        first: tuple[int, int] | None = None
        while pending:
            data = sock.recv(65536)
            for mtype, _flags, seq, off, _length in wire.iter_replies(data):
                if mtype == NLMSG_ERROR and seq in pending:
                    pending.discard(seq)
                    err = wire.ack_error(data, off)
                    if err and (first is None or seq < first[0]):
                        first = (seq, err)
        if first is not None:
            seq, err = first
            raise OSError(err, f"{_describe(ops[seq - 1])}: {os.strerror(err)}")
    finally:
        sock.close()
