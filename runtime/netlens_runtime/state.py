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

Paths are built from validated names only (names.validate_name: no '/', no
leading dot), inside kind directories whose real path is checked once to lie
in the real state directory, and records are opened with O_NOFOLLOW: no name
and no planted symlink makes the runtime read, write or delete outside it.
Temporary files start with a dot (``.<file>.<pid>.tmp``), which no name can,
so gc never takes a live record for one. A record that cannot be used
(unreadable, not JSON, too deeply nested, the wrong shape: see
:mod:`netlens_runtime.records`) is reported in one line, moved to
``quarantine/`` with a ``.why`` file beside it, and skipped.

One job, kept in one module on purpose (it is a little over 500 lines): every
file of the state directory is named, written, read, locked, pooled and set
aside here, so the rules above (validated names, checked directories,
O_NOFOLLOW, atomic renames) hold in one place and cannot be bypassed by a
second writer elsewhere.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import stat
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from netlens_runtime import names, records
from netlens_runtime.errors import NotFound, RuntimeFailure

DEFAULT_STATE_DIR = "/run/netlens"


def now() -> str:
    """The UTC time stamp written in records (``created``), to the millisecond."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


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


QUARANTINE = "quarantine"
SECCOMP = "seccomp"  # compiled filters (netlens_runtime.seccomp's cache)
NETNS = "netns"  # held network namespaces of stopped lab nodes (netlens_runtime.nshold)
KINDS = ("containers", "networks", "pending", "logs", "labs", SPARE, QUARANTINE, SECCOMP, NETNS)


def ensure_dirs() -> None:
    for name in ("containers", "networks", "pending", "logs", SPARE):
        os.makedirs(sub(name), mode=0o755, exist_ok=True)


_DIRS: dict[tuple[str, str], str] = {}


def kind_dir(kind: str) -> str:
    """``<state>/<kind>`` as a real path, checked to be a directory of the real state dir.

    Resolved once per process and state directory (a realpath costs a few
    lstat calls, and record paths are built thousands of times per lab).
    """
    sdir = state_dir()
    hit = _DIRS.get((sdir, kind))
    if hit is not None:
        return hit
    root = os.path.realpath(sdir)
    real = os.path.realpath(os.path.join(sdir, kind))
    if kind not in KINDS or real != os.path.join(root, kind):
        raise RuntimeFailure(f"{os.path.join(sdir, kind)} leads out of the state directory")
    if os.path.isdir(real):  # cache only what exists: a later mkdir could still be a link
        _DIRS[(sdir, kind)] = real
    return real


_spares: list[str] | None = None  # names in spare/, listed once per lock hold
_held = 0  # locked() blocks entered and not left in this process


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """Hold the state lock (blocking) for the duration of a mutation."""
    global _spares, _held
    ensure_dirs()
    fd = os.open(sub("lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _spares = None
        _held += 1
        try:
            yield
        finally:
            _held -= 1
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
    # empty record under its name (it would block the name, see leftovers.gc).
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


TEMP_RE = re.compile(r"\.(.+)\.([0-9]+)\.tmp")
"""Temporary files: ``.<final name>.<pid>.tmp``. A name never starts with a dot."""


def temp_path(path: str) -> str:
    """The temporary file that becomes ``path`` by a rename (same directory)."""
    head, tail = os.path.split(path)
    return os.path.join(head, f".{tail}.{os.getpid()}.tmp")


def _write_new(path: str, text: str) -> None:
    """Write ``text`` to ``path`` (replaced if present), reusing a pooled inode if any."""
    if not os.path.lexists(path):
        reuse(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with open(fd, "w") as fh:
        fh.write(text)


def write_json(path: str, data: Any) -> None:
    """Atomic write: readers see the old or the new file, never a torn one."""
    tmp = temp_path(path)
    text = json.dumps(data, sort_keys=True)  # one-shot: the C encoder (dump() is pure Python)
    _write_new(tmp, text)
    os.rename(tmp, path)


def stage_json(path: str, data: Any) -> str:
    """Write ``data`` to a temporary file next to ``path``; return its name.

    ``os.rename(tmp, path)`` later publishes it atomically, as :func:`write_json`
    does at once; a leftover temporary file is removed by ``gc``.
    """
    tmp = temp_path(path)
    _write_new(tmp, json.dumps(data, sort_keys=True))
    return tmp


READ_MAX = 64 << 20
"""No record is this big (a 5000-node lab's is ~0.5 MB): a bigger file is not read."""


def read_json(path: str) -> Any:
    """The JSON in ``path``: a regular file (no symlink followed), of sane size.

    Raises OSError, or ValueError for anything that is not such JSON: bad bytes,
    bad syntax, or nesting too deep for the parser (RecursionError).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if st.st_size > READ_MAX:
            raise ValueError(f"{st.st_size} bytes, too big for a record")
        raw = fh.read(READ_MAX + 1)
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def container_path(name: str) -> str:
    return os.path.join(kind_dir("containers"), f"{names.validate_name(name)}.json")


def network_path(name: str) -> str:
    return os.path.join(kind_dir("networks"), f"{names.validate_name(name, 'network')}.json")


def lab_path(name: str) -> str:
    return os.path.join(kind_dir("labs"), f"{names.validate_name(name, 'lab')}.json")


def log_path(name: str) -> str:
    """The current log of a detached container; :func:`rotated_log_path` is the one before."""
    return os.path.join(kind_dir("logs"), f"{names.validate_name(name)}.log")


def rotated_log_path(name: str) -> str:
    return log_path(name) + ".1"


def log_owner(fname: str) -> str | None:
    """The container whose log (current or rotated) file ``fname`` of logs/ is."""
    for suffix in (".log", ".log.1"):
        if fname.endswith(suffix) and names.NAME_RE.fullmatch(fname[: -len(suffix)]):
            return fname[: -len(suffix)]
    return None


def remove_logs(name: str, wait: float = 5.0) -> None:
    """Unlink a container's logs. Not into the spare pool: its logger may write a last
    chunk into the open file, which must never land in a pooled (reused) inode.

    The container is dead by now, but its logger may still drain the pipe and rotate
    (the shell fallback then makes ``<name>.log`` again): it holds a lock on the file
    it writes until it exits, so wait (at most ``wait`` seconds) for that lock first.
    Between a rotation's rename and its new file there is no lock to wait for, so
    the files are removed again until they stay gone for a moment.
    """
    import fcntl
    import time

    path, rotated = log_path(name), rotated_log_path(name)
    deadline = time.monotonic() + wait
    while True:
        busy = False  # a logger seen at work: it may make the file again
        while time.monotonic() < deadline:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                # no log (or not a file we follow); mid-rotation if the old one is there
                busy = busy or os.path.lexists(rotated)
                break
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                busy = True
                time.sleep(0.01)  # the logger still writes: it exits at the pipe's EOF
                continue
            finally:
                os.close(fd)
            break
        remove_file(path)
        remove_file(rotated)
        if not busy or time.monotonic() >= deadline:
            return
        time.sleep(0.05)  # only after a logger was seen: a quiet removal costs nothing
        if not os.path.lexists(path):
            return


# --- bad records -------------------------------------------------------------------

report: Callable[[str], None] | None = None
"""Where a set-aside record is reported; None: one line on stderr and the log."""

set_aside_paths: list[str] = []
"""Every state file this process moved to quarantine (gc lists them)."""
_reported: set[str] = set()


def _say(line: str) -> None:
    if report is not None:
        report(line)
        return
    print(f"netlens: {line}", file=sys.stderr)
    logging = sys.modules.get("logging")  # set up by the netlens CLI (its log file)
    if logging is not None and logging.getLogger().handlers:
        logging.getLogger("netlens_runtime.state").warning("%s", line)


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def set_aside(path: str, reason: str, seen: os.stat_result | None = None) -> None:
    """Move a bad state file into ``quarantine/`` (with a ``.why``) and report it once.

    ``seen`` is the file's lstat from before it was read: only that file is
    moved, never one a command put in its place since. Under the lock (a
    mutation, gc) it is moved at once. Otherwise (ps, ls) the lock is only
    tried: when free, the file is moved if it is still the one read; when held
    by a running command, the file stays, is reported and skipped, and the next
    mutation or gc sets it aside.
    """
    try:
        before = seen if seen is not None else os.lstat(path)
    except OSError:
        return
    moved: str | None = None
    why = ""
    fd = -1
    try:
        if not _held:
            fd = os.open(sub("lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if _identity(os.lstat(path)) != _identity(before):
            return  # replaced since it was read: the new file is not the bad one
        moved = _quarantine(path, reason)
    except BlockingIOError:
        why = "left in place while another netlens command holds the state lock"
    except FileNotFoundError:
        return  # gone meanwhile (set aside or removed by another command)
    except OSError as err:
        why = f"left in place: cannot move it ({err.strerror or err})"
    finally:
        if fd >= 0:
            os.close(fd)
    if moved is not None:
        set_aside_paths.append(path)
        _say(f"state file {path}: {reason}; skipped, set aside as {moved}")
    elif path not in _reported:
        _say(f"state file {path}: {reason}; skipped, {why}")
    _reported.add(path)


def _quarantine(path: str, reason: str) -> str:
    """Rename ``path`` into quarantine/ as ``<kind>.<file>.<ns>``; write why beside it."""
    kind = os.path.basename(os.path.dirname(path))
    qdir = sub(QUARANTINE)
    os.makedirs(qdir, mode=0o700, exist_ok=True)
    target = os.path.join(qdir, f"{kind}.{os.path.basename(path)}.{time.time_ns()}")
    os.rename(path, target)
    with contextlib.suppress(OSError), open(target + ".why", "w") as fh:
        fh.write(f"{path}: {reason}\n")
    return target


def _read_checked(path: str, check: Callable[[Any], Any]) -> Any:
    """The record in ``path`` if readable and of the right shape; else set aside, None.

    A missing file is None without a word (records come and go under us).
    """
    try:
        seen = os.lstat(path)
        return check(read_json(path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        reason = str(err) if isinstance(err, records.BadRecord) else _why(err)
        set_aside(path, reason, seen)
        return None


def _why(err: Exception) -> str:
    if isinstance(err, OSError):
        return f"unreadable ({err.strerror or err})"
    if isinstance(err, UnicodeDecodeError):
        return "not text (UTF-8)"
    if isinstance(err, json.JSONDecodeError):
        return f"not JSON ({err.msg} at line {err.lineno})"
    return str(err)


def _load_dir(kind: str, check: Callable[[str, Any], Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    try:
        fnames = os.listdir(kind_dir(kind))
    except FileNotFoundError:
        return out
    for fname in sorted(fnames):
        if not fname.endswith(".json") or fname.startswith("."):
            continue  # temporary files (".x.json.123.tmp") never end in .json
        path = os.path.join(kind_dir(kind), fname)
        name = fname[:-5]
        if not names.NAME_RE.fullmatch(name):
            set_aside(path, "its file name is not a valid name")
            continue
        rec = _read_checked(path, lambda data, name=name: check(name, data))  # type: ignore[misc]
        if rec is not None:
            out[name] = rec
    return out


def _check_container(name: str, data: Any) -> dict[str, Any]:
    return records.check_container(name, data, scope())


def load_containers() -> dict[str, dict[str, Any]]:
    """Every usable container record (see :mod:`netlens_runtime.records`), by name."""
    return _load_dir("containers", _check_container)


def load_networks() -> dict[str, dict[str, Any]]:
    """Every usable network record, by name."""
    return _load_dir("networks", records.check_network)


def load_labs() -> dict[str, dict[str, Any]]:
    """Every usable lab record (``labs/<name>.json``), by name."""
    return _load_dir("labs", records.check_lab)


class UnusableRecord(NotFound):
    """A record that exists but cannot be used: its path and why."""

    def __init__(self, what: str, name: str, path: str, reason: str) -> None:
        super().__init__(
            f"{what} {name}: its record {path} cannot be used ({reason}); 'netlens gc' sets it"
            " aside"
        )
        self.path, self.reason = path, reason


def _load_one(
    path: str, name: str, check: Callable[[str, Any], dict[str, Any]], what: str
) -> dict[str, Any] | None:
    """One record by name: None if missing; UnusableRecord if it cannot be used.

    Not set aside here: a command that looks up one record by name (rm, stop,
    inspect) says so and leaves the sweeping to gc and the listings.
    """
    try:
        return check(name, read_json(path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        reason = str(err) if isinstance(err, records.BadRecord) else _why(err)
        raise UnusableRecord(what, name, path, reason) from None


def load_container(name: str) -> dict[str, Any] | None:
    """The record of ``name``; None if there is none (BadInput for an invalid name)."""
    return _load_one(container_path(name), name, _check_container, "container")


def load_network(name: str) -> dict[str, Any] | None:
    return _load_one(network_path(name), name, lambda n, d: records.check_network(n, d), "network")


def load_lab(name: str) -> dict[str, Any] | None:
    return _load_one(lab_path(name), name, lambda n, d: records.check_lab(n, d), "lab")


def remove_file(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def write_pending(names_: list[str]) -> str:
    """Journal the names a create is about to make; returns the journal path."""
    path = os.path.join(kind_dir("pending"), f"{os.getpid()}.json")
    write_json(path, {"owner": os.getpid(), "names": names_})
    return path


def load_pending() -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    try:
        fnames = os.listdir(kind_dir("pending"))
    except FileNotFoundError:
        return out
    for fname in fnames:
        if not fname.endswith(".json") or fname.startswith("."):
            continue
        path = os.path.join(kind_dir("pending"), fname)
        rec = _read_checked(path, records.check_journal)
        if rec is not None:
            out.append((path, rec))
    return out
