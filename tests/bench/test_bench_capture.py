"""`netlens capture` under load: captured vs what the interface counted, CPU per 100k packets.

1. One target carrying iperf3 TCP at 1 Gbit/s between two namespaces of this bench
   (a veth, nothing in the host), captured with ``-s 128`` into a file. The
   interface's own counters (``ip -s link``, rx + tx packets) are read after the
   capture said every socket is bound and before it is stopped, so the capture's
   window holds the counted one: captured / counted is the share it kept. Run with
   the veth's default offloads (the sender hands 64 KiB GSO super-packets to the
   veth, each one packet for the counters and for the capture) and with
   ``gso_max_segs 1`` (every packet MTU-sized: the packet rate 1 Gbit/s really
   means). Each with the TPACKET_V3 ring (the default), with ``--no-ring``
   (recvmsg per packet) and with Debian's tcpdump as the baseline. CPU is the
   capturing process's user + system time from /proc/PID/stat, from its "capturing
   on" line to its exit (drain and close included), so start-up (discovery, which
   grows with the host) is not in it.
2. 20 targets at once: ten veth pairs between twenty namespaces, each pair pinging
   5000 times (flooded, then paced at 1000 a second), one capture of all twenty with
   ``-f icmp -s 128``: start-up time, per-target captured vs the 10000 echo requests
   and replies each saw, drops, CPU per 100k packets, tshark reading the file back.
   CPU is counted from "capturing on" to the process's exit (drain included).

Nothing is asserted about time (the VM is shared, 2 cores); figures are printed.
Traffic stays between the bench's own namespaces; they are removed afterwards.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import Lab, is_root, sh

pytestmark = pytest.mark.bench

SECONDS = int(os.environ.get("NETLENS_BENCH_CAPTURE_S", "5"))
PORT = 15310
TICK = os.sysconf("SC_CLK_TCK")


@pytest.fixture
def cblab() -> Iterator[Lab]:
    if not is_root():
        pytest.skip("needs root")
    lab = Lab("cb")
    try:
        yield lab
    finally:
        lab.close()


def _cpu(pid: int) -> float:
    """User + system seconds of a running process."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _counted(ns: str, dev: str) -> int:
    link = json.loads(sh(f"ip -n {ns} -s -j link show {dev}").stdout)[0]["stats64"]
    return int(link["rx"]["packets"]) + int(link["tx"]["packets"])


@dataclass
class Run:
    what: str
    captured: int
    dropped: int
    counted: int
    cpu: float
    mbps: float

    def line(self) -> str:
        share = 100.0 * self.captured / self.counted if self.counted else 0.0
        per = self.cpu / self.captured * 100_000 if self.captured else 0.0
        return (
            f"[bench] {self.what}: iperf3 {self.mbps:.0f} Mbit/s, interface counted "
            f"{self.counted}, captured {self.captured} ({share:.2f} %), dropped "
            f"{self.dropped}, CPU {self.cpu:.2f} s = {per:.2f} s per 100k packets"
        )


def _start(argv: list[str], ready: str) -> subprocess.Popen[str]:
    env = {**os.environ, "NETLENS_NO_LOG": "1"}
    env.pop("SSH_CONNECTION", None)
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()
    if ready not in first:
        proc.kill()
        raise AssertionError(f"{argv[:4]} did not start: {first}{proc.stderr.read()}")
    return proc


def _stop(proc: subprocess.Popen[str]) -> tuple[str, float]:
    """SIGINT, then (stderr, CPU seconds at exit): stderr ends when the process exits,
    and until it is reaped /proc still has its times, drain and file close included."""
    proc.send_signal(signal.SIGINT)
    assert proc.stderr is not None
    err = proc.stderr.read()
    cpu = _cpu(proc.pid)
    proc.wait(timeout=120)
    return err, cpu


def _iperf(a: str, b: str, dst: str) -> float:
    """Received Mbit/s of one iperf3 TCP run at 1 Gbit/s from namespace a to b."""
    srv = subprocess.Popen(
        ["ip", "netns", "exec", b, "iperf3", "-s", "-1", "-B", dst, "-p", str(PORT)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            if sh(f"ip netns exec {b} ss -Hltn src {dst}:{PORT}").stdout.strip():
                break
            time.sleep(0.05)
        res = sh(f"ip netns exec {a} iperf3 -c {dst} -p {PORT} -t {SECONDS} -b 1G -J", check=False)
        doc = json.loads(res.stdout)
        return float(doc["end"]["sum_received"]["bits_per_second"]) / 1e6
    finally:
        if srv.poll() is None:
            srv.kill()
        srv.wait()


def _one(what: str, argv: list[str], ready: str, pair: tuple[str, str, str, str]) -> Run:
    a, b, ia, dst = pair
    proc = _start(argv, ready)
    try:
        cpu0, n0 = _cpu(proc.pid), _counted(a, ia)
        mbps = _iperf(a, b, dst)
        n1 = _counted(a, ia)
    finally:
        err, cpu1 = _stop(proc)
    ours = re.search(r"(\d+) packets captured, \d+ received by filter, (\d+) dropped", err)
    theirs = re.search(r"(\d+) packets captured\n.*\n(\d+) packets dropped by kernel", err)
    got = ours or theirs
    assert got is not None, err
    captured, dropped = int(got[1]), int(got[2])
    return Run(what, captured, dropped, n1 - n0, cpu1 - cpu0, mbps)


def test_bench_capture_iperf3_one_target(cblab: Lab, tmp_path: Path) -> None:
    a, b = cblab.add_netns("a"), cblab.add_netns("b")
    ia, ib = cblab.name("ea"), cblab.name("eb")
    cblab.add_veth(ia, ib, a, b)
    sh(f"ip -n {a} addr add 10.66.20.1/24 dev {ia}")
    sh(f"ip -n {b} addr add 10.66.20.2/24 dev {ib}")
    pair = (a, b, ia, "10.66.20.2")
    nl = [sys.executable, "-m", "netlens", "capture", f"{a}:{ia}", "-s", "128"]
    runs: list[Run] = []
    for offload in ("default offloads", "gso_max_segs 1"):
        if offload != "default offloads":
            sh(f"ip -n {a} link set {ia} gso_max_segs 1")
            sh(f"ip -n {b} link set {ib} gso_max_segs 1")
        alone = _iperf(a, b, "10.66.20.2")
        print(f"\n[bench] {offload}, nothing capturing: iperf3 {alone:.0f} Mbit/s")
        for reader, extra in (("ring", []), ("recvmsg", ["--no-ring"])):
            out = str(tmp_path / f"{reader}.pcapng")
            run = _one(
                f"{offload}, netlens {reader}",
                [*nl, *extra, "-w", out],
                "capturing on",
                pair,
            )
            runs.append(run)
            print(run.line())
            os.unlink(out)
        out = str(tmp_path / "tcpdump.pcap")
        dump = ["ip", "netns", "exec", a, "tcpdump", "-i", ia, "-s", "128", "-w", out]
        run = _one(f"{offload}, tcpdump", dump, "listening on", pair)
        runs.append(run)
        print(run.line())
        os.unlink(out)
    for run in runs:
        assert run.captured > 0 and run.counted > 0, run


def _twenty(lab: Lab, tmp_path: Path, pace: list[str], what: str) -> None:
    """One capture of the twenty veth ends while each pair pings 5000 times with ``pace``."""
    pairs: list[tuple[str, str, str, str, str]] = []
    for i in range(10):
        a, b = lab.add_netns(f"{what[0]}a{i}"), lab.add_netns(f"{what[0]}b{i}")
        ia, ib = lab.name(f"{what[0]}x{i}"), lab.name(f"{what[0]}y{i}")
        lab.add_veth(ia, ib, a, b)
        sh(f"ip -n {a} addr add 10.66.{30 + i}.1/24 dev {ia}")
        sh(f"ip -n {b} addr add 10.66.{30 + i}.2/24 dev {ib}")
        pairs.append((a, b, ia, ib, f"10.66.{30 + i}.2"))
    targets = [t for a, b, ia, ib, _ in pairs for t in (f"{a}:{ia}", f"{b}:{ib}")]
    out = str(tmp_path / f"{what}.pcapng")
    t0 = time.monotonic()
    proc = _start(
        [sys.executable, "-m", "netlens", "capture", *targets, "-f", "icmp", "-s", "128",
         "-w", out],
        "capturing on",
    )  # fmt: skip
    startup = time.monotonic() - t0
    try:
        cpu0 = _cpu(proc.pid)
        t1 = time.monotonic()
        pings = [
            lab.spawn(["ip", "netns", "exec", a, "ping", "-q", *pace, "-c", "5000", dst])
            for a, _b, _ia, _ib, dst in pairs
        ]
        for p in pings:
            p.wait(timeout=300)
        run = time.monotonic() - t1
    finally:
        err, cpu1 = _stop(proc)
    per = {
        m[1]: (int(m[2]), int(m[3]))
        for m in re.finditer(r"(\S+): (\d+) packets captured, \d+ received by filter, (\d+)", err)
    }
    captured = sum(c for c, _d in per.values())
    dropped = sum(d for _c, d in per.values())
    exact = sum(1 for c, _d in per.values() if c == 10000)
    print(
        f"\n[bench] 20 targets, ping {' '.join(pace)} -c 5000 in ten pairs ({run:.1f} s): "
        f"start-up (discovery + 20 sockets) {startup:.2f} s; captured {captured} of 200000 "
        f"sent, dropped {dropped} (captured + dropped = {captured + dropped}); {exact} of 20 "
        f"targets exactly 10000; CPU {cpu1 - cpu0:.2f} s = "
        f"{(cpu1 - cpu0) / max(1, captured) * 100_000:.2f} s per 100k packets"
    )
    t2 = time.monotonic()
    names = sh(f"tshark -r {out} -T fields -e frame.interface_name").stdout.split()
    print(f"[bench] tshark read {len(names)} packets back in {time.monotonic() - t2:.1f} s")
    os.unlink(out)
    assert len(per) == 20, err
    assert len(names) == captured
    assert set(names) == set(targets)


def test_bench_capture_twenty_targets_flood(cblab: Lab, tmp_path: Path) -> None:
    """Ten ping floods saturate both cores: what is lost is counted as dropped."""
    _twenty(cblab, tmp_path, ["-f"], "flood")


def test_bench_capture_twenty_targets_paced(cblab: Lab, tmp_path: Path) -> None:
    """1000 echo requests a second per pair (40k captured packets a second in all)."""
    _twenty(cblab, tmp_path, ["-i", "0.001"], "paced")
