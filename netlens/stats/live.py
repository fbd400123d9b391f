"""The live layer: kept sockets, counter samples, rates, structure changes, history.

:class:`LiveMonitor` is what the dashboard (in a thread worker) and ``netlens
stats`` drive: ``open()`` once, then ``tick()`` in a loop, ``close()`` at the end.

Why it is built this way:

- **One netlink socket per namespace, kept open.** Entering 1000 namespaces per
  sample would cost more than the sample itself; a socket stays bound to its
  namespace, so the sample is just one RTM_GETSTATS dump per socket.
- **A kept socket keeps its namespace alive.** The kernel does not free a
  namespace (nor the veths inside it) while any socket in it is open, and sends
  no RTM_DELNSID until then. So removal cannot be learnt from netlink: presence
  checks (:class:`NetnsScanner`: the nsfs mounts in ``/proc/self/mountinfo``, and
  one remembered process per process-held namespace) notice that a namespace
  lost its last real holder; that triggers a rediscovery, and its socket is
  closed at once, letting the kernel reclaim it. A namespace outlives its last
  real holder by at most about half an interval (``ip netns del`` is seen at once).
- **Change detectors**, cheapest first: (1) a host socket in the link and nsid
  multicast groups with NETLINK_LISTEN_ALL_NSID (events from every namespace
  that has an id in the host) and POLLPRI on mountinfo (mounts come and go) end
  the wait early, so a change shows within about half an interval; (2) the
  presence checks, half-way through the wait and at every tick; (3) each counter
  dump lists the namespace's ifindexes: a set that differs from the snapshot
  means a link came or went, even in a namespace that sends no events. A full
  rediscovery every ``rescan_seconds`` is the last backstop (a namespace held
  only by a process, with no veth to the host, announces itself nowhere).
- **Rates** use each namespace's own dump time, so a 1000-namespace sample that
  takes 25 ms does not skew the last namespaces' rates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from netlens.model.types import Counters, Netns, Snapshot
from netlens.stats.aggregate import Plan, aggregate, build_plan
from netlens.stats.counters import RECV_TIMEOUT, StatsReader, arm_timeout
from netlens.stats.density import DensitySampler
from netlens.stats.history import History
from netlens.stats.rates import FIELDS, CounterTuple, rate, rate_to_dict
from netlens.stats.types import ZERO, Density, Rate, StatsFrame, Usage

SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NETLINK_LISTEN_ALL_NSID = 8
RTMGRP_LINK = 0x1
RTNLGRP_NSID = 28
RTM_NEWLINK, RTM_DELLINK = 16, 17
RTM_NEWNSID, RTM_DELNSID = 88, 89
_STRUCTURE_EVENTS = {RTM_NEWLINK, RTM_DELLINK, RTM_NEWNSID, RTM_DELNSID}
DEBOUNCE = 0.03
"""Seconds to wait after the first sign of a change: a container start is a burst."""

DiscoverFn = Callable[[], Snapshot]


# --- namespaces and sockets ---------------------------------------------------------
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


# --- sampling ---------------------------------------------------------------------
class CounterSampler:
    """Kept sockets plus the previous sample: turns dumps into per-interface rates.

    State is per namespace (the previous dump and its time, and the key strings
    of its interfaces), so a sample builds no new strings and an idle interface
    costs one tuple comparison.

    Every socket gets a receive timeout of ``timeout`` seconds: a namespace whose
    dump is not answered in time (it is being torn down) is skipped for that
    sample and its socket closed; the next rediscovery (:meth:`reconcile`) opens
    a fresh one if the namespace is still there.
    """

    def __init__(self, timeout: float = RECV_TIMEOUT) -> None:
        self.timeout = timeout
        self.socks: dict[str, socket.socket] = {}
        self.reader = StatsReader(deadline=2 * timeout)
        self._prev: dict[str, tuple[dict[int, CounterTuple], float]] = {}
        self._keys: dict[str, dict[int, str]] = {}
        self._zeros: dict[str, dict[str, Rate]] = {}  # per namespace: every key -> ZERO
        self.resets = 0  # counter resets seen (a test and debugging aid)
        self.ifindexes: dict[str, frozenset[int]] = {}  # per namespace, last dump

    def reconcile(self, snap: Snapshot) -> list[str]:
        """Close sockets of namespaces no longer in ``snap``; open the new ones.

        Returns the ids of namespaces whose socket was just opened.
        """
        wanted = {ns.id: ns for ns in snap.namespaces}
        for ns_id in [n for n in self.socks if n not in wanted]:
            self.drop(ns_id)
        missing = [ns for nid, ns in wanted.items() if nid not in self.socks]
        opened = open_sockets(missing) if missing else {}
        self.adopt(opened)
        return list(opened)

    def adopt(self, socks: dict[str, socket.socket]) -> None:
        """Take ownership of sockets (ns id -> socket), arming their receive timeout."""
        for ns_id, sock in socks.items():
            try:
                arm_timeout(sock, self.timeout)
            except OSError:
                sock.close()
                continue
            old = self.socks.pop(ns_id, None)
            if old is not None and old is not sock:
                old.close()
            self.socks[ns_id] = sock

    def drop(self, ns_id: str) -> None:
        """Close one namespace's socket and forget everything about it."""
        sock = self.socks.pop(ns_id, None)
        if sock is not None:
            sock.close()
        self.ifindexes.pop(ns_id, None)
        self._prev.pop(ns_id, None)
        self._keys.pop(ns_id, None)
        self._zeros.pop(ns_id, None)

    def _dump(self, ns_id: str, request: tuple[int, bytes]) -> dict[int, CounterTuple] | None:
        try:
            counters = self.reader.dump(self.socks[ns_id], request)
        except OSError:  # NetlinkDumpError included: the socket is unusable
            self.drop(ns_id)
            return None
        if counters.keys() != self.ifindexes.get(ns_id):
            self._relabel(ns_id, counters)
        return counters

    def _relabel(self, ns_id: str, counters: dict[int, CounterTuple]) -> None:
        """The namespace's set of links changed: rebuild its key strings."""
        self.ifindexes[ns_id] = frozenset(counters)
        keys = self._keys.get(ns_id, {})
        self._keys[ns_id] = new = {i: keys.get(i) or f"{ns_id}/{i}" for i in counters}
        self._zeros[ns_id] = dict.fromkeys(new.values(), ZERO)

    def baseline(self, only: Iterable[str] | None = None) -> None:
        """Dump (some) namespaces as the base of the next rates, producing none."""
        ids = list(self.socks) if only is None else [i for i in only if i in self.socks]
        request = self.reader.new_request()
        for ns_id in ids:
            counters = self._dump(ns_id, request)
            if counters is not None:
                self._prev[ns_id] = (counters, time.monotonic())

    def sample(self, min_dt: float = 0.0) -> dict[str, Rate]:
        """Dump every namespace; rates against the previous dump of each.

        Interfaces seen for the first time read zero until the next sample, and so
        does a namespace whose baseline is younger than ``min_dt`` (it was opened
        just before this sample: a rate over a few milliseconds is noise); its
        baseline is kept for the next sample. This
        is the hot loop (1000 namespaces per second), hence the local names and
        the shortcut for a namespace whose counters did not move at all (one dict
        comparison in C instead of a Python loop over its links).
        """
        out: dict[str, Rate] = {}
        mono = time.monotonic
        zero = ZERO
        request = self.reader.new_request()
        dump = self.reader.dump
        socks = self.socks
        prevs = self._prev
        all_keys = self._keys
        zeros = self._zeros
        ifindexes = self.ifindexes
        for ns_id in list(socks):
            try:
                counters = dump(socks[ns_id], request)
            except OSError:  # NetlinkDumpError included: the socket is unusable
                self.drop(ns_id)
                continue
            t = mono()
            prev = prevs.get(ns_id)
            if counters.keys() != ifindexes.get(ns_id):
                self._relabel(ns_id, counters)
            if prev is not None and t - prev[1] < min_dt:
                out.update(zeros[ns_id])  # too young a baseline: keep it
                continue
            prevs[ns_id] = (counters, t)
            if prev is None or prev[0] == counters:
                out.update(zeros[ns_id])
                continue
            pcs, pt = prev
            dt = t - pt
            get = pcs.get
            keys = all_keys[ns_id]
            for ifindex, c in counters.items():
                p = get(ifindex)
                if p == c or p is None:
                    out[keys[ifindex]] = zero
                    continue
                r, was_reset = rate(p, c, dt)
                if was_reset:
                    self.resets += 1
                out[keys[ifindex]] = r
        return out

    def latest(self, key: str) -> CounterTuple | None:
        """The last dumped counters of one interface (``IfRef.key``), in
        :data:`~netlens.stats.rates.FIELDS` order. Another thread may call this
        between samples: it only reads a dict the sampler replaces, never mutates."""
        ns_id, _, ifindex = key.rpartition("/")
        prev = self._prev.get(ns_id)
        if prev is None or not ifindex.isdigit():
            return None
        return prev[0].get(int(ifindex))

    def close(self) -> None:
        for ns_id in list(self.socks):
            self.drop(ns_id)


def _default_discover() -> Snapshot:
    """discover() without NAT: NAT rules cost an nft read per namespace and do not
    change what is sampled, so the periodic rescans skip them."""
    from netlens.discovery import discover

    return discover(with_nat=False)


def _discover_with_nat() -> Snapshot:
    """discover() with NAT: at open and when the structure changed (a new container
    or network usually brings its NAT rules), so the dashboard shows them live."""
    from netlens.discovery import discover

    return discover()


def _keep_nat(snap: Snapshot, old: Snapshot | None) -> Snapshot:
    """``snap`` (read without NAT) with the NAT rules ``old`` had for the same
    namespaces, so a rescan that changed nothing does not drop them."""
    if old is None:
        return snap
    nat = {ns.inode: ns.nat for ns in old.namespaces if ns.nat}
    if not nat:
        return snap
    namespaces = tuple(
        dataclasses.replace(ns, nat=nat[ns.inode]) if not ns.nat and ns.inode in nat else ns
        for ns in snap.namespaces
    )
    return dataclasses.replace(snap, namespaces=namespaces)


class LiveMonitor:
    """Samples every interface of every namespace at a fixed interval.

    ``tick()`` must be called from one thread at a time; ``history`` and
    ``snapshot`` may be read from another (the UI thread) between ticks.
    """

    def __init__(
        self,
        interval: float = 1.0,
        discover_fn: DiscoverFn | None = None,
        history_seconds: float = 600,
        *,
        rescan_seconds: float = 30.0,
        density_seconds: float = 2.0,
        watch_events: bool = True,
        scanner: NetnsScanner | None = None,
        structure_fn: DiscoverFn | None = None,
    ) -> None:
        """``discover_fn`` reads the host for the periodic rescans (default: discovery
        without NAT); ``structure_fn`` at open and when a change was signalled or
        found (default: discovery with NAT when ``discover_fn`` is the default, else
        ``discover_fn``). Pass ``structure_fn=discover_fn`` to never read NAT."""
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self.discover_fn: DiscoverFn = discover_fn or _default_discover
        self.structure_fn: DiscoverFn = structure_fn or (
            self.discover_fn if discover_fn is not None else _discover_with_nat
        )
        self.history = History(max(1, round(history_seconds / interval)))
        self.rescan_seconds = rescan_seconds
        self.density_seconds = density_seconds
        self._last_density = 0.0
        self.snapshot: Snapshot | None = None
        self.sampler = CounterSampler()
        self.density = DensitySampler()
        self.watch_events = watch_events
        self.events: EventWatcher | None = None
        self.scanner = scanner or NetnsScanner()
        self.rediscoveries = 0
        self._plan = Plan()
        self._sig = 0
        self._known_mounts: frozenset[int] = frozenset()
        self._held: dict[int, tuple[int, ...]] = {}  # inode -> pids, namespaces to watch
        self._inodes: frozenset[int] = frozenset()  # of the snapshot's namespaces
        self._expected: dict[str, frozenset[int]] = {}  # ifindexes per namespace
        self._accepted_mismatch: frozenset[str] = frozenset()
        self._dirty = False
        self._last_sample = 0.0
        self._last_discover = 0.0
        self._ticks = 0
        self._usage: dict[str, Usage] = {}
        self._density: Density | None = None
        self._lock = threading.Lock()
        self._mountinfo: TextIO | None = None

    # --- lifecycle -------------------------------------------------------------------
    def open(self) -> Snapshot:
        """Discover, open one socket per namespace and take the baseline sample."""
        from netlens.kernel.nsenter import raise_fd_limit

        raise_fd_limit()
        if self.watch_events and self.events is None:
            self.events = EventWatcher()
        if self._mountinfo is None:
            with contextlib.suppress(OSError):
                self._mountinfo = open("/proc/self/mountinfo")  # noqa: SIM115 - kept for poll
        snap = self._rediscover(force=True)
        assert snap is not None
        self.sampler.baseline()
        self._last_sample = time.monotonic()
        return snap

    def close(self) -> None:
        """Close every socket; the monitor can be opened again."""
        self.sampler.close()
        if self.events is not None:
            self.events.close()
            self.events = None
        if self._mountinfo is not None:
            self._mountinfo.close()
            self._mountinfo = None
        self.scanner.close()

    def __enter__(self) -> LiveMonitor:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- structure -------------------------------------------------------------------
    def _rediscover(self, force: bool = False, signalled: bool = True) -> Snapshot | None:
        """Run discovery; adopt it. Returns it if the structure changed (or force).

        ``signalled``: something said the structure changed (an event, a mount, a
        link count), so :attr:`structure_fn` reads the host, NAT included; a plain
        rescan uses :attr:`discover_fn`, keeps the NAT rules it had, and reads
        again with :attr:`structure_fn` only if it finds a change nothing announced.
        The mount table read just before becomes the reference that the presence
        checks of the next ticks compare against (a mounted namespace discovery
        chose to leave out must not trigger a rediscovery every tick).
        """
        mounts = self.scanner.mounted()
        full = force or signalled or self.snapshot is None
        snap = (self.structure_fn if full else self.discover_fn)()
        sig = structure_signature(snap)
        if not full and self.structure_fn is not self.discover_fn:
            if sig != self._sig:
                snap = self.structure_fn()
                sig = structure_signature(snap)
            else:
                snap = _keep_nat(snap, self.snapshot)
        self.rediscoveries += 1
        self._last_discover = time.monotonic()
        self._known_mounts = mounts
        self._inodes = frozenset(ns.inode for ns in snap.namespaces)
        self._expected = {
            ns.id: frozenset(i.ifindex for i in ns.interfaces) for ns in snap.namespaces
        }
        self._held = {ns.inode: ns.pids for ns in snap.namespaces if not ns.is_host and ns.pids}
        self.scanner.forget(self._held)
        changed = force or sig != self._sig or self.snapshot is None
        self.snapshot = snap
        self._sig = sig
        self._plan = build_plan(snap)
        opened = self.sampler.reconcile(snap)
        if opened:
            self.sampler.baseline(opened)
        return snap if changed else None

    def _presence_changed(self) -> bool:
        """A namespace was mounted that discovery has not seen, or one of the
        snapshot's namespaces lost its last mount and its last known process."""
        mounts = self.scanner.mounted()
        if mounts - self._known_mounts - self._inodes:
            return True
        for ns_inode in self._known_mounts & self._inodes:
            if ns_inode not in mounts and not self.scanner.held(
                ns_inode, self._held.get(ns_inode, ())
            ):
                return True
        for ns_inode, pids in self._held.items():
            if ns_inode not in mounts and not self.scanner.held(ns_inode, pids):
                return True
        return False

    def _mismatch(self) -> frozenset[str]:
        """Namespaces whose last dump lists other ifindexes than the snapshot has."""
        seen = self.sampler.ifindexes
        return frozenset(
            ns_id for ns_id, want in self._expected.items() if seen.get(ns_id, want) != want
        )

    def _wait(self) -> None:
        """Sleep until the next sample, or earlier when the structure changed.

        Woken by netlink events, by a change of the mount table (``ip netns del``
        unmounts; poll reports it as POLLPRI on mountinfo, scans are then at most
        every 0.1 s), and half-way by one namespace scan (a container's last
        process exited: nothing announces that). After the first sign the wait
        goes on for a short debounce (a container start is a burst of events) and
        at least a quarter interval after the last sample, so churn cannot turn
        the sampler into a busy loop (at most four ticks per interval).
        """
        deadline = self._last_sample + self.interval
        ev = self.events
        rlist = [ev] if ev is not None and ev.sock is not None else []
        xlist = [self._mountinfo] if self._mountinfo is not None else []
        mid_scan: float | None = self._last_sample + self.interval / 2
        last_scan = 0.0
        while True:
            now = time.monotonic()
            if now >= deadline:
                return
            until = deadline if mid_scan is None or self._dirty else min(deadline, mid_scan)
            r, _, x = select.select(rlist, [], xlist, max(until - now, 0.0))
            changed = bool(r) and ev is not None and ev.drain()
            now = time.monotonic()
            due = mid_scan is not None and now >= mid_scan
            if not self._dirty and not changed and (due or (x and now - last_scan >= 0.1)):
                last_scan = now
                if due:
                    mid_scan = None
                changed = self._presence_changed()
            elif x and self._dirty:
                time.sleep(0.01)  # already woken: do not spin on a churning mount table
            if changed and not self._dirty:
                self._dirty = True
                early = max(time.monotonic() + DEBOUNCE, self._last_sample + self.interval / 4)
                deadline = min(deadline, early)

    # --- the tick --------------------------------------------------------------------
    def tick(self) -> tuple[Snapshot | None, StatsFrame]:
        """Wait for the next sample and take it.

        Returns (new snapshot if the structure changed since the last tick, frame).
        """
        if self.snapshot is None:
            raise RuntimeError("LiveMonitor.open() first")
        with self._lock:
            self._wait()
            new_snap: Snapshot | None = None
            if self.events is not None and self.events.drain():
                self._dirty = True
            stale = time.monotonic() - self._last_discover >= self.rescan_seconds
            rediscovered = False
            signalled = self._dirty or self._presence_changed()
            if signalled or stale:
                self._dirty = False
                new_snap = self._rediscover(signalled=signalled)
                rediscovered = True
            rates = self.sampler.sample(min_dt=self.interval / 4)
            now_mono = time.monotonic()
            interval = now_mono - self._last_sample
            self._last_sample = now_mono
            # Links that came or went in a namespace that sends no events. A
            # discovery that systematically differs from the dump (it skipped a
            # link) must not cause a rediscovery per tick: the difference seen
            # right after a rediscovery is accepted as the new normal.
            mismatch = self._mismatch()
            if mismatch != self._accepted_mismatch:
                if new_snap is None and not rediscovered:
                    new_snap = self._rediscover()
                self._accepted_mismatch = self._mismatch()
            taken_at = time.time()
            frame = aggregate(self._plan, rates, taken_at, interval)
            self._ticks += 1
            # Memory and CPU move slowly and cost a few file reads per container:
            # read every density_seconds. The counts follow the structure at once.
            assert self.snapshot is not None
            if self._density is None or now_mono - self._last_density >= self.density_seconds:
                self._last_density = now_mono
                self._usage, self._density = self.density.sample(
                    self.snapshot, self._plan.uplink_capacity_bps
                )
            elif new_snap is not None:
                ids = {c.id for c in self.snapshot.containers}
                self._usage = {k: u for k, u in self._usage.items() if k in ids}
                self._density = self.density.summarize(
                    self.snapshot, self._usage, self._plan.uplink_capacity_bps
                )
            frame = _with_density(frame, self._usage, self._density)
            self.history.record(frame)
            return new_snap, frame

    def counters(self, key: str) -> Counters | None:
        """An interface's absolute counters as of the latest sample (None: not
        sampled). Snapshots are only taken when the structure changes, so their
        counters are old; a detail view shows these instead."""
        c = self.sampler.latest(key)
        return None if c is None else Counters(**dict(zip(FIELDS, c, strict=True)))

    def set_interval(self, seconds: float) -> None:
        """Change the sampling interval from the next tick on. The history keeps
        its length in samples; its averages are time-weighted, so they stay right."""
        if not seconds > 0:
            raise ValueError("interval must be positive")
        self.interval = seconds

    @property
    def socket_count(self) -> int:
        return len(self.sampler.socks)


def _with_density(
    frame: StatsFrame, usage: dict[str, Usage], density: Density | None
) -> StatsFrame:
    return StatsFrame(
        taken_at=frame.taken_at,
        interval=frame.interval,
        interfaces=frame.interfaces,
        containers=frame.containers,
        veth_pairs=frame.veth_pairs,
        bridges=frame.bridges,
        vrfs=frame.vrfs,
        uplinks=frame.uplinks,
        server=frame.server,
        usage=usage,
        density=density,
        uplink_capacity_bps=frame.uplink_capacity_bps,
    )


# --- JSON -------------------------------------------------------------------------
def _usage_to_dict(u: Usage) -> dict[str, Any]:
    return {
        "mem_bytes": u.mem_bytes,
        "mem_limit": u.mem_limit,
        "cpu_percent": None if u.cpu_percent is None else round(u.cpu_percent, 2),
        "cpu_limit": u.cpu_limit,
        "processes": u.processes,
    }


def density_to_dict(d: Density) -> dict[str, Any]:
    return {
        "containers": d.containers,
        "namespaces": d.namespaces,
        "veths": d.veths,
        "bridges": d.bridges,
        "processes": d.processes,
        "cpu_count": d.cpu_count,
        "mem_total": d.mem_total,
        "mem_used": d.mem_used,
        "containers_mem": d.containers_mem,
        "containers_cpu_percent": (
            None if d.containers_cpu_percent is None else round(d.containers_cpu_percent, 2)
        ),
        "containers_per_core": round(d.containers_per_core, 3),
        "containers_per_gib": round(d.containers_per_gib, 3),
        "uplink_capacity_bps": d.uplink_capacity_bps,
        "headroom": {k: {"used": u, "max": m} for k, (u, m) in sorted(d.headroom.items())},
    }


def frame_to_json(frame: StatsFrame) -> dict[str, Any]:
    """A JSON-ready dict of one frame (keys sorted for stable output)."""

    def section(d: dict[str, Rate]) -> dict[str, dict[str, float]]:
        return {k: rate_to_dict(d[k]) for k in sorted(d)}

    util = frame.server_utilisation
    return {
        "taken_at": round(frame.taken_at, 3),
        "interval": round(frame.interval, 6),
        "units": {"bps": "bits/s", "pps": "packets/s", "drops": "/s", "errors": "/s"},
        "server": {
            **rate_to_dict(frame.server),
            "uplink_capacity_bps": frame.uplink_capacity_bps,
            "utilisation": None if util is None else round(util, 6),
        },
        "uplink_total": rate_to_dict(frame.uplink_total),
        "containers": section(frame.containers),
        "veth_pairs": section(frame.veth_pairs),
        "bridges": section(frame.bridges),
        "vrfs": section(frame.vrfs),
        "uplinks": section(frame.uplinks),
        "interfaces": section(frame.interfaces),
        "usage": {k: _usage_to_dict(frame.usage[k]) for k in sorted(frame.usage)},
        "density": density_to_dict(frame.density) if frame.density else None,
    }


def sample_snapshot_rates(snapshot: Snapshot, seconds: float) -> dict[str, Any]:
    """Rates of everything in ``snapshot`` measured over ``seconds`` (for ``dump --sample``).

    Opens a socket per namespace, samples, sleeps, samples again, closes the
    sockets, and returns :func:`frame_to_json` of the result. Namespaces that
    cannot be entered (not root, vanished) are simply absent.
    """
    if seconds <= 0:
        raise ValueError("sample seconds must be positive")
    from netlens.kernel.nsenter import raise_fd_limit

    raise_fd_limit()
    sampler = CounterSampler()
    dens = DensitySampler()
    try:
        sampler.reconcile(snapshot)
        t0 = time.monotonic()
        sampler.baseline()
        dens.sample(snapshot)
        time.sleep(seconds)
        rates = sampler.sample()
        plan = build_plan(snapshot)
        frame = aggregate(plan, rates, time.time(), time.monotonic() - t0)
        usage, density = dens.sample(snapshot, plan.uplink_capacity_bps)
        return frame_to_json(_with_density(frame, usage, density))
    finally:
        sampler.close()
