"""``netlens exec``: run a command inside a running container.

The CLI process itself enters the container's uts, ipc, net, pid and mount
namespaces (it is single-threaded and about to fork anyway), then forks: the
child lands in the container's pid namespace, joins its cgroups, drops to the
container's capabilities, loads its seccomp filter and execs. Same privileges
as the container's own processes, and no ``nsenter`` process in between.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

from netlens_runtime import seccomp, spawn, sysc
from netlens_runtime.errors import Conflict

_ORDER = (
    ("uts", sysc.CLONE_NEWUTS),
    ("ipc", sysc.CLONE_NEWIPC),
    ("net", sysc.CLONE_NEWNET),
    ("pid", sysc.CLONE_NEWPID),
    ("mnt", sysc.CLONE_NEWNS),
)


def container_filter(rec: dict[str, Any]) -> bytes | None:
    """The seccomp program the container's processes run under, for the new one too.

    Without it a process of the container could ptrace the exec'd one (same
    user, same capabilities) and make it call what the filter refuses them.
    The state directory's cache file named in the record is used when it is
    still there and ours; else the profile is compiled again for the record's
    capabilities (RuntimeFailure, with the way out, when that cannot be done).
    """
    profile = rec.get("seccomp")
    if rec.get("privileged") or profile in (None, seccomp.UNCONFINED):
        return None  # a record from before filters existed ran without one too
    path = rec.get("seccomp_filter")
    bpf = seccomp.load_cached(str(path)) if path else None
    if bpf is None:
        bpf = seccomp.program(str(profile), int(rec.get("caps") or 0))
    return bpf


def exec_in(rec: dict[str, Any], argv: list[str], env: dict[str, str] | None = None) -> int:
    """Run ``argv`` in the container; return its exit code (128+N if killed by N)."""
    pid = int(rec["pid"])
    fds: list[tuple[int, int]] = []
    procs: list[int] = []
    try:
        for kind, flag in _ORDER:
            fds.append((os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC), flag))
        if os.fstat(fds[2][0]).st_ino != rec.get("netns_inode"):
            raise Conflict(f"container {rec['name']} is not running")
        for d in rec.get("cgroup_dirs") or []:
            with contextlib.suppress(OSError):
                procs.append(os.open(f"{d}/cgroup.procs", os.O_WRONLY | os.O_CLOEXEC))
    except FileNotFoundError:
        raise Conflict(f"container {rec['name']} is not running") from None
    bpf = container_filter(rec)
    full_env = {"PATH": spawn.DEFAULT_PATH, "HOSTNAME": str(rec.get("hostname") or "")}
    full_env.update(rec.get("env") or {})
    full_env.update(env or {})
    for fd, flag in fds:
        sysc.setns(fd, flag)
        os.close(fd)
    child = os.fork()
    if child == 0:  # pragma: no cover - child
        try:
            for fd in procs:
                os.write(fd, str(os.getpid()).encode())
            os.chdir("/")
            privileged = bool(rec.get("privileged"))
            spawn.drop_privileges(int(rec.get("caps") or 0), not privileged)
            if bpf is not None:
                sysc.set_seccomp(bpf)
            os.execvpe(argv[0], argv, full_env)
        except BaseException as err:
            os.write(2, f"netlens: exec {argv[0]}: {err}\n".encode())
        os._exit(127)
    for fd in procs:
        os.close(fd)
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _, status = os.waitpid(child, 0)
    finally:
        signal.signal(signal.SIGINT, old)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
