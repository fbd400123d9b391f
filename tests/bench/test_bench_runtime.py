"""Benchmarks of the bundled runtime against iproute2 in the same run (marker ``bench``).

Figures are printed with their ratios to a baseline measured here and now:
"six ``ip`` commands + unshare" making the same namespace, veth, bridge port,
address and route and starting ``sleep`` in new pid/uts/ipc/mount namespaces.
Run with ``make bench`` (pytest -m bench -s). Nothing here asserts a time: the
machine is shared and noisy; the numbers are for people.
"""

from __future__ import annotations

import ipaddress
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import RUN_TAG, is_root
from runtime_host import teardown_state, wait_idle

pytestmark = pytest.mark.bench

RUNS = int(os.environ.get("NETLENS_BENCH_RUNS", "15"))
BIG = int(os.environ.get("NETLENS_BENCH_BIG", "1000"))


def _free_subnet(prefix: int) -> str:
    from netlens_runtime import ipam

    taken = ipam.host_routes()
    for second in range(150, 250):
        cand = ipaddress.IPv4Network(f"10.{second}.0.0/{prefix}")
        if not any(cand.overlaps(t) for t in taken):
            return str(cand)
    raise RuntimeError("no free subnet")


@pytest.fixture
def bench_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    if not is_root():
        pytest.skip("needs root")
    from netlens_runtime import api

    # What an installed package has: compiled modules (PYTHONDONTWRITEBYTECODE may be set).
    subprocess.run([sys.executable, "-m", "compileall", "-q", "netlens", "runtime/netlens_runtime"],
                   capture_output=True, cwd=Path(__file__).parents[2])  # fmt: skip
    # On tmpfs, like the default /run/netlens (tmp_path may be a journaling disk).
    state_dir = Path(f"/run/nr{RUN_TAG}-bench-state")
    monkeypatch.setenv("NETLENS_STATE_DIR", str(state_dir))
    net = api.create_network(
        api.NetworkSpec(name=f"nr{RUN_TAG}bn", subnet=_free_subnet(16), nat=False)
    )
    env = {**os.environ, "NETLENS_STATE_DIR": str(state_dir), "NETLENS_NO_LOG": "1"}
    try:
        yield {"net": net, "env": env}
    finally:
        left = teardown_state(state_dir)
        assert not left, left


def _baseline_one(i: int, net: dict[str, Any]) -> float:
    """Six ip commands + unshare, as one shell script; returns seconds."""
    ns = f"nr{RUN_TAG}b{i}"
    veth = f"nr{RUN_TAG}v{i}"
    addr = ipaddress.IPv4Network(net["subnet"])[60000 + i]
    script = f"""
set -e
ip netns add {ns}
ip link add {veth} type veth peer name eth0 netns {ns}
ip link set {veth} master {net["bridge"]} up
ip -n {ns} link set lo up
ip -n {ns} link set eth0 up
ip -n {ns} addr add {addr}/16 dev eth0
ip -n {ns} route add default via {net["gateway"]}
ip netns exec {ns} unshare --pid --fork --mount-proc --uts --ipc --kill-child \
    sleep infinity </dev/null >/dev/null 2>&1 &
"""
    t0 = time.perf_counter()
    subprocess.run(["bash", "-c", script], check=True)
    return time.perf_counter() - t0


def _baseline_cleanup(n: int) -> None:
    for i in range(n):
        ns = f"nr{RUN_TAG}b{i}"
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
        for pid in pids.stdout.split():
            subprocess.run(["kill", "-9", pid], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_bench_run_detached_vs_ip(bench_env: dict[str, Any]) -> None:
    net = bench_env["net"]
    ours: list[float] = []
    names = []
    from netlens_runtime import api

    for i in range(RUNS):
        name = f"nr{RUN_TAG}r{i}"
        names.append(name)
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "netlens", "run", "-d", "--name", name,
             "--network", net["name"], "--", "sleep", "infinity"],
            env=bench_env["env"], check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        ours.append(time.perf_counter() - t0)
    api.remove_containers(names)
    base: list[float] = []
    try:
        for i in range(RUNS):
            base.append(_baseline_one(i, net))
    finally:
        _baseline_cleanup(RUNS)
    startup = [_time([sys.executable, "-c", "pass"]) for _ in range(RUNS)]
    m_ours, m_base, m_py = (statistics.median(x) * 1e3 for x in (ours, base, startup))
    print(
        f"\n[bench] netlens run -d (whole process, {RUNS} runs): median {m_ours:.1f} ms; "
        f"baseline six ip + unshare: {m_base:.1f} ms; ratio {m_ours / m_base:.2f}; "
        f"of which bare python startup {m_py:.1f} ms (target <= 150 ms)"
    )


def _time(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True)
    return time.perf_counter() - t0


# Run in a fresh ``python -S -I``: cloning from the test runner (~100 MB) would
# copy its page tables per child and time that instead of the kernel (a 200 MB
# process made this "floor" 9 ms/node). The children keep their namespaces
# until the veths are in them: a child exiting at once starts the namespace's
# teardown (cleanup_net) during the veth batch, which timed that too (+0.7
# ms/node). Prints "total_s netns_s".
_FLOOR = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
from netlens_runtime import sysc
from netlens_runtime.netlink import Netlink
n, prefix = int(sys.argv[2]), sys.argv[3]
ready_r, ready_w = os.pipe()
go_r, go_w = os.pipe()
pids = []
t0 = time.perf_counter()
try:
    for _ in range(n):
        pid = sysc.clone3(sysc.CLONE_NEWPID | sysc.CLONE_NEWUTS | sysc.CLONE_NEWIPC)
        if pid == 0:
            try:
                os.close(go_w)
                sysc.unshare(sysc.CLONE_NEWNET)
                os.write(ready_w, b"r")
                os.read(go_r, 1)
            finally:
                os._exit(0)
        pids.append(pid)
    os.close(ready_w)
    got = 0
    while got < n:
        chunk = os.read(ready_r, n - got)
        if not chunk:
            sys.exit("a floor child failed")
        got += len(chunk)
    t1 = time.perf_counter()
    with Netlink() as nl:
        for i, pid in enumerate(pids):
            nl.add_veth(f"{prefix}{i}", "eth0", peer_netns_pid=pid, up=False)
        nl.commit()
    t2 = time.perf_counter()
    print(t2 - t0, t1 - t0)
finally:
    os.close(go_w)
    for pid in pids:
        os.waitpid(pid, 0)
    with Netlink() as nl:
        for i in range(n):
            nl.del_link(f"{prefix}{i}")
        nl.commit(ignore=(19,))
"""


def _kernel_floor(n: int) -> tuple[float, float]:
    """Per node: n children each unsharing a netns (in parallel), then one batch
    of n veths created with their peer as eth0 straight in those namespaces.

    What any runtime pays the kernel here and now for the namespaces and links
    alone (no pid-1 exec, no mounts, no addresses); returns (total, netns part).
    """
    wait_idle()
    root = str(Path(__file__).parents[2] / "runtime")
    out = subprocess.run(
        [sys.executable, "-S", "-I", "-c", _FLOOR, root, str(n), f"nr{RUN_TAG}f"],
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout.split()  # fmt: skip
    return float(out[0]) / n, float(out[1]) / n


def test_bench_batch_100(bench_env: dict[str, Any]) -> None:
    from netlens_runtime import api

    net = bench_env["net"]
    per_node = []
    wait_idle()
    for rep in range(3):
        specs = [api.ContainerSpec(name=f"nr{RUN_TAG}x{rep}-{i}", network=net["name"])
                 for i in range(100)]  # fmt: skip
        t0 = time.perf_counter()
        api.create_containers(specs)
        per_node.append((time.perf_counter() - t0) / 100)
        api.remove_containers([s.name for s in specs])
        _wait_teardown([s.name for s in specs])
        wait_idle()
    base = []
    try:
        for i in range(20):
            base.append(_baseline_one(i, net))
    finally:
        _baseline_cleanup(20)
    floors = [_kernel_floor(100) for _ in range(3)]
    floor = statistics.median(f for f, _ in floors) * 1e3
    floor_ns = statistics.median(n for _, n in floors) * 1e3
    ours, theirs = statistics.median(per_node) * 1e3, statistics.median(base) * 1e3
    print(
        f"\n[bench] create_containers(100): median {ours:.2f} ms/node over 3 reps "
        f"(target <= 5); ip-commands baseline {theirs:.1f} ms/node; speed-up {theirs / ours:.1f}x; "
        f"kernel floor (netns + veth into it, no exec, no mounts; median of 3) {floor:.2f} "
        f"ms/node, of which netns {floor_ns:.2f}; ours / floor {ours / floor:.2f}"
    )


def _wait_teardown(names: list[str], timeout: float = 60.0) -> float:
    """Wait until the kernel has torn down these containers' namespaces (veths gone).

    Namespace cleanup runs asynchronously and holds the rtnl lock; a benchmark
    started during the previous one's teardown measures the teardown.
    """
    from netlens_runtime import names as rnames
    from netlens_runtime import state

    links = {rnames.host_veth_name(n, state.scope()) for n in names}
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if not links & set(os.listdir("/sys/class/net")):
            break
        time.sleep(0.05)
    return time.perf_counter() - t0


def _meminfo() -> dict[str, int]:
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = int(value.split()[0]) * 1024
    return out


_KERNEL = ("Slab", "KernelStack", "PageTables", "Percpu", "VmallocUsed")


def _mem_available() -> int:
    return _meminfo()["MemAvailable"]


def _kernel_mem() -> int:
    """Kernel memory that namespaces, links, mounts and processes use (host-wide)."""
    info = _meminfo()
    return sum(info.get(k, 0) for k in _KERNEL)


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def test_bench_1000_up_down_and_memory(bench_env: dict[str, Any]) -> None:
    from netlens_runtime import api

    net = bench_env["net"]
    specs = [api.ContainerSpec(name=f"nr{RUN_TAG}k{i}", network=net["name"]) for i in range(BIG)]
    wait_idle()
    before = _mem_available()
    kbefore = _kernel_mem()
    t0 = time.perf_counter()
    c0 = time.process_time()
    recs = api.create_containers(specs)
    up = time.perf_counter() - t0
    parent_cpu = time.process_time() - c0
    time.sleep(2)
    after = _mem_available()
    kernel = _kernel_mem() - kbefore
    pss = 0
    for rec in recs:
        pss += _pss(rec["pid"])
        for child in Path(f"/proc/{rec['pid']}/task/{rec['pid']}/children").read_text().split():
            pss += _pss(int(child))
    t0 = time.perf_counter()
    api.remove_containers([s.name for s in specs])
    down = time.perf_counter() - t0
    teardown = _wait_teardown([s.name for s in specs])
    total = before - after
    print(
        f"\n[bench] {BIG} containers: up {up:.2f} s ({up / BIG * 1e3:.2f} ms/node, "
        "target <= 10 s), "
        f"down {down:.2f} s (target <= 10 s); host memory used {total / 2**20:.0f} MiB "
        f"({total / BIG / 1024:.0f} KiB/container; target <= 1024 MiB; host-wide, so other "
        f"users' activity shows too); kernel (slab, stacks, page tables) "
        f"{kernel / BIG / 1024:.0f} KiB/container; user-space PSS of tini + sleep "
        f"{pss / 2**20:.1f} MiB "
        f"({pss / BIG / 1024:.0f} KiB/container); creating process CPU "
        f"{parent_cpu / BIG * 1e3:.2f} ms/node; kernel namespace teardown after down "
        f"{teardown:.2f} s more"
    )
