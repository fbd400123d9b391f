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
    ia: str
    ib: str
    ip_b: str = "10.66.0.2"


@pytest.fixture
def pair(lab: Lab) -> Iterator[Pair]:
    """Two namespaces joined by a veth a0 <-> b0, 10.66.0.1 and 10.66.0.2."""
    a, b = lab.add_netns("ca"), lab.add_netns("cb")
    ia, ib = lab.name("a0"), lab.name("b0")  # unique: veths are born in the host namespace
    lab.add_veth(ia, ib, a, b)
    sh(f"ip -n {a} addr add 10.66.0.1/24 dev {ia}")
    sh(f"ip -n {b} addr add 10.66.0.2/24 dev {ib}")
    yield Pair(a, b, ia, ib)


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
    proc = start([f"{pair.a}:{pair.ia}", f"{pair.b}:{pair.ib}", "-f", "icmp", "-w", out])
    ping(pair.a, pair.ip_b, 4)
    rc, err = finish(proc)
    assert rc == 0, err
    rows = tshark(out, "frame.interface_name", "frame.time_epoch", "icmp.type")
    names = [r[0] for r in rows]
    assert names.count(f"{pair.a}:{pair.ia}") == 8 and names.count(f"{pair.b}:{pair.ib}") == 8
    assert sorted(r[2] for r in rows) == ["0"] * 8 + ["8"] * 8
    stamps = [float(r[1]) for r in rows]
    assert stamps == sorted(stamps)  # merged in time order across the two sockets
    assert f"{pair.a}:{pair.ia}: 8 packets captured" in err
    assert "0 dropped by kernel" in err


def test_filter_honoured(pair: Pair, tmp_path: Path) -> None:
    out = str(tmp_path / "udp.pcapng")
    proc = start([f"{pair.b}:{pair.ib}", "-f", "udp", "-w", out])
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
        rc, err = finish(start([f"{pair.a}:{pair.ia}", "-f", "icmp", "-c", "3", "-w", out]), False)
        assert rc == 0, err
        assert len(tshark(out, "frame.number")) == 3
        out2 = str(tmp_path / "dur.pcap")
        rc, err = finish(start([f"{pair.a}:{pair.ia}", "-G", "1", "--pcap", "-w", out2]), False)
        assert rc == 0, err
        rows = tshark(out2, "frame.number", "frame.interface_name")
        assert rows and f"{len(rows)} packets captured" in err, err
        # a flood interrupted mid-stream: whatever the kernel accepted is in the file
        out3 = str(tmp_path / "int.pcapng")
        proc = start([f"{pair.a}:{pair.ia}", "-w", out3])
        sh(f"ip netns exec {pair.a} ping -q -f -c 2000 {pair.ip_b}")
        rc, err = finish(proc)
        assert rc == 0, err
        n = len(tshark(out3, "frame.number"))
        assert n >= 4000 and f"{n} packets captured, {n} received by filter" in err, err
    finally:
        pinger.kill()
        pinger.wait()


def test_vanished_target_rest_goes_on(lab: Lab, pair: Pair, tmp_path: Path) -> None:
    c, d = lab.add_netns("cc"), lab.add_netns("cd")
    ic = lab.name("c0")
    lab.add_veth(ic, lab.name("d0"), c, d)
    out = str(tmp_path / "gone.pcapng")
    proc = start([f"{pair.a}:{pair.ia}", f"{c}:{ic}", "-f", "icmp", "-w", out])
    ping(pair.a, pair.ip_b, 2)
    # deleting d destroys the veth pair, so c0 (in c, which our socket keeps alive) vanishes
    sh(f"ip netns del {d}")
    lab.netns.remove(d)
    assert proc.stderr is not None
    note = proc.stderr.readline().decode()
    assert f"{c}:{ic} vanished" in note
    ping(pair.a, pair.ip_b, 3)
    rc, err = finish(proc)
    assert rc == 0, err
    names = [r[0] for r in tshark(out, "frame.interface_name")]
    assert names.count(f"{pair.a}:{pair.ia}") == 10  # 2 + 3 echo requests and replies
    assert f"{c}:{ic}: 0 packets captured" in err and "(interface vanished)" in err


def test_stream_to_tshark_through_a_pipe(pair: Pair) -> None:
    proc = start(
        [f"{pair.a}:{pair.ia}:pair", "-f", "icmp[icmptype] == icmp-echo", "-c", "4", "-w", "-"],
        stdout=subprocess.PIPE,
    )
    ping(pair.a, pair.ip_b, 2)
    reader = subprocess.run(
        ["tshark", "-r", "-", "-T", "fields", "-e", "frame.interface_name"],
        stdin=proc.stdout, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    rc, err = finish(proc, False)
    assert rc == 0, err
    assert sorted(reader.stdout.split()) == sorted(
        [f"{pair.a}:{pair.ia}", f"{pair.b}:{pair.ib}"] * 2
    )


def test_lines_without_w(pair: Pair) -> None:
    proc = start([f"{pair.b}:{pair.ib}", "-f", "icmp", "-c", "2"], stdout=subprocess.PIPE)
    ping(pair.a, pair.ip_b, 1)
    out, err = proc.communicate(timeout=60)
    lines = out.decode().splitlines()
    assert len(lines) == 2, err
    assert f" {pair.b}:{pair.ib} 10.66.0.1 -> 10.66.0.2 ICMP length 98" in lines[0]
    assert f" {pair.b}:{pair.ib} 10.66.0.2 -> 10.66.0.1 ICMP length 98" in lines[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-f", "icmp and nonsense"], "bad filter"),
        (["-f", "tcp port 99999"], "bad filter"),
    ],
)
def test_bad_filter_one_line_exit_2(pair: Pair, args: list[str], message: str) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "netlens", "capture", f"{pair.a}:{pair.ia}", *args],
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
    assert res.stderr.count("\n") == 1
    assert "did you mean" in res.stderr and f"'{pair.a}'" in res.stderr


RECEIVER = """
import socket, sys
srv = socket.socket()
srv.bind(("10.66.0.2", 15300))
srv.listen(1)
print("ready", flush=True)
conn, _ = srv.accept()
with open(sys.argv[1], "wb") as out:
    while chunk := conn.recv(65536):
        out.write(chunk)
"""


def test_own_output_stream_is_excluded(pair: Pair, tmp_path: Path) -> None:
    """stdout is a TCP connection leaving through the captured interface itself, and
    no filter is given: without the automatic exclusion every pcapng block written
    would be captured again (packets making packets)."""
    out = tmp_path / "own.pcapng"
    recv = subprocess.Popen(
        ["ip", "netns", "exec", pair.b, sys.executable, "-c", RECEIVER, str(out)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert recv.stdout is not None and recv.stdout.readline() == "ready\n"
        script = (
            "exec 1<>/dev/tcp/10.66.0.2/15300; "
            f'exec "{sys.executable}" -m netlens capture {pair.a}:{pair.ia} -w -'
        )
        env = {**os.environ, "NETLENS_NO_LOG": "1"}
        env.pop("SSH_CONNECTION", None)
        cap = subprocess.Popen(
            ["ip", "netns", "exec", pair.a, "bash", "-c", script],
            stderr=subprocess.PIPE, env=env,
        )  # fmt: skip
        assert cap.stderr is not None
        first = cap.stderr.readline().decode()
        assert first.startswith("netlens: not capturing its own output stream (tcp "), first
        assert "capturing on" in cap.stderr.readline().decode()
        ping(pair.a, pair.ip_b, 5)
        rc, err = finish(cap)
        assert rc == 0, err
        recv.wait(timeout=30)
    finally:
        for p in (recv,):
            if p.poll() is None:
                p.kill()
                p.wait()
    rows = tshark(str(out), "frame.interface_name", "ip.proto", read_filter="ip")
    assert [r[1] for r in rows] == ["1"] * 10, rows  # the 5 pings, not one TCP segment
    # run inside pair.a, discovery calls that namespace the host: the label is host:IFNAME
    assert f":{pair.ia}: " in err and "0 dropped by kernel" in err


SSHD = """
import os, socket, subprocess, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("10.66.0.1", 15301))
srv.listen(1)
print("ready", flush=True)
conn, peer = srv.accept()
env = dict(os.environ, SSH_CONNECTION=f"{peer[0]} {peer[1]} 10.66.0.1 15301")
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, env=env)
print(child.pid, flush=True)
while chunk := os.read(child.stdout.fileno(), 65536):
    conn.sendall(chunk)
child.wait()
conn.close()
"""

CLIENT = """
import socket, sys
s = socket.create_connection(("10.66.0.1", 15301))
with open(sys.argv[1], "wb") as out:
    while chunk := s.recv(65536):
        out.write(chunk)
"""


def test_ssh_session_stream_is_excluded(pair: Pair, tmp_path: Path) -> None:
    """As in an SSH login: the capture prints its lines to a pipe that a stand-in sshd
    (in the captured namespace) relays over TCP, SSH_CONNECTION names that connection.
    Every printed line would be a TCP segment on the captured interface, printed
    again; excluded, only the pings are printed."""
    env = {**os.environ, "NETLENS_NO_LOG": "1"}
    env.pop("SSH_CONNECTION", None)
    sshd = subprocess.Popen(
        ["ip", "netns", "exec", pair.a, sys.executable, "-c", SSHD,
         sys.executable, "-m", "netlens", "capture", f"{pair.a}:{pair.ia}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    lines = tmp_path / "lines.txt"
    client = None
    try:
        assert sshd.stdout is not None and sshd.stderr is not None
        assert sshd.stdout.readline() == "ready\n"
        client = subprocess.Popen(
            ["ip", "netns", "exec", pair.b, sys.executable, "-c", CLIENT, str(lines)]
        )
        pid = int(sshd.stdout.readline())
        first = sshd.stderr.readline()
        assert "not capturing its own output stream (tcp 10.66.0.1:15301 <-> 10.66.0.2:" in (
            first
        ), first
        assert "capturing on" in sshd.stderr.readline()
        ping(pair.a, pair.ip_b, 5)
        os.kill(pid, signal.SIGINT)
        _out, err = sshd.communicate(timeout=60)
        assert sshd.returncode == 0, err
        client.wait(timeout=30)
    finally:
        for p in (sshd, client):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    text = lines.read_text().splitlines()
    assert [ln for ln in text if " TCP " in ln] == []
    assert len([ln for ln in text if " ICMP length 98" in ln]) == 10, text


LAB_YAML = """
name: cap
networks:
  lan: {{subnet: 10.66.{o}.0/24}}
nodes:
  web: {{network: lan, ip: 10.66.{o}.10}}
  db: {{network: lan, ip: 10.66.{o}.11}}
"""


def test_lab_nodes_named_as_wireshark_shows_them(labstate: Path, tmp_path: Path) -> None:
    """Real containers of the bundled runtime, selected by container name (their eth0):
    tshark shows each packet under `CONTAINER:eth0`, with exact counts."""
    from conftest import RUN_TAG

    from netlens_runtime import lab_ops, lab_record
    from netlens_runtime.lab_spec import load_lab

    octet = 100 + int(RUN_TAG, 16) % 150
    path = tmp_path / "cap.yaml"
    path.write_text(LAB_YAML.format(o=octet))
    spec = load_lab(str(path), name=f"cp{RUN_TAG}")
    lab_ops.lab_up(spec)
    web, db = lab_record.node_name(spec.name, "web"), lab_record.node_name(spec.name, "db")
    out = str(tmp_path / "lab.pcapng")
    proc = start([web, db, "-f", "icmp", "-w", out])
    from netlens_runtime import api

    pid = next(int(c["pid"]) for c in api.list_containers() if c["name"] == web)
    sh(f"nsenter --net=/proc/{pid}/ns/net ping -q -c 3 -i 0.2 -W 2 10.66.{octet}.11")
    rc, err = finish(proc)
    assert rc == 0, err
    names = [r[0] for r in tshark(out, "frame.interface_name")]
    assert names.count(f"{web}:eth0") == 6 and names.count(f"{db}:eth0") == 6, names
    assert f"{web}:eth0: 6 packets captured" in err
