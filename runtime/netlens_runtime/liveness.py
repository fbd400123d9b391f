"""Whether a record's process is alive and really the container's; signal and reap them.

A record is only a file and a pid only a number: before the runtime signals a
pid it checks the network namespace inode the record saved and the cgroup the
process is in. Used by stop, rm, ps, logs and gc.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from typing import Any

from netlens_runtime import cgroups, names, state


def netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


_OWN_NETNS: list[int | None] = []


def is_running(rec: dict[str, Any]) -> bool:
    """The record's PID 1 is alive and still the same process (netns inode matches).

    A container never shares our network namespace: a record naming a process
    of ours (the host's, say) is not a running container, whatever it says.
    """
    pid = rec.get("pid")
    if not pid:
        return False
    ino = netns_inode(int(pid))
    if not _OWN_NETNS:
        _OWN_NETNS.append(netns_inode(os.getpid()))
    if ino is None or ino != rec.get("netns_inode") or ino == _OWN_NETNS[0]:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def wait_dead(pids: list[int], timeout: float) -> list[int]:
    """Wait until every pid has exited (reaping our own children); return survivors."""
    fds: dict[int, int] = {}
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        try:
            fds[os.pidfd_open(pid)] = pid
        except OSError:
            continue
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    while fds:
        left_ms = int((deadline - time.monotonic()) * 1000)
        if left_ms <= 0:
            break
        for fd, _ in poller.poll(left_ms):
            pid = fds.pop(fd)
            poller.unregister(fd)
            os.close(fd)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
    for fd in fds:
        os.close(fd)
    return list(fds.values())


def in_own_cgroup(rec: dict[str, Any]) -> bool:
    """The record's pid is in the container's own cgroup (checked before a signal:
    a pid number is only a number, and a record only a file)."""
    try:
        with open(f"/proc/{int(rec['pid'])}/cgroup") as fh:
            text = fh.read()
    except OSError:
        return False
    if not rec.get("cgroup_dirs"):
        return not cgroups.tracks()  # a host where a container may have no cgroup
    want = cgroups.cgroup_path(names.cgroup_leaf(str(rec["name"]), state.scope()))
    return any(line.endswith(f":{want}") for line in text.splitlines())


def signal_all(recs: list[dict[str, Any]], sig: int) -> list[int]:
    pids = []
    for rec in recs:
        if is_running(rec) and in_own_cgroup(rec):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(rec["pid"]), sig)
                pids.append(int(rec["pid"]))
    return pids
