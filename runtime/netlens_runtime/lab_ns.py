"""Do things inside a node's network namespace without forking per namespace.

``setns(2)`` with CLONE_NEWNET moves only the *calling thread*, so a short-lived
worker thread enters the namespace, does its work and goes home; the rest of the
process never leaves the host namespace. Two things done that way keep working
afterwards:

- a socket stays bound to the namespace it was created in, so the traffic
  generator opens its sockets here and pumps them from any thread;
- a netlink socket opened there configures that namespace (addresses, links,
  routes) with one batch of requests per node: no ``ip`` exec, no ``nsenter``.

Python 3.11 has no ``os.setns``, hence ctypes. This is a deliberate small copy of
the idea in ``netlens.discovery.nsenter``: the runtime never imports the
inspector.
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.setns.restype = ctypes.c_int

T = TypeVar("T")


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def netns_path(pid: int) -> str:
    """The namespace handle of a node's init process."""
    return f"/proc/{pid}/ns/net"


def in_netns(paths: Sequence[str], func: Callable[[str], T]) -> list[T]:
    """Call ``func(path)`` inside each namespace in turn, from one worker thread.

    The first exception stops the walk and is re-raised in the caller (a lab
    must not silently lose a route). The worker always returns to the host
    namespace before it runs the next item or ends.
    """
    results: list[T] = []
    failure: list[BaseException] = []

    def worker() -> None:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            for path in paths:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    _setns(fd)
                    try:
                        results.append(func(path))
                    finally:
                        _setns(home)
                finally:
                    os.close(fd)
        except BaseException as exc:
            failure.append(exc)
        finally:
            os.close(home)

    thread = threading.Thread(target=worker, name="netlens-lab-setns", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return results


def call_in(netns_fd: int | None, func: Callable[[], T]) -> T:
    """``func()`` on a worker thread inside the namespace of ``netns_fd`` (None: ours).

    Like :func:`in_netns` for one namespace the caller already opened (and
    checked, e.g. against a container record's inode): link control enters a
    node that way. A process ``func`` starts is born in that namespace too
    (fork copies the calling thread's namespaces), so ``nft`` runs there.
    """
    result: list[T] = []
    failure: list[BaseException] = []

    def worker() -> None:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if netns_fd is not None:
                _setns(netns_fd)
            try:
                result.append(func())
            finally:
                if netns_fd is not None:
                    _setns(home)
        except BaseException as exc:
            failure.append(exc)
        finally:
            os.close(home)

    thread = threading.Thread(target=worker, name="netlens-netns-call", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


# ------------------------------------------------------------ rtnetlink batch

RTM_NEWLINK = 16
RTM_NEWADDR = 20
RTM_NEWROUTE = 24
NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
IFF_UP = 0x1
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RTN_UNICAST = 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5

_HDR = struct.Struct("=IHHII")


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


def _nla(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    return struct.pack("=HH", size, kind) + payload + b"\0" * (-size % 4)


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
        body += _nla(IFA_LOCAL, iface.ip.packed) + _nla(IFA_ADDRESS, iface.ip.packed)
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
            body += _nla(RTA_DST, dst.network_address.packed)
        if op.via:
            body += _nla(RTA_GATEWAY, ipaddress.ip_address(op.via).packed)
        if op.dev:
            body += _nla(RTA_OIF, struct.pack("=I", _index(op.dev)))
        mtype, flags = RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE
    flags |= NLM_F_REQUEST | NLM_F_ACK
    return _HDR.pack(_HDR.size + len(body), mtype, flags, seq, 0) + body


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
            off = 0
            while off + _HDR.size <= len(data):
                length, mtype, _flags, seq, _pid = _HDR.unpack_from(data, off)
                if mtype == NLMSG_ERROR and seq in pending:
                    pending.discard(seq)
                    err = -struct.unpack_from("=i", data, off + _HDR.size)[0]
                    if err and (first is None or seq < first[0]):
                        first = (seq, err)
                off += max(length + (-length % 4), _HDR.size)
        if first is not None:
            seq, err = first
            raise OSError(err, f"{_describe(ops[seq - 1])}: {os.strerror(err)}")
    finally:
        sock.close()
