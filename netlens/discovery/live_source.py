"""Discovery's live inputs: the host's namespaces over netlink, and its procfs.

:class:`LiveNetlink` decides how a walk reads the kernel: which namespaces are
entered here in one setns pass (:func:`netlens.kernel.nsenter.run_in_netns`)
and which are handed to the helper process (:class:`netlens.kernel.pump.Pump`,
the C walker or its Python twin), when the NAT probe rides along, and how a
failed helper falls back to reading directly. The kernel access itself
(entering, sockets, the codec, the helper process) is :mod:`netlens.kernel`'s.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

from netlens.discovery.nsfind import NsHandle
from netlens.discovery.sources import BRIDGE_SYSCTLS
from netlens.kernel import nsenter, serve, walker, wire
from netlens.kernel.pump import Pump, Reply

PUMP_MIN_NAMESPACES = 48
"""Below this many namespaces the helper process costs more than it saves."""


def _read_sysctls(_target: int | str) -> dict[str, str]:
    """Runs inside the target namespace: /proc/sys/net resolves against the
    *calling thread's* namespace, so these are the target's values."""
    values: dict[str, str] = {}
    for key, path in BRIDGE_SYSCTLS.items():
        val = nsenter.read_small(path)
        if val is not None:
            values[key] = val
    return values


class LiveNetlink:
    """Reads the live host.

    With many namespaces (and root) the helper process enters every namespace
    itself, opens its socket there, dumps and streams the replies, so the setns
    pass runs on the second core while this process imports the model (the C
    walker, whose decoding is cheap, takes this process's own namespace too,
    first; the Python helper leaves it to this process). Otherwise one
    setns pass here opens a socket in every namespace. Sockets for namespaces the
    helper serves are opened here only when needed (asking a namespace for
    nsids, or when the helper fails).

    Knobs (environment): ``NETLENS_DISCOVERY_HELPER`` ``0`` no helper process at
    all, ``exec`` a fresh ``python3 serve.py`` instead of a fork when the Python
    helper runs, anything else the default; ``NETLENS_WALK_HELPER=0`` never the
    C walker ``netlens-walk`` (by default it is the helper whenever it is built,
    see :mod:`netlens.kernel.walker`; the Python helper is its fallback).
    """

    def __init__(self, *, nat_probe: bool = False) -> None:
        self.socks: dict[int, socket.socket] = {}
        self.fds: dict[int, int] = {}
        self.host: int | None = None
        self._host_nsids: dict[int, int] | None = None
        self._pump: Pump | None = None
        helper = os.environ.get("NETLENS_DISCOVERY_HELPER", "1")
        self.use_pump = helper != "0"
        # "exec": a fresh interpreter instead of a fork (tests, and a fallback knob)
        self.helper_start = "exec" if helper == "exec" else "fork"
        # The C walker (netlens-walk) replaces the Python helper where it is built;
        # NETLENS_WALK_HELPER=0 keeps the Python one (netlens.kernel.walker).
        self.use_walker = os.environ.get("NETLENS_WALK_HELPER") != "0"
        # With nat_probe, the visit that opens the rtnetlink socket also starts the
        # NAT probe (nat.start_probe) in each namespace: entering 1000 namespaces a
        # second time for NAT alone cost 150-500 ms.
        self.nat_probe = nat_probe
        self._started: dict[int, Any] = {}  # inode -> nat.StartedProbe
        self._early: dict[int, Any] = {}  # inode -> nat.NsProbe (early_nat_probes)
        self._lazy: set[int] = set()  # inodes whose socket the helper opens
        self._opened: tuple[tuple[int, ...], dict[int, OSError]] | None = None
        self._own_later: int | None = None  # own namespace, opened after the helper starts

    def open(self, handles: Sequence[NsHandle]) -> dict[int, OSError]:
        key = tuple(h.inode for h in handles)
        if self._opened is not None and self._opened[0] == key:
            return dict(self._opened[1])  # discover() opened early
        failed = self._open(handles)
        self._opened = (key, failed)
        return dict(failed)

    def _opener(self) -> Callable[[int | str], socket.socket]:
        if not self.nat_probe:
            return nsenter.timed_netlink_socket
        legacy = _legacy_present()
        started = self._started

        from netlens.discovery import nat

        def open_and_probe(target: int | str) -> socket.socket:
            sock = nsenter.timed_netlink_socket(target)
            started[int(target)] = nat.start_probe(legacy)  # keyed by fd until open ends
            return sock

        return open_and_probe

    def _open(self, handles: Sequence[NsHandle]) -> dict[int, OSError]:
        nsenter.raise_fd_limit((3 if self.nat_probe else 2) * len(handles) + 256)
        failed: dict[int, OSError] = {}
        own = nsenter.own_netns_inode()
        todo: list[tuple[NsHandle, int]] = []
        mine: int | None = None
        for h in handles:
            if h.is_host:
                self.host = h.inode
            fd = nsenter.open_netns(h.path)
            if fd is None:
                err = errno.EACCES if _exists(h.path) else errno.ENOENT
                failed[h.inode] = OSError(err, os.strerror(err))
                continue
            if os.fstat(fd).st_ino != h.inode:  # the path now names another namespace
                os.close(fd)
                failed[h.inode] = OSError(errno.ENOENT, "namespace vanished")
                continue
            self.fds[h.inode] = fd
            if h.inode == own:
                mine = h.inode
            else:
                todo.append((h, fd))
        # The helper enters the namespaces itself (it holds our nsfs fds, so none
        # can vanish meanwhile); setns needs root, and a few namespaces are read
        # faster here.
        if self.use_pump and os.geteuid() == 0 and len(todo) >= PUMP_MIN_NAMESPACES:
            self._lazy = {h.inode for h, _fd in todo}
            # This process's own namespace is opened once the helper runs (see
            # prefetch): its NAT probe imports the model, which the helper
            # need not wait for.
            self._own_later = mine
            return failed
        if mine is not None:
            self._open_own(mine, failed)
        if todo:
            self._open_here([h.inode for h, _fd in todo], failed)
        self._key_started_by_inode()
        return failed

    def _open_own(self, inode: int, failed: dict[int, OSError] | None = None) -> None:
        """Open the socket (and start the NAT probe) in this process's own namespace."""
        try:
            self.socks[inode] = self._opener()(self.fds[inode])
        except OSError as err:
            if failed is not None:
                failed[inode] = err
        self._key_started_by_inode()

    def _open_own_later(self) -> None:
        inode, self._own_later = self._own_later, None
        if inode is not None and inode not in self.socks:
            self._open_own(inode)

    def _open_here(
        self,
        inodes: Sequence[int],
        failed: dict[int, OSError] | None = None,
        opener: Callable[[int | str], socket.socket] | None = None,
    ) -> None:
        """One setns pass opening sockets (and starting NAT probes) in ``inodes``."""
        inodes = [i for i in inodes if i in self.fds and i not in self.socks]
        results = nsenter.run_in_netns([self.fds[i] for i in inodes], opener or self._opener())
        for inode, res in zip(inodes, results, strict=True):
            self._lazy.discard(inode)
            if isinstance(res, OSError):
                if failed is not None:
                    failed[inode] = res
            else:
                self.socks[inode] = res

    def _key_started_by_inode(self) -> None:
        by_fd = {fd: inode for inode, fd in self.fds.items()}
        self._started = {by_fd.get(k, k): v for k, v in self._started.items()}

    def _open_lazy(self) -> None:
        """The helper failed: open the sockets it would have used, in one pass."""
        if self._lazy:
            self._open_here(sorted(self._lazy))
            self._key_started_by_inode()

    def _sock(self, inode: int) -> socket.socket | None:
        if inode == self._own_later:
            self._open_own_later()
        if inode in self._lazy:
            self._open_here([inode], opener=nsenter.timed_netlink_socket)
        return self.socks.get(inode)

    def prefetch(self, inodes: Sequence[int], requests: Sequence[str]) -> None:
        # With the Python helper, the first namespace (the host: usually the
        # largest) is read here directly while the helper starts up, and the
        # helper takes all the others. The C walker starts in a millisecond and
        # decodes the host's thousands of links and routes in one, where Python
        # here took tens of milliseconds: it takes the host too, first, while
        # this process imports the model and reads container identity.
        if self._pump is not None:
            return
        rest = inodes[1:]
        lazy = [i for i in rest if i in self._lazy]
        if lazy:
            mode = "enter"
            if self.nat_probe:
                mode += "+nat+legacy" if _legacy_present() else "+nat"
            walker = _walker() if self.use_walker else None
            if walker is not None and inodes[0] in self.fds:
                lazy.insert(0, inodes[0])
            # One walker: a second one, each taking every other namespace, made
            # the dump slower on 2 cores (0.436 s against 0.393 s median), as this
            # process needs the other core to parse what the walker sends.
            targets = [(i, self.fds[i]) for i in lazy]
            try:
                self._pump = Pump(requests, targets, mode, self.helper_start, walker)
            except OSError:
                self._pump = None
                self._open_lazy()
            self._open_lazy_outside(set(lazy))
            self._open_own_later()
            return
        targets = [(i, self.socks[i].fileno()) for i in rest if i in self.socks]
        if not self.use_pump or len(targets) < PUMP_MIN_NAMESPACES:
            return
        try:
            self._pump = Pump(requests, targets, "", self.helper_start)
        except OSError:
            self._pump = None

    def _open_lazy_outside(self, served: set[int]) -> None:
        """Namespaces the helper will not serve (not asked for in this order) get
        their sockets here."""
        left = [i for i in self._lazy if i not in served]
        if left:
            self._open_here(left)
            self._key_started_by_inode()

    def dumps(self, inode: int, requests: Sequence[str]) -> dict[str, Reply]:
        pump = self._pump
        if pump is not None and tuple(requests) == pump.requests and inode in pump.pos:
            got = pump.take(inode)
            if got is not None:
                return got
            if inode in self._lazy:
                self._open_lazy()  # the helper failed: the rest is read here
            else:
                self._reopen(inode)  # the helper failed: its half-read socket is unusable
        sock = self._sock(inode)
        if sock is None:
            err = OSError(errno.ENOENT, "namespace not open")
            return dict.fromkeys(requests, err)
        try:
            return dict(wire.exchange(sock, requests))
        except OSError as err:
            self._reopen(inode)  # a timed-out dump may still be queued on that socket
            return dict.fromkeys(requests, err)

    def early_nat_probes(self, handles: Sequence[NsHandle]) -> list[tuple[NsHandle, Any]]:
        """(handle, ``nat.NsProbe``) of the namespaces probed in this process (its
        own, or all of them without the helper), finished now so that their NAT
        tools can start while the helper walks the rest; :meth:`nat_probes`
        returns the same results later. Call it after :meth:`prefetch`."""
        from netlens.discovery import nat

        self._open_own_later()
        out: list[tuple[NsHandle, Any]] = []
        for h in handles:
            started = self._started.pop(h.inode, None)
            if started is not None:
                probe = self._early[h.inode] = nat.finish_probe(started)
                out.append((h, probe))
        return out

    def nat_probes(self, handles: Sequence[NsHandle]) -> list[Any]:
        """The NAT probe (``nat.NsProbe``) of each handle, in order; None where the
        namespace could not be entered. Needs ``nat_probe=True``; call it after the
        dumps (the helper sends each namespace's probe with its replies)."""
        from netlens.discovery import nat

        self._open_own_later()
        pump = self._pump
        if pump is not None:
            pump.drain()
        wired = pump.nat if pump is not None else {}
        out: list[nat.NsProbe | None] = []
        for h in handles:
            started = self._started.pop(h.inode, None)
            if started is not None:
                out.append(nat.finish_probe(started))
            elif h.inode in self._early:
                out.append(self._early[h.inode])
            elif h.inode in wired:
                out.append(nat.probe_from_wire(*wired[h.inode]))
            else:
                out.append(None)
        return out

    def _reopen(self, inode: int) -> None:
        old = self.socks.pop(inode, None)
        if old is not None:
            old.close()
        fd = self.fds.get(inode)
        if fd is not None:
            res = nsenter.run_in_netns([fd], nsenter.timed_netlink_socket)[0]
            if not isinstance(res, OSError):
                self.socks[inode] = res

    def sysctls(self, inodes: Sequence[int]) -> dict[int, dict[str, str]]:
        own = nsenter.own_netns_inode()
        out: dict[int, dict[str, str]] = {}
        todo = [i for i in inodes if i in self.fds]
        if own is not None and own in todo:
            out[own] = _read_sysctls(own)
            todo.remove(own)
        results = nsenter.run_in_netns([self.fds[i] for i in todo], _read_sysctls)
        for inode, res in zip(todo, results, strict=True):
            if not isinstance(res, OSError):
                out[inode] = res
        return out

    def host_nsids(self) -> dict[int, int]:
        if self._host_nsids is None:
            self._host_nsids = {}
            host = self.host
            sock = self._sock(host) if host is not None else None
            if host is not None and sock is not None:
                inodes = [i for i in self.fds if i != self.host]
                try:
                    answers = wire.ask_nsids(sock, [self.fds[i] for i in inodes])
                except OSError:
                    self._reopen(host)
                    return self._host_nsids
                self._host_nsids = {
                    i: n for i, n in zip(inodes, answers, strict=True) if n is not None
                }
        return self._host_nsids

    def ask_nsids(self, asker: int, targets: Sequence[int]) -> list[int | None]:
        sock = self._sock(asker)
        fds = [self.fds.get(t) for t in targets]
        if sock is None:
            return [None] * len(targets)
        known = [fd for fd in fds if fd is not None]
        try:
            answers = iter(wire.ask_nsids(sock, known)) if known else iter(())
        except OSError:
            self._reopen(asker)
            return [None] * len(targets)
        return [next(answers) if fd is not None else None for fd in fds]

    def close(self) -> None:
        if self._pump is not None:
            self._pump.close()
            self._pump = None
        for started in self._started.values():
            if started.sock is not None:
                started.sock.close()
        self._started.clear()
        for sock in self.socks.values():
            sock.close()
        for fd in self.fds.values():
            os.close(fd)
        self.socks.clear()
        self.fds.clear()


def _walker() -> str | None:
    """The netlens-walk built with the package, or None: the Python helper."""
    return walker.find()


def _legacy_present() -> bool:
    """``nat.legacy_present`` without importing nat (and the model) before the
    helper process starts: the iptables-legacy table lists exist in every
    namespace or in none."""
    return any(os.path.exists(p) for p in serve.LEGACY_PATHS)


def _exists(path: str) -> bool:
    try:
        os.lstat(path)
        return True
    except OSError:
        return False


class LiveProc:
    """The live procfs/sysfs; ``proc_root`` replaces ``/proc`` (a test seam)."""

    def __init__(self, proc_root: str = "/proc", sys_root: str = "/sys") -> None:
        self.proc_root = proc_root
        self.sys_root = sys_root

    def _map(self, path: str) -> str:
        if path.startswith("/proc/"):
            return self.proc_root + path[5:]
        if path.startswith("/sys/"):
            return self.sys_root + path[4:]
        return path

    def read_text(self, path: str) -> str | None:
        try:
            with open(self._map(path), encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except OSError:
            return None

    def exists(self, path: str) -> bool:
        return _exists(self._map(path))

    def readlink(self, path: str) -> str | None:
        try:
            return os.readlink(self._map(path))
        except OSError:
            return None
