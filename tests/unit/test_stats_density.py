"""Density on fake /proc and cgroup trees: v1, v2 and the psutil fallback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netlens.model.types import Container, Interface, Netns, Server, Snapshot
from netlens.stats.density import (
    BR_MAX_PORTS,
    DensitySampler,
    normalise_cgroup,
    parse_proc_cgroup,
)

pytestmark = pytest.mark.unit


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def fake_proc(root: Path, cgroup_lines: dict[int, str]) -> Path:
    proc = root / "proc"
    write(proc / "meminfo", "MemTotal:       4194304 kB\nMemAvailable:   1048576 kB\n")
    write(proc / "loadavg", "0.1 0.2 0.3 3/250 999\n")
    write(proc / "sys/kernel/pid_max", "32768\n")
    write(proc / "sys/fs/file-nr", "1200\t0\t100000\n")
    write(proc / "sys/net/netfilter/nf_conntrack_count", "7\n")
    write(proc / "sys/net/netfilter/nf_conntrack_max", "65536\n")
    write(proc / "sys/user/max_net_namespaces", "1000\n")
    for pid, text in cgroup_lines.items():
        write(proc / str(pid) / "cgroup", text)
    return proc


def snap(containers: tuple[Container, ...], ports: int = 3) -> Snapshot:
    itfs = [Interface(netns="netns:1", ifindex=2, name="br0", kind="bridge")]
    itfs += [
        Interface(netns="netns:1", ifindex=10 + i, name=f"v{i}", kind="veth", master=2)
        for i in range(ports)
    ]
    host = Netns(id="netns:1", inode=1, dev=4, is_host=True, name="host", interfaces=tuple(itfs))
    return Snapshot(
        server=Server("h", "6.18", "x86_64", cpu_count=2, mem_total=4 * 2**30),
        namespaces=(host, Netns(id="netns:2", inode=2, dev=4, is_host=False, name="c")),
        containers=containers,
    )


def test_parse_proc_cgroup_and_normalise() -> None:
    text = "4:memory:/lab/c1\n2:cpu,cpuacct:/lab/c1\n0::/unified/c1\n"
    assert parse_proc_cgroup(text) == {
        "memory": "/lab/c1",
        "cpu": "/lab/c1",
        "cpuacct": "/lab/c1",
        "": "/unified/c1",
    }
    assert normalise_cgroup("0::/a/b") == "/a/b"
    assert normalise_cgroup("4:memory:/a/b") == "/a/b"
    assert normalise_cgroup("/sys/fs/cgroup/memory/a/b") == "/a/b"
    assert normalise_cgroup("/sys/fs/cgroup/a/b") == "/a/b"
    assert normalise_cgroup("a/b/") == "/a/b"


def test_cgroup_v1_memory_cpu_and_limits(tmp_path: Path) -> None:
    cg = tmp_path / "cg"
    mem = cg / "memory/lab/c1"
    write(mem / "memory.usage_in_bytes", str(300 * 2**20))
    write(mem / "memory.stat", "cache 1\ntotal_inactive_file 104857600\n")
    write(mem / "memory.limit_in_bytes", str(512 * 2**20))
    write(mem / "cgroup.procs", "10\n11\n")
    write(cg / "cpuacct/lab/c1/cpuacct.usage", "1000000000")
    write(cg / "cpu/lab/c1/cpu.cfs_quota_us", "50000")
    write(cg / "cpu/lab/c1/cpu.cfs_period_us", "100000")
    proc = fake_proc(tmp_path, {10: "4:memory:/lab/c1\n1:cpuacct:/lab/c1\n0::/\n"})
    c = Container(id="t:c1", engine="netlens", name="c1", netns="netns:2", pid=10)
    d = DensitySampler(str(proc), str(cg))
    u1 = d.usage(c, now=100.0)
    assert u1.mem_bytes == 200 * 2**20  # usage minus inactive page cache
    assert u1.mem_limit == 512 * 2**20
    assert u1.cpu_limit == 0.5
    assert u1.processes == 2
    assert u1.cpu_percent is None  # needs two readings
    write(cg / "cpuacct/lab/c1/cpuacct.usage", "1500000000")  # +0.5 s CPU in 2 s
    assert d.usage(c, now=102.0).cpu_percent == pytest.approx(25.0)


def test_cgroup_v2_from_container_cgroup_field(tmp_path: Path) -> None:
    cg = tmp_path / "cg"
    write(cg / "cgroup.controllers", "cpu memory pids\n")
    base = cg / "sys/c2"
    write(base / "memory.current", "1048576")
    write(base / "memory.stat", "anon 1\ninactive_file 0\n")
    write(base / "memory.max", "max\n")
    write(base / "cpu.stat", "usage_usec 2000000\nuser_usec 1\n")
    write(base / "cpu.max", "200000 100000\n")
    write(base / "cgroup.procs", "5\n")
    proc = fake_proc(tmp_path, {})
    c = Container(id="t:c2", engine="docker", name="c2", netns="netns:2", cgroup="0::/sys/c2")
    d = DensitySampler(str(proc), str(cg))
    u = d.usage(c, now=1.0)
    assert (u.mem_bytes, u.mem_limit, u.cpu_limit, u.processes) == (1048576, None, 2.0, 1)
    write(base / "cpu.stat", "usage_usec 3000000\n")
    assert d.usage(c, now=2.0).cpu_percent == pytest.approx(100.0)


def test_psutil_fallback_for_a_bare_process(tmp_path: Path) -> None:
    cg = tmp_path / "cg"
    cg.mkdir()
    proc = fake_proc(tmp_path, {})
    c = Container(
        id="process:me", engine="process", name="me", netns="netns:2", pids=(os.getpid(),)
    )
    u = DensitySampler(str(proc), str(cg)).usage(c, now=1.0)
    assert u.processes == 1
    assert u.mem_bytes is not None and u.mem_bytes > 0


def test_server_density_and_headroom(tmp_path: Path) -> None:
    cg = tmp_path / "cg"
    cg.mkdir()
    proc = fake_proc(tmp_path, {})
    (proc / "1").mkdir()
    (proc / "2").mkdir()
    containers = (
        Container(id="host:h", engine="host", name="h", netns="netns:1"),
        Container(id="t:a", engine="netlens", name="a", netns="netns:2"),
    )
    usage, d = DensitySampler(str(proc), str(cg)).sample(snap(containers, ports=3), 1e9)
    assert set(usage) == {"t:a"}
    assert (d.containers, d.namespaces, d.bridges, d.processes) == (1, 2, 1, 2)
    assert d.mem_total == 4 * 2**30 and d.mem_used == 3 * 2**30
    assert d.containers_per_core == 0.5
    assert d.containers_per_gib == pytest.approx(0.25)
    assert d.uplink_capacity_bps == 1e9
    assert d.headroom["bridge_ports"] == (3, BR_MAX_PORTS)
    assert d.headroom["conntrack"] == (7, 65536)
    assert d.headroom["fds"] == (1200, 100000)
    assert d.headroom["pids"] == (250, 32768)
    assert d.headroom["net_namespaces"] == (2, 1000)
