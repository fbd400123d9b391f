"""Benchmark: ``lab up`` of a 100-node containerlab topology, against the same lab as
native YAML and against Mininet with the same shape, in the same run.

The shape: N linux nodes in a ring, node ``k``'s ``eth1`` cabled to node
``k+1``'s ``eth2`` (N point-to-point veths), each cable a /30 in 10.OCTET.0.0/16
set on both ends; no management network (``network-mode: none``), so nothing but
the nodes' own namespaces holds an address.

- containerlab file: ``kind: linux`` nodes, ``links[].endpoints``, addresses by
  ``exec: ip addr add`` (containerlab's way), no image (the host's read-only
  root, as the native lab);
- native lab file: the same links with ``addr``/``peer_addr``;
- Mininet (Debian's ``mininet`` package, run by Debian's Python in
  ``mininet_ring.py``): hosts and ``addLink`` with the same addresses, no switch,
  no controller (no Open vSwitch needed). Skipped with a line saying why when
  Debian's Python cannot import ``mininet``.

Each round builds and removes each of the three in turn (the order rotates by
round, each start waits for an idle machine), timed from the call to all nodes up
and configured (``lab_up`` returns after the ``exec`` commands ran; Mininet's
``build``+``start`` after its ``ifconfig`` runs), then teardown. Medians over
``NETLENS_BENCH_CLAB_ROUNDS`` rounds (default 3), ratios, CPU seconds (this
process and its reaped children) and the load average are printed; nothing is
asserted against a clock. Everything is removed also on failure: the labs by the
``labstate`` fixture, Mininet's hosts and links by the driver and again here.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import RUN_TAG
from runtime_host import wait_idle

pytestmark = pytest.mark.bench

N = int(os.environ.get("NETLENS_BENCH_CLAB_NODES", "100"))
ROUNDS = int(os.environ.get("NETLENS_BENCH_CLAB_ROUNDS", "3"))
OCTET = 100 + (int(RUN_TAG, 16) + 71) % 100
DEBIAN_PYTHON = "/usr/bin/python3"
DRIVER = Path(__file__).with_name("mininet_ring.py")
MN_PREFIX = f"m{RUN_TAG}"


def _addr(k: int, end: int) -> str:
    return f"10.{OCTET}.{k // 64}.{(k % 64) * 4 + end}/30"


def clab_text(name: str, n: int) -> str:
    """The ring as a containerlab topology (linux nodes, addresses by ``exec``)."""
    lines = [f"name: {name}", "topology:", "  defaults:", "    kind: linux",
             "    network-mode: none", "  nodes:"]  # fmt: skip
    for i in range(n):
        lines += [
            f"    n{i}:",
            "      exec:",
            f"        - ip addr add {_addr(i, 1)} dev eth1",
            f"        - ip addr add {_addr((i - 1) % n, 2)} dev eth2",
        ]
    lines.append("  links:")
    for k in range(n):
        lines.append(f'    - endpoints: ["n{k}:eth1", "n{(k + 1) % n}:eth2"]')
    return "\n".join(lines) + "\n"


def native_text(name: str, n: int) -> str:
    """The same ring as a native lab file (addresses on the links)."""
    lines = [f"name: {name}", "nodes:"]
    lines += [f"  n{i}: {{network: null}}" for i in range(n)]
    lines.append("links:")
    for k in range(n):
        a, b = f"n{k}", f"n{(k + 1) % n}"
        lines.append(
            f"  - {{a: {{node: {a}, ifname: eth1, addr: {_addr(k, 1)}}},"
            f" b: {{node: {b}, ifname: eth2, addr: {_addr(k, 2)}}}}}"
        )
    return "\n".join(lines) + "\n"


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _kids_cpu() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def _addresses(pid: int) -> str:
    return subprocess.run(
        ["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-o", "-4", "addr", "show"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _netlens_round(path: Path, name: str, n: int) -> dict[str, float]:
    """``lab up`` and ``lab down`` of one file, checked in the kernel between the two."""
    from netlens_runtime import api, lab_ops
    from netlens_runtime.lab_spec import load_lab

    spec = load_lab(str(path), name=name)
    wait_idle()
    w0, c0 = time.perf_counter(), _cpu()
    lab_ops.lab_up(spec)
    up, up_cpu = time.perf_counter() - w0, _cpu() - c0
    nodes = {
        c["labels"]["netlens.lab.node"]: int(c["pid"])
        for c in api.list_containers()
        if c["labels"].get("netlens.lab") == name
    }
    assert len(nodes) == n
    for i in (0, n // 2, n - 1):  # configured: both cables' addresses in place
        shown = _addresses(nodes[f"n{i}"])
        assert _addr(i, 1) in shown and _addr((i - 1) % n, 2) in shown, shown
    w1, c1 = time.perf_counter(), _cpu()
    assert lab_ops.lab_down(name) == []
    down, down_cpu = time.perf_counter() - w1, _cpu() - c1
    return {
        "up_s": up,
        "up_cpu_s": up_cpu,
        "down_s": down,
        "down_cpu_s": down_cpu,
        "round_cpu_s": up_cpu + down_cpu,
    }


def _mininet_missing() -> str | None:
    if shutil.which("mn") is None:
        return "mininet is not installed (apt-get install -y mininet)"
    if not os.path.exists(DEBIAN_PYTHON):
        return f"no {DEBIAN_PYTHON}, the Python Debian's mininet package installs into"
    probe = subprocess.run(
        [DEBIAN_PYTHON, "-c", "import mininet.net"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return f"{DEBIAN_PYTHON} cannot import mininet ({last}): apt-get install -y mininet"
    return None


def _mininet_leftovers() -> list[str]:
    """Shells and host interfaces of this bench's Mininet hosts still on the host."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    procs = [ln.strip() for ln in out.splitlines() if f"mininet:{MN_PREFIX}" in ln]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    names = [ln.split(":")[1].strip() for ln in links.splitlines()]
    return procs + [f"link {x}" for x in names if x.startswith(MN_PREFIX)]


def _mininet_round(n: int) -> dict[str, float]:
    wait_idle()
    c0 = _kids_cpu()
    res = subprocess.run(
        [DEBIAN_PYTHON, str(DRIVER), MN_PREFIX, str(n), str(OCTET)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    round_cpu = _kids_cpu() - c0
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    assert res.returncode == 0 and lines, f"mininet round failed: {res.stderr[-2000:]}"
    out = json.loads(lines[-1])
    assert out["left"] == [] and "stop_error" not in out, out
    got = {k: float(out[k]) for k in ("up_s", "up_cpu_s", "down_s", "down_cpu_s")}
    # the hosts' shells (and the ifconfig/ip they ran) are reaped only at stop: the
    # whole driver process tree, start-up and import included, is the fair figure
    got["round_cpu_s"] = round_cpu
    return got


@pytest.fixture
def mininet_swept() -> object:
    """Whatever happens to a round (a timeout kills the driver mid-build), no
    Mininet shell or interface of this bench stays on the host."""
    yield None
    left = _mininet_leftovers()
    for item in left:
        if item.startswith("link "):
            subprocess.run(["ip", "link", "del", item[5:]], capture_output=True)
        else:
            subprocess.run(["kill", "-9", item.split()[0]], capture_output=True)
    assert not left, left


def _median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def test_bench_clab_vs_native_vs_mininet(
    labstate: Path, tmp_path: Path, mininet_swept: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from netlens_runtime import lab_image

    # no image store: both netlens labs run on the host's read-only root, alike
    monkeypatch.setattr(lab_image, "DOCKER_ROOT", str(tmp_path / "no-docker"))
    monkeypatch.setattr(lab_image, "PODMAN_ROOT", str(tmp_path / "no-podman"))
    clab = tmp_path / "ring.clab.yml"
    clab.write_text(clab_text("ring", N))
    native = tmp_path / "ring.yaml"
    native.write_text(native_text("ring", N))
    missing = _mininet_missing()
    kinds: dict[str, Callable[[int], dict[str, float]]] = {
        "clab": lambda r: _netlens_round(clab, f"nl{RUN_TAG}c{r}", N),
        "native": lambda r: _netlens_round(native, f"nl{RUN_TAG}n{r}", N),
    }
    if missing is None:
        kinds["mininet"] = lambda r: _mininet_round(N)
    load0 = os.getloadavg()
    rows: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    order = list(kinds)
    for r in range(ROUNDS):
        for kind in order[r % len(order) :] + order[: r % len(order)]:
            rows[kind].append(kinds[kind](r))
    load1 = os.getloadavg()

    print()
    print(f"lab up/down of a {N}-node ring ({N} p2p cables), {ROUNDS} rounds alternated,")
    print(f"  load average {load0[0]:.2f} {load0[1]:.2f} at start, {load1[0]:.2f} {load1[1]:.2f}"
          f" at end, {os.cpu_count()} cpus")  # fmt: skip
    for kind, got in rows.items():
        ups = " ".join(f"{x['up_s']:.2f}" for x in got)
        print(
            f"  {kind:8} up {_median(got, 'up_s'):6.2f} s (cpu {_median(got, 'up_cpu_s'):5.2f} s;"
            f" rounds {ups})  down {_median(got, 'down_s'):6.2f} s"
            f" (cpu {_median(got, 'down_cpu_s'):5.2f} s)"
            f"  cpu per round {_median(got, 'round_cpu_s'):5.2f} s"
        )
    base = rows["clab"]
    for kind in [k for k in rows if k != "clab"]:
        print(
            f"  clab / {kind}: up {_median(base, 'up_s') / _median(rows[kind], 'up_s'):.2f}x,"
            f" down {_median(base, 'down_s') / _median(rows[kind], 'down_s'):.2f}x"
            " (below 1: the containerlab file is faster)"
        )
    if missing is not None:
        print(f"  mininet: skipped: {missing}")
    from netlens_runtime import helper

    spawner = "native" if helper.status()[0] else f"Python fallback ({helper.status()[1]})"
    print(f"  (python {sys.version.split()[0]}; spawner {spawner}; mininet via {DEBIAN_PYTHON})")
