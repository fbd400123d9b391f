"""A light traffic generator that moves bytes only between a lab's own nodes.

One host process, no helper processes: every flow gets a receiver socket created
inside the destination node's namespace and a sender socket created inside the
source node's namespace (a socket stays in the namespace it was born in, see
:mod:`netlens_runtime.lab_ns`). One pump thread then drives all flows with
non-blocking sockets and a token bucket each, at a rate that wanders between the
flow's bounds every few seconds, so the dashboard shows live, changing
throughput without burning the shared CPU.

Safety: a destination must be in the ``allowed`` set of addresses (the lab's
own nodes) or :class:`TrafficGenerator` refuses to start; nothing is ever sent
to an outside address. Stopping closes every socket; nothing is left behind.
Stop the generator *before* removing the lab: an open socket keeps its
namespace alive.
"""

from __future__ import annotations

import errno
import functools
import logging
import random
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from netlens.kernel.nsenter import in_netns

log = logging.getLogger(__name__)

CHUNK = 16 * 1024
"""Bytes per send; small enough that a few Mbit/s still looks smooth."""
UDP_PAYLOAD = 1200
"""UDP datagrams stay under any lab MTU so nothing fragments."""
TICK = 0.01
"""Pump period in seconds."""


def _call(func: Callable[[Flow], socket.socket], flow: Flow, _path: str) -> socket.socket:
    return func(flow)


@dataclass(frozen=True, slots=True)
class Flow:
    """One stream from a source namespace to ``dst_ip:port`` in a destination one."""

    name: str
    src_netns: str
    dst_netns: str
    dst_ip: str
    port: int
    proto: str = "tcp"
    min_bps: int = 1_000_000
    max_bps: int = 10_000_000


@dataclass
class FlowStats:
    """Counters of one flow (bytes of payload, both directions of the pump)."""

    sent: int = 0
    received: int = 0
    rate_bps: int = 0
    error: str | None = None


@dataclass
class _Live:
    flow: Flow
    listener: socket.socket
    sender: socket.socket
    stats: FlowStats
    tokens: float = 0.0
    rate: float = 0.0
    next_change: float = 0.0
    conns: list[socket.socket] = field(default_factory=list)


class TrafficGenerator:
    """Pump bytes along ``flows`` until :meth:`stop`.

    ``allowed`` is the set of addresses traffic may go to (the lab's nodes);
    ``max_total_bps`` bounds the sum of all current rates; ``change_every`` is
    how often (seconds) each flow picks a new rate inside its bounds.
    """

    def __init__(
        self,
        flows: list[Flow],
        *,
        allowed: set[str],
        max_total_bps: int = 100_000_000,
        change_every: float = 3.0,
        seed: int | None = None,
    ) -> None:
        for f in flows:
            if f.dst_ip not in allowed:
                raise ValueError(f"flow {f.name}: {f.dst_ip} is not an address of the lab")
            if f.proto not in ("tcp", "udp"):
                raise ValueError(f"flow {f.name}: unknown protocol {f.proto!r}")
            if not 0 < f.min_bps <= f.max_bps:
                raise ValueError(f"flow {f.name}: bad rate bounds")
        self.flows = list(flows)
        self.max_total_bps = max_total_bps
        self.change_every = change_every
        self._rng = random.Random(seed)
        self._live: list[_Live] = []
        self._sel: selectors.DefaultSelector | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stats: dict[str, FlowStats] = {f.name: FlowStats() for f in flows}

    # ----------------------------------------------------------------- control
    def start(self) -> None:
        """Open every socket (in its namespace), connect, start the pump thread."""
        if self._thread is not None:
            return
        try:
            self._open()
        except BaseException:
            self._close_all()
            raise
        self._stop.clear()
        self._thread = threading.Thread(target=self._pump, name="netlens-traffic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop pumping and close every socket. Safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._close_all()

    def __enter__(self) -> TrafficGenerator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stats(self) -> dict[str, FlowStats]:
        """A copy of the per-flow counters."""
        with self._lock:
            return {
                k: FlowStats(v.sent, v.received, v.rate_bps, v.error)
                for k, v in self._stats.items()
            }

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ set-up
    def _open(self) -> None:
        def make_listener(flow: Flow) -> socket.socket:
            if flow.proto == "tcp":
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((flow.dst_ip, flow.port))
                s.listen(4)
            else:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                s.bind((flow.dst_ip, flow.port))
            return s

        def make_sender(flow: Flow) -> socket.socket:
            kind = socket.SOCK_STREAM if flow.proto == "tcp" else socket.SOCK_DGRAM
            return socket.socket(socket.AF_INET, kind | socket.SOCK_CLOEXEC)

        # Listeners first (grouped by namespace in one worker pass), then senders.
        listeners: list[socket.socket] = []
        senders: list[socket.socket] = []
        try:
            for flow in self.flows:
                listeners += in_netns(
                    [flow.dst_netns], functools.partial(_call, make_listener, flow)
                )
                senders += in_netns([flow.src_netns], functools.partial(_call, make_sender, flow))
        except BaseException:
            for s in listeners + senders:
                s.close()
            raise
        self._sel = selectors.DefaultSelector()
        now = time.monotonic()
        for flow, lsock, ssock in zip(self.flows, listeners, senders, strict=True):
            live = _Live(flow, lsock, ssock, self._stats[flow.name])
            self._live.append(live)
            lsock.setblocking(False)
            self._sel.register(lsock, selectors.EVENT_READ, live)
            ssock.settimeout(3.0)
            try:
                ssock.connect((flow.dst_ip, flow.port))
            except OSError as exc:
                live.stats.error = f"connect: {exc.strerror or exc}"
                log.warning("traffic flow %s: %s", flow.name, live.stats.error)
            ssock.setblocking(False)
            self._new_rate(live, now)
            live.next_change = now + self._rng.uniform(0.5, 1.0) * self.change_every

    def _new_rate(self, live: _Live, now: float) -> None:
        f = live.flow
        live.rate = self._rng.uniform(f.min_bps, f.max_bps)
        total = sum(x.rate for x in self._live) or 1.0
        if total > self.max_total_bps:
            for x in self._live:
                x.rate *= self.max_total_bps / total
        live.stats.rate_bps = int(live.rate)
        live.next_change = now + self._rng.uniform(0.7, 1.3) * self.change_every

    # -------------------------------------------------------------------- pump
    def _pump(self) -> None:
        assert self._sel is not None
        payload = bytes(CHUNK)
        buf = bytearray(256 * 1024)
        last = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            dt, last = now - last, now
            for live in self._live:
                if live.stats.error:
                    continue
                if now >= live.next_change:
                    self._new_rate(live, now)
                rate_bytes = live.rate / 8
                live.tokens = min(live.tokens + rate_bytes * dt, max(rate_bytes * 0.05, CHUNK))
                self._send(live, payload)
            timeout = max(0.0, TICK - (time.monotonic() - now))
            for key, _ev in self._sel.select(timeout):
                self._receive(key.fileobj, key.data, buf)  # type: ignore[arg-type]

    def _send(self, live: _Live, payload: bytes) -> None:
        size = CHUNK if live.flow.proto == "tcp" else UDP_PAYLOAD
        view = memoryview(payload)[:size]
        sent = 0
        while live.tokens >= size:
            try:
                n = live.sender.send(view)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                    break  # UDP: a transient ICMP error; keep going next tick
                live.stats.error = f"send: {exc.strerror or exc}"
                break
            live.tokens -= n
            sent += n
        if sent:
            with self._lock:
                live.stats.sent += sent

    def _receive(self, sock: socket.socket, live: _Live, buf: bytearray) -> None:
        assert self._sel is not None
        if sock is live.listener and live.flow.proto == "tcp":
            try:
                conn, _addr = sock.accept()
            except OSError:
                return
            conn.setblocking(False)
            live.conns.append(conn)
            self._sel.register(conn, selectors.EVENT_READ, live)
            return
        got = 0
        while True:
            try:
                n = sock.recv_into(buf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                n = 0
            if n == 0 and live.flow.proto == "tcp":
                self._sel.unregister(sock)
                sock.close()
                if sock in live.conns:
                    live.conns.remove(sock)
                break
            got += n
            if live.flow.proto == "udp" and n == 0:
                break
        if got:
            with self._lock:
                live.stats.received += got

    def _close_all(self) -> None:
        if self._sel is not None:
            self._sel.close()
            self._sel = None
        for live in self._live:
            for s in (live.sender, live.listener, *live.conns):
                s.close()
        self._live.clear()
