"""What the live monitor keeps open and what tells it the structure changed.

Kept sockets (one netlink socket per namespace, opened from one setns worker
thread), the presence checks that notice a namespace lost its last real holder
(:class:`NetnsScanner`), the structure signature a rescan is compared by, and the
host event socket (:class:`EventWatcher`). Why each exists, and in which order
they are consulted, is told in :mod:`netlens.stats.live`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
from collections.abc import Iterable
from typing import Any, TextIO

from netlens.kernel.consts import (
    NETLINK_ADD_MEMBERSHIP,
    NETLINK_LISTEN_ALL_NSID,
    RTM_DELLINK,
    RTM_DELNSID,
    RTM_NEWLINK,
    RTM_NEWNSID,
    RTMGRP_LINK,
    RTNLGRP_NSID,
    SOL_NETLINK,
)
from netlens.model.types import Netns, Snapshot

_STRUCTURE_EVENTS = {RTM_NEWLINK, RTM_DELLINK, RTM_NEWNSID, RTM_DELNSID}


def _current_netns_inode() -> int | None:
    try:
        return os.stat("/proc/thread-self/ns/net").st_ino
    except OSError:
        return None


def ns_paths(ns: Netns) -> list[str]:
    """Paths that may open a namespace, best first (verified by inode on open)."""
    paths = [f"/run/netns/{n}" for n in ns.names]
    paths += list(ns.mounts)
    paths += [f"/proc/{pid}/ns/net" for pid in ns.pids[:4]]
    if ns.is_host:
        paths += ["/proc/1/ns/net"]
    return paths


def open_ns_fd(ns: Netns) -> int | None:
    """An nsfs fd of exactly this namespace (inode checked: pids and names get reused)."""
    from netlens.kernel.nsenter import open_netns

    for path in ns_paths(ns):
        fd = open_netns(path)
        if fd is None:
            continue
        st = os.fstat(fd)
        if st.st_ino == ns.inode and (not ns.dev or st.st_dev == ns.dev):
            return fd
        os.close(fd)
    return None


def open_sockets(namespaces: Iterable[Netns]) -> dict[str, socket.socket]:
    """One bound NETLINK_ROUTE socket per namespace that could be entered.

    The namespace this thread is in already gets a plain socket; the others are
    opened from one setns worker thread (netlens.kernel.nsenter).
    """
    from netlens.kernel.nsenter import netlink_socket, open_netlink_sockets

    here = _current_netns_inode()
    out: dict[str, socket.socket] = {}
    pending: list[tuple[str, int]] = []
    try:
        for ns in namespaces:
            if ns.inode == here:
                with contextlib.suppress(OSError):
                    out[ns.id] = netlink_socket()
                continue
            fd = open_ns_fd(ns)
            if fd is not None:
                pending.append((ns.id, fd))
        if pending:
            socks = open_netlink_sockets([fd for _, fd in pending])
            for (ns_id, _), sock in zip(pending, socks, strict=True):
                if sock is not None:
                    out[ns_id] = sock
    finally:
        for _, fd in pending:
            os.close(fd)
    return out


class NetnsScanner:
    """Cheap presence checks of namespaces, between full discoveries.

    Not discovery: it only has to notice that a namespace appeared or vanished.

    - Mounted namespaces (``ip netns``, Docker, Podman, CNI) come from
      ``/proc/self/mountinfo``, whose nsfs lines name their namespace in the root
      field (``net:[4026532637]``): no stat, and the text is re-parsed only when it
      changed.
    - A namespace held only by processes is alive while one of its known
      processes still points at it: one readlink of a remembered witness pid,
      instead of a readlink per process on the host (750 processes cost ~20 ms).
    - A new namespace held only by a process and without a veth to the host
      sends no event; the periodic full rediscovery finds it.
    """

    def __init__(self, proc: str = "/proc") -> None:
        self.proc = proc
        self._mountinfo = ""
        self._mounted: frozenset[int] = frozenset()
        self._witness: dict[int, int] = {}  # namespace inode -> a pid inside it
        self._file: TextIO | None = None

    def _table_changed(self) -> bool:
        """True unless poll says the mount table is unchanged since the last read.

        The kernel flags POLLPRI on an open mountinfo when the table changes, so
        a host with 1000 nsfs mounts (130 KB of text) is re-read only after a
        mount or umount, not at every check.
        """
        if self._file is None:
            try:
                self._file = open(f"{self.proc}/self/mountinfo")  # noqa: SIM115 - kept for poll
            except OSError:
                return True
            return True
        try:
            _, _, x = select.select([], [], [self._file], 0)
        except (OSError, ValueError):
            return True
        return bool(x)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def mounted(self) -> frozenset[int]:
        """Inodes of every network namespace bind-mounted in our mount namespace."""
        if self._mountinfo and not self._table_changed():
            return self._mounted
        try:
            with open(f"{self.proc}/self/mountinfo") as f:
                text = f.read()
        except OSError:
            return self._mounted
        if text != self._mountinfo:
            found: set[int] = set()
            for line in text.splitlines():
                if " - nsfs " not in line:
                    continue
                root = line.split(" ", 4)[3]
                if root.startswith("net:[") and root.endswith("]"):
                    with contextlib.suppress(ValueError):
                        found.add(int(root[5:-1]))
            self._mountinfo, self._mounted = text, frozenset(found)
        return self._mounted

    def _inode_of(self, pid: int) -> int | None:
        try:
            link = os.readlink(f"{self.proc}/{pid}/ns/net")  # "net:[4026531840]"
            return int(link[5:-1])
        except (OSError, ValueError):
            return None

    def held(self, inode: int, pids: Iterable[int]) -> bool:
        """True if a process still holds the namespace (witness pid first)."""
        w = self._witness.get(inode)
        if w is not None and self._inode_of(w) == inode:
            return True
        for pid in pids:
            if pid != w and self._inode_of(pid) == inode:
                self._witness[inode] = pid
                return True
        self._witness.pop(inode, None)
        return False

    def forget(self, keep: Iterable[int]) -> None:
        """Drop witnesses of namespaces no longer tracked."""
        keep = set(keep)
        for inode in [i for i in self._witness if i not in keep]:
            del self._witness[inode]


def structure_signature(snap: Snapshot) -> int:
    """A hash of what views draw (not the counters): decides "structure changed"."""
    parts: list[Any] = []
    for ns in snap.namespaces:
        itfs = tuple(
            (
                i.ifindex,
                i.name,
                i.kind,
                i.master,
                i.peer,
                i.operstate,
                i.admin_up,
                i.uplink,
                i.speed_mbps,
                tuple(a.cidr for a in i.addresses),
            )
            for i in ns.interfaces
        )
        parts.append((ns.id, ns.name, ns.container, itfs))
    parts.append(tuple((c.id, c.name, c.netns, c.state) for c in snap.containers))
    parts.append(tuple(snap.veth_pairs))
    return hash(tuple(parts))


class EventWatcher:
    """Host netlink socket subscribed to link and nsid events of all namespaces."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.all_nsid = False
        try:
            s = socket.socket(
                socket.AF_NETLINK,
                socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                0,
            )
        except OSError:
            return
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.bind((0, RTMGRP_LINK))
            with contextlib.suppress(OSError):
                s.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, RTNLGRP_NSID)
            try:
                s.setsockopt(SOL_NETLINK, NETLINK_LISTEN_ALL_NSID, 1)
                self.all_nsid = True
            except OSError:
                pass
        except OSError:
            s.close()
            return
        self.sock = s
        self._buf = bytearray(1 << 16)

    def fileno(self) -> int:
        return self.sock.fileno() if self.sock else -1

    def drain(self) -> bool:
        """Read everything queued; True if any structure event (or an overflow) came."""
        if self.sock is None:
            return False
        changed = False
        while True:
            try:
                n = self.sock.recv_into(self._buf)
            except BlockingIOError:
                return changed
            except OSError as err:
                if err.errno == errno.ENOBUFS:  # overflowed: events were lost
                    changed = True
                    continue
                return changed
            off = 0
            while off + 16 <= n:
                mlen = int.from_bytes(self._buf[off : off + 4], "little")
                mtype = int.from_bytes(self._buf[off + 4 : off + 6], "little")
                if mtype in _STRUCTURE_EVENTS:
                    changed = True
                if mlen < 16:
                    break
                off += (mlen + 3) & ~3

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
