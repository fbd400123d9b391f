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

The parts live beside this module: :mod:`netlens.stats.watch` (kept sockets,
presence checks, the event socket), :mod:`netlens.stats.sampler` (dumps to
rates) and :mod:`netlens.stats.frames` (a frame as JSON). This one is the loop
that drives them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import select
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from netlens.model.types import Counters, Snapshot
from netlens.stats.aggregate import Plan, aggregate, build_plan
from netlens.stats.density import DensitySampler
from netlens.stats.frames import frame_to_json
from netlens.stats.history import History
from netlens.stats.rates import FIELDS
from netlens.stats.sampler import CounterSampler
from netlens.stats.types import Density, StatsFrame, Usage
from netlens.stats.watch import EventWatcher, NetnsScanner, structure_signature

DEBOUNCE = 0.03
"""Seconds to wait after the first sign of a change: a container start is a burst."""

DiscoverFn = Callable[[], Snapshot]


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

    def request_rescan(self) -> None:
        """Rediscover at the next tick. For a change this process made itself (the
        dashboard's link key pulling a cable): it must show at the next tick even
        when the kernel sent no event the watcher could read."""
        self._dirty = True

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
