"""The netlink wire: requests out, raw reply bytes back, nothing parsed.

Kept free of model imports (only ``struct`` and the numbers of
:mod:`netlens.kernel.consts`) because it also runs in the discovery helper
process (:mod:`netlens.kernel.serve`), which must start in a few milliseconds:
with hundreds of namespaces that helper runs every namespace's requests and
streams the replies back over a pipe while the parent process parses them.
This module is the codec both sides share: building requests, the batched
multi-request exchange with its end-of-dump detection, and namespace ids.
"""

from __future__ import annotations

import struct

from netlens.kernel.consts import (
    AF_BRIDGE,
    AF_INET,
    AF_INET6,
    AF_UNSPEC,
    EBUSY,
    NETCONFA_IFINDEX,
    NETNSA_FD,
    NETNSA_NSID,
    NLM_F_DUMP,
    NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_GETNEIGH,
    RTM_GETNETCONF,
    RTM_GETNSID,
    RTM_GETQDISC,
    RTM_GETROUTE,
    RTM_GETRULE,
    RTM_GETTFILTER,
    RTM_NEWNETCONF,
    RTM_NEWNSID,
    TC_H_CLSACT_INGRESS,
)

# The helper process must start in a few milliseconds: ``socket`` (via selectors
# and enum) and ``collections`` cost tens of milliseconds to import, so the wire
# uses the C module ``_socket`` and imports annotation-only names lazily.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from _socket import socket as Socket
    from collections.abc import Iterator, Sequence

# The dumps discovery sends, by name. The name is also the fixture file name.
REQUESTS: dict[str, tuple[int, int]] = {
    "link": (RTM_GETLINK, AF_UNSPEC),
    "addr": (RTM_GETADDR, AF_UNSPEC),
    "route": (RTM_GETROUTE, AF_UNSPEC),
    "rule": (RTM_GETRULE, AF_UNSPEC),
    "neigh": (RTM_GETNEIGH, AF_UNSPEC),
    "fdb": (RTM_GETNEIGH, AF_BRIDGE),
    "qdisc": (RTM_GETQDISC, AF_UNSPEC),
}
NETCONF = "netconf"
"""Pseudo-request: three RTM_GETNETCONF gets (IPv4 all and default, IPv6 all).

They carry the sysctls that matter (forwarding, rp_filter, proxy_arp). Reading
them from /proc/sys/net costs about 250 us per file once a host has 1000
namespaces (every namespace's sysctl dentries share one hash chain), netlink a
few microseconds."""
NETCONF_QUERIES = ((AF_INET, -1), (AF_INET, -2), (AF_INET6, -1))

FIRST_ROUND = ("rule", "neigh", "qdisc", NETCONF, "link", "addr", "route")
"""Requests per namespace, in the order that lets the kernel serve most of them
from one send (short dumps that finish in one part first). Defined here, not in
the resolver, so the helper process can be started before the model is imported."""

_HDR = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_LEN_TYPE = struct.Struct("=IH")
_NLA = struct.Struct("=HH")
_IFINFO = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # family dst_len src_len tos table proto scope type flags
_RULE = struct.Struct("=BBBBBBBBI")  # family dst_len src_len tos table res1 res2 action flags
_NDMSG = struct.Struct("=BxxxiHBB")  # family, ifindex, state, flags, type
_TCMSG = struct.Struct("=BxxxiIII")  # family, ifindex, handle, parent, info
_RTNH = struct.Struct("=HBBi")  # rtnexthop: len, flags, hops, ifindex
_U8 = struct.Struct("=B")
_U16 = struct.Struct("=H")
_BE16 = struct.Struct(">H")
_U32 = struct.Struct("=I")
_I32 = struct.Struct("=i")
_STATS8 = struct.Struct("=8Q")  # first 8 u64 of rtnl_link_stats64

_DUMP_FLAGS = NLM_F_REQUEST | NLM_F_DUMP


class NetlinkError(OSError):
    """The kernel answered a request with an error (errno in ``.errno``)."""


# --- request builders ----------------------------------------------------------------------
def nla(atype: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    data = _NLA.pack(4 + len(payload), atype) + payload
    return data + b"\0" * (-len(data) % 4)


def message(msg_type: int, flags: int, seq: int, body: bytes) -> bytes:
    """One netlink message with header (pid 0: the kernel fills in ours)."""
    return _HDR.pack(16 + len(body), msg_type, flags, seq, 0) + body


TFILTER = "tfilter:"
"""Prefix of a per-device request, ``tfilter:<ifindex>``: the ingress filters of one
interface (the kernel dumps filters per device only). Asked in a later round, for
interfaces that have an ingress qdisc."""


def dump_request(name: str, seq: int = 1) -> bytes:
    """The dump request for one of :data:`REQUESTS` (``link``, ``addr``, ...) or a
    ``tfilter:<ifindex>``."""
    if name.startswith(TFILTER):
        body = _TCMSG.pack(AF_UNSPEC, int(name[len(TFILTER) :]), 0, TC_H_CLSACT_INGRESS, 0)
        return message(RTM_GETTFILTER, _DUMP_FLAGS, seq, body)
    msg_type, family = REQUESTS[name]
    if msg_type == RTM_GETLINK:
        body = _IFINFO.pack(family, 0, 0, 0, 0)
    elif msg_type == RTM_GETADDR:
        body = _IFADDR.pack(family, 0, 0, 0, 0)
    elif msg_type in (RTM_GETROUTE, RTM_GETRULE):
        body = _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    elif msg_type == RTM_GETQDISC:
        body = _TCMSG.pack(family, 0, 0, 0, 0)
    else:
        body = _NDMSG.pack(family, 0, 0, 0, 0)
    return message(msg_type, _DUMP_FLAGS, seq, body)


def netconf_request(family: int, ifindex: int, seq: int = 1) -> bytes:
    """RTM_GETNETCONF for one device (-1: ``all``, -2: ``default``)."""
    body = _U8.pack(family) + b"\0\0\0" + nla(NETCONFA_IFINDEX, _I32.pack(ifindex))
    return message(RTM_GETNETCONF, NLM_F_REQUEST, seq, body)


def nsid_request(target_fd: int, seq: int = 1) -> bytes:
    """RTM_GETNSID: the id the asking socket's namespace gives ``target_fd``'s one.

    Asking never allocates an id (the kernel answers -1 when none is assigned).
    """
    body = b"\0\0\0\0" + nla(NETNSA_FD, _U32.pack(target_fd))
    return message(RTM_GETNSID, NLM_F_REQUEST, seq, body)


# --- socket helpers (bytes only) ----------------------------------------------------------
def iter_messages(data: bytes) -> Iterator[tuple[int, int, int, int]]:
    """Yield (type, flags, start, end) for each message in ``data``; payload is
    ``data[start:end]`` after the 16-byte header."""
    off = 0
    n = len(data)
    unpack = _HDR.unpack_from
    while off + 16 <= n:
        ln, typ, flags, _seq, _pid = unpack(data, off)
        if ln < 16:
            break
        yield typ, flags, off + 16, off + ln
        off += (ln + 3) & ~3


def iter_replies(data: bytes) -> Iterator[tuple[int, int, int, int, int]]:
    """Yield (type, flags, seq, start, length) for each message in ``data``, where
    ``start`` is the offset of its header: how a sender matches acks to requests."""
    off = 0
    n = len(data)
    unpack = _HDR.unpack_from
    while off + 16 <= n:
        ln, typ, flags, seq, _pid = unpack(data, off)
        if ln < 16:
            break
        yield typ, flags, seq, off, ln
        off += (ln + 3) & ~3


def attr_map(data: bytes, off: int, end: int) -> dict[int, bytes]:
    """The netlink attributes in ``data[off:end]`` by type (nested flag masked):
    one place for every reader that wants payloads rather than offsets."""
    out: dict[int, bytes] = {}
    while off + 4 <= end:
        alen, atype = _NLA.unpack_from(data, off)
        if alen < 4:
            break
        out[atype & 0x3FFF] = data[off + 4 : off + alen]
        off += (alen + 3) & ~3
    return out


def ack_error(data: bytes, start: int) -> int:
    """The errno of the NLMSG_ERROR message whose header is at ``start`` (0: an ack)."""
    return -int(_I32.unpack_from(data, start + 16)[0])


def end_of_dump(chunk: bytes) -> int:
    """0 when more is coming; 1 at NLMSG_DONE; -errno for an error reply."""
    off = 0
    n = len(chunk)
    unpack = _LEN_TYPE.unpack_from
    while off + 16 <= n:
        ln, typ = unpack(chunk, off)
        if typ == NLMSG_DONE:
            return 1
        if typ == NLMSG_ERROR:
            err = _I32.unpack_from(chunk, off + 16)[0]
            return err if err < 0 else 1
        if ln < 16:
            return 1
        off += (ln + 3) & ~3
    return 0


def send_dump(sock: Socket, name: str, seq: int = 1) -> None:
    """Start one dump; its first part is generated during the send."""
    sock.send(dump_request(name, seq))


def recv_dump(sock: Socket, bufsize: int = 65536) -> bytes:
    """Read the replies of the dump in progress until NLMSG_DONE.

    Returns the raw messages (DONE included). Raises :class:`NetlinkError` when the
    kernel refused the dump (for example EOPNOTSUPP for a family it lacks).
    """
    chunks: list[bytes] = []
    recv = sock.recv
    while True:
        chunk = recv(bufsize)
        if not chunk:
            break
        end = end_of_dump(chunk)
        if end < 0:
            raise NetlinkError(-end, f"netlink dump refused: errno {-end}")
        chunks.append(chunk)
        if end:
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def dump(sock: Socket, name: str, seq: int = 1) -> bytes:
    """Send one dump request and collect its reply bytes."""
    send_dump(sock, name, seq)
    return recv_dump(sock)


class Decoded(list):  # type: ignore[type-arg]
    """Rows the helper process already decoded (:mod:`netlens.kernel.decode`)
    in place of the raw reply bytes; the parsers accept either."""


class Interrupted(bytes):
    """Reply bytes of a dump the kernel flagged NLM_F_DUMP_INTR (the table changed
    while it was being dumped): usable, but worth asking once more."""


_DONE_HEAD = b"\x14\x00\x00\x00\x03\x00"  # a 20-byte NLMSG_DONE header's len and type
_REQUEST_CACHE: dict[tuple[str, ...], tuple[bytes, dict[int, str]]] = {}


def _requests(names: tuple[str, ...]) -> tuple[bytes, dict[int, str]]:
    """The request bytes for ``names`` (seq 1..n) and which name each seq is."""
    hit = _REQUEST_CACHE.get(names)
    if hit is None:
        msgs: list[bytes] = []
        seq_name: dict[int, str] = {}
        for name in names:
            if name == NETCONF:
                for fam, idx in NETCONF_QUERIES:
                    seq = len(seq_name) + 1
                    msgs.append(netconf_request(fam, idx, seq))
                    seq_name[seq] = name
            else:
                seq = len(seq_name) + 1
                msgs.append(dump_request(name, seq))
                seq_name[seq] = name
        hit = (b"".join(msgs), seq_name)
        _REQUEST_CACHE[names] = hit
    return hit


def _any_interrupted(chunk: bytes) -> bool:
    """Whether any message of a dump datagram carries NLM_F_DUMP_INTR (the kernel
    flags the first message after the table changed, not the whole dump)."""
    if len(chunk) & 3:
        return False
    mv = memoryview(chunk)
    h = mv.cast("H")
    w = mv.cast("I")
    off = 0
    n = len(chunk)
    while off + 16 <= n:
        if h[(off >> 1) + 3] & NLM_F_DUMP_INTR:
            return True
        ln = w[off >> 2]
        if ln < 16:
            break
        off += (ln + 3) & -4
    return False


LONG_DUMPS = frozenset({"link", "addr", "route"})
"""Dumps whose NLMSG_DONE comes in a datagram of its own on current kernels
(rtnetlink's RTNL_FLAG_DUMP_SPLIT_NLM_DONE): until it has been read, the socket
has a dump running and any further dump request is refused with EBUSY. The
others (rules, neighbours, netconf gets) finish inside the send."""


_BATCH_CACHE: dict[tuple[str, ...], tuple[tuple[str, ...], ...]] = {}


def _batches(names: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Split requests into sends: the short ones and the first long dump go
    together, then each further long dump alone, so that no request meets a
    running dump (an EBUSY answer costs the kernel an error message and this
    side a read and a resend). Only an optimisation: EBUSY is still handled."""
    hit = _BATCH_CACHE.get(names)
    if hit is None:
        short = tuple(n for n in names if n not in LONG_DUMPS)
        long = [n for n in names if n in LONG_DUMPS]
        hit = ((*short, long[0]), *((n,) for n in long[1:])) if long else (short,)
        _BATCH_CACHE[names] = hit
    return list(hit)


def exchange_or_error(sock: Socket, names: Sequence[str]) -> dict[str, bytes | OSError]:
    """:func:`exchange`, or the error it met for every name: a namespace that
    vanished or refused mid-walk is a normal outcome of the walk, never fatal."""
    try:
        return exchange(sock, names)
    except OSError as err:
        return dict.fromkeys(names, err)


def exchange(sock: Socket, names: Sequence[str]) -> dict[str, bytes | OSError]:
    """Run several requests (:data:`REQUESTS` names or :data:`NETCONF`) on one socket
    with as few sends and reads as the kernel allows.

    Requests go out in the batches of :func:`_batches` (one send each). The kernel
    serves a send's requests in order; a dump that still meets a running one is
    refused with EBUSY, and those are sent again, together, in the next round.

    Each datagram holds one reply or one part of one dump, and a dump's NLMSG_DONE
    is the last message of its last datagram, so a datagram is classified from its
    first header and its last 20 bytes without walking the messages between.
    Returns raw reply bytes per name (:class:`Interrupted` when the kernel flagged
    the dump inconsistent), or the OSError the kernel answered.
    """
    out: dict[str, bytes | OSError] = {}
    want = tuple(dict.fromkeys(names))
    recv = sock.recv
    rounds = _batches(want)
    busy: list[str] = []
    interrupted: set[str] = set()
    while rounds:
        pending = rounds.pop(0)
        request, seq_name = _requests(pending)
        sock.send(request)
        waiting = len(seq_name)
        parts: dict[str, list[bytes]] = {}
        while waiting:
            chunk = recv(65536)
            if len(chunk) < 20:
                raise NetlinkError(5, "short netlink reply")  # EIO
            name = seq_name.get(int.from_bytes(chunk[8:12], "little"))
            if name is None:
                continue
            typ = chunk[4] | chunk[5] << 8
            if typ == NLMSG_ERROR:
                waiting -= 1
                err = int.from_bytes(chunk[16:20], "little", signed=True)
                if err == -EBUSY:
                    busy.append(name)
                elif err < 0 and name != NETCONF:
                    out[name] = NetlinkError(-err, f"{name}: errno {-err}")
                continue
            got = parts.get(name)
            if got is None:
                parts[name] = [chunk]
                # The kernel flags a message when the table's generation differs
                # from the one seen when the previous message was filled, starting
                # from none for a new dump (and for each family of an AF_UNSPEC
                # dump), so only later parts need a walk over every header; the
                # first message is checked anyway, it costs nothing.
                if chunk[6] & NLM_F_DUMP_INTR:
                    interrupted.add(name)
            else:
                got.append(chunk)
                if chunk[6] & NLM_F_DUMP_INTR if len(chunk) == 20 else _any_interrupted(chunk):
                    interrupted.add(name)  # (20 bytes: a lone NLMSG_DONE)
            if typ == RTM_NEWNETCONF:
                waiting -= 1
                continue
            if chunk[-20:-14] == _DONE_HEAD and chunk[-12:-4] == chunk[8:16]:
                waiting -= 1
        for name, chunks in parts.items():
            if name not in out:
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                out[name] = Interrupted(data) if name in interrupted else data
        if not rounds and busy:
            again = tuple(name for name in dict.fromkeys(busy) if name not in out)
            busy = []
            if again:
                rounds = _batches(again)
    for name in want:
        if name not in out:
            out[name] = b""
    return {name: out[name] for name in names}


NSID_SEQ_BASE = 1 << 20  # ask_nsids' sequence numbers never meet a dump's (1, 2, ...)


def ask_nsids(sock: Socket, fds: list[int], batch: int = 64) -> list[int | None]:
    """For each nsfs fd, the id ``sock``'s namespace gives it (None: no id or gone).

    Requests go out in batches in one send each (the kernel answers them in order);
    each answer is one datagram (an RTM_NEWNSID, or an error for a bad fd).
    """
    out: list[int | None] = []
    for start in range(0, len(fds), batch):
        part = fds[start : start + batch]
        base = NSID_SEQ_BASE + start
        reqs = b"".join(nsid_request(fd, base + i) for i, fd in enumerate(part))
        sock.send(reqs)
        got: dict[int, int | None] = {}
        while len(got) < len(part):
            data = sock.recv(65536)
            if len(data) < 16:
                raise NetlinkError(5, "short netlink reply")  # EIO
            off = 0
            while off + 16 <= len(data):
                ln, typ, _fl, seq, _pid = _HDR.unpack_from(data, off)
                if ln < 16:
                    break
                if base <= seq < base + len(part) and typ in (RTM_NEWNSID, NLMSG_ERROR):
                    got[seq] = parse_nsid(typ, data, off + 16, off + ln)
                off += (ln + 3) & ~3
        out.extend(got.get(base + i) for i in range(len(part)))
    return out


def parse_nsid(typ: int, data: bytes, start: int, end: int) -> int | None:
    """The NETNSA_NSID of one RTM_NEWNSID reply; None for errors and -1."""
    if typ != RTM_NEWNSID:
        return None
    off = start + 4  # struct rtgenmsg, padded
    while off + 8 <= end:
        alen, atype = _NLA.unpack_from(data, off)
        if alen < 4:
            break
        if atype & 0x3FFF == NETNSA_NSID:
            nsid = int(_I32.unpack_from(data, off + 4)[0])
            return nsid if nsid >= 0 else None
        off += (alen + 3) & ~3
    return None
