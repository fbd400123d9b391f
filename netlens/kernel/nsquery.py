"""Netlink sockets inside chosen namespaces, opened safely and kept for a session.

A trace asks a few questions in each namespace on the path. A socket opened in
a namespace stays in it, so one entry per namespace serves every question.
Entry goes through :mod:`netlens.kernel.nsenter` (a worker thread does the
``setns``; the process never leaves the host namespace) and never creates a
namespace: a path is opened without O_CREAT and must be an nsfs handle whose
inode is the one asked for, so a path reused by another namespace since
discovery is refused rather than asked.

Also here: the namespace's own procfs view (``/proc/thread-self/net/...`` and
``/proc/sys/net/...`` read from the entered thread), for the few facts that
have no netlink answer (br_netfilter's sysctls, the socket tables).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable
from typing import TypeVar

from netlens.kernel.nsenter import netlink_socket, open_netns, run_in_netns

T = TypeVar("T")


class NamespaceGone(OSError):
    """No path to the namespace opens it any more (it vanished since discovery)."""


class NsQuery:
    """One netlink socket per namespace inode, opened on first use."""

    def __init__(self) -> None:
        self._fds: dict[int, int] = {}
        self._socks: dict[int, socket.socket] = {}

    def _fd(self, inode: int, paths: Iterable[str]) -> int:
        fd = self._fds.get(inode)
        if fd is not None:
            return fd
        for path in paths:
            fd = open_netns(path)
            if fd is None:
                continue
            if os.fstat(fd).st_ino == inode:
                self._fds[inode] = fd
                return fd
            os.close(fd)
        raise NamespaceGone(2, f"namespace netns:{inode} is gone")

    def sock(self, inode: int, paths: Iterable[str]) -> socket.socket:
        """The NETLINK_ROUTE socket of namespace ``inode`` (opened via one of ``paths``)."""
        sock = self._socks.get(inode)
        if sock is None:
            fd = self._fd(inode, paths)
            (res,) = run_in_netns([fd], lambda _t: netlink_socket(rcvbuf=1 << 16))
            if isinstance(res, OSError):
                raise res
            sock = res
            sock.settimeout(5.0)
            self._socks[inode] = sock
        return sock

    def run(self, inode: int, paths: Iterable[str], func: Callable[[], T]) -> T:
        """``func()`` run by a thread inside the namespace (for its procfs view)."""
        fd = self._fd(inode, paths)
        (res,) = run_in_netns([fd], lambda _t: func())
        if isinstance(res, OSError):
            raise res
        return res

    def close(self) -> None:
        for sock in self._socks.values():
            sock.close()
        for fd in self._fds.values():
            os.close(fd)
        self._socks.clear()
        self._fds.clear()

    def __enter__(self) -> NsQuery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_text(path: str) -> str | None:
    """A procfs file's text as the calling thread sees it; None when absent."""
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None
