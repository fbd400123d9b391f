"""On-disk state: one JSON file per container and per network, plus a lock.

Files are written atomically (temp file + rename) so the inspector never reads
half a record, and every mutating command holds an exclusive flock on
``$NETLENS_STATE_DIR/lock`` so concurrent ``netlens run`` calls do not race on
address allocation. A ``pending/`` journal names what a create is making, so
``gc`` can undo a create that was SIGKILLed half-way.

Removed records and logs are not unlinked but emptied and moved to ``spare/``,
and new files (records, their temporary files, logs) are renamed out of it:
creating a file allocates an inode, and on an ext4 without a journal (this
project's reference VM has /run and /tmp there) each allocation first skips
every inode freed in the last 30 s (``recently_deleted``), reading its inode
block: a lab brought up again after a down paid ~1.4 ms of CPU per container
for its two files. A rename allocates nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
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


SPARE = "spare"
SPARE_MAX = 4096  # files kept for reuse; beyond that, removed files are unlinked


def ensure_dirs() -> None:
    for name in ("containers", "networks", "pending", "logs", SPARE):
        os.makedirs(sub(name), mode=0o755, exist_ok=True)


_spares: list[str] | None = None  # names in spare/, listed once per lock hold


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """Hold the state lock (blocking) for the duration of a mutation."""
    global _spares
    ensure_dirs()
    fd = os.open(sub("lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _spares = None
        yield
    finally:
        _spares = None
        os.close(fd)


def _spare_names() -> list[str]:
    global _spares
    if _spares is None:
        try:
            _spares = os.listdir(sub(SPARE))
        except FileNotFoundError:
            _spares = []
    return _spares


def reuse(path: str, mode: int = 0o644) -> bool:
    """Move an empty file from the pool to ``path`` (which must not exist); False if none.

    Call with the lock held (the pool is listed once per lock hold).
    """
    names = _spare_names()
    while names:
        name = names.pop()
        try:
            os.rename(sub(SPARE, name), path)
            # Emptied again: retire() may have died between its rename and truncate.
            os.truncate(path, 0)
            os.chmod(path, mode)
            return True
        except FileNotFoundError:
            continue  # gone meanwhile (state dir wiped by hand)
        except OSError:
            return False
    return False


def retire(path: str) -> None:
    """Remove ``path`` from view, keeping its inode, emptied, in the pool for reuse."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    names = _spare_names()
    if len(names) >= SPARE_MAX or not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        remove_file(path)
        return
    spare = sub(SPARE, f"i{st.st_ino}")
    # Out of view first, then emptied: a crash in between must not leave an
    # empty record under its name (it would block the name, see core.gc).
    try:
        os.rename(path, spare)
    except OSError:
        remove_file(path)
        return
    if st.st_size:
        try:
            os.truncate(spare, 0)
        except OSError:
            remove_file(spare)
            return
    names.append(os.path.basename(spare))


def _write_new(path: str, text: str) -> None:
    """Write ``text`` to ``path`` (replaced if present), reusing a pooled inode if any."""
    if not os.path.lexists(path):
        reuse(path)
    with open(path, "w") as fh:
        fh.write(text)


def write_json(path: str, data: Any) -> None:
    """Atomic write: readers see the old or the new file, never a torn one."""
    tmp = f"{path}.tmp{os.getpid()}"
    text = json.dumps(data, sort_keys=True)  # one-shot: the C encoder (dump() is pure Python)
    _write_new(tmp, text)
    os.rename(tmp, path)


def stage_json(path: str, data: Any) -> str:
    """Write ``data`` to a temporary file next to ``path``; return its name.

    ``os.rename(tmp, path)`` later publishes it atomically, as :func:`write_json`
    does at once; a leftover temporary file is removed by ``gc``.
    """
    tmp = f"{path}.tmp{os.getpid()}"
    _write_new(tmp, json.dumps(data, sort_keys=True))
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
    """Every readable record that names its own file (see :func:`load_container`)."""
    return {
        name: rec
        for name, rec in _load_dir("containers").items()
        if isinstance(rec, dict) and rec.get("name") == name
    }


def load_networks() -> dict[str, dict[str, Any]]:
    return _load_dir("networks")


def load_container(name: str) -> dict[str, Any] | None:
    """The record of ``name``; None if missing, unreadable or naming another container."""
    try:
        data = read_json(container_path(name))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("name") != name:
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
