"""The capture session: packet sockets in each target's namespace, one merged stream.

:func:`open_targets` enters each target's namespace once (through
:mod:`netlens.kernel.nsenter`, never creating one; a path must still lead to the
inode discovery saw), creates a packet socket there, checks the interface is
the one discovery saw (same index), compiles the filter for its link type and
binds. Anything that fails closes every socket already opened.

:func:`run` polls all sockets, reads whole batches, and hands packets on in
time order. Sockets deliver independently (a ring hands over a block at the
latest 50 ms after its first packet), so with several targets packets wait in
a heap until they are older than :data:`HOLD_NS`; then nothing later can sort
before them. With one target they go straight out. It stops on a packet
count, a duration, a stop event (the command sets it on Ctrl-C and SIGTERM) or
when every target has gone; a target whose interface vanishes is closed and
reported, and the rest go on.

Own output stream: a capture whose output leaves through a captured interface
(``-w -`` over SSH, a socket as stdout) would capture itself, packets making
packets. :func:`own_stream` finds that TCP connection and :func:`exclusion`
turns it into a filter clause added for targets in our own namespace.
"""

from __future__ import annotations

import heapq
import ipaddress
import os
import select
import socket
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from netlens.analysis.capture_targets import Target
from netlens.analysis.l2 import ns_paths
from netlens.errors import UsageError
from netlens.kernel.nsenter import open_netns, run_in_netns
from netlens.kernel.packet import (
    BpfProgram,
    FilterError,
    InterfaceGone,
    PacketSource,
    compile_filter,
    interface_info,
    make_source,
    open_in,
)

HOLD_NS = 200_000_000
"""How long packets of several targets wait to be sorted (4x the ring's block timeout)."""

Out = tuple[int, int, bytes, int]
"""(timestamp ns, target index, data, original length): what a writer takes."""


@dataclass(slots=True)
class Opened:
    """One target with its open reader and what it gave so far."""

    target: Target
    index: int
    linktype: int
    source: PacketSource
    captured: int = 0
    received: int = 0
    dropped: int = 0
    gone: str | None = None


@dataclass(slots=True)
class Result:
    """How a capture ended, for the final report."""

    targets: list[Opened]
    reason: str = "stopped"
    vanished: list[str] = field(default_factory=list)


def own_stream(stdout_fd: int = 1) -> tuple[str, int, str, int] | None:
    """(local ip, port, remote ip, port) of the TCP connection our output travels on.

    stdout itself a TCP socket: its two ends. Otherwise, inside an SSH session
    (``SSH_CONNECTION``) whose output is not a regular file: the SSH connection,
    since a terminal or pipe there ends in sshd's socket.
    """
    try:
        mode = os.fstat(stdout_fd).st_mode
    except OSError:
        return None
    if stat.S_ISSOCK(mode):
        sock = socket.socket(fileno=os.dup(stdout_fd))
        try:
            if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == (
                socket.SOCK_STREAM
            ):
                here, there = sock.getsockname(), sock.getpeername()
                return str(here[0]), int(here[1]), str(there[0]), int(there[1])
        except OSError:
            return None
        finally:
            sock.close()
    if stat.S_ISREG(mode):
        return None
    words = os.environ.get("SSH_CONNECTION", "").split()
    if len(words) == 4 and words[1].isdigit() and words[3].isdigit():
        return words[2], int(words[3]), words[0], int(words[1])
    return None


def exclusion(stream: tuple[str, int, str, int]) -> str:
    """A tcpdump clause that drops exactly that TCP connection's packets."""
    a, pa, b, pb = stream
    a = str(ipaddress.ip_address(a.split("%")[0]))
    b = str(ipaddress.ip_address(b.split("%")[0]))
    return f"not (tcp and host {a} and host {b} and port {pa} and port {pb})"


def _open_ns_fds(targets: list[Target]) -> dict[int, int]:
    """One nsfs fd per target namespace, checked against the inode discovery saw."""
    fds: dict[int, int] = {}
    try:
        for t in targets:
            if t.ns.inode in fds:
                continue
            for path in ns_paths(t.ns):
                fd = open_netns(path)
                if fd is None:
                    continue
                if os.fstat(fd).st_ino == t.ns.inode:
                    fds[t.ns.inode] = fd
                    break
                os.close(fd)
            else:
                raise UsageError(f"{t.label}: its namespace is gone")
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


def open_targets(
    targets: list[Target],
    expr: str,
    snaplen: int,
    *,
    ring: bool = True,
    own: tuple[str, int, str, int] | None = None,
) -> list[Opened]:
    """A bound, filtered reader per target (see the module doc); all or nothing."""
    fds = _open_ns_fds(targets)
    socks: list[socket.socket] = []
    opened: list[Opened] = []
    try:
        got = run_in_netns([fds[t.ns.inode] for t in targets], lambda _t: open_in())
        for res in got:
            if isinstance(res, OSError):
                raise res
            socks.append(res)
        home = os.stat("/proc/self/ns/net").st_ino
        ring_mb = max(2, min(8, 64 // max(1, len(targets))))
        programs: dict[tuple[str, int], BpfProgram] = {}
        for i, (t, sock) in enumerate(zip(targets, socks, strict=True)):
            try:
                index, linktype = interface_info(sock, t.iface.name)
            except OSError:
                raise UsageError(f"{t.label}: the interface is gone") from None
            if index != t.iface.ifindex:
                raise UsageError(f"{t.label}: the interface changed since discovery; try again")
            full = expr.strip()
            if own is not None and t.ns.inode == home:
                full = f"({full}) and {exclusion(own)}" if full else exclusion(own)
            key = (full, linktype)
            if key not in programs:
                try:
                    programs[key] = compile_filter(full, linktype, snaplen)
                except FilterError as err:
                    raise UsageError(f"bad filter {expr!r}: {err}") from None
            src = make_source(
                sock, t.iface.name, programs[key], snaplen, ring=ring, ring_mb=ring_mb
            )
            opened.append(Opened(t, i, linktype, src))
    except BaseException:
        for s in socks:
            s.close()
        raise
    finally:
        for fd in fds.values():
            os.close(fd)
    return opened


DRAIN_S = 1.0
"""At a stop, how long to wait for packets the kernel accepted but has not handed over."""


def _drain(live: list[Opened], until: float) -> list[Out]:
    """Every packet still queued on the live sockets, waiting (bounded) for ring
    blocks the kernel has not retired yet, so a stopped capture's file holds every
    packet the kernel counted as received (minus its drops)."""
    out: list[Out] = []
    waiting = list(live)
    while waiting:
        for o in list(waiting):
            try:
                pkts = o.source.read()
            except InterfaceGone:
                pkts = []
                waiting.remove(o)
            out.extend((t, o.index, d, n) for t, d, n in pkts)
            if o in waiting and not o.source.pending():
                waiting.remove(o)
        left = until - time.monotonic()
        if not waiting or left <= 0:
            break
        poller = select.poll()
        for o in waiting:
            poller.register(o.source.fileno(), select.POLLIN)
        poller.poll(max(1, min(20, int(left * 1000))))
    return out


def run(
    opened: list[Opened],
    sink: Callable[[list[Out]], None],
    *,
    count: int | None = None,
    seconds: float | None = None,
    on_gone: Callable[[Opened], None] | None = None,
    stop: threading.Event | None = None,
    drain_s: float = DRAIN_S,
) -> Result:
    """Capture until ``count`` packets, ``seconds``, ``stop`` is set (the command sets
    it on SIGINT and SIGTERM, the dashboard on its key), or every target has gone.

    A stop by signal or duration first drains what the kernel still holds (see
    :func:`_drain`); packets are never split from their block by an exception
    because signals only set ``stop``, checked between reads.
    """
    result = Result(opened)
    by_fd = {o.source.fileno(): o for o in opened}
    poller = select.poll()
    for fd in by_fd:
        poller.register(fd, select.POLLIN | select.POLLERR)
    hold = len(opened) > 1
    heap: list[Out] = []
    read_total = 0
    emitted = 0
    deadline = None if seconds is None else time.monotonic() + seconds
    drain = False

    def emit(batch: list[Out]) -> None:
        nonlocal emitted
        if count is not None:
            batch = batch[: max(0, count - emitted)]
        if batch:
            for _t, i, _d, _o in batch:
                opened[i].captured += 1
            emitted += len(batch)
            sink(batch)

    try:
        while by_fd:
            if stop is not None and stop.is_set():
                result.reason = "interrupted"
                drain = True
                break
            wait = 100
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    result.reason = "duration"
                    drain = True
                    break
                wait = max(1, min(wait, int(left * 1000) + 1))
            for fd, _ev in poller.poll(wait):
                o = by_fd[fd]
                try:
                    pkts = o.source.read()
                except InterfaceGone as err:
                    pkts = []
                    o.gone = err.strerror or "gone"
                    poller.unregister(fd)
                    del by_fd[fd]
                    o.received, o.dropped = o.source.stats()
                    o.source.close()
                    result.vanished.append(o.target.label)
                    if on_gone is not None:
                        on_gone(o)
                if not pkts:
                    continue
                read_total += len(pkts)
                batch = [(t, o.index, d, n) for t, d, n in pkts]
                if hold:
                    for item in batch:
                        heapq.heappush(heap, item)
                else:
                    emit(batch)
            if hold and heap:
                edge = time.time_ns() - HOLD_NS
                ready: list[Out] = []
                while heap and heap[0][0] <= edge:
                    ready.append(heapq.heappop(heap))
                emit(ready)
            if count is not None and (emitted >= count or read_total >= count):
                result.reason = "count"
                break
        else:
            result.reason = "all targets gone"
    except KeyboardInterrupt:
        result.reason = "interrupted"
        drain = True
    finally:
        try:
            if drain:
                live = [o for o in opened if o.gone is None]
                heap.extend(_drain(live, time.monotonic() + drain_s))
            heap.sort()
            emit(heap)
        finally:
            for o in opened:
                if o.gone is None:
                    o.received, o.dropped = o.source.stats()
                    o.source.close()
    return result
