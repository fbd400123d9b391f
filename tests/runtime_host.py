"""Helpers shared by the runtime's integration tests and benchmarks.

One teardown for every test that runs the bundled runtime against a private
state directory (``NETLENS_STATE_DIR``): labs, containers, networks, cgroups and
the nft table of that directory go, and whatever could not be removed is
reported so the caller can fail on it. And one way to wait for an idle machine
before a measurement. Imported as ``runtime_host`` (``tests/`` is on
``sys.path`` because ``conftest.py`` lives there).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def state_env(state_dir: Path) -> Iterator[None]:
    """``NETLENS_STATE_DIR`` set to ``state_dir`` for the block, as it was afterwards.

    For callers that ran the runtime in a subprocess (its own environment) and
    now clean up in this process.
    """
    old = os.environ.get("NETLENS_STATE_DIR")
    os.environ["NETLENS_STATE_DIR"] = str(state_dir)
    try:
        yield
    finally:
        if old is None:
            del os.environ["NETLENS_STATE_DIR"]
        else:
            os.environ["NETLENS_STATE_DIR"] = old


def teardown_state(state_dir: Path) -> list[str]:
    """Remove every lab, container and network of ``state_dir``; return what was left over.

    Each step runs even when an earlier one failed: the host must be cleaned.
    A non-empty result names a runtime bug (something ``lab down`` / ``rm`` /
    ``network rm`` should have removed), so fixtures assert it is empty.
    """
    with state_env(state_dir):
        from netlens_runtime import api, cgroups, lab_ops, nat, state

        problems: list[str] = []
        host_tables = _host_loss_tables(state.load_containers().values())
        for rec in lab_ops.list_labs():
            try:
                problems += [f"lab {rec.name}: {p}" for p in lab_ops.lab_down(rec.name)]
            except Exception as err:
                problems.append(f"lab_down {rec.name}: {err}")
        recs = state.load_containers()
        if recs:
            try:
                api.remove_containers(list(recs), force=True)
            except Exception as err:
                problems.append(f"remove_containers: {err}")
        for net in state.load_networks():
            try:
                api.remove_network(net)
            except Exception as err:
                problems.append(f"remove_network {net}: {err}")
        scope = state.scope()
        for leaf, dirs in cgroups.all_dirs().items():
            if leaf.endswith(f".{scope}"):
                for pid in {p for d in dirs for p in cgroups.procs(d)}:
                    os.kill(pid, 9)
                if cgroups.remove(dirs, wait=5):
                    problems.append(f"cgroup {leaf} left")
        for table in sorted(host_tables):  # linkloss.forget must have removed them
            listed = subprocess.run(["nft", "list", "table", "netdev", table], capture_output=True)
            if listed.returncode == 0:
                subprocess.run(["nft", "delete", "table", "netdev", table], capture_output=True)
                problems.append(f"nft table netdev {table} left")
        table = nat.table_name()
        listed = subprocess.run(["nft", "list", "table", "ip", table], capture_output=True)
        if listed.returncode == 0:
            subprocess.run(["nft", "delete", "table", "ip", table], capture_output=True)
            problems.append(f"nft table {table} left")
    shutil.rmtree(state_dir, ignore_errors=True)
    return problems


def _host_loss_tables(recs: Iterable[dict[str, Any]]) -> set[str]:
    """The host-side loss tables (``netlens link``) the containers' records list."""
    from netlens_runtime import linkloss

    return {
        str(made["table"])
        for rec in recs
        for entry in (rec.get("impair") or {}).values()
        for made in (entry.get("made") or {}).get("loss", [])
        if made.get("where") == linkloss.HOST
    }


def wait_idle(limit: float = 0.1, timeout: float = 10.0) -> None:
    """Wait until the machine is idle (busy < ``limit`` of all CPUs over 0.2 s).

    The kernel tears namespaces down asynchronously (cleanup_net, RCU) after
    their last process and veths are gone: a measurement started meanwhile
    shares the CPUs and the rtnl lock with the previous one's teardown.
    """

    def busy() -> float:
        with open("/proc/stat") as fh:
            v = [int(x) for x in fh.readline().split()[1:]]
        return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        a = busy()
        time.sleep(0.2)
        if busy() - a < limit * 0.2 * (os.cpu_count() or 1):
            return
