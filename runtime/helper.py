"""Build and find ``netlens-spawn``, the small C program that clones batches.

Why: a child cloned from a Python process runs Python until exec, and every
page the interpreter touches is copied on write; for a 100-container batch
that was ~2.7 ms of CPU per container, more than the kernel's own work (see
spawn_helper.c). The program is optional: without a C compiler, or with
``NETLENS_SPAWN_HELPER=0``, batches use the Python spawner (spawn.start_many).

It is built from ``spawn_helper.c`` by the system ``cc`` (``$CC``) into ``_bin/``
next to this file, named after the hash of the source, flags and machine plus
the link mode, so a stale build or one copied from another architecture is
never run: ``python3 -m runtime.helper`` (what .ci/setup.sh runs), or on first
use. A fresh build is run once before it is trusted; one that still fails at
run time (spawn.start_many) is dropped for the rest of the process.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shlex
import shutil
import stat
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "spawn_helper.c")
BIN_DIR = os.path.join(HERE, "_bin")
FLAGS = ["-O2", "-Wall", "-Wextra"]
LINKS = {"static": ["-static"], "dynamic": []}  # tried in this order
COMPILE_TIMEOUT = 120.0
USAGE_EXIT = 2  # spawn_helper.c's main without its one argument

_found: dict[str, str | None] = {}


def binary_path(link: str = "static") -> str:
    """Where the ``link`` build for this source and machine lives (it may not exist yet)."""
    with open(SOURCE, "rb") as fh:
        salt = " ".join([*FLAGS, platform.machine()]).encode()
        digest = hashlib.sha256(fh.read() + salt).hexdigest()[:12]
    return os.path.join(BIN_DIR, f"netlens-spawn-{digest}-{link}")


def _owned_not_shared(st: os.stat_result) -> bool:
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _dir_trusted() -> bool:
    """``_bin`` itself is a real directory of ours: nobody else can swap files in it."""
    try:
        st = os.lstat(BIN_DIR)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and _owned_not_shared(st)


def _trusted(path: str) -> bool:
    """A regular file (not a symlink), ours and writable by nobody else: we run it as root."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISREG(st.st_mode)
        and _owned_not_shared(st)
        and os.access(path, os.X_OK)
        and _dir_trusted()
    )


def _existing() -> str | None:
    for link in LINKS:
        if _trusted(binary_path(link)):
            return binary_path(link)
    return None


def _starts(path: str) -> bool:
    """Run without arguments it exits with its usage code: it loads and runs here."""
    try:
        res = subprocess.run(
            [path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return res.returncode == USAGE_EXIT


def _compiler() -> list[str] | None:
    env = shlex.split(os.environ.get("CC", ""))
    if env:
        return env
    cc = shutil.which("cc") or shutil.which("gcc")
    return [cc] if cc else None


def _open_new(path: str, mode: int) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)


def build(quiet: bool = True) -> str | None:
    """Compile the program if needed; its path, or None without a working ``cc``.

    Static when the C library allows it (no dynamic loader work at start), else
    dynamic; each build is run once and kept only if it starts. Built under a
    lock into a temporary name, then renamed: two processes building at once
    both end with the same complete file.
    """
    found = _existing()
    if found is not None:
        return found
    cc = _compiler()
    if cc is None:
        return None
    try:
        os.makedirs(BIN_DIR, mode=0o755, exist_ok=True)
        if not _dir_trusted():
            if not quiet:
                print(f"netlens-spawn: {BIN_DIR} is not a directory of ours", file=sys.stderr)
            return None
        with contextlib.suppress(FileExistsError):
            fd = _open_new(os.path.join(BIN_DIR, ".gitignore"), 0o644)
            try:
                os.write(fd, b"*\n")
            finally:
                os.close(fd)
        import fcntl

        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        lock = os.open(os.path.join(BIN_DIR, ".lock"), flags, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            found = _existing()
            if found is not None:
                return found
            return _compile(cc, quiet)
        finally:
            os.close(lock)
    except OSError:
        return None


def _compile(cc: list[str], quiet: bool) -> str | None:
    """Build each link mode in turn until one compiles and starts (lock held)."""
    for link, extra in LINKS.items():
        target = binary_path(link)
        tmp = f"{target}.tmp{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        old_umask = os.umask(0o077)  # never group/world writable, not even for an instant
        try:
            res = subprocess.run(
                [*cc, *FLAGS, *extra, "-o", tmp, SOURCE],
                capture_output=True,
                text=True,
                timeout=COMPILE_TIMEOUT,
            )
            ok = res.returncode == 0
            err = res.stderr
        except (OSError, subprocess.TimeoutExpired) as exc:
            ok, err = False, str(exc)
        finally:
            os.umask(old_umask)
        if ok:
            os.chmod(tmp, 0o755)
            if _starts(tmp):
                os.rename(tmp, target)
                for old in os.listdir(BIN_DIR):  # builds of older sources or machines
                    path = os.path.join(BIN_DIR, old)
                    if old.startswith("netlens-spawn-") and path != target:
                        with contextlib.suppress(OSError):
                            os.unlink(path)
                return target if _trusted(target) else None
            err = f"{link} build does not start on this machine"
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if not quiet:
            print(err, file=sys.stderr)
    return None


def forget() -> None:
    """The build failed at run time: use the Python spawner for the rest of this process."""
    _found[SOURCE] = None


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
