"""On-disk state: one JSON file per container and per network, plus a lock.

Files are written atomically (temp file + rename) so the inspector never reads
half a record, and every mutating command holds an exclusive flock on
``$NETLENS_STATE_DIR/lock`` so concurrent ``netlens run`` calls do not race on
address allocation. A ``pending/`` journal names what a create is making, so
``gc`` can undo a create that was SIGKILLed half-way.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from typing import Any

DEFAULT_STATE_DIR = "/run/netlens"


def state_dir() -> str:
    return os.environ.get("NETLENS_STATE_DIR") or DEFAULT_STATE_DIR


_SCOPES: dict[str, str] = {}


def scope() -> str:
    """ "" for the default state directory, else 8 hex naming this one.

    Bridge, veth and cgroup names are global to the host while state is per
    directory: tests and side-by-side installations use their own
    NETLENS_STATE_DIR, and the scope keeps their kernel objects apart.
    """
    sdir = state_dir().rstrip("/")
    if sdir == DEFAULT_STATE_DIR:
        return ""
    if sdir not in _SCOPES:
        import zlib

        _SCOPES[sdir] = f"{zlib.crc32(sdir.encode()):08x}"
    return _SCOPES[sdir]


def sub(*parts: str) -> str:
    return os.path.join(state_dir(), *parts)


def ensure_dirs() -> None:
    for name in ("containers", "networks", "pending", "logs"):
        os.makedirs(sub(name), mode=0o755, exist_ok=True)


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """Hold the state lock (blocking) for the duration of a mutation."""
    ensure_dirs()
    fd = os.open(sub("lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_json(path: str, data: Any) -> None:
    """Atomic write: readers see the old or the new file, never a torn one."""
    tmp = f"{path}.tmp{os.getpid()}"
    text = json.dumps(data, sort_keys=True)  # one-shot: the C encoder (dump() is pure Python)
    with open(tmp, "w") as fh:
        fh.write(text)
    os.rename(tmp, path)


def stage_json(path: str, data: Any) -> str:
    """Write ``data`` to a temporary file next to ``path``; return its name.

    ``os.rename(tmp, path)`` later publishes it atomically, as :func:`write_json`
    does at once; a leftover temporary file is removed by ``gc``.
    """
    tmp = f"{path}.tmp{os.getpid()}"
    text = json.dumps(data, sort_keys=True)
    with open(tmp, "w") as fh:
        fh.write(text)
    return tmp


def read_json(path: str) -> Any:
    with open(path) as fh:
        return json.load(fh)


def container_path(name: str) -> str:
    return sub("containers", f"{name}.json")


def network_path(name: str) -> str:
    return sub("networks", f"{name}.json")


def log_path(name: str) -> str:
    return sub("logs", f"{name}.log")


def _load_dir(kind: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    try:
        names = os.listdir(sub(kind))
    except FileNotFoundError:
        return out
    for fname in sorted(names):
        if not fname.endswith(".json"):
            continue
        with contextlib.suppress(OSError, ValueError):
            out[fname[:-5]] = read_json(sub(kind, fname))
    return out


def load_containers() -> dict[str, dict[str, Any]]:
    return _load_dir("containers")


def load_networks() -> dict[str, dict[str, Any]]:
    return _load_dir("networks")


def load_container(name: str) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = read_json(container_path(name))
    except (OSError, ValueError):
        return None
    return data


def load_network(name: str) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = read_json(network_path(name))
    except (OSError, ValueError):
        return None
    return data


def remove_file(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def write_pending(names: list[str]) -> str:
    """Journal the names a create is about to make; returns the journal path."""
    path = sub("pending", f"{os.getpid()}.json")
    write_json(path, {"owner": os.getpid(), "names": names})
    return path


def load_pending() -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    try:
        names = os.listdir(sub("pending"))
    except FileNotFoundError:
        return out
    for fname in names:
        path = sub("pending", fname)
        if not fname.endswith(".json"):
            continue
        with contextlib.suppress(OSError, ValueError):
            out.append((path, read_json(path)))
    return out
