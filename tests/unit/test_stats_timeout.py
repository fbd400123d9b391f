"""Regression: a namespace whose netlink dump is never answered must not hang the live layer.

A dump on a socket whose namespace is being torn down may never get NLMSG_DONE;
``LiveMonitor.open()`` used to block forever in ``baseline -> StatsReader.dump ->
recv_into``. A datagram socketpair stands in for such a socket: what is sent to
it goes to the peer, and nothing ever comes back. Each blocking call runs in a
thread joined with a bound, so a regression fails the test instead of hanging it.
"""

from __future__ import annotations

import errno
import socket
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from fixtures.model.sample import own_snapshot

from netlens.kernel.consts import (
    RTM_NEWSTATS,
)
from netlens.model.types import Netns
from netlens.stats import sampler as sampler_mod
from netlens.stats.counters import (
    NetlinkDumpError,
    StatsReader,
    arm_timeout,
)
from netlens.stats.live import LiveMonitor
from netlens.stats.sampler import CounterSampler

pytestmark = pytest.mark.unit

TIMEOUT = 0.2
BOUND = 10.0  # seconds a call may take before the test calls it a hang


@pytest.fixture
def silent() -> Iterator[Callable[[], socket.socket]]:
    """Make sockets that never answer; closes both ends of every pair at the end."""
    made: list[socket.socket] = []

    def make() -> socket.socket:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        made.extend((a, b))
        return a

    try:
        yield make
    finally:
        for s in made:
            s.close()


def bounded(fn: Callable[[], Any]) -> Any:
    """Run fn in a thread; fail (instead of hanging) if it takes longer than BOUND."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as err:  # re-raised in the caller
            box["error"] = err

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(BOUND)
    assert not t.is_alive(), "blocked on a namespace that never answers"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def test_dump_on_a_silent_socket_times_out(silent: Callable[[], socket.socket]) -> None:
    sock = silent()
    arm_timeout(sock, TIMEOUT)
    with pytest.raises(NetlinkDumpError) as info:
        bounded(lambda: StatsReader().dump(sock))
    assert info.value.errno == errno.ETIMEDOUT


def test_dump_that_never_finishes_times_out() -> None:
    """Answers arrive (for another, abandoned dump) but NLMSG_DONE never does."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        arm_timeout(a, TIMEOUT)
        reader = StatsReader()
        seq, req = reader.new_request()
        stale = struct.pack("=IHHII", 16, RTM_NEWSTATS, 2, seq + 1000, 0)
        for _ in range(3):
            b.send(stale)
        with pytest.raises(NetlinkDumpError) as info:
            bounded(lambda: reader.dump(a, (seq, req)))
        assert info.value.errno == errno.ETIMEDOUT
    finally:
        a.close()
        b.close()


def test_sampler_skips_and_drops_a_silent_namespace(silent: Callable[[], socket.socket]) -> None:
    from netlens.kernel.nsenter import netlink_socket

    sampler = CounterSampler(timeout=TIMEOUT)
    try:
        sampler.adopt({"good": netlink_socket(), "dying": silent()})
        bounded(sampler.baseline)
        assert set(sampler.socks) == {"good"}  # the silent one was closed and forgotten
        rates = bounded(sampler.sample)
        assert rates and all(k.startswith("good/") for k in rates)
    finally:
        sampler.close()
    assert not sampler.socks


def test_monitor_open_does_not_hang_and_reopens_at_the_next_rescan(
    silent: Callable[[], socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    ghost = Netns(id="netns:99", inode=99, dev=0, is_host=False, name="dying")
    real_open = sampler_mod.open_sockets
    opened: list[str] = []

    def open_sockets(namespaces: Iterable[Netns]) -> dict[str, socket.socket]:
        todo = list(namespaces)
        out = real_open([ns for ns in todo if ns.id != ghost.id])
        if any(ns.id == ghost.id for ns in todo):
            out[ghost.id] = silent()
            opened.append(ghost.id)
        return out

    monkeypatch.setattr(sampler_mod, "open_sockets", open_sockets)
    mon = LiveMonitor(
        interval=0.05,
        discover_fn=lambda: own_snapshot((ghost,)),
        watch_events=False,
        rescan_seconds=0.0,  # every tick rediscovers: the dropped socket comes back
    )
    mon.sampler = CounterSampler(timeout=TIMEOUT)
    try:
        snap = bounded(mon.open)
        assert {ns.id for ns in snap.namespaces} == {snap.namespaces[0].id, ghost.id}
        assert ghost.id not in mon.sampler.socks  # skipped, socket closed
        assert mon.socket_count == 1
        _, frame = bounded(mon.tick)
        assert opened == [ghost.id, ghost.id]  # reopened by the rescan, skipped again
        assert f"{snap.namespaces[0].id}/1" in frame.interfaces
        assert ghost.id not in mon.sampler.socks
    finally:
        mon.close()
    assert mon.socket_count == 0
