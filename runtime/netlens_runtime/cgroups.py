"""Memory, CPU and pids limits on cgroup v1, v2 and hybrid hosts.

Every container gets a ``netlens/<name>`` cgroup in the v2 hierarchy when one
is mounted (cheap, and it names the container for the inspector and lets gc
find a process whose create was killed half-way). On hosts where memory, cpu
and pids are v1 controllers (hybrid or legacy), the limits go in
``<ctrl>/netlens/<name>`` too, made only when a limit is asked for. Every
container has a pids limit by default (names.PIDS_DEFAULT), so on such hosts
it has a v1 pids directory too; a host without a pids controller at all runs
it without the default limit (an explicit one is refused there).
"""

from __future__ import annotations

import contextlib
import os
import time

from netlens_runtime.errors import RuntimeFailure

ROOT = "/sys/fs/cgroup"
GROUP = "netlens"


_LAYOUT: dict[str, tuple[str | None, dict[str, str]]] = {}


def _layout() -> tuple[str | None, dict[str, str]]:
    """(v2 mount or None, {controller: v1 mount}) for memory, cpu, pids (cached per root)."""
    if ROOT in _LAYOUT:
        return _LAYOUT[ROOT]
    if os.path.exists(f"{ROOT}/cgroup.controllers"):
        found: tuple[str | None, dict[str, str]] = (ROOT, {})
    else:
        v2 = f"{ROOT}/unified" if os.path.exists(f"{ROOT}/unified/cgroup.procs") else None
        v1 = {c: f"{ROOT}/{c}" for c in ("memory", "cpu", "pids") if os.path.isdir(f"{ROOT}/{c}")}
        found = (v2, v1)
    _LAYOUT[ROOT] = found
    return found


def _v2_has(v2: str, ctrl: str) -> bool:
    try:
        with open(f"{v2}/cgroup.controllers") as fh:
            return ctrl in fh.read().split()
    except OSError:
        return False


def _write(path: str, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


def cgroup_path(leaf: str) -> str:
    """The path as it appears in /proc/PID/cgroup."""
    return f"/{GROUP}/{leaf}"


def has_pids() -> bool:
    """Whether a pids limit can be set on this host (v1 pids, or v2 with the controller)."""
    v2, v1 = _layout()
    return "pids" in v1 or (v2 is not None and not v1.keys() - {"pids"} and _v2_has(v2, "pids"))


def create(name: str, memory: int | None, cpus: float | None, pids: int | None = None) -> list[str]:
    """Make the container's cgroup directories and write limits; return them.

    ``name`` is the cgroup leaf (see names.cgroup_leaf). On failure the
    directories made so far are removed before raising.
    """
    v2, v1 = _layout()
    limits = {"memory": memory, "cpu": cpus, "pids": pids}
    made: list[str] = []
    try:
        if v2 is not None:
            base = f"{v2}/{GROUP}"
            # Controllers whose limit goes in the v2 directory: all asked for, on a
            # pure v2 host; none where v1 has the memory and cpu controllers.
            need = [c for c, v in limits.items() if v is not None and c not in v1]
            if v1.keys() - {"pids"}:
                need = []
            missing = [c for c in need if not _v2_has(v2, c)]
            if missing:
                raise RuntimeFailure(f"cgroup controllers {missing} are not available")
            if not os.path.isdir(base):
                os.makedirs(base, exist_ok=True)
            if need:
                ctl = " ".join(f"+{c}" for c in need)
                _write(f"{v2}/cgroup.subtree_control", ctl)
                _write(f"{base}/cgroup.subtree_control", ctl)
            path = f"{base}/{name}"
            os.mkdir(path)
            made.append(path)
            if "memory" in need:
                _write(f"{path}/memory.max", str(memory))
                if os.path.exists(f"{path}/memory.swap.max"):
                    _write(f"{path}/memory.swap.max", "0")
            if "cpu" in need and cpus is not None:
                _write(f"{path}/cpu.max", f"{int(cpus * 100000)} 100000")
            if "pids" in need:
                _write(f"{path}/pids.max", str(pids))
        for ctrl, mnt in v1.items():
            value: float | str | None = limits[ctrl]
            if ctrl == "pids" and value is None and v2 is None:
                value = "max"  # no v2 group: this one names the container's processes
            if value is None:
                continue
            path = f"{mnt}/{GROUP}/{name}"
            os.makedirs(path)
            made.append(path)
            if ctrl == "memory":
                _write(f"{path}/memory.limit_in_bytes", str(memory))
                if os.path.exists(f"{path}/memory.memsw.limit_in_bytes"):
                    _write(f"{path}/memory.memsw.limit_in_bytes", str(memory))
            elif ctrl == "cpu":
                _write(f"{path}/cpu.cfs_period_us", "100000")
                _write(f"{path}/cpu.cfs_quota_us", str(int(float(value) * 100000)))
            else:
                _write(f"{path}/pids.max", str(value))
        for ctrl, value in limits.items():
            if value is not None and ctrl not in v1 and not v2:
                raise RuntimeFailure(f"no cgroup controller for the {ctrl} limit")
    except OSError as err:
        remove(made)
        raise RuntimeFailure(f"cgroup setup for {name} failed: {err}") from None
    except RuntimeFailure:
        remove(made)
        raise
    return made


def tracks() -> bool:
    """Whether every container gets a cgroup here (v2, or v1 pids): then its record
    must list one, and only processes in it are the container's."""
    v2, v1 = _layout()
    return v2 is not None or "pids" in v1


def owns(path: str, leaf: str) -> bool:
    """``path`` is a directory this module makes for ``leaf`` (``<mount>/netlens/<leaf>``).

    State records list their cgroup directories; a record that names anything
    else (another cgroup, a directory outside /sys/fs/cgroup) is not ours to rmdir.
    """
    v2, v1 = _layout()
    mounts = ([v2] if v2 else []) + list(v1.values())
    return any(path == f"{m}/{GROUP}/{leaf}" for m in mounts)


def split_v2(dirs: list[str]) -> tuple[str | None, list[str]]:
    """(the v2 directory, if any, to clone into; the v1 directories to join)."""
    v2, _ = _layout()
    if v2 is not None and dirs and dirs[0].startswith(v2 + "/"):
        return dirs[0], dirs[1:]
    return None, dirs


def join(dirs: list[str], pid: int) -> None:
    for path in dirs:
        _write(f"{path}/cgroup.procs", str(pid))


def procs(path: str) -> list[int]:
    try:
        with open(f"{path}/cgroup.procs") as fh:
            return [int(x) for x in fh.read().split()]
    except OSError:
        return []


def remove(dirs: list[str], wait: float = 2.0) -> list[str]:
    """rmdir each directory, retrying briefly while exiting tasks leave it."""
    left: list[str] = []
    deadline = time.monotonic() + wait
    for path in dirs:
        while True:
            try:
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    left.append(path)
                    break
                time.sleep(0.002)
    return left


def all_dirs() -> dict[str, list[str]]:
    """Every ``netlens/<name>`` directory on this host, by container name (for gc)."""
    v2, v1 = _layout()
    out: dict[str, list[str]] = {}
    bases = ([f"{v2}/{GROUP}"] if v2 else []) + [f"{m}/{GROUP}" for m in v1.values()]
    for base in bases:
        with contextlib.suppress(OSError):
            for entry in os.scandir(base):
                if entry.is_dir():
                    out.setdefault(entry.name, []).append(entry.path)
    return out
