"""Find ``netlens-spawn``, the small C program that clones batches, built with the package.

Why: a child cloned from a Python process runs Python until exec, and every
page the interpreter touches is copied on write; for a 100-container batch
that was ~2.7 ms of CPU per container, more than the kernel's own work (see
spawn_helper.c). The program is optional: batches use the Python spawner
(spawn.start_many) when it was not built (no C compiler when the package was
built), with ``NETLENS_SPAWN_HELPER=0``, when the file is not one we may run as
root (:func:`why_untrusted`), or once it failed at run time in this process
(:func:`forget`).

It also is the containers' logger (``netlens-spawn log``, log_helper.c, see
netlens_runtime.logger). It is compiled from ``spawn_helper.c`` and
``log_helper.c`` when the package is built (setup.py's
``build_helpers``: a wheel, ``pip install``, or ``make setup`` in a checkout)
into ``_bin/netlens-spawn`` beside this file; nothing is compiled at run time.
The runtime never imports netlens, so the trust rule below is also written in
netlens.discovery.walker (for ``netlens-walk``); tests hold both to the same
verdicts.
"""

from __future__ import annotations

import os
import stat

HERE = os.path.dirname(os.path.abspath(__file__))
NAME = "netlens-spawn"
PATH = os.path.join(HERE, "_bin", NAME)
"""Where the build step puts the program (it may be missing)."""
ENV = "NETLENS_SPAWN_HELPER"
"""``NETLENS_SPAWN_HELPER=0``: never use the program (the Python spawner runs)."""

_forgotten = False
"""The program failed at run time in this process: not used again."""


def why_untrusted(path: str, ref: str = __file__) -> str:
    """Why ``path`` may not be run as root ("" when it may): it must be no easier to
    change than the Python file that runs it (``ref``). So a regular executable file
    (not a symlink) in a directory, both owned by root or by ``ref``'s owner and
    writable by nobody who cannot already write ``ref`` and its directory."""
    try:
        st = os.lstat(path)
        pairs = [
            (st, os.stat(ref)),
            (os.lstat(os.path.dirname(path)), os.stat(os.path.dirname(os.path.abspath(ref)))),
        ]
    except OSError as err:
        return f"cannot stat it ({err.strerror})"
    if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111:
        return "not an executable regular file"
    for got, want in pairs:
        if got.st_uid not in (0, want.st_uid):
            return f"owned by uid {got.st_uid}"
        if got.st_mode & 0o022 & ~want.st_mode or (
            got.st_mode & 0o020 and got.st_gid != want.st_gid
        ):
            return "it or its directory is writable by others than the Python code's owner"
    return ""


def status() -> tuple[str | None, str]:
    """``(path, "")`` when batches are cloned by the program, else ``(None, why not)``."""
    if os.environ.get(ENV) == "0":
        return None, f"{ENV}=0"
    if _forgotten:
        return None, "it failed at run time in this process"
    if not os.path.lexists(PATH):
        return None, f"not built: no {PATH} (the build had no working C compiler)"
    why = why_untrusted(PATH)
    if why:
        return None, f"{PATH} not trusted: {why}"
    return PATH, ""


def find() -> str | None:
    """The program to clone batches with, or None: the Python spawner."""
    return status()[0]


def forget() -> None:
    """The program failed at run time: use the Python spawner for the rest of this process."""
    global _forgotten
    _forgotten = True
