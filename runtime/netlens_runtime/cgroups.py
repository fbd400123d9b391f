"""Memory and CPU limits on cgroup v1, v2 and hybrid hosts.

Every container gets a ``netlens/<name>`` cgroup in the v2 hierarchy when one
is mounted (cheap, and it names the container for the inspector and lets gc
find a process whose create was killed half-way). On hosts where memory and
cpu are v1 controllers (hybrid or legacy), the limits go in
``<ctrl>/netlens/<name>`` too, made only when a limit is asked for.
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
    """(v2 mount or None, {controller: v1 mount}) for memory and cpu (cached per root)."""
    if ROOT in _LAYOUT:
        return _LAYOUT[ROOT]
    if os.path.exists(f"{ROOT}/cgroup.controllers"):
        found: tuple[str | None, dict[str, str]] = (ROOT, {})
    else:
        v2 = f"{ROOT}/unified" if os.path.exists(f"{ROOT}/unified/cgroup.procs") else None
        v1 = {c: f"{ROOT}/{c}" for c in ("memory", "cpu") if os.path.isdir(f"{ROOT}/{c}")}
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


def create(name: str, memory: int | None, cpus: float | None) -> list[str]:
    """``name`` is the cgroup leaf (see names.cgroup_leaf)."""
    """Make the container's cgroup directories and write limits; return them.

    On failure the directories made so far are removed before raising.
    """
    v2, v1 = _layout()
    made: list[str] = []
    try:
        if v2 is not None:
            base = f"{v2}/{GROUP}"
            need = [c for c, v in (("memory", memory), ("cpu", cpus)) if v is not None]
            if need and not v1:
                missing = [c for c in need if not _v2_has(v2, c)]
                if missing:
                    raise RuntimeFailure(f"cgroup controllers {missing} are not available")
            if not os.path.isdir(base):
                os.makedirs(base, exist_ok=True)
            if need and not v1:
                ctl = " ".join(f"+{c}" for c in need)
                _write(f"{v2}/cgroup.subtree_control", ctl)
                _write(f"{base}/cgroup.subtree_control", ctl)
            path = f"{base}/{name}"
            os.mkdir(path)
            made.append(path)
            if not v1:
                if memory is not None:
                    _write(f"{path}/memory.max", str(memory))
                    if os.path.exists(f"{path}/memory.swap.max"):
                        _write(f"{path}/memory.swap.max", "0")
                if cpus is not None:
                    _write(f"{path}/cpu.max", f"{int(cpus * 100000)} 100000")
        if memory is not None or cpus is not None:
            for ctrl, mnt in v1.items():
                value = memory if ctrl == "memory" else cpus
                if value is None:
                    continue
                path = f"{mnt}/{GROUP}/{name}"
                os.makedirs(path)
                made.append(path)
                if ctrl == "memory":
                    _write(f"{path}/memory.limit_in_bytes", str(memory))
                    if os.path.exists(f"{path}/memory.memsw.limit_in_bytes"):
                        _write(f"{path}/memory.memsw.limit_in_bytes", str(memory))
                else:
                    _write(f"{path}/cpu.cfs_period_us", "100000")
                    _write(f"{path}/cpu.cfs_quota_us", str(int(float(value) * 100000)))
            if (memory is not None and "memory" not in v1 and not v2) or (
                cpus is not None and "cpu" not in v1 and not v2
            ):
                raise RuntimeFailure("no cgroup controller for the requested limits")
    except OSError as err:
        remove(made)
        raise RuntimeFailure(f"cgroup setup for {name} failed: {err}") from None
    except RuntimeFailure:
        remove(made)
        raise
    return made


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
