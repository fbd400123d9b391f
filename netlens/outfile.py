"""Opening a file that root writes where other users may have been first.

netlens runs as root on shared lab hosts, and its output paths (``capture -w``,
``dump -o``, the dashboard's capture files) are often in ``/tmp`` or in another
user's directory. Hosts with ``fs.protected_symlinks=0`` (and every directory
that is not sticky) let the kernel follow a symlink whoever planted it, so
``-w /tmp/web.pcapng`` made by ``nobody`` to point at ``/etc/shadow`` would have
root overwrite it; a file or FIFO another user created in advance would hand
them what root writes (packets of every container). Therefore:

- a symlink is followed only when the caller's own user owns it (root's own
  ``/dev/stdout``, a link the engineer made), else the path is refused;
- otherwise the last component is opened with ``O_NOFOLLOW``, so a symlink put
  there between the check and the open fails the open instead of redirecting it;
- an existing regular file or FIFO owned by someone else is refused before it is
  truncated or written;
- a new file gets ``mode`` (0600 by default: what root captures is not everyone's).
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from netlens.errors import UsageError


def check_path(path: str) -> os.stat_result | None:
    """``path``'s lstat (None when absent), or :class:`UsageError` when another user
    owns the symlink or the file there."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror or err}") from None
    me = os.geteuid()
    if stat.S_ISLNK(st.st_mode) and st.st_uid != me:
        raise UsageError(
            f"not writing {path}: it is a symlink owned by uid {st.st_uid}, and whoever "
            "owns it would choose which file gets overwritten (remove it or pick another path)"
        )
    if (stat.S_ISREG(st.st_mode) or stat.S_ISFIFO(st.st_mode)) and st.st_uid != me:
        raise UsageError(
            f"not writing {path}: it belongs to uid {st.st_uid}, who would read what is "
            "written there (remove it or pick another path)"
        )
    return st


def open_output(path: str, mode: int = 0o600, exclusive: bool = False) -> BinaryIO:
    """``path`` opened for writing (truncated), after :func:`check_path`'s rules.

    A path that was absent is created with ``O_EXCL``: a file someone makes there
    between the check and the open fails the open. ``exclusive``: the file must be
    new even if it was there (names netlens makes up)."""
    st = check_path(path)
    followed = st is not None and stat.S_ISLNK(st.st_mode)  # our own link: followed
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
    if not followed:
        flags |= os.O_NOFOLLOW
    if st is None or exclusive:
        flags |= os.O_EXCL
    try:
        fd = os.open(path, flags, mode)
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror or err}") from None
    try:
        got = os.fstat(fd)
        mine = got.st_uid == os.geteuid()
        if not followed and not mine and (stat.S_ISREG(got.st_mode) or stat.S_ISFIFO(got.st_mode)):
            raise UsageError(f"not writing {path}: it belongs to uid {got.st_uid}")  # swapped in
        if stat.S_ISREG(got.st_mode):
            os.ftruncate(fd, 0)
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise
