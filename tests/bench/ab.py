"""Before/after figures for a change: two checkouts measured in the same run, interleaved.

    sudo python3 tests/bench/ab.py BEFORE_TREE AFTER_TREE [--ns 1000] [--rounds 5]

A tree is a checkout (``git worktree add --detach /tmp/before REV``) whose C
helpers are built (``python3 setup.py build_helpers --inplace`` in it). Each figure
is measured for both trees in alternation (A B A B ...), so that the load of a
shared machine falls on both alike; the script prints medians and the ratio
after/before. What it measures (the figures issue 15 asks for):

- ``dump --json`` as a whole process on N namespaces (veth to one bridge each):
  wall and CPU (helpers included);
- one counter sample of every link of the N namespaces (CPU, in a child process
  of each tree: the sampler's kept sockets, 20 samples, median);
- ``lab up`` + ``lab down`` of a 100-node lab (wall);
- ``run -d`` of one container (wall);
- the dashboard's key-to-repaint (``tests/bench/test_bench_tui.py`` of each
  tree, run by that tree's pytest).

Why a script and not a test: it compares two code bases, which one pytest
session cannot import at once. Everything it builds carries the tag ``ab<pid>``
and is removed at the end, also after a failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

TAG = f"ab{os.getpid() % 10000}"
BRIDGE = f"{TAG}br"

SAMPLE_CODE = """
import statistics, sys, time
from netlens.discovery import discover
try:
    from netlens.stats.sampler import CounterSampler
except ImportError:
    from netlens.stats.live import CounterSampler
snap = discover(with_nat=False)
s = CounterSampler()
s.reconcile(snap)
s.baseline()
cpu = []
for _ in range(20):
    c0 = time.process_time()
    s.sample()
    cpu.append(time.process_time() - c0)
s.close()
print(statistics.median(cpu))
"""


def env_for(tree: Path, state: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": f"{tree}:{tree / 'runtime'}",
        "NETLENS_STATE_DIR": str(state),
        "NETLENS_NO_LOG": "1",
    }


def timed(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[float, float]:
    """Wall and CPU seconds (the child and its helpers) of one command."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    w0 = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - w0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def build(n: int) -> None:
    lines = [f"link add {BRIDGE} type bridge", f"link set {BRIDGE} up"]
    for i in range(n):
        ns = f"{TAG}n{i}"
        lines += [
            f"netns add {ns}",
            f"link add {TAG}v{i} master {BRIDGE} type veth peer name eth0 netns {ns}",
            f"link set {TAG}v{i} up",
        ]
    batch(lines)


def teardown(n: int) -> None:
    batch([f"netns del {TAG}n{i}" for i in range(n)] + [f"link del {BRIDGE}"], force=True)


def batch(lines: list[str], force: bool = False) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".ip", delete=False) as fh:
        fh.write("\n".join(lines) + "\n")
    try:
        argv = ["ip", *(["-force"] if force else []), "-batch", fh.name]
        subprocess.run(argv, check=not force, capture_output=force)
    finally:
        os.unlink(fh.name)


def alternate(
    label: str, rounds: int, trees: list[Path], one: Callable[[Path], float]
) -> list[list[float]]:
    got: list[list[float]] = [[], []]
    for _ in range(rounds):
        for k, tree in enumerate(trees):
            got[k].append(one(tree))
    a, b = (statistics.median(x) for x in got)
    print(f"{label:<44} before {a * 1e3:9.1f} ms  after {b * 1e3:9.1f} ms  ratio {b / a:5.2f}")
    return got


def tui_repaint(tree: Path, state: Path) -> float:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-m", "bench", "-p", "no:cacheprovider",
         "tests/bench/test_bench_tui.py", "-k", "keypress_to_repaint"],
        env=env_for(tree, state), cwd=tree, capture_output=True, text=True,
    )  # fmt: skip
    m = re.search(r"key->repaint ms: median ([0-9.]+)", out.stdout)
    if not m:
        raise RuntimeError(f"no key-to-repaint figure from {tree}:\n{out.stdout[-2000:]}")
    return float(m.group(1)) / 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--ns", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--skip", default="", help="comma list of: dump,sample,lab,run,tui")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("ab.py: needs root (it builds namespaces)", file=sys.stderr)
        return 2
    trees = [args.before.resolve(), args.after.resolve()]
    skip = set(args.skip.split(","))
    state = Path(tempfile.mkdtemp(prefix=f"netlens-{TAG}-", dir="/run"))
    print(f"{TAG}: before={trees[0]} after={trees[1]} namespaces={args.ns} rounds={args.rounds}")
    try:
        build(args.ns)
        time.sleep(15)  # the new namespaces' IPv6 solicitations flood the bridge for ~15 s
        py = sys.executable
        if "dump" not in skip:
            cpu: dict[Path, list[float]] = {t: [] for t in trees}

            def dump(t: Path) -> float:
                wall, c = timed([py, "-m", "netlens", "dump", "--json"], env_for(t, state))
                cpu[t].append(c)
                return wall

            alternate(f"dump --json, {args.ns} namespaces, wall", args.rounds, trees, dump)
            a, b = (statistics.median(cpu[t]) for t in trees)
            print(f"{'dump --json, CPU (helpers included)':<44} before {a * 1e3:9.1f} ms"
                  f"  after {b * 1e3:9.1f} ms  ratio {b / a:5.2f}")  # fmt: skip
        if "sample" not in skip:

            def sample(t: Path) -> float:
                out = subprocess.run([py, "-c", SAMPLE_CODE], env=env_for(t, state),
                                     check=True, capture_output=True, text=True)  # fmt: skip
                return float(out.stdout.strip().splitlines()[-1])

            alternate(f"one sample of {args.ns} namespaces, CPU", args.rounds, trees, sample)
        teardown(args.ns)
        if "lab" not in skip:
            lab = state / "ab.yaml"
            lab.write_text(
                f"name: {TAG}lab\nnetworks:\n  n: {{subnet: 10.251.0.0/16, nat: false}}\n"
                "nodes:\n  h: {count: 100, ip: 10.251.1.1}\n"
            )

            def lab_up(t: Path) -> float:
                e = env_for(t, state)
                wall, _ = timed([py, "-m", "netlens", "lab", "up", str(lab)], e)
                subprocess.run([py, "-m", "netlens", "lab", "down", f"{TAG}lab"], env=e,
                               check=True, stdout=subprocess.DEVNULL)  # fmt: skip
                return wall

            alternate("lab up, 100 nodes, wall", max(2, args.rounds // 2), trees, lab_up)
        if "run" not in skip:
            k = [0]

            def run_d(t: Path) -> float:
                e = env_for(t, state)
                k[0] += 1
                name = f"{TAG}c{k[0]}"
                wall, _ = timed([py, "-m", "netlens", "run", "-d", "--name", name,
                                 "--network", "none", "--", "sleep", "60"], e)  # fmt: skip
                subprocess.run([py, "-m", "netlens", "rm", "-f", name], env=e,
                               check=True, stdout=subprocess.DEVNULL)  # fmt: skip
                return wall

            alternate("run -d, wall", args.rounds * 2, trees, run_d)
        if "tui" not in skip:
            alternate("TUI key-to-repaint, median", 2, trees, lambda t: tui_repaint(t, state))
    finally:
        teardown(args.ns)
        for t in trees:
            subprocess.run([sys.executable, "-m", "netlens", "gc"], env=env_for(t, state),
                           capture_output=True)  # fmt: skip
        shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
