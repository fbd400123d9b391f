"""The trust rule for netlens's native programs, and the verdict on using one.

netlens ships two optional C programs, each built into a ``_bin/`` beside the
Python module that finds it: ``netlens-walk`` (:mod:`netlens.kernel.walker`,
discovery's namespace walker) and ``netlens-spawn``
(:mod:`netlens_runtime.helper`, the runtime's batch spawner and logger). Both
run as root, so both obey one rule: a program may run only if it is no easier
to change than the Python code that runs it. The rule and the verdict are
written here once; each finder binds its own program path, environment knob and
"failed in this process" flag.

Kept light (os and stat only): the finders run before their programs start,
ahead of everything else.
"""

from __future__ import annotations

import os
import stat


def why_untrusted(path: str, ref: str) -> str:
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


def verdict(path: str, env: str, forgotten: bool, ref: str) -> tuple[str | None, str]:
    """``(path, "")`` when the program at ``path`` is to be used, else ``(None, why
    not)``: ``$env`` is ``0``, it failed at run time in this process (``forgotten``),
    it was not built, or :func:`why_untrusted` refuses it (``ref``: the finder's file)."""
    if os.environ.get(env) == "0":
        return None, f"{env}=0"
    if forgotten:
        return None, "it failed at run time in this process"
    if not os.path.lexists(path):
        return None, f"not built: no {path} (the build had no working C compiler)"
    why = why_untrusted(path, ref)
    if why:
        return None, f"{path} not trusted: {why}"
    return path, ""
