"""Benchmark: discovery of 1000 namespaces against an `ip` loop in the same run.

The benchmark builds N namespaces (default 1000, ``NETLENS_BENCH_NS`` to change),
each with a veth to one bridge, ``lo`` and ``eth0`` up and an IPv4 address, the
shape of a host full of containers. It removes all of it afterwards, also on
failure. discover() runs in a fresh subprocess so its peak RSS is its own.

Targets (from the issue): discover() <= 0.5 s wall, >= 10x faster than
``ip -n NS -j link`` + ``ip -n NS -j addr`` over the same namespaces, peak RSS
< 200 MB.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import RUN_TAG, is_root, settle_kernel, sh

from netlens.discovery import builders as nl
from netlens.kernel import consts, nsenter, wire

pytestmark = pytest.mark.bench

N = int(os.environ.get("NETLENS_BENCH_NS", "1000"))
PREFIX = f"nd{RUN_TAG}m"

RTM_NEWLINK = 16
RTM_NEWADDR = 20
NLM_F_ACK = 0x4
NLM_F_CREATE = 0x400
NLM_F_EXCL = 0x200


def _ack(sock: socket.socket, msg: bytes) -> None:
    sock.send(msg)
    data = sock.recv(65536)
    err = struct.unpack_from("=i", data, 16)[0]
    if err < 0:
        raise OSError(-err, os.strerror(-err))


def _configure(sock: socket.socket, i: int) -> None:
    """Inside one namespace: lo and eth0 up, 10.x.y.z/16 on eth0 (raw rtnetlink)."""
    links = nl.parse_links(wire.dump(sock, "link"))
    eth0 = next(r.ifindex for r in links if r.name == "eth0")
    for idx in (1, eth0):
        body = struct.pack("=BxHiII", 0, 0, idx, consts.IFF_UP, consts.IFF_UP)
        _ack(sock, wire.message(RTM_NEWLINK, consts.NLM_F_REQUEST | NLM_F_ACK, 1, body))
    addr = bytes([10, 200 + i // 65536 % 50, i // 256 % 256, i % 256 or 1])
    body = struct.pack("=BBBBI", socket.AF_INET, 8, 0, 0, eth0)
    body += wire.nla(2, addr) + wire.nla(1, addr)
    flags = consts.NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    _ack(sock, wire.message(RTM_NEWADDR, flags, 2, body))


def _batch(lines: list[str], check: bool = True) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".ip", delete=False) as fh:
        fh.write("\n".join(lines) + "\n")
        path = fh.name
    try:
        force = "" if check else "-force "
        sh(f"ip {force}-batch {path}", check=check)
    finally:
        os.unlink(path)


def build(prefix: str, n: int) -> list[str]:
    """N namespaces ``PREFIX<i>``, each with a veth ``PREFIX v<i>`` to bridge ``PREFIX br``."""
    names = [f"{prefix}{i}" for i in range(n)]
    bridge = f"{prefix}br"
    sh(f"ip link add {bridge} type bridge && ip link set {bridge} up")
    lines: list[str] = []
    for i, ns in enumerate(names):
        lines.append(f"netns add {ns}")
        lines.append(f"link add {prefix}v{i} master {bridge} type veth peer name eth0 netns {ns}")
        lines.append(f"link set {prefix}v{i} up")
    _batch(lines)
    socks = nsenter.open_netlink_sockets([f"/run/netns/{ns}" for ns in names])
    try:
        for i, sock in enumerate(socks):
            assert sock is not None
            _configure(sock, i)
    finally:
        for sock in socks:
            if sock is not None:
                sock.close()
    return names


def teardown(prefix: str, n: int) -> None:
    """Remove what :func:`build` made (also a partial build)."""
    _batch([f"netns del {prefix}{i}" for i in range(n)], check=False)
    sh(f"ip link del {prefix}br", check=False)


@pytest.fixture(scope="module")
def mass_lab() -> Iterator[list[str]]:
    if not is_root():
        pytest.skip("needs root")
    try:
        names = build(PREFIX, N)
        waited = settle_kernel()  # the new interfaces' IPv6 timers (see conftest)
        print(f"\n[bench discovery] waited {waited:.1f} s for the kernel to settle after the build")
        yield names
    finally:
        teardown(PREFIX, N)


_PROBE = r"""
import json, os, sys, time
t0 = time.perf_counter()
from netlens.discovery import discover
imported = time.perf_counter() - t0
prefix, reps, helper = sys.argv[1], int(sys.argv[2]), sys.argv[3]
os.environ["NETLENS_DISCOVERY_HELPER"] = helper


def timed(fn):
    walls, cpus = [], []
    for _ in range(reps):
        c0 = os.times()
        t = time.perf_counter()
        snap = fn()
        walls.append(time.perf_counter() - t)
        c1 = os.times()
        cpus.append(sum(c1[:4]) - sum(c0[:4]))  # user+sys, helper process included
    return snap, walls, cpus


snap, walls, cpus = timed(discover)
mine = [ns for ns in snap.namespaces if ns.name.startswith(prefix)]
paired = sum(1 for ns in mine for i in ns.interfaces if i.kind == "veth" and i.peer is not None)


def only_mine():
    # The same walk restricted to the host and the bench's namespaces: the issue's
    # 1000-namespace host, even while other engineers' namespaces share this one.
    from netlens.discovery.nsfind import find_namespaces
    from netlens.discovery.resolve import build_snapshot
    from netlens.discovery.live_source import LiveNetlink, LiveProc

    handles = [
        h for h in find_namespaces() if h.is_host or any(n.startswith(prefix) for n in h.names)
    ]
    src = LiveNetlink()
    try:
        return build_snapshot(handles, src, LiveProc())
    finally:
        src.close()


snap2, walls2, cpus2 = timed(only_mine)
hwm = 0
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        hwm = int(line.split()[1]) * 1024
print(json.dumps({"walls": walls, "cpus": cpus, "import": imported, "namespaces": len(mine),
                  "paired": paired, "peak_rss": hwm, "all_namespaces": len(snap.namespaces),
                  "interfaces": sum(1 for _ in snap.interfaces()),
                  "mine_walls": walls2, "mine_cpus": cpus2,
                  "mine_namespaces": len(snap2.namespaces)}))
"""

_DUMP = r"""
import sys
from netlens.cli import main
rc = main(["dump", "--json", "-o", "/dev/null"])
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print(int(line.split()[1]) * 1024, file=sys.stderr)
sys.exit(rc)
"""


def _probe(reps: int, helper: bool) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, PREFIX, str(reps), "1" if helper else "0"],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _dump_json() -> tuple[float, int] | None:
    """Wall time of ``netlens dump --json`` including interpreter start, and its
    peak RSS; None while that command is not built."""
    t = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-c", _DUMP],
        capture_output=True,
        text=True,
        env={**os.environ, "NETLENS_NO_LOG": "1"},
    )
    wall = time.perf_counter() - t
    if res.returncode != 0:
        return None
    return wall, int(res.stderr.strip().splitlines()[-1])


def _ms(xs: list[float]) -> str:
    return ", ".join(f"{x * 1000:.0f}" for x in xs)


def test_discover_1000_namespaces(mass_lab: list[str]) -> None:
    direct = _probe(3, helper=False)
    res = _probe(5, helper=True)
    for r in (direct, res):
        assert r["namespaces"] == len(mass_lab)
        assert r["paired"] == len(mass_lab)
    dump = _dump_json()

    t = time.perf_counter()
    for ns in mass_lab:
        subprocess.run(["ip", "-n", ns, "-j", "link"], check=True, capture_output=True)
        subprocess.run(["ip", "-n", ns, "-j", "addr"], check=True, capture_output=True)
    ip_loop = time.perf_counter() - t

    walls: list[float] = res["walls"]
    median = statistics.median(walls)
    mine: list[float] = res["mine_walls"]
    mine_median = statistics.median(mine)
    peak = int(res["peak_rss"])
    print(
        f"\n[bench discovery] bench namespaces={len(mass_lab)}, on the host now:"
        f" {res['all_namespaces']} namespaces, {res['interfaces']} interfaces"
        f" (load average {os.getloadavg()[0]:.1f})"
        f"\n  discover() of the whole host: median {median * 1000:.0f} ms"
        f" (runs {_ms(walls)} ms; CPU incl. helper {_ms(res['cpus'])} ms)"
        f"\n  same without the helper process: runs {_ms(direct['walls'])} ms"
        f"\n  host + the {res['mine_namespaces'] - 1} bench namespaces only: median"
        f" {mine_median * 1000:.0f} ms (runs {_ms(mine)} ms; CPU {_ms(res['mine_cpus'])} ms)"
        f"\n  ip loop (ip -n NS -j link + ip -n NS -j addr over the bench namespaces):"
        f" {ip_loop * 1000:.0f} ms"
        f"\n  ratio ip loop / discover() of the whole host: {ip_loop / median:.1f}x;"
        f" / host + bench namespaces: {ip_loop / mine_median:.1f}x"
        f"\n  peak RSS of the discovering process: {peak / 2**20:.1f} MB"
    )
    if dump is not None:
        print(
            f"  netlens dump --json (interpreter start included): {dump[0] * 1000:.0f} ms,"
            f" peak RSS {dump[1] / 2**20:.1f} MB, ratio ip loop / dump {ip_loop / dump[0]:.1f}x"
        )
    # Verdicts are printed, not asserted: a shared, noisy machine makes a timed
    # assertion flaky, and the figures are for people. The 0.5 s target is for a
    # host with 1000 namespaces: judged on the walk over the bench's namespaces,
    # since other tests may add their own to this host.
    print(
        f"  verdicts: >= 10x the ip loop: {_met(ip_loop / median >= 10)};"
        f" peak RSS < 200 MB: {_met(peak < 200 * 2**20)};"
        f" 1000 namespaces <= 0.5 s: {_met(mine_median <= 0.5)}"
    )


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


if __name__ == "__main__":  # manual use while profiling: build|teardown PREFIX N
    {"build": build, "teardown": teardown}[sys.argv[1]](sys.argv[2], int(sys.argv[3]))
