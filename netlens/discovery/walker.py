"""Find ``netlens-walk``, the C namespace walker (walk.c), built with the package.

Why: with a thousand namespaces the discovery helper process is the long pole
of a dump, and half of its time was Python around the syscalls. netlens-walk
does what ``wire.serve(..., enter=True)`` does, with the same frames, so
:class:`netlens.discovery.sources._Pump` starts it in place of the Python
helper when it is there; the Python helper stays the fallback.

It is compiled from ``walk.c`` and ``walk_decode.c`` (the C half of decode.py)
when the package is built (setup.py's ``build_helpers``: a wheel, ``pip
install``, or ``make setup`` in a checkout) into ``_bin/netlens-walk`` beside
this file; nothing is compiled at run time. The Python helper runs instead when
it was not built (no C compiler at build time), with ``NETLENS_WALK_HELPER=0``,
when the file is not one we may run as root (:func:`why_untrusted`), or once it
failed at run time in this process (:func:`forget`).

Kept light (os and stat only): finding the walker runs before it starts, ahead
of everything else in discovery. :mod:`netlens_runtime.helper` does the same for
``netlens-spawn``; the runtime never imports netlens, so the few lines of the
trust rule are written there too (tests/unit/test_helpers_installed.py holds
both to the same verdicts).
"""

from __future__ import annotations

import os
import stat

HERE = os.path.dirname(os.path.abspath(__file__))
NAME = "netlens-walk"
PATH = os.path.join(HERE, "_bin", NAME)
"""Where the build step puts the walker (it may be missing)."""
ENV = "NETLENS_WALK_HELPER"
"""``NETLENS_WALK_HELPER=0``: never use the walker (the Python helper runs)."""

_forgotten = False
"""The walker failed at run time in this process: not started again."""


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
    """``(path, "")`` when discovery runs the walker, else ``(None, why not)``."""
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
    """The walker to run, or None: the Python helper walks."""
    return status()[0]


def forget() -> None:
    """The walker failed at run time: use the Python helper for the rest of this process."""
    global _forgotten
    _forgotten = True
