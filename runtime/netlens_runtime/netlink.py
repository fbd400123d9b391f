"""A minimal rtnetlink client: just the messages the runtime sends.

Why not pyroute2: importing it costs ~150 ms, the whole budget of ``netlens
run``. The codec (attributes, headers, walking the acks) and the numbers are
:mod:`netlens.kernel`'s, shared with discovery; this module holds the requests
only the runtime sends. Messages are packed with ``struct`` and queued; :meth:`Netlink.commit`
sends the whole batch in as few ``send`` calls as the socket buffer allows and
reads the acks once, so a 100-container lab costs one round trip per batch.
"""

from __future__ import annotations

import _socket  # the C module: ``socket`` builds enums at import, ~8 ms
import errno as _errno
import ipaddress
import os
import struct

from netlens.kernel import wire
from netlens.kernel.consts import (
    IFA_ADDRESS,
    IFA_BROADCAST,
    IFA_LOCAL,
    IFF_UP,
    IFLA_AF_SPEC,
    IFLA_GROUP,
    IFLA_IFNAME,
    IFLA_INET6_ADDR_GEN_MODE,
    IFLA_INFO_DATA,
    IFLA_INFO_KIND,
    IFLA_LINKINFO,
    IFLA_MASTER,
    IFLA_MTU,
    IFLA_NET_NS_FD,
    IFLA_NET_NS_PID,
    IN6_ADDR_GEN_MODE_NONE,
    NETLINK_CAP_ACK,
    NETLINK_EXT_ACK,
    NLA_F_NESTED,
    NLM_F_ACK,
    NLM_F_ACK_TLVS,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    NLMSG_ERROR,
    NLMSGERR_ATTR_MSG,
    RTA_GATEWAY,
    RTA_OIF,
    RTM_DELLINK,
    RTM_GETLINK,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWROUTE,
    SOL_NETLINK,
    VETH_INFO_PEER,
)
from netlens_runtime import sysc

_IFINFO = struct.Struct("=BxHiII")


class NetlinkError(OSError):
    """A request the kernel refused; ``what`` names the request."""


_attr = wire.nla


def _str(kind: int, text: str) -> bytes:
    return _attr(kind, text.encode() + b"\0")


def _u32(kind: int, value: int) -> bytes:
    return _attr(kind, struct.pack("=I", value))


def _i32(kind: int, value: int) -> bytes:
    return _attr(kind, struct.pack("=i", value))


def ifindex(name: str) -> int:
    """Index of a host (current namespace) interface, via sysfs: no round trip."""
    try:
        with open(f"/sys/class/net/{name}/ifindex") as fh:
            return int(fh.read())
    except FileNotFoundError:
        raise NetlinkError(_errno.ENODEV, f"no interface {name}") from None


class Netlink:
    """One NETLINK_ROUTE socket plus a queue of requests awaiting acks."""

    def __init__(self, netns_fd: int | None = None) -> None:
        """Open a socket in the current namespace, or in ``netns_fd``'s.

        The thread enters the namespace, opens the socket and returns; the
        socket stays bound to the namespace it was opened in.
        """
        if netns_fd is None:
            self.sock = self._open()
        else:
            own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                sysc.setns(netns_fd, sysc.CLONE_NEWNET)
                try:
                    self.sock = self._open()
                finally:
                    sysc.setns(own, sysc.CLONE_NEWNET)
            finally:
                os.close(own)
        self.seq = 0
        self.queue: list[tuple[int, bytes, str]] = []

    @staticmethod
    def _open() -> _socket.socket:
        sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, 0)
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVBUF, 1 << 20)
        sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        sock.bind((0, 0))
        return sock

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _queue(self, mtype: int, flags: int, body: bytes, what: str) -> None:
        self.seq += 1
        msg = wire.message(mtype, flags | NLM_F_REQUEST | NLM_F_ACK, self.seq, body)
        self.queue.append((self.seq, msg, what))

    def send(self, requests: Netlink) -> None:
        """Commit requests built elsewhere, e.g. a :class:`Requests` (their seqs are kept)."""
        self.queue = list(requests.queue)
        self.commit()

    # -- requests ---------------------------------------------------------------

    def add_veth(
        self,
        name: str,
        peer: str,
        *,
        netns_fd: int | None = None,
        peer_netns_fd: int | None = None,
        peer_netns_pid: int | None = None,
        master: int | None = None,
        mtu: int | None = None,
        up: bool = True,
        peer_up: bool = False,
        peer_index: int = 0,
    ) -> None:
        """A veth pair, each end optionally created straight in a namespace.

        The peer cannot be brought up in the same request (veth_open needs the
        other end registered: ENOTCONN), so callers set it up afterwards.
        """
        flag = IFF_UP if peer_up else 0
        pbody = _IFINFO.pack(0, 0, peer_index, flag, flag) + _str(IFLA_IFNAME, peer)
        if peer_netns_fd is not None:
            pbody += _u32(IFLA_NET_NS_FD, peer_netns_fd)
        if peer_netns_pid is not None:
            pbody += _u32(IFLA_NET_NS_PID, peer_netns_pid)
        if mtu:
            pbody += _u32(IFLA_MTU, mtu)
        info = _str(IFLA_INFO_KIND, "veth") + _attr(
            IFLA_INFO_DATA | NLA_F_NESTED, _attr(VETH_INFO_PEER | NLA_F_NESTED, pbody)
        )
        flag = IFF_UP if up else 0
        body = _IFINFO.pack(0, 0, 0, flag, flag) + _str(IFLA_IFNAME, name)
        body += _attr(IFLA_LINKINFO | NLA_F_NESTED, info)
        if netns_fd is not None:
            body += _u32(IFLA_NET_NS_FD, netns_fd)
        if master is not None:
            body += _u32(IFLA_MASTER, master)
        if mtu:
            body += _u32(IFLA_MTU, mtu)
        self._queue(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"create veth {name}")

    def add_bridge(self, name: str, mtu: int | None = None) -> None:
        body = _IFINFO.pack(0, 0, 0, IFF_UP, IFF_UP) + _str(IFLA_IFNAME, name)
        body += _attr(IFLA_LINKINFO | NLA_F_NESTED, _str(IFLA_INFO_KIND, "bridge"))
        if mtu:
            body += _u32(IFLA_MTU, mtu)
        self._queue(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"create bridge {name}")

    def set_up(self, index: int, mtu: int | None = None) -> None:
        body = _IFINFO.pack(0, 0, index, IFF_UP, IFF_UP)
        if mtu:
            body += _u32(IFLA_MTU, mtu)
        self._queue(RTM_NEWLINK, 0, body, f"set link {index} up")

    def no_ipv6_autoconf(self, index: int) -> None:
        """No automatic IPv6 link-local address on link ``index`` (set it while down).

        Without it, every veth coming up on a bridge sends duplicate-address
        probes and router solicitations that the bridge floods to every other
        port: quadratic work for a big lab on one network. IPv6 stays usable:
        addresses can still be added by hand.
        """
        af = _attr(
            _socket.AF_INET6, _attr(IFLA_INET6_ADDR_GEN_MODE, bytes([IN6_ADDR_GEN_MODE_NONE]))
        )
        body = _IFINFO.pack(0, 0, index, 0, 0) + _attr(IFLA_AF_SPEC, af)
        self._queue(RTM_NEWLINK, 0, body, f"set addrgenmode of link {index}")

    def set_up_by_name(self, name: str) -> None:
        body = _IFINFO.pack(0, 0, 0, IFF_UP, IFF_UP) + _str(IFLA_IFNAME, name)
        self._queue(RTM_NEWLINK, 0, body, f"set {name} up")

    def del_link(self, name: str) -> None:
        body = _IFINFO.pack(0, 0, 0, 0, 0) + _str(IFLA_IFNAME, name)
        self._queue(RTM_DELLINK, 0, body, f"delete link {name}")

    def set_group(self, name: str, group: int) -> None:
        """Put link ``name`` in link group ``group`` (see :meth:`del_group`)."""
        body = _IFINFO.pack(0, 0, 0, 0, 0) + _str(IFLA_IFNAME, name) + _u32(IFLA_GROUP, group)
        self._queue(RTM_NEWLINK, 0, body, f"set group of {name}")

    def del_group(self, group: int) -> None:
        """Delete every link of ``group`` in one request.

        The kernel unregisters them as one batch (a few RCU grace periods in
        all); one RTM_DELLINK per link waits for its own, ~2.5 ms each.
        """
        body = _IFINFO.pack(0, 0, 0, 0, 0) + _u32(IFLA_GROUP, group)
        self._queue(RTM_DELLINK, 0, body, f"delete link group {group}")

    def add_addr(self, index: int, cidr: str) -> None:
        iface = ipaddress.IPv4Interface(cidr)
        raw = iface.ip.packed
        body = struct.pack("=BBBBI", _socket.AF_INET, iface.network.prefixlen, 0, 0, index)
        body += _attr(IFA_LOCAL, raw) + _attr(IFA_ADDRESS, raw)
        if iface.network.prefixlen < 31:
            body += _attr(IFA_BROADCAST, iface.network.broadcast_address.packed)
        self._queue(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body, f"add address {cidr}")

    def add_default_route(self, gateway: str, oif: int) -> None:
        body = struct.pack("=BBBBBBBBI", _socket.AF_INET, 0, 0, 0, 254, 3, 0, 1, 0)
        body += _attr(RTA_GATEWAY, ipaddress.IPv4Address(gateway).packed) + _u32(RTA_OIF, oif)
        self._queue(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body, f"default route via {gateway}")

    def get_index(self, name: str) -> int:
        """Index of ``name`` in this socket's namespace (one synchronous request)."""
        self.seq += 1
        body = _IFINFO.pack(0, 0, 0, 0, 0) + _str(IFLA_IFNAME, name)
        self.sock.send(wire.message(RTM_GETLINK, NLM_F_REQUEST, self.seq, body))
        while True:
            data = self.sock.recv(65536)
            for mtype, _flags, seq, off, _length in wire.iter_replies(data):
                if seq == self.seq:
                    if mtype == NLMSG_ERROR:
                        err = wire.ack_error(data, off)
                        raise NetlinkError(err, f"no interface {name}: {os.strerror(err)}")
                    if mtype == RTM_NEWLINK:
                        (index,) = struct.unpack_from("=i", data, off + 20)
                        return int(index)

    # -- transport --------------------------------------------------------------

    def commit(self, ignore: tuple[int, ...] = ()) -> None:
        """Send every queued request, read all acks; raise on the first failure.

        All requests are processed by the kernel even if one fails; the error
        names the first failed request so the caller can roll back.
        """
        queue, self.queue = self.queue, []
        if not queue:
            return
        chunk: list[bytes] = []
        size = 0
        for _, msg, _ in queue:
            if size + len(msg) > 60000 and chunk:
                self.sock.send(b"".join(chunk))
                chunk, size = [], 0
            chunk.append(msg)
            size += len(msg)
        self.sock.send(b"".join(chunk))
        whats = {seq: what for seq, _, what in queue}
        pending = set(whats)
        first: NetlinkError | None = None
        while pending:
            data = self.sock.recv(1 << 20)
            for mtype, flags, seq, off, length in wire.iter_replies(data):
                if mtype == NLMSG_ERROR and seq in pending:
                    pending.discard(seq)
                    err = wire.ack_error(data, off)
                    if err and err not in ignore and first is None:
                        detail = _ext_msg(data[off : off + length], flags)
                        text = f"{whats[seq]}: {os.strerror(err)}" + (
                            f" ({detail})" if detail else ""
                        )
                        first = NetlinkError(err, text)
        if first is not None:
            raise first


class Requests(Netlink):
    """Requests built without a socket, to :meth:`Netlink.send` later.

    The parent builds a container's requests before clone, so the child (which
    pays a copy-on-write fault for every page of Python it touches) only sends
    bytes.
    """

    def __init__(self) -> None:  # no socket: build only
        self.seq = 0
        self.queue = []

    def commit(self, ignore: tuple[int, ...] = ()) -> None:
        raise TypeError("Requests has no socket: pass it to Netlink.send")


def _ext_msg(msg: bytes, flags: int) -> str:
    """The kernel's extended ack text, if any (after the echoed request header)."""
    if not flags & NLM_F_ACK_TLVS:
        return ""
    off = 16 + 4 + 16  # header, error code, echoed header (NETLINK_CAP_ACK)
    while off + 4 <= len(msg):
        alen, akind = struct.unpack_from("=HH", msg, off)
        if alen < 4:
            break
        if akind == NLMSGERR_ATTR_MSG:
            return msg[off + 4 : off + alen].split(b"\0", 1)[0].decode(errors="replace")
        off += (alen + 3) & ~3
    return ""
