"""identify() against namespaces this test makes: an `ip netns` name, a process
holding an unnamed namespace, a Mininet-style host shell and a namespace the
netlens runtime's state file claims."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RUN_TAG, Lab, is_root

from netlens.discovery.identity import identify
from netlens.discovery.nsfind import NsHandle, find_namespaces
from netlens.model import Engine

pytestmark = pytest.mark.integration


@pytest.fixture
def nlab() -> Iterator[Lab]:
    if not is_root():
        pytest.skip("needs root")
    lb = Lab("ni")
    try:
        yield lb
    finally:
        lb.close()


def _inode(path: str) -> int:
    return os.stat(path).st_ino


def _wait_own_netns(pid: int) -> int:
    """The namespace inode of ``pid`` once it left ours (unshare is quick, not instant)."""
    ours = _inode("/proc/self/ns/net")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            ino = _inode(f"/proc/{pid}/ns/net")
        except FileNotFoundError:
            break
        if ino != ours:
            return ino
        time.sleep(0.01)
    raise AssertionError(f"pid {pid} never left the host namespace")


def _handles(inodes: set[int]) -> list[NsHandle]:
    found = [h for h in find_namespaces() if h.inode in inodes]
    assert {h.inode for h in found} == inodes, "the finder must see every namespace we made"
    return found


def test_named_process_and_mininet_namespaces(nlab: Lab) -> None:
    ns = nlab.add_netns("a")
    sleeper = nlab.spawn(["unshare", "--net", "sleep", "300"])
    host = f"ni{RUN_TAG}h1"
    # Mininet keeps each host's shell alive on a pipe: do the same.
    shell = subprocess.Popen(
        ["unshare", "--net", "bash", "--norc", "--noediting", "-is", f"mininet:{host}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    nlab.procs.append(shell)
    ns_ino = _inode(f"/run/netns/{ns}")
    sleep_ino = _wait_own_netns(sleeper.pid)
    shell_ino = _wait_own_netns(shell.pid)

    got = {c.netns: c for c in identify(_handles({ns_ino, sleep_ino, shell_ino}))}

    named = got[f"netns:{ns_ino}"]
    assert (named.engine, named.name, named.id) == (Engine.NETNS, ns, f"netns:{ns}")
    proc = got[f"netns:{sleep_ino}"]
    assert (proc.engine, proc.name) == (Engine.PROCESS, f"sleep[{sleeper.pid}]")
    assert proc.pid == sleeper.pid and proc.command == "sleep 300"
    mn = got[f"netns:{shell_ino}"]
    assert (mn.engine, mn.name, mn.pid) == (Engine.MININET, host, shell.pid)


def test_netlens_runtime_state_file_names_its_namespace(nlab: Lab, tmp_path: Path) -> None:
    ns = nlab.add_netns("r")
    ino = _inode(f"/run/netns/{ns}")
    (tmp_path / "containers").mkdir()
    state = {"name": f"ni{RUN_TAG}web", "id": "ni-1", "netns_inode": ino, "state": "running"}
    (tmp_path / "containers" / "web.json").write_text(json.dumps(state))

    got = identify(_handles({ino}), netlens_state_dir=str(tmp_path))

    assert [(c.engine, c.name, c.netns) for c in got] == [
        (Engine.NETLENS, f"ni{RUN_TAG}web", f"netns:{ino}")
    ]
