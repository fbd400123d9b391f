"""Where the dashboard's data comes from: the live host, a saved dump, or a fixture.

The app only talks to the :class:`DataSource` protocol, always from a thread worker
(``open`` and ``tick`` block), so the same screens run with or without root and with or
without the discovery and live layers. ``FixtureSource`` is deterministic: frames are a
pure function of (snapshot, tick number), which is what snapshot tests and screenshots
need, and with ``live=True`` it ticks like the real monitor for pilot tests and the
1000-container benchmark.
"""

from __future__ import annotations

import math
import queue
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from netlens.errors import DiscoveryError, UsageError
from netlens.model.types import Counters, Engine, Snapshot
from netlens.stats.history import History
from netlens.stats.types import ZERO, Density, Rate, StatsFrame, Usage

T = TypeVar("T")
MIN_INTERVAL = 0.1
MAX_INTERVAL = 60.0


class HistoryView(Protocol):
    """What views read from the rate history (matches LiveMonitor.history)."""

    def series(self, key: str, attr: str = "total_bps", n: int = 300) -> list[float]: ...

    def averages(self, key: str) -> tuple[Any, Any, Any]: ...

    def peak(self, key: str) -> Rate: ...


class DataSource(Protocol):
    """A source of snapshots and stats frames. ``open``/``tick`` may block."""

    label: str
    live: bool
    interval: float

    @property
    def history(self) -> HistoryView: ...

    def open(self) -> Snapshot: ...

    def initial_frame(self) -> StatsFrame | None: ...

    def tick(self) -> tuple[Snapshot | None, StatsFrame]: ...

    def set_interval(self, seconds: float) -> None: ...

    def counters(self, key: str) -> Counters | None:
        """An interface's counters as of the latest sample; None: only the
        snapshot's (a saved dump, a fixture)."""
        ...

    def close(self) -> None: ...


def _seed(key: str) -> int:
    # surrogatepass: an id read from an engine's JSON may hold a lone surrogate
    return zlib.crc32(key.encode("utf-8", "surrogatepass"))


_BASES = (0.0, 40e3, 4e6, 60e6, 700e6)


def synthetic_frame(snap: Snapshot, i: int, interval: float = 1.0) -> StatsFrame:
    """Deterministic rates for every veth pair, summed like the live layer sums them."""
    host = snap.host
    host_id = host.id if host else ""
    ifr: dict[str, Rate] = {}
    pairs: dict[str, Rate] = {}
    for pair in snap.veth_pairs:
        s = _seed(pair.a.key)
        base = _BASES[s % len(_BASES)]
        wave = 1.0 + 0.6 * math.sin(i / 4.0 + (s % 628) / 100.0)
        rx, tx = base * wave, base * wave * (0.3 + (s % 7) / 10.0)
        r = Rate(
            rx,
            tx,
            rx / 8000.0,
            tx / 8000.0,
            float(s % 3 == 0 and base > 0),
            0.0,
            0.0,
            float(s % 11 == 0 and base > 0),
        )
        pairs[pair.a.key] = r
        ifr[pair.a.key] = r
        if pair.b is not None:
            ifr[pair.b.key] = Rate(
                r.tx_bps,
                r.rx_bps,
                r.tx_pps,
                r.rx_pps,
                r.tx_drops,
                r.rx_drops,
                r.tx_errors,
                r.rx_errors,
            )
    vrfs: dict[str, Rate] = {}
    bridges: dict[str, Rate] = {}
    for ns in snap.namespaces:
        total = ZERO
        for itf in ns.interfaces:
            r2 = ifr.get(itf.ref.key)
            if r2 is None:
                continue
            total = total + r2
            if itf.master is not None and ns.id == host_id:
                bkey = f"{ns.id}/{itf.master}"
                bridges[bkey] = bridges.get(bkey, ZERO) + r2
        if not ns.is_host:
            vrfs[ns.id] = total
    containers: dict[str, Rate] = {}
    usage: dict[str, Usage] = {}
    for c in snap.containers:
        if c.engine == Engine.HOST:  # the host's pseudo-container: no usage of its own
            continue
        if c.netns in vrfs:
            containers[c.id] = vrfs[c.netns]
        s = _seed(c.id)
        usage[c.id] = Usage(
            mem_bytes=(20 + s % 200) << 20, cpu_percent=(s % 400) / 10.0, processes=len(c.pids)
        )
    server = ZERO
    for r3 in vrfs.values():
        server = server + r3
    uplinks: dict[str, Rate] = {}
    cap = 0.0
    for n, itf in enumerate(i2 for i2 in (host.interfaces if host else ()) if i2.uplink):
        share = 0.25 if n == 0 else 0.02
        uplinks[itf.ref.key] = Rate(
            server.tx_bps * share,
            server.rx_bps * share,
            server.tx_pps * share,
            server.rx_pps * share,
        )
        cap += (itf.speed_mbps or 0) * 1e6
    counts = snap.counts()
    mem_c = sum(u.mem_bytes or 0 for u in usage.values())
    cpus = max(1, snap.server.cpu_count)
    density = Density(
        containers=counts["containers"],
        namespaces=counts["namespaces"],
        veths=counts["veths"],
        bridges=counts["bridges"],
        processes=sum(len(ns.pids) for ns in snap.namespaces),
        cpu_count=cpus,
        mem_total=snap.server.mem_total,
        mem_used=min(snap.server.mem_total, mem_c + (2 << 30)),
        containers_mem=mem_c,
        containers_per_core=counts["containers"] / cpus,
        containers_per_gib=counts["containers"] / max(1.0, snap.server.mem_total / 2**30),
        uplink_capacity_bps=cap or None,
        headroom={"veths (net.core)": (counts["veths"], 65536), "pids": (4000, 4194304)},
    )
    return StatsFrame(
        taken_at=snap.taken_at + i * interval,
        interval=interval,
        interfaces=ifr,
        containers=containers,
        veth_pairs=pairs,
        bridges=bridges,
        vrfs=vrfs,
        uplinks=uplinks,
        server=server,
        usage=usage,
        density=density,
    )


class FixtureSource:
    """Deterministic source. ``push_snapshot`` queues a structural change for next tick."""

    def __init__(
        self,
        snapshot: Snapshot,
        *,
        live: bool = False,
        interval: float = 1.0,
        preload: int = 40,
        label: str = "fixture",
    ) -> None:
        self.label = label
        self.live = live
        self.interval = interval
        self._snap = snapshot
        self._i = 0
        self._preload = preload
        self._history = History(300)
        self._pending: queue.SimpleQueue[Snapshot] = queue.SimpleQueue()
        self._stop = threading.Event()

    @property
    def history(self) -> History:
        return self._history

    def open(self) -> Snapshot:
        for k in range(-self._preload, 1):
            self._history.record(synthetic_frame(self._snap, k, self.interval))
        return self._snap

    def initial_frame(self) -> StatsFrame | None:
        return synthetic_frame(self._snap, 0, self.interval)

    def push_snapshot(self, snap: Snapshot) -> None:
        self._pending.put(snap)

    def tick(self) -> tuple[Snapshot | None, StatsFrame]:
        self._stop.wait(self.interval)
        new: Snapshot | None = None
        while not self._pending.empty():
            new = self._pending.get()
        if new is not None:
            self._snap = new
        self._i += 1
        frame = synthetic_frame(self._snap, self._i, self.interval)
        self._history.record(frame)
        return new, frame

    def set_interval(self, seconds: float) -> None:
        self.interval = seconds

    def counters(self, key: str) -> Counters | None:
        return None

    def close(self) -> None:
        self._stop.set()


class FileSource:
    """A saved dump: one snapshot, no rates, nothing needs root."""

    live = False

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.label = f"file {self.path.name}"
        self.interval = 1.0
        self._history = History(1)
        self._snap: Snapshot | None = None

    @property
    def history(self) -> History:
        return self._history

    def open(self) -> Snapshot:
        """Load (once) and return the dump; the CLI calls it before the TUI starts so
        a bad file is one line on stderr, not a dialog."""
        if self._snap is not None:
            return self._snap
        try:
            from netlens.model.serialize import load_file
        except ImportError as err:
            raise UsageError(
                "reading dumps needs netlens.model.serialize, not in this build"
            ) from err
        snap: Snapshot = load_file(self.path)
        self._snap = snap
        return snap

    def initial_frame(self) -> StatsFrame | None:
        return None

    def tick(self) -> tuple[Snapshot | None, StatsFrame]:
        raise UsageError("a saved dump has no live rates")

    def set_interval(self, seconds: float) -> None:
        self.interval = seconds

    def counters(self, key: str) -> Counters | None:
        return None

    def close(self) -> None:
        return None


def _bounded(fn: Callable[[], T], timeout: float, what: str) -> T:
    """Run ``fn`` in a daemon thread and give up after ``timeout`` seconds.

    A netlink read that never returns (seen once under heavy namespace churn) must not
    freeze the dashboard or keep the process from exiting: the stuck daemon thread is
    abandoned and the caller gets a clear error instead.
    """
    box: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()

    def run() -> None:
        try:
            box.put((True, fn()))
        except BaseException as err:  # handed to the caller's thread
            box.put((False, err))

    threading.Thread(target=run, name=f"netlens-{what}", daemon=True).start()
    try:
        ok, value = box.get(timeout=timeout)
    except queue.Empty:
        raise DiscoveryError(f"{what} did not answer within {timeout:.0f} s") from None
    if not ok:
        raise value
    result: T = value
    return result


class LiveSource:
    """The live host through :class:`netlens.stats.live.LiveMonitor` (blocking calls)."""

    live = True
    open_timeout = 120.0
    reads_host = True
    """Its snapshots are this host's now: the doctor may read live facts for them
    (a fixture or a saved dump has none; the app reads this with a default)."""

    def __init__(self, interval: float = 1.0) -> None:
        self.label = "live"
        self.interval = interval
        self._monitor: Any = None
        self._stuck = False

    @staticmethod
    def check_available() -> None:
        """Fail early, with one line, when the live layer is missing from this build."""
        try:
            from netlens.stats import live  # noqa: F401
        except ImportError as err:
            raise UsageError(
                "live mode needs netlens.stats.live, not in this build; "
                "try 'netlens view FILE.json'"
            ) from err

    @property
    def history(self) -> HistoryView:
        if self._monitor is None:
            return History(1)
        h: HistoryView = self._monitor.history
        return h

    def open(self) -> Snapshot:
        self.check_available()
        from netlens.stats.live import LiveMonitor

        self._monitor = LiveMonitor(interval=self.interval)
        try:
            snap: Snapshot = _bounded(self._monitor.open, self.open_timeout, "live discovery")
        except DiscoveryError:
            self._stuck = True
            raise
        return snap

    def initial_frame(self) -> StatsFrame | None:
        return None

    def tick(self) -> tuple[Snapshot | None, StatsFrame]:
        try:
            out: tuple[Snapshot | None, StatsFrame] = _bounded(
                self._monitor.tick, max(30.0, 10 * self.interval), "live sampling"
            )
        except DiscoveryError:
            self._stuck = True
            raise
        return out

    def set_interval(self, seconds: float) -> None:
        self.interval = seconds
        m = self._monitor
        if m is None:
            return
        if callable(getattr(m, "set_interval", None)):
            m.set_interval(seconds)
        elif hasattr(m, "interval"):
            m.interval = seconds

    def rescan(self) -> None:
        """Take a new snapshot at the next tick (after the link key changed a cable)."""
        m = self._monitor
        if m is not None and not self._stuck:
            m.request_rescan()

    def counters(self, key: str) -> Counters | None:
        m = self._monitor
        if m is None or self._stuck:
            return None
        c: Counters | None = m.counters(key)
        return c

    def close(self) -> None:
        if self._monitor is not None and not self._stuck:
            self._monitor.close()
