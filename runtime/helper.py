"""Build and find ``netlens-spawn``, the small C program that clones batches.

Why: a child cloned from a Python process runs Python until exec, and every
page the interpreter touches is copied on write; for a 100-container batch
that was ~2.7 ms of CPU per container, more than the kernel's own work (see
spawn_helper.c). The program is optional: without a C compiler, or with
``NETLENS_SPAWN_HELPER=0``, batches use the Python spawner (spawn.start_many).

It is built from ``spawn_helper.c`` by the system ``cc`` into ``_bin/`` next to
this file, named after the source's hash so a stale build is never run:
``python3 -m runtime.helper`` (what .ci/setup.sh runs), or on first use.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "spawn_helper.c")
BIN_DIR = os.path.join(HERE, "_bin")
FLAGS = ["-O2", "-Wall", "-Wextra"]

_found: dict[str, str | None] = {}


def binary_path() -> str:
    """Where the build for the current source lives (it may not exist yet)."""
    with open(SOURCE, "rb") as fh:
        digest = hashlib.sha256(fh.read() + " ".join(FLAGS).encode()).hexdigest()[:12]
    return os.path.join(BIN_DIR, f"netlens-spawn-{digest}")


def _trusted(path: str) -> bool:
    """Ours and writable by nobody else: we run it as root."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022 and os.access(path, os.X_OK)


def build(quiet: bool = True) -> str | None:
    """Compile the program if needed; its path, or None without a working ``cc``.

    Static when the C library allows it (no dynamic loader work at start), else
    dynamic. Built under a lock into a temporary name, then renamed: two
    processes building at once both end with the same complete file.
    """
    target = binary_path()
    if _trusted(target):
        return target
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    try:
        os.makedirs(BIN_DIR, mode=0o755, exist_ok=True)
        ignore = os.path.join(BIN_DIR, ".gitignore")
        if not os.path.exists(ignore):
            with open(ignore, "w") as fh:
                fh.write("*\n")
        import fcntl

        with open(os.path.join(BIN_DIR, ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if _trusted(target):
                return target
            tmp = f"{target}.tmp{os.getpid()}"
            for extra in (["-static"], []):
                res = subprocess.run(
                    [cc, *FLAGS, *extra, "-o", tmp, SOURCE], capture_output=True, text=True
                )
                if res.returncode == 0:
                    break
                if not quiet:
                    print(res.stderr, file=sys.stderr)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                return None
            os.chmod(tmp, 0o755)
            os.rename(tmp, target)
            for old in os.listdir(BIN_DIR):  # builds of older sources
                if old.startswith("netlens-spawn-") and os.path.join(BIN_DIR, old) != target:
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(BIN_DIR, old))
    except OSError:
        return None
    return target if _trusted(target) else None


def find() -> str | None:
    """The program to clone batches with, building it on first use; None: use Python.

    ``NETLENS_SPAWN_HELPER=0`` turns it off (tests run both paths).
    """
    if os.environ.get("NETLENS_SPAWN_HELPER") == "0":
        return None
    key = SOURCE
    if key not in _found or (_found[key] is not None and not _trusted(str(_found[key]))):
        _found[key] = build()
    return _found[key]


if __name__ == "__main__":
    path = build(quiet=False)
    if path is None:
        print("netlens-spawn: not built (no working C compiler)", file=sys.stderr)
        sys.exit(1)
    print(path)
