"""Readers for container engines' on-disk state (one module per engine).

Each reader only *reads* files an engine leaves behind (state JSON, cgroup paths,
task directories); none needs the engine's daemon to be running or even its
client to be installed, and none runs a subprocess. They are kept apart from
:mod:`netlens.discovery.identity`, which decides which reader names which
namespace, so that a new engine is one new module plus one line there.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any


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
