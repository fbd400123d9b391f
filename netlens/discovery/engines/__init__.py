"""Readers for container engines' state (one module per engine), and their table's shape.

Each reader only *reads* files an engine leaves behind (state JSON, cgroup paths,
task directories); none needs the engine's daemon to be running or even its
client to be installed, and none runs a subprocess. Every engine module exports
one :class:`EngineReader` named ``READER``; :mod:`netlens.discovery.registry`
lists them in priority order, and identity and bridge naming walk only that
table. A new engine is one module here plus one line there.

This package's ``__init__`` holds what the readers share: tolerant file reads,
the per-namespace facts (:class:`Namespace`, each /proc file read at most once),
and the reader interface. Modules whose names start with ``_`` are helpers
(file formats), not engines.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from netlens.discovery.nsfind import NsHandle
from netlens.model import Container


def read_text(path: str, *, regular: bool = False) -> str | None:
    """A small file's text, or None when it is missing or unreadable.

    Processes and containers vanish while we walk; a missing file is normal.
    O_NONBLOCK and O_NOCTTY: a FIFO or tty planted where a file was expected must
    neither block the open nor become our controlling terminal. ``regular``: read
    only a regular file (for paths taken from another process, such as an lxcpath
    on a monitor's command line, where a FIFO would block the read, a tty steal
    input, or a device never end).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if regular and not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        # os.read on a raw fd: a third of the cost of open() + TextIOWrapper, which
        # matters when reading three /proc files for each of 1000 namespaces.
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


def loads(text: str | bytes) -> Any:
    """``json.loads`` that never raises for what a file may hold: None for bad syntax
    and for nesting too deep for the parser (RecursionError), which anyone who can
    write an engine's state file can plant; one such file must not stop discovery."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def read_json(path: str) -> dict[str, Any] | None:
    """A JSON object from ``path``; None when missing, unreadable or not an object."""
    text = read_text(path)
    if text is None:
        return None
    data = loads(text)
    return data if isinstance(data, dict) else None


def str_labels(raw: object) -> dict[str, str]:
    """Engine labels as a plain ``str -> str`` dict (engines store null for none)."""
    if not isinstance(raw, dict):
        return {}
    return {str(k): "" if v is None else str(v) for k, v in raw.items()}


def as_int(raw: object) -> int | None:
    """An int from a JSON value that may be missing, a string or garbage."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.strip().isdigit():
        return int(raw.strip())
    return None


def command_text(raw: object) -> str | None:
    """A command as one line, whether stored as a string or an argv list."""
    if isinstance(raw, str):
        return raw or None
    if isinstance(raw, list | tuple):
        parts = [str(p) for p in raw]
        return " ".join(parts) or None
    return None


def cgroup_path(text: str) -> str | None:
    """The most telling path of a /proc/PID/cgroup file.

    Prefer a v1 controller path that names something (hybrid hosts put engine
    cgroups there, with the v2 line left at ``/``), else the v2 ``0::`` path.
    """
    v2: str | None = None
    for line in text.splitlines():
        _hier, _sep, rest = line.partition(":")
        ctrl, _sep, path = rest.partition(":")
        if not path:
            continue
        if ctrl == "" and _hier == "0":
            v2 = path
        elif path != "/" and (ctrl.startswith(("memory", "cpu", "pids")) or ctrl == "name=systemd"):
            return path
    return v2


_CGROUP_READ, _COMMAND_READ = 1, 2


class Namespace:
    """One namespace as the readers see it, with its lowest pid's /proc facts.

    Built once per handle for one identify() call. The cgroup and command line of
    the lowest pid are read on first use and kept, so however many readers ask,
    a namespace costs at most one read of each (that is the budget at 1000
    namespaces: cgroup, cmdline and comm of one pid).
    """

    __slots__ = (
        "_cgroup",
        "_command",
        "_read",
        "handle",
        "lowest",
        "mounts",
        "pids",
        "proc_root",
    )

    def __init__(self, handle: NsHandle, proc_root: str) -> None:
        self.handle = handle
        self.proc_root = proc_root
        self.pids: tuple[int, ...] = tuple(sorted(handle.pids))
        self.lowest: int | None = self.pids[0] if self.pids else None
        self.mounts: tuple[str, ...] = (*handle.mounts, handle.path)
        self._cgroup: str | None = None
        self._command: str | None = None
        self._read = 0  # bits: _CGROUP_READ, _COMMAND_READ

    @property
    def id(self) -> str:
        """The model's namespace id (``netns:<inode>``)."""
        return self.handle.id

    @property
    def cgroup(self) -> str | None:
        """The lowest pid's cgroup path (:func:`cgroup_path`); None without a pid."""
        if not self._read & _CGROUP_READ:
            self._read |= _CGROUP_READ
            if self.lowest is not None:
                text = read_text(f"{self.proc_root}/{self.lowest}/cgroup") or ""
                self._cgroup = cgroup_path(text)
        return self._cgroup

    @property
    def command(self) -> str | None:
        """The lowest pid's command line, "" when unreadable, None without a pid."""
        if not self._read & _COMMAND_READ:
            self._read |= _COMMAND_READ
            if self.lowest is not None:
                self._command = self.cmdline(self.lowest)
        return self._command

    def cmdline(self, pid: int) -> str:
        """``pid``'s command line joined by spaces, "" when gone."""
        raw = read_text(f"{self.proc_root}/{pid}/cmdline") or ""
        return " ".join(p for p in raw.split("\0") if p)

    def comm(self, pid: int) -> str:
        """``pid``'s comm, ``process`` when gone."""
        return (read_text(f"{self.proc_root}/{pid}/comm") or "").strip() or "process"

    def parent(self, pid: int) -> tuple[int | None, str]:
        """(ppid, raw NUL-separated command line of the parent) of ``pid``; (None, "")
        when gone.

        The ppid is the second field after the ``(comm)`` of /proc/PID/stat; comm may
        hold spaces and parentheses, so split after the last ``)``.
        """
        stat_text = read_text(f"{self.proc_root}/{pid}/stat") or ""
        fields = stat_text[stat_text.rfind(")") + 1 :].split()
        if len(fields) < 2 or not fields[1].isdigit():
            return None, ""
        return int(fields[1]), read_text(f"{self.proc_root}/{fields[1]}/cmdline") or ""


class Claims:
    """One engine's claims during one identify() call (its indexes live here).

    identify() asks every reader's claims in three rounds, strongest evidence
    first, and within a round in table order; the first Container wins:

    1. :meth:`recorded`: the engine's own record of this namespace (its inode, a
       bind mount it made);
    2. :meth:`by_cgroup`: the lowest pid's cgroup path names the engine's
       container (asked only when that path is set and not ``/``);
    3. :meth:`fallback`: weaker evidence (a recorded pid beside other traces, a
       command line, a name, the bare process).

    So a weak match of an early engine never beats a strong match of a later one.
    Each method returns None to pass.
    """

    def __init__(self, opts: Options) -> None:
        """Open nothing yet: engines read their indexes on first use."""

    def recorded(self, ns: Namespace) -> Container | None:
        return None

    def by_cgroup(self, ns: Namespace, cgroup: str) -> Container | None:
        return None

    def fallback(self, ns: Namespace) -> Container | None:
        return None


Options = Mapping[str, Any]
"""Keyword options of identify() and bridge_networks(): ``proc_root`` and each
reader's own roots (``docker_root``...), defaults filled in."""


@dataclass(frozen=True, slots=True)
class EngineReader:
    """One row of the engine table.

    ``options``: the keywords this reader takes in identify() or bridge_networks()
    (each with its default), so that tests point it at recorded fixture trees and
    a new engine's root needs no new parameter anywhere else. ``claims``: makes
    the per-call claims (None: names no namespace, e.g. plain CNI). ``networks``:
    host bridge name -> network name from the engine's state (None: keeps none).
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    claims: Callable[[Options], Claims] | None = None
    networks: Callable[[Options], dict[str, str]] | None = None
