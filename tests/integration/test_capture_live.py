"""netlens capture against real namespaces; every file is read back by Debian's tshark.

Traffic runs only between namespaces the test makes. A capture is started as
its own process and the test waits for its "capturing on" line (printed once
every socket is bound) before sending, so counts are exact, not timed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Lab, sh

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark"),
    pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump (filters)"),
]


@dataclass
class Pair:
    a: str
    b: str
    ip_b: str = "10.66.0.2"


@pytest.fixture
def pair(lab: Lab) -> Iterator[Pair]:
    """Two namespaces joined by a veth a0 <-> b0, 10.66.0.1 and 10.66.0.2."""
    a, b = lab.add_netns("ca"), lab.add_netns("cb")
    lab.add_veth("a0", "b0", a, b)
    sh(f"ip -n {a} addr add 10.66.0.1/24 dev a0")
    sh(f"ip -n {b} addr add 10.66.0.2/24 dev b0")
    yield Pair(a, b)


def start(args: list[str], stdout: int | None = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """A running capture, returned once it said every socket is bound."""
    env = {**os.environ, "NETLENS_NO_LOG": "1"}
    env.pop("SSH_CONNECTION", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "netlens", "capture", *args],
        stdout=stdout, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stderr is not None
    first = proc.stderr.readline().decode()
    if "capturing on" not in first:
        proc.kill()
        rest = proc.stderr.read().decode()
        raise AssertionError(f"capture did not start: {first}{rest}")
    return proc


def finish(proc: subprocess.Popen[bytes], interrupt: bool = True) -> tuple[int, str]:
    if interrupt:
        proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    return proc.returncode, err.decode()


def ping(ns: str, dst: str, n: int) -> None:
    sh(f"ip netns exec {ns} ping -q -c {n} -i 0.2 -W 2 {dst}")


def tshark(path: str, *fields: str, read_filter: str = "") -> list[list[str]]:
    argv = ["tshark", "-r", path, "-T", "fields"]
    for f in fields:
        argv += ["-e", f]
    if read_filter:
        argv += ["-Y", read_filter]
    res = subprocess.run(argv, capture_output=True, text=True, check=True)
    return [ln.split("\t") for ln in res.stdout.splitlines()]


def test_two_targets_one_stream(pair: Pair, tmp_path: Path) -> None:
    out = str(tmp_path / "two.pcapng")
    proc = start([f"{pair.a}:a0", f"{pair.b}:b0", "-f", "icmp", "-w", out])
    ping(pair.a, pair.ip_b, 4)
    rc, err = finish(proc)
    assert rc == 0, err
    rows = tshark(out, "frame.interface_name", "frame.time_epoch", "icmp.type")
    names = [r[0] for r in rows]
    assert names.count(f"{pair.a}:a0") == 8 and names.count(f"{pair.b}:b0") == 8
    assert sorted(r[2] for r in rows) == ["0"] * 8 + ["8"] * 8
    stamps = [float(r[1]) for r in rows]
    assert stamps == sorted(stamps)  # merged in time order across the two sockets
    assert f"{pair.a}:a0: 8 packets captured" in err
    assert "0 dropped by kernel" in err


def test_filter_honoured(pair: Pair, tmp_path: Path) -> None:
    out = str(tmp_path / "udp.pcapng")
    proc = start([f"{pair.b}:b0", "-f", "udp", "-w", out])
    ping(pair.a, pair.ip_b, 3)
    sender = (
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"for i in range(5): s.sendto(b'x' * 10, ('{pair.ip_b}', 9999))"
    )
    sh(f'ip netns exec {pair.a} {sys.executable} -c "{sender}"')
    ping(pair.a, pair.ip_b, 1)  # ICMP port unreachable replies are not udp: not captured
    rc, err = finish(proc)
    assert rc == 0, err
    rows = tshark(out, "frame.interface_name", "ip.proto")
    assert len(rows) == 5
    assert {r[1] for r in rows} == {"17"}


def test_count_and_duration_stop_with_complete_file(pair: Pair, tmp_path: Path) -> None:
    pinger = subprocess.Popen(
        ["ip", "netns", "exec", pair.a, "ping", "-q", "-i", "0.05", pair.ip_b],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        out = str(tmp_path / "count.pcapng")
        rc, err = finish(start([f"{pair.a}:a0", "-f", "icmp", "-c", "3", "-w", out]), False)
        assert rc == 0, err
        assert len(tshark(out, "frame.number")) == 3
        out2 = str(tmp_path / "dur.pcap")
        rc, err = finish(start([f"{pair.a}:a0", "-G", "1", "--pcap", "-w", out2]), False)
        assert rc == 0, err
        rows = tshark(out2, "frame.number", "frame.interface_name")
        assert rows, err
    finally:
        pinger.kill()
        pinger.wait()


def test_vanished_target_rest_goes_on(lab: Lab, pair: Pair, tmp_path: Path) -> None:
    c, d = lab.add_netns("cc"), lab.add_netns("cd")
    lab.add_veth("c0", "d0", c, d)
    out = str(tmp_path / "gone.pcapng")
    proc = start([f"{pair.a}:a0", f"{c}:c0", "-f", "icmp", "-w", out])
    ping(pair.a, pair.ip_b, 2)
    # deleting d destroys the veth pair, so c0 (in c, which our socket keeps alive) vanishes
    sh(f"ip netns del {d}")
    lab.netns.remove(d)
    assert proc.stderr is not None
    note = proc.stderr.readline().decode()
    assert f"{c}:c0 vanished" in note
    ping(pair.a, pair.ip_b, 3)
    rc, err = finish(proc)
    assert rc == 0, err
    names = [r[0] for r in tshark(out, "frame.interface_name")]
    assert names.count(f"{pair.a}:a0") == 10  # 2 + 3 echo requests and replies
    assert f"{c}:c0: 0 packets captured" in err and "(interface vanished)" in err


def test_stream_to_tshark_through_a_pipe(pair: Pair) -> None:
    proc = start(
        [f"{pair.a}:a0:pair", "-f", "icmp[icmptype] == icmp-echo", "-c", "4", "-w", "-"],
        stdout=subprocess.PIPE,
    )
    ping(pair.a, pair.ip_b, 2)
    reader = subprocess.run(
        ["tshark", "-r", "-", "-T", "fields", "-e", "frame.interface_name"],
        stdin=proc.stdout, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    rc, err = finish(proc, False)
    assert rc == 0, err
    assert sorted(reader.stdout.split()) == sorted([f"{pair.a}:a0", f"{pair.b}:b0"] * 2)


def test_lines_without_w(pair: Pair) -> None:
    proc = start([f"{pair.b}:b0", "-f", "icmp", "-c", "2"], stdout=subprocess.PIPE)
    ping(pair.a, pair.ip_b, 1)
    out, err = proc.communicate(timeout=60)
    lines = out.decode().splitlines()
    assert len(lines) == 2, err
    assert f" {pair.b}:b0 10.66.0.1 -> 10.66.0.2 ICMP length 98" in lines[0]
    assert f" {pair.b}:b0 10.66.0.2 -> 10.66.0.1 ICMP length 98" in lines[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-f", "icmp and nonsense"], "bad filter"),
        (["-f", "tcp port 99999"], "bad filter"),
    ],
)
def test_bad_filter_one_line_exit_2(pair: Pair, args: list[str], message: str) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "netlens", "capture", f"{pair.a}:a0", *args],
        capture_output=True, text=True, env={**os.environ, "NETLENS_NO_LOG": "1"},
    )  # fmt: skip
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and message in res.stderr


def test_bad_target_suggests(pair: Pair) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "netlens", "capture", pair.a[:-1] + "x"],
        capture_output=True, text=True, env={**os.environ, "NETLENS_NO_LOG": "1"},
    )  # fmt: skip
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and f"did you mean '{pair.a}'" in res.stderr
