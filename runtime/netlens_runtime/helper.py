"""Build and find ``netlens-spawn``, the small C program that clones batches.

Why: a child cloned from a Python process runs Python until exec, and every
page the interpreter touches is copied on write; for a 100-container batch
that was ~2.7 ms of CPU per container, more than the kernel's own work (see
spawn_helper.c). The program is optional: without a C compiler, or with
``NETLENS_SPAWN_HELPER=0``, batches use the Python spawner (spawn.start_many).

It is built from ``spawn_helper.c`` by the system ``cc`` (``$CC``) into ``_bin/``
next to this file: ``python3 -m netlens_runtime.helper`` (what .ci/setup.sh runs), or on
first use. Naming, trust and build rules are :mod:`netlens.native`'s (shared
with discovery's walker); one that still fails at run time (spawn.start_many)
is dropped for the rest of the process.
"""

from __future__ import annotations

import os
import platform
import sys

from netlens import native

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "spawn_helper.c")
LOG_SOURCE = os.path.join(HERE, "log_helper.c")
"""The containers' logger, built into the same program (``netlens-spawn log``)."""
BIN_DIR = os.path.join(HERE, "_bin")
FLAGS = ["-O2", "-Wall", "-Wextra"]
LINKS = native.LINKS
COMPILE_TIMEOUT = native.COMPILE_TIMEOUT
USAGE_EXIT = 2  # spawn_helper.c's main without its one argument

_found: dict[str, str | None] = {}
"""The build found (or None: use Python) per source, once per process."""


def program() -> native.Program:
    """The program as configured now (tests point ``BIN_DIR`` elsewhere)."""
    return native.Program(
        name="netlens-spawn",
        sources=(SOURCE, LOG_SOURCE),
        bin_dir=BIN_DIR,
        flags=tuple(FLAGS),
        usage_exit=USAGE_EXIT,
        compile_timeout=COMPILE_TIMEOUT,
        machine=platform.machine(),
    )


def binary_path(link: str = "static") -> str:
    """Where the ``link`` build for this source and machine lives (it may not exist yet)."""
    return program().binary_path(link)


def _trusted(path: str) -> bool:
    """A regular file (not a symlink), ours and writable by nobody else: we run it as root."""
    return program().trusted(path)


def build(quiet: bool = True) -> str | None:
    """Compile the program if needed; its path, or None without a working ``cc``."""
    return program().build(quiet)


def forget() -> None:
    """The build failed at run time: use the Python spawner for the rest of this process."""
    _found[SOURCE] = None


def find() -> str | None:
    """The program to clone batches with, building it on first use; None: use Python.

    ``NETLENS_SPAWN_HELPER=0`` turns it off (tests run both paths).
    """
    if os.environ.get("NETLENS_SPAWN_HELPER") == "0":
        return None
    known = _found.get(SOURCE, "")
    if known == "" or (known is not None and not _trusted(known)):
        _found[SOURCE] = known = build()
    return known


if __name__ == "__main__":
    sys.exit(native.build_main(program()))
