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
from netlens_runtime.errors import Conflict, RuntimeFailure

_ORDER = (
    ("uts", sysc.CLONE_NEWUTS),
    ("ipc", sysc.CLONE_NEWIPC),
    ("net", sysc.CLONE_NEWNET),
    ("pid", sysc.CLONE_NEWPID),
    ("mnt", sysc.CLONE_NEWNS),
)


def container_filters(rec: dict[str, Any]) -> list[bytes]:
    """The seccomp programs for a process entering the container, loaded in this order.

    First the filter the container's processes run under: without it one of
    them could ptrace the new process (same user, same capabilities) and make
    it call what the filter refuses them. The state directory's cache file
    named in the record is used when it is still there and ours; else the
    profile is compiled again for the record's capabilities (RuntimeFailure,
    with the way out, when that cannot be done). Then, unless the container is
    privileged, one that refuses TIOCSTI and TIOCLINUX: unlike the container's
    own processes, this one has the caller's terminal as its controlling
    terminal, and the same ptrace could make it type into the caller's shell.
    """
    if rec.get("privileged"):
        return []
    caps = int(rec.get("caps") or 0)
    out: list[bytes] = []
    profile = rec.get("seccomp")
    if profile not in (None, seccomp.UNCONFINED):  # None: a record from before filters
        path = rec.get("seccomp_filter")
        bpf = seccomp.load_cached(str(path)) if path else None
        out.append(bpf if bpf is not None else _program(str(profile), caps))
    try:
        out.append(_program(seccomp.TTY_PROFILE, caps))
    except RuntimeFailure as err:
        if seccomp.MISSING not in str(err):
            raise
        raise RuntimeFailure(
            "libseccomp is not installed (Debian package libseccomp2): exec needs it to keep"
            " the container's processes from typing into your terminal"
        ) from None
    return out


def _program(source: str, caps: int) -> bytes:
    bpf = seccomp.program(source, caps)
    assert bpf is not None  # only "unconfined" has none
    return bpf


def _why_not(tool: str, path: str, err: BaseException) -> str:
    """Why ``tool`` did not start inside the container, in a user's words (the tool's
    name quoted inert: it is the user's text, and may hold anything)."""
    where = "in the container" if "/" in tool else f"on the container's PATH ({path})"
    if isinstance(err, FileNotFoundError):
        return f"{tool!r}: no such program {where}: the container sees its own filesystem"
    if isinstance(err, PermissionError):
        return f"{tool!r}: not executable {where} (permission denied)"
    if isinstance(err, OSError):
        return f"{tool!r}: cannot run it {where}: {err.strerror}"
    return f"{tool!r}: {err}"


def not_running(rec: dict[str, Any]) -> Conflict:
    """The one line for a container that has no process to join; a stopped lab node's
    says how to start it again (its namespace is held, but nothing runs in it)."""
    labels = rec.get("labels") or {}
    lab, node = labels.get("netlens.lab"), labels.get("netlens.lab.node")
    if lab and node:
        return Conflict(
            f"container {rec['name']} is stopped: start it with 'netlens lab start {lab} {node}'"
        )
    return Conflict(f"container {rec['name']} is not running")


def exec_in(rec: dict[str, Any], argv: list[str], env: dict[str, str] | None = None) -> int:
    """Run ``argv`` in the container; return its exit code (128+N if killed by N)."""
    pid = int(rec.get("pid") or 0)
    if pid <= 0:
        raise not_running(rec)
    fds: list[tuple[int, int]] = []
    procs: list[int] = []
    try:
        for kind, flag in _ORDER:
            fds.append((os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC), flag))
        if os.fstat(fds[2][0]).st_ino != rec.get("netns_inode"):
            raise not_running(rec)
        for d in rec.get("cgroup_dirs") or []:
            with contextlib.suppress(OSError):
                procs.append(os.open(f"{d}/cgroup.procs", os.O_WRONLY | os.O_CLOEXEC))
    except FileNotFoundError:
        raise not_running(rec) from None
    bpf = container_filters(rec)
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
            for prog in bpf:
                sysc.set_seccomp(prog)
            os.execvpe(argv[0], argv, full_env)
        except BaseException as err:
            os.write(2, f"netlens: exec: {_why_not(argv[0], full_env['PATH'], err)}\n".encode())
            os._exit(126 if isinstance(err, PermissionError) else 127)  # as a shell does
        os._exit(127)
    for fd in procs:
        os.close(fd)
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _, status = os.waitpid(child, 0)
    finally:
        signal.signal(signal.SIGINT, old)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
