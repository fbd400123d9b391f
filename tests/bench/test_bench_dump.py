"""Benchmark: `netlens dump --json > /dev/null` as a whole process vs iproute2.

Builds N namespaces (env NETLENS_BENCH_NS, default 1000), each with a veth to
one bridge and an address, using ``ip -batch`` files (one process for the host
side) and one ``ip -n NS -batch -`` per namespace; removes all of it afterwards,
pass or fail. Then, in the same run:

- netlens: the installed ``netlens`` console script, interpreter start included,
  stdout to /dev/null, wall time and peak RSS of the child (best and median of
  NETLENS_BENCH_REPEAT runs, default 3);
- baseline: ``ip -n NS -j link`` + ``ip -n NS -j addr`` for each of the N
  namespaces, sequentially (what a shell script would do);
- serialization alone, in-process: ``dumps`` (writes the JSON text directly),
  ``snapshot_to_dict`` (+ ``json.dumps``) and ``dataclasses.asdict`` on the same
  discovered snapshot;
- the discovery helper: the whole dump with the C walker (netlens-walk) against
  the Python helper (``NETLENS_WALK_HELPER=0``), interleaved; and each helper
  alone over the N namespaces (enter, dump, NAT probe, frames to /dev/null).

Nothing is asserted about time (the VM is shared); figures and ratios are
printed for `make bench`. The product target is 0.5 s wall for 1000 namespaces.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

import pytest
from conftest import RUN_TAG, is_root, settle_kernel, sh

pytestmark = pytest.mark.bench

N = int(os.environ.get("NETLENS_BENCH_NS", "1000"))
REPEAT = int(os.environ.get("NETLENS_BENCH_REPEAT", "3"))
PREFIX = f"nm{RUN_TAG}"
BRIDGE = f"{PREFIX}br"
TARGET_S = 0.5

# Runs one command and reports its wall time, peak RSS and CPU time (user +
# system, helper processes included), so that they are those of this child
# only (RUSAGE_CHILDREN of a fresh process).
_MEASURE = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "w = time.perf_counter() - t\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(rc, w, u.ru_maxrss, u.ru_utime + u.ru_stime)\n"
)


def ns_name(i: int) -> str:
    return f"{PREFIX}{i:05d}"


def _batch(lines: list[str], netns: str | None = None) -> None:
    with tempfile.NamedTemporaryFile("w", prefix="nm-bench-", suffix=".ip") as fh:
        fh.write("\n".join(lines) + "\n")
        fh.flush()
        pre = f"ip -n {netns}" if netns else "ip"
        sh(f"{pre} -force -batch {fh.name}")


@pytest.fixture(scope="module")
def namespaces() -> Iterator[list[str]]:
    if not is_root():
        pytest.skip("needs root")
    names = [ns_name(i) for i in range(N)]
    try:
        t0 = time.perf_counter()
        host = [f"link add {BRIDGE} type bridge", f"link set {BRIDGE} up"]
        for i, ns in enumerate(names):
            host += [
                f"netns add {ns}",
                f"link add {PREFIX}h{i:05d} type veth peer name eth0 netns {ns}",
                f"link set {PREFIX}h{i:05d} master {BRIDGE} up",
            ]
        _batch(host)
        for i, ns in enumerate(names):
            subprocess.run(
                ["ip", "-n", ns, "-batch", "-"],
                input=(
                    "link set lo up\nlink set eth0 up\n"
                    f"addr add 10.{128 + i // 65536}.{i // 256 % 256}.{i % 256}/9 dev eth0\n"
                ),
                text=True,
                check=True,
                capture_output=True,
            )
        took = time.perf_counter() - t0
        print(f"\n[bench] built {N} namespaces + veths + 1 bridge in {took:.1f} s")
        waited = settle_kernel()
        print(f"[bench] waited {waited:.1f} s for the new interfaces' IPv6 timers to calm down")
        yield names
    finally:
        # veth host ends die with their namespaces; then the bridge
        made = [f"netns del {ns}" for ns in names if os.path.exists(f"/run/netns/{ns}")]
        if made:
            _batch(made)
        sh(f"ip link del {BRIDGE}", check=False)


def _netlens_argv() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "netlens")
    if os.access(script, os.X_OK):
        return [script]
    return [sys.executable, "-m", "netlens"]


def _measure(argv: list[str]) -> tuple[float, int]:
    wall, rss, _cpu = _measure_cpu(argv)
    return wall, rss


def _measure_cpu(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, float]:
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, *argv],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "NETLENS_NO_LOG": "1", **(env or {})},
    )
    rc, wall, rss, cpu = out.stdout.split()
    assert rc == "0", f"{argv} exited {rc}"
    return float(wall), int(rss), float(cpu)


def test_bench_dump_json(namespaces: list[str]) -> None:
    argv = [*_netlens_argv(), "dump", "--json"]
    # correctness first (untimed): every namespace we built is in the dump
    doc = json.loads(
        subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "NETLENS_NO_LOG": "1"},
        ).stdout
    )
    ours = [n for n in doc["namespaces"] if any(x.startswith(PREFIX) for x in n["names"])]
    assert len(ours) == N
    assert all(len(n["interfaces"]) == 2 for n in ours)
    total_ns = len(doc["namespaces"])

    runs = [_measure_cpu(argv) for _ in range(REPEAT)]
    walls = [w for w, _, _ in runs]
    rss_kib = max(r for _, r, _ in runs)
    cpus = [c for _, _, c in runs]
    start_only, _ = _measure([sys.executable, "-c", "pass"])

    t0 = time.perf_counter()
    for ns in namespaces:
        subprocess.run(["ip", "-n", ns, "-j", "link"], stdout=subprocess.DEVNULL, check=True)
        subprocess.run(["ip", "-n", ns, "-j", "addr"], stdout=subprocess.DEVNULL, check=True)
    base = time.perf_counter() - t0

    best, med = min(walls), statistics.median(walls)
    print(f"[bench] netlens dump --json: {total_ns} namespaces on the host ({N} built here)")
    print(
        f"[bench]   wall best {best:.3f} s, median {med:.3f} s over {REPEAT} runs "
        f"(target {TARGET_S} s: {'met' if best <= TARGET_S else 'NOT met'}); "
        f"bare interpreter start {start_only:.3f} s"
    )
    size_mb = len(json.dumps(doc)) / 1e6
    print(
        f"[bench]   CPU user+sys (helper included) best {min(cpus):.3f} s, median "
        f"{statistics.median(cpus):.3f} s; peak RSS {rss_kib / 1024:.1f} MiB; "
        f"output {size_mb:.1f} MB"
    )
    print(
        f"[bench] baseline ip -n NS -j link + addr x {N}: {base:.3f} s "
        f"({base / N * 1000:.2f} ms per namespace)"
    )
    per_ns = base / N
    print(
        f"[bench] ratio baseline / netlens (best): {base / best:.1f}x for the {N} built here; "
        f"{per_ns * total_ns / best:.1f}x with the baseline scaled to all {total_ns} dumped"
    )


_PHASES = """
import json, os, time
t0 = time.perf_counter()
import netlens.cli, netlens.commands.dump
from netlens.discovery import discover
from netlens.model.serialize import dumps
t1 = time.perf_counter()
snap = discover()
t2 = time.perf_counter()
text = dumps(snap)
t3 = time.perf_counter()
with open(os.devnull, "w") as fh:
    fh.write(text)
t4 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "discover": t2 - t1, "serialize": t3 - t2, "write": t4 - t3}))
"""


def test_bench_phases_and_serialization(namespaces: list[str]) -> None:
    """Where the dump's time goes (fresh process), and the writer vs dataclasses.asdict."""
    from netlens.model.serialize import dumps, loads, snapshot_to_dict

    env = {**os.environ, "NETLENS_NO_LOG": "1"}
    phases = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", _PHASES], capture_output=True, text=True, check=True, env=env
            ).stdout
        )
        for _ in range(REPEAT)
    ]
    best_phase = {k: min(p[k] for p in phases) for k in phases[0]}
    print(
        "\n[bench] phases of one dump, best of",
        REPEAT,
        "fresh processes (ms): " + ", ".join(f"{k} {v * 1000:.0f}" for k, v in best_phase.items()),
    )

    text = subprocess.run(
        [*_netlens_argv(), "dump", "--json"], capture_output=True, text=True, check=True, env=env
    ).stdout
    t0 = time.perf_counter()
    snap = loads(text)
    t_load = time.perf_counter() - t0

    def best(f: Callable[[], object]) -> float:
        times = []
        for _ in range(REPEAT):
            t = time.perf_counter()
            f()
            times.append(time.perf_counter() - t)
        return min(times)

    writer = best(lambda: dumps(snap))
    fast_dict = best(lambda: snapshot_to_dict(snap))
    fast_json = best(lambda: json.dumps(snapshot_to_dict(snap), separators=(",", ":")))
    slow_dict = best(lambda: dataclasses.asdict(snap))
    n_itf = sum(len(n.interfaces) for n in snap.namespaces)
    print(
        f"[bench] serialization of {len(snap.namespaces)} namespaces ({n_itf} interfaces, "
        f"{len(text) / 1e6:.1f} MB): dumps (the text writer) {writer * 1000:.0f} ms; "
        f"snapshot_to_dict {fast_dict * 1000:.0f} ms, with "
        f"json.dumps {fast_json * 1000:.0f} ms; dataclasses.asdict alone "
        f"{slow_dict * 1000:.0f} ms ({slow_dict / fast_dict:.1f}x slower); "
        f"loads (netlens view path) {t_load * 1000:.0f} ms"
    )


def _stats(xs: list[float]) -> str:
    return f"best {min(xs):.3f} s, median {statistics.median(xs):.3f} s"


def test_bench_walker_vs_python_helper(namespaces: list[str]) -> None:
    """`netlens dump --json` with netlens-walk, then with the Python helper, A B A B."""
    from netlens.kernel import walker

    if walker.find() is None:
        pytest.skip("netlens-walk is not built (no C compiler at make setup)")
    argv = [*_netlens_argv(), "dump", "--json"]
    runs: dict[str, list[tuple[float, float]]] = {"walker": [], "python": []}
    for _ in range(REPEAT):
        for name, env in (("walker", {}), ("python", {"NETLENS_WALK_HELPER": "0"})):
            wall, _rss, cpu = _measure_cpu(argv, env)
            runs[name].append((wall, cpu))
    print(f"\n[bench] discovery helper, {REPEAT} interleaved runs each of netlens dump --json:")
    _report(runs, "CPU (all processes)", "wall", 0)


def _report(runs: dict[str, list[tuple[float, float]]], cpu_label: str, ratio: str, i: int) -> None:
    """Print each variant's wall and CPU figures, then python / walker for
    ``ratio`` (the ``i``-th figure of each run)."""
    for name, got in runs.items():
        walls, cpus = [w for w, _ in got], [c for _, c in got]
        print(f"[bench]   {name:7s} wall {_stats(walls)}; {cpu_label} {_stats(cpus)}")
    w = [run[i] for run in runs["walker"]]
    p = [run[i] for run in runs["python"]]
    print(
        f"[bench]   python / walker {ratio}: best {min(p) / min(w):.2f}x, "
        f"median {statistics.median(p) / statistics.median(w):.2f}x"
    )


# One helper alone over every namespace, frames to /dev/null: the C walker as a
# child (its CPU is RUSAGE_CHILDREN), or serve.serve in this process (it enters
# the namespaces itself: a throwaway process). argv: variant mode path...
_ALONE = """
import os, resource, subprocess, sys, time
from netlens.kernel import nsenter, walker, wire
from netlens.kernel import serve
from netlens.kernel.decode import DECODERS
variant, mode, *paths = sys.argv[1:]
nsenter.raise_fd_limit(len(paths) + 256)
fds = [nsenter.open_netns(p) for p in paths]
assert all(fd is not None for fd in fds)
out = os.open(os.devnull, os.O_WRONLY)
parts = mode.split("+")
if variant == "walker":
    argv = [walker.find(), ",".join(wire.FIRST_ROUND), mode, *map(str, fds)]
    t = time.perf_counter()
    subprocess.run(argv, pass_fds=fds, stdout=out, check=True)
    wall = time.perf_counter() - t
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = u.ru_utime + u.ru_stime
else:
    t = time.perf_counter()
    c = time.process_time()
    serve.serve(wire.FIRST_ROUND, fds, out, dict(DECODERS), enter=True,
               nat="nat" in parts, legacy="legacy" in parts)
    wall = time.perf_counter() - t
    cpu = time.process_time() - c
print(wall, cpu)
"""


def test_bench_helpers_alone(namespaces: list[str]) -> None:
    """netlens-walk against serve.serve, each alone over the N namespaces."""
    from netlens.discovery.live_source import _legacy_present
    from netlens.kernel import walker

    if walker.find() is None:
        pytest.skip("netlens-walk is not built (no C compiler at make setup)")
    mode = "enter+nat+legacy" if _legacy_present() else "enter+nat"
    paths = [f"/run/netns/{ns}" for ns in namespaces]
    runs: dict[str, list[tuple[float, float]]] = {"walker": [], "python": []}
    for _ in range(REPEAT):
        for name in runs:
            out = subprocess.run(
                [sys.executable, "-c", _ALONE, name, mode, *paths],
                capture_output=True,
                text=True,
                check=True,
            )
            wall, cpu = map(float, out.stdout.split())
            runs[name].append((wall, cpu))
    print(f"\n[bench] one helper alone over {N} namespaces ({mode}, frames to /dev/null):")
    _report(runs, "CPU", "CPU", 1)
