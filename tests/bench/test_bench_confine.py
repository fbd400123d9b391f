"""Benchmark: what the seccomp filter costs, measured against the same build without it.

Confined (the default profile) and unconfined (``seccomp=unconfined``) are run
interleaved in the same run, so the difference is the filter: compiling it
(once, then cached), and loading it in every container's PID 1 before exec.
Figures are printed with wall time and CPU time (our process and its children,
plus each container's PID 1 from /proc/PID/schedstat: the load happens there);
CPU time is the steadier of the two on a shared machine. Nothing is asserted
against a clock. The issue's budget: at most 0.3 ms per container.
Run with ``python3 -m pytest -m bench -s -q tests/bench/test_bench_confine.py``.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import RUN_TAG
from runtime_host import wait_idle

pytestmark = pytest.mark.bench

NODES = int(os.environ.get("NETLENS_BENCH_CONFINE_NODES", "100"))
ROUNDS = int(os.environ.get("NETLENS_BENCH_CONFINE_ROUNDS", "5"))
RUNS = int(os.environ.get("NETLENS_BENCH_RUNS", "15"))
OCTET = 100 + (int(RUN_TAG, 16) + 37) % 100
MODES = ("default", "unconfined")


def _cpu() -> float:
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def _pid1_cpu(recs: list[dict[str, Any]]) -> float:
    total = 0
    for rec in recs:
        with open(f"/proc/{rec['pid']}/schedstat") as fh:
            total += int(fh.read().split()[0])
    return total / 1e9


def test_bench_compile_and_cache(labstate: Path) -> None:
    from netlens_runtime import names, seccomp

    caps = names.cap_mask([])
    raw = seccomp.read_profile("default")
    t0 = time.perf_counter()
    prog = seccomp.compile_profile(raw, "default", caps)
    first = time.perf_counter() - t0
    compiles = []
    for _ in range(5):
        t0 = time.perf_counter()
        seccomp.compile_profile(raw, "default", caps)
        compiles.append(time.perf_counter() - t0)
    seccomp.program("default", caps)  # into the state directory's cache
    disk, memory = [], []
    for _ in range(20):
        seccomp._programs.clear()
        seccomp._chosen.clear()
        seccomp._profiles.clear()
        seccomp._library.clear()
        t0 = time.perf_counter()
        seccomp.program("default", caps)
        disk.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        seccomp.program("default", caps)
        memory.append(time.perf_counter() - t0)
    print(
        f"\n[bench] default profile: {len(prog) // 8} BPF instructions; compile"
        f" {first * 1e3:.1f} ms the first time in a process (loads libseccomp),"
        f" {statistics.median(compiles) * 1e3:.1f} ms after; cached: from the state directory"
        f" {statistics.median(disk) * 1e3:.3f} ms (what `netlens run` pays),"
        f" from memory {statistics.median(memory) * 1e6:.1f} us (each node of a batch)"
    )


def _lab_round(mode: str, name: str) -> tuple[float, float, float]:
    """(wall s, CPU s, container PID 1s' CPU s) of lab up of NODES nodes in ``mode``."""
    from netlens_runtime import api, lab_ops
    from netlens_runtime.lab_spec import load_lab

    opt = "" if mode == "default" else "defaults: {security_opt: [seccomp=unconfined]}\n"
    text = (
        f"name: {name}\n{opt}"
        f"networks:\n  n: {{subnet: 10.{OCTET}.0.0/16, nat: false}}\n"
        f"nodes:\n  h: {{count: {NODES}, ip: 10.{OCTET}.1.1}}\n"
    )
    spec = load_lab(f"{name}.yaml", text=text)
    wait_idle()
    c0, t0 = _cpu(), time.perf_counter()
    lab_ops.lab_up(spec)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    recs = [c for c in api.list_containers() if c["labels"].get("netlens.lab") == name]
    assert len(recs) == NODES and all(c["seccomp"] == mode for c in recs)
    pid1 = _pid1_cpu(recs)
    assert lab_ops.lab_down(name) == []
    return wall, cpu + pid1, pid1


def test_bench_lab_up_confined_vs_unconfined(labstate: Path) -> None:
    results: dict[str, list[tuple[float, float, float]]] = {m: [] for m in MODES}
    for r in range(ROUNDS):
        for mode in MODES if r % 2 == 0 else MODES[::-1]:
            results[mode].append(_lab_round(mode, f"nl{RUN_TAG}c{mode[0]}{r}"))
    med = {
        m: [statistics.median(x[i] for x in results[m]) / NODES * 1e3 for i in range(3)]
        for m in MODES
    }
    print(f"\n[bench] lab up of {NODES} nodes, median of {ROUNDS} rounds each, interleaved:")
    for m in MODES:
        wall, cpu, pid1 = med[m]
        print(f"  {m:10}: {wall:.2f} ms/node wall, CPU {cpu:.2f} ms/node (PID 1s {pid1:.3f})")
    d = [a - b for a, b in zip(med["default"], med["unconfined"], strict=True)]
    print(
        f"  the filter: {d[0]:+.3f} ms/node wall, {d[1]:+.3f} ms/node CPU,"
        f" {d[2]:+.3f} ms/node in the PID 1s (budget: 0.3 ms per container)"
    )


def test_bench_run_detached_confined_vs_unconfined(labstate: Path) -> None:
    from netlens_runtime import api

    net = api.create_network(
        api.NetworkSpec(name=f"nr{RUN_TAG}cb", subnet=f"10.{OCTET}.0.0/16", nat=False)
    )
    env = {**os.environ, "NETLENS_NO_LOG": "1"}
    wall: dict[str, list[float]] = {m: [] for m in MODES}
    cpu: dict[str, list[float]] = {m: [] for m in MODES}
    made = []
    for i in range(RUNS):
        for mode in MODES if i % 2 == 0 else MODES[::-1]:
            name = f"nr{RUN_TAG}c{mode[0]}{i}"
            made.append(name)
            argv = [sys.executable, "-m", "netlens", "run", "-d", "--name", name,
                    "--network", net["name"], "--security-opt", f"seccomp={mode}",
                    "--", "sleep", "infinity"]  # fmt: skip
            if mode == "default":
                del argv[-5:-3]  # no option: the default profile
            c0, t0 = _cpu(), time.perf_counter()
            subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
            wall[mode].append(time.perf_counter() - t0)
            rec = api.get_container(name)
            cpu[mode].append(_cpu() - c0 + _pid1_cpu([rec]))
            assert rec["seccomp"] == mode
    api.remove_containers(made)
    print(f"\n[bench] netlens run -d (whole process), median of {RUNS} each, interleaved:")
    for m in MODES:
        print(
            f"  {m:10}: {statistics.median(wall[m]) * 1e3:.1f} ms wall,"
            f" CPU {statistics.median(cpu[m]) * 1e3:.1f} ms (ours + its PID 1)"
        )
    dw, dc = (
        statistics.median(x["default"]) - statistics.median(x["unconfined"]) for x in (wall, cpu)
    )
    print(f"  the filter: {dw * 1e3:+.2f} ms wall, {dc * 1e3:+.2f} ms CPU")
