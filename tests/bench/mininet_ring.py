"""One Mininet round of the lab bench: a ring of N hosts, built, checked, torn down.

Run by ``test_bench_lab_clab.py`` with Debian's Python (``/usr/bin/python3``: the
``mininet`` package installs its module there, not in the interpreter running
pytest). Usage::

    /usr/bin/python3 mininet_ring.py PREFIX N OCTET

Same shape as the bench's containerlab and native labs: N hosts, host ``k``'s
``eth1`` cabled to host ``k+1``'s ``eth2`` (a ring of N point-to-point veths),
each cable a /30 in 10.OCTET.0.0/16. No switch and no controller, so neither
Open vSwitch nor a controller process is needed (Mininet makes hosts, veths and
addresses itself). Mininet's automatic address (10.0.0.N/8 on the first
interface) is switched off: the addresses are the cables' only.

Prints one JSON line: wall and CPU seconds of the build (``Mininet()`` with
``build=False``, every ``addHost`` and ``addLink`` with its addresses, ``build``,
``start``: all hosts up and configured when it returns) and of ``stop``.

Everything it makes is removed on every path: ``stop`` when the net was built,
then a sweep that kills any shell still named ``mininet:PREFIX...`` and deletes
any interface named ``PREFIX...`` in the host namespace. Mininet's own ``mn -c``
is not used: it deletes every interface on the host whose name looks like
``*-ethN``, whoever made it, and this machine is shared.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from typing import Any


def cpu() -> float:
    """CPU seconds of this process and its reaped children (the ``ip``/``ifconfig`` runs)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def addr(k: int, end: int, octet: int) -> str:
    """Cable ``k``'s address at ``end`` (1 or 2): one /30 per cable."""
    return f"10.{octet}.{k // 64}.{(k % 64) * 4 + end}/30"


def sweep(prefix: str) -> list[str]:
    """Kill the shells of hosts named ``PREFIX...``, delete ``PREFIX...`` interfaces;
    return what was found (empty when ``stop`` removed it all)."""
    found: list[str] = []
    tag = f"mininet:{prefix}".encode()
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        if tag in (a[: len(tag)] for a in argv) and int(pid) != os.getpid():
            found.append(f"process {pid}")
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(prefix):
            found.append(f"link {name}")
            subprocess.run(["ip", "link", "del", name], capture_output=True)
    return found


def run(prefix: str, n: int, octet: int) -> dict[str, Any]:
    from mininet.log import setLogLevel  # type: ignore[import-not-found]
    from mininet.net import Mininet  # type: ignore[import-not-found]

    setLogLevel("error")
    net = None
    result: dict[str, Any] = {}
    try:
        w0, c0 = time.perf_counter(), cpu()
        net = Mininet(topo=None, controller=None, build=False, waitConnected=False)
        hosts = [net.addHost(f"{prefix}h{i}", ip=None) for i in range(n)]
        for k in range(n):
            a, b = hosts[k], hosts[(k + 1) % n]
            net.addLink(
                a,
                b,
                intfName1=f"{a.name}-eth1",
                intfName2=f"{b.name}-eth2",
                params1={"ip": addr(k, 1, octet)},
                params2={"ip": addr(k, 2, octet)},
            )
        net.build()
        net.start()
        result["up_s"], result["up_cpu_s"] = time.perf_counter() - w0, cpu() - c0
        # checked outside the timing: every host holds both its cables' addresses
        for i in (0, n // 2, n - 1):
            shown = hosts[i].cmd("ip -o -4 addr show")
            want = (addr(i, 1, octet), addr((i - 1) % n, 2, octet))
            if not all(w in shown for w in want):
                raise RuntimeError(f"host {hosts[i].name} lacks {want}: {shown!r}")
        w1, c1 = time.perf_counter(), cpu()
        stopping, net = net, None
        stopping.stop()
        result["down_s"], result["down_cpu_s"] = time.perf_counter() - w1, cpu() - c1
    finally:
        if net is not None:
            try:
                net.stop()
            except Exception as err:  # the sweep below removes what stop left
                result["stop_error"] = repr(err)
        result["left"] = sweep(prefix)
    return result


def main() -> int:
    prefix, n, octet = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(json.dumps(run(prefix, n, octet)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
