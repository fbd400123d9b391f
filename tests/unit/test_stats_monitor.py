"""LiveMonitor logic without root: own namespace only, presence checks on a fake /proc."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from fixtures.model.sample import own_snapshot

from netlens.model.types import Interface, NatRule, Netns, Snapshot
from netlens.stats.frames import frame_to_json
from netlens.stats.live import LiveMonitor
from netlens.stats.watch import NetnsScanner, structure_signature

pytestmark = pytest.mark.unit

MOUNTINFO = (
    "22 1 0:20 / / rw - ext4 /dev/vda rw\n"
    "301 42 0:4 net:[4026532001] /run/netns/a rw shared:37 - nsfs nsfs rw\n"
    "302 42 0:4 net:[4026532002] /run/docker/netns/b\\040c rw - nsfs nsfs rw\n"
    "303 42 0:4 mnt:[4026532003] /run/x rw - nsfs nsfs rw\n"
)


def fake_proc(tmp_path: Path, pids: dict[int, int]) -> Path:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mountinfo").write_text(MOUNTINFO)
    for pid, inode in pids.items():
        (proc / str(pid) / "ns").mkdir(parents=True)
        os.symlink(f"net:[{inode}]", proc / str(pid) / "ns" / "net")
    return proc


def test_scanner_reads_mounts_from_the_root_field(tmp_path: Path) -> None:
    sc = NetnsScanner(str(fake_proc(tmp_path, {})))
    assert sc.mounted() == {4026532001, 4026532002}  # mnt namespaces are not ours


def test_scanner_witness_pids(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {10: 77, 11: 77, 12: 88})
    sc = NetnsScanner(str(proc))
    assert sc.held(77, (10, 11))
    os.unlink(proc / "10" / "ns" / "net")  # the witness exits: the other one holds it
    assert sc.held(77, (10, 11))
    os.unlink(proc / "11" / "ns" / "net")
    assert not sc.held(77, (10, 11))
    assert not sc.held(77, (12,))  # pid 12 is in another namespace (pid reuse)


def test_monitor_samples_own_namespace_and_closes(tmp_path: Path) -> None:
    mon = LiveMonitor(interval=0.05, discover_fn=own_snapshot, watch_events=False)
    fds0 = len(os.listdir("/proc/self/fd"))
    snap = mon.open()
    try:
        assert mon.socket_count == 1
        key = f"{snap.namespaces[0].id}/1"
        _, frame = mon.tick()
        assert key in frame.interfaces
        assert frame.interval > 0
        assert frame.density is not None and frame.density.namespaces == 1
        doc = frame_to_json(frame)
        assert key in doc["interfaces"]
        assert len(mon.history) == 1
    finally:
        mon.close()
    assert mon.socket_count == 0
    assert len(os.listdir("/proc/self/fd")) <= fds0


def test_monitor_notices_a_vanished_process_held_namespace(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {4242: 99})
    ghost = Netns(id="netns:99", inode=99, dev=0, is_host=False, name="ghost", pids=(4242,))
    state: dict[str, tuple[Netns, ...]] = {"extra": (ghost,)}

    def discover() -> Snapshot:
        return own_snapshot(state["extra"])

    mon = LiveMonitor(
        interval=0.05, discover_fn=discover, watch_events=False, scanner=NetnsScanner(str(proc))
    )
    mon.open()
    try:
        assert mon.tick()[0] is None  # nothing changed
        n0 = mon.rediscoveries
        os.unlink(proc / "4242" / "ns" / "net")  # its only process exited
        state["extra"] = ()
        new, _ = mon.tick()
        assert mon.rediscoveries == n0 + 1
        assert new is not None and [ns.name for ns in new.namespaces] == ["host"]
        assert mon.tick()[0] is None
    finally:
        mon.close()


def test_signature_ignores_counters_but_not_structure() -> None:
    a = own_snapshot()
    ns = a.namespaces[0]
    renamed = Netns(
        id=ns.id,
        inode=ns.inode,
        dev=ns.dev,
        is_host=True,
        name="host",
        interfaces=(Interface(netns=ns.id, ifindex=1, name="lo2", kind="loopback"),),
    )
    b = Snapshot(server=a.server, namespaces=(renamed,), taken_at=a.taken_at + 5)
    assert structure_signature(a) == structure_signature(own_snapshot())
    assert structure_signature(a) != structure_signature(b)


def test_default_monitor_reads_nat_at_open_and_when_the_structure_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The dashboard's live snapshots carry NAT: read at open and on a change;
    plain rescans skip the NAT read but keep the rules already known."""
    rule = NatRule("nftables", "ip", "nat", "post", "postrouting", "masquerade")
    calls: list[bool] = []
    state = {"name": "host"}

    def fake_discover(*, with_nat: bool = True, **_: object) -> Snapshot:
        calls.append(with_nat)
        snap = own_snapshot()
        ns = dataclasses.replace(
            snap.namespaces[0], name=state["name"], nat=(rule,) if with_nat else ()
        )
        return dataclasses.replace(snap, namespaces=(ns,))

    monkeypatch.setattr("netlens.discovery.discover", fake_discover)
    mon = LiveMonitor(interval=0.05, watch_events=False, rescan_seconds=0.0)
    # Only the rescans are under test: namespaces that other processes on a busy
    # host mount and unmount meanwhile must not count as a signalled change.
    monkeypatch.setattr(mon, "_presence_changed", lambda: False)
    snap = mon.open()
    try:
        assert snap.namespaces[0].nat == (rule,) and calls == [True]
        new, _ = mon.tick()  # a rescan (rescan_seconds=0) that finds nothing new
        assert new is None and calls[-1] is False
        assert mon.snapshot is not None and mon.snapshot.namespaces[0].nat == (rule,)
        state["name"] = "renamed"  # a change no event announced
        new, _ = mon.tick()
        assert new is not None and new.namespaces[0].name == "renamed"
        assert new.namespaces[0].nat == (rule,) and calls[-2:] == [False, True]
    finally:
        mon.close()


def _lo_rx_bytes() -> int:
    """RX bytes of this namespace's lo from /proc (what ``ip -s link`` prints)."""
    with open("/proc/self/net/dev") as fh:
        for line in fh:
            name, _, rest = line.partition(":")
            if name.strip() == "lo":
                return int(rest.split()[0])
    raise AssertionError("no lo")


def test_monitor_counters_are_the_latest_sample() -> None:
    """The absolute counters a detail view shows come from the last sample, so they
    lie between what the kernel said just before and just after that sample."""
    import socket

    mon = LiveMonitor(interval=0.05, discover_fn=own_snapshot, watch_events=False)
    snap = mon.open()
    try:
        key = f"{snap.namespaces[0].id}/1"
        start = mon.counters(key)
        assert start is not None and mon.counters(f"{snap.namespaces[0].id}/999") is None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
            rx.bind(("127.0.0.1", 0))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
                for _ in range(50):
                    tx.sendto(b"x" * 1000, rx.getsockname())
        before = _lo_rx_bytes()
        mon.tick()
        after = _lo_rx_bytes()
        now = mon.counters(key)
        assert now is not None and before <= now.rx_bytes <= after
        assert now.rx_bytes >= start.rx_bytes + 50 * 1000
    finally:
        mon.close()
