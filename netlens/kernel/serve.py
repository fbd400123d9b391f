"""The discovery helper process in Python: enter namespaces, dump, stream frames.

With hundreds of namespaces, discovery starts a helper which runs every
namespace's requests and streams the replies back over a pipe while the parent
process parses them (:class:`netlens.kernel.pump.Pump` is the parent's side).
Kernel dump work then runs on one core and Python parsing on the other, instead
of one after the other. The helper is ``netlens-walk`` (walk.c, the same frames
from C) where it is built; this module's :func:`serve` is its fallback, forked
(or, from a process with other threads, started as ``python3 -I -S serve.py``).

Run by the parent only: ``serve.py NAMES [MODE] FD [FD ...]`` writes, for every
FD in order and every request name, a frame ``=IHBI`` (fd position, name
position, status 0 data / 1 interrupted dump / 2 error, length) plus that many
bytes.
"""

from __future__ import annotations

import os
import struct
import sys

if __name__ == "__main__":  # ``python3 -I -S serve.py``: no site, so find the package
    # beside this file (the directory holding netlens/), and nothing else
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from netlens.kernel import wire
from netlens.kernel.consts import (
    NETLINK_NETFILTER,
    NLM_F_DUMP,
    NLM_F_REQUEST,
)

# Annotation-only names are imported lazily: ``collections`` and ``typing`` cost
# milliseconds the helper spends before its first namespace.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from _socket import socket as Socket
    from collections.abc import Callable, Sequence
    from typing import Any

# --- helper process ---------------------------------------------------------------------------
FRAME = struct.Struct("=IHBI")
FIONREAD = 0x541B  # ioctl: bytes waiting in a pipe
PARENT_BEHIND = 262144
"""Unread bytes in the pipe that mean the parent is the slower side. Rows decoded
here cost a marshal round trip on top of the decode, so the helper decodes only
when the parent is far behind (while it reads the host, typically); 16 KiB made
the helper, the long pole of a 1000-namespace walk, decode 65 % of them."""
STATUS_DATA, STATUS_INTERRUPTED, STATUS_ERROR, STATUS_DECODED, STATUS_NAT = 0, 1, 2, 3, 4
"""Frame statuses. STATUS_NAT (enter mode with the NAT probe, name position
``len(names)``, the last frame of a namespace): ``marshal`` of (the raw
NFT_MSG_GETCHAIN dump bytes, or an "errno:text" string; ip_tables_names text;
ip6_tables_names text)."""

_NFT_GETCHAIN = struct.pack(
    "=IHHIIBBH", 20, (10 << 8) | 4, NLM_F_REQUEST | NLM_F_DUMP, 1, 0, 0, 0, 0
)
LEGACY_PATHS = (
    "/proc/thread-self/net/ip_tables_names",
    "/proc/thread-self/net/ip6_tables_names",
)


def _read_proc(path: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return ""
    try:
        return os.read(fd, 65536).decode("ascii", "replace")
    except OSError:
        return ""
    finally:
        os.close(fd)


def _netlink(_socket: Any, protocol: int, rcvbuf: int, timeout_s: int) -> Socket:
    """A bound netlink socket in the current namespace, with a kernel-side receive
    timeout (one stuck namespace must not hang the walk)."""
    sock: Socket = _socket.socket(16, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, protocol)  # NETLINK
    try:
        if rcvbuf:  # 0: the default (net.core.rmem_default, 208 KiB here) is enough
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVBUF, rcvbuf)
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVTIMEO, struct.pack("@ll", timeout_s, 0))
        sock.bind((0, 0))
    except OSError:
        sock.close()
        raise
    return sock


def _chain_dump(sock: Socket) -> bytes:
    """The rest of a GETCHAIN dump sent earlier (raw bytes up to NLMSG_DONE)."""
    chunks: list[bytes] = []
    while True:
        chunk = sock.recv(1 << 17)
        if not chunk:
            break
        chunks.append(chunk)
        if wire.end_of_dump(chunk):
            break
    return b"".join(chunks)


def serve(
    names: Sequence[str],
    fds: Sequence[int],
    out_fd: int = 1,
    decoders: dict[str, Callable[[bytes], list[Any]]] | None = None,
    *,
    enter: bool = False,
    nat: bool = False,
    legacy: bool = False,
) -> None:
    """Run ``names`` on each socket fd in order and stream framed replies to ``out_fd``.

    Replies with a decoder (link, addr, route) are sent as ``marshal``-ed rows, so
    the parent skips the attribute walk; an interrupted dump goes raw (the parent
    asks again) and so does anything else.

    ``enter``: the fds are nsfs handles, not sockets. This single-threaded helper
    then does the setns pass itself (enter, open the socket, dump, go on), so
    entering 1000 namespaces runs on the second core while the parent reads the
    host; ``nat`` also probes NAT in the same visit (a STATUS_NAT frame), and
    ``legacy`` reads the iptables-legacy table lists there.
    """
    import _socket

    setns: Callable[[int, int], int] | None = None
    if enter:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.setns.restype = ctypes.c_int
        setns = libc.setns
        get_errno = ctypes.get_errno
    decoders = decoders or {}
    for pos, fd in enumerate(fds):
        if setns is not None:
            _serve_entered(pos, fd, names, out_fd, decoders, setns, get_errno, nat, legacy)
            continue
        decode_now = _parent_behind(out_fd)  # balance the two cores
        try:
            sock = _socket.socket(fileno=fd)
        except OSError as err:
            replies: dict[str, bytes | OSError] = dict.fromkeys(names, err)
        else:
            try:
                replies = wire.exchange_or_error(sock, names)
            finally:
                sock.detach()
        _write_all(out_fd, _frames(pos, names, replies, decoders, decode_now))


def _frames(
    pos: int,
    names: Sequence[str],
    replies: dict[str, bytes | OSError],
    decoders: dict[str, Callable[[bytes], list[Any]]],
    decode_now: bool,
) -> list[bytes]:
    import marshal

    pack = FRAME.pack
    frames: list[bytes] = []
    for i, name in enumerate(names):
        data = replies.get(name, b"")
        if isinstance(data, OSError):
            payload = f"{data.errno or 0}:{data.strerror or data}".encode()
            frames.append(pack(pos, i, STATUS_ERROR, len(payload)) + payload)
        elif isinstance(data, wire.Interrupted):
            frames.append(pack(pos, i, STATUS_INTERRUPTED, len(data)))
            frames.append(data)
        elif decode_now and name in decoders:
            blob = marshal.dumps(decoders[name](data))
            frames.append(pack(pos, i, STATUS_DECODED, len(blob)))
            frames.append(blob)
        else:
            frames.append(pack(pos, i, STATUS_DATA, len(data)))
            frames.append(data)
    return frames


def _parent_behind(out_fd: int) -> bool:
    """Decode here only while the parent is behind (the pipe still holds unread
    replies); when it is waiting, raw is faster."""
    import fcntl

    try:
        unread = int.from_bytes(fcntl.ioctl(out_fd, FIONREAD, b"\0\0\0\0"), "little")
    except OSError:
        unread = PARENT_BEHIND
    return unread >= PARENT_BEHIND


def _write_all(out_fd: int, frames: list[bytes]) -> None:
    view = memoryview(b"".join(frames))
    while view:
        view = view[os.write(out_fd, view) :]


def _serve_entered(
    pos: int,
    fd: int,
    names: Sequence[str],
    out_fd: int,
    decoders: dict[str, Callable[[bytes], list[Any]]],
    setns: Callable[[int, int], int],
    get_errno: Callable[[], int],
    nat: bool,
    legacy: bool,
) -> None:
    """One namespace in enter mode: setns, open, probe NAT, dump, stream."""
    import _socket
    import marshal

    decode_now = _parent_behind(out_fd)
    replies: dict[str, bytes | OSError]
    nat_result: tuple[bytes | str, str, str] = ("5:not probed", "", "")
    if setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        code = get_errno()
        err = OSError(code, os.strerror(code))
        replies = dict.fromkeys(names, err)
        nat_result = (f"{code}:{os.strerror(code)}", "", "")
    else:
        nf: Any = None
        chain: bytes | str = b""
        if nat:
            try:
                nf = _netlink(_socket, NETLINK_NETFILTER, 0, 2)  # one chain-dump part at a time
                nf.send(_NFT_GETCHAIN)
            except OSError as err:
                if nf is not None:
                    nf.close()
                nf = None
                chain = f"{err.errno or 0}:{err.strerror or err}"
        texts = tuple(_read_proc(p) for p in LEGACY_PATHS) if nat and legacy else ("", "")
        try:
            sock = _netlink(_socket, 0, 1 << 18, 5)
        except OSError as err:
            replies = dict.fromkeys(names, err)
        else:
            try:
                replies = wire.exchange_or_error(sock, names)
            finally:
                sock.close()
        if nf is not None:
            try:
                chain = _chain_dump(nf)
            except OSError as err:
                chain = f"{err.errno or 0}:{err.strerror or err}"
            finally:
                nf.close()
        nat_result = (chain, texts[0], texts[1])
    frames = _frames(pos, names, replies, decoders, decode_now)
    if nat:
        blob = marshal.dumps(nat_result)
        frames.append(FRAME.pack(pos, len(names), STATUS_NAT, len(blob)))
        frames.append(blob)
    _write_all(out_fd, frames)


def main(argv: Sequence[str]) -> int:
    """Helper entry point: ``serve.py NAMES [MODE] FD...`` (NAMES comma-separated;
    MODE ``enter``, ``enter+nat`` or ``enter+nat+legacy``: the FDs are nsfs handles)."""
    from netlens.kernel.decode import DECODERS

    decoders: dict[str, Callable[[bytes], list[Any]]] = dict(DECODERS)
    args = list(argv[2:])
    mode = args.pop(0).split("+") if args and not args[0].isdigit() else []
    serve(
        argv[1].split(","),
        [int(a) for a in args],
        decoders=decoders,
        enter="enter" in mode,
        nat="nat" in mode,
        legacy="legacy" in mode,
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except BrokenPipeError:  # the parent gave up (timeout, interrupt): just stop
        sys.exit(1)
