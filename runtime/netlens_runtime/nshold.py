"""Holding a container's network namespace without its processes (``lab stop``).

A container's namespaces live as long as its PID 1: nothing else holds them
(no handle on disk; see spawn.py). To stop a lab node's command but keep its
network namespace, with its interfaces, addresses, routes, qdiscs, nft tables
and link state, the namespace is bind-mounted first, at
``$NETLENS_STATE_DIR/netns/<container>`` (as ``ip netns add`` does under
/run/netns; in the state directory because container names are per state
directory). ``lab start`` clones a new PID 1 that joins it (spawn.Plan.netns_path).

The handle stays until the container is removed (``rm``, ``lab down``, ``gc`` of
a name without a record): once a node has been stopped, a command that exits on
its own no longer takes the lab's links with it, and ``lab start`` can run it
again. Only the network namespace can be kept: a PID namespace dies with its
init, so PID, mount, UTS and IPC namespaces are made again at start, from the
record, exactly as at creation.

Every handle is checked to be an nsfs mount of a *network* namespace whose inode
is the one the container's record saved (an inode alone is a number, reused
after a namespace dies; a path alone is a file anyone could put there).

A copy of the mount made in another mount namespace while a node is stopped
(an ``unshare -m`` shell started then) keeps the namespace alive after
``lab down`` until that mount namespace goes: the state directory is not a
shared mount, so the unmount does not reach it. Containers made by this
runtime drop such copies (their roots are pivoted and the host's mounts
detached); the inspector's deep scan (``netlens dump --deep``) finds the rest.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from typing import Any

from netlens_runtime import names, state, sysc

KIND = state.NETNS
_NS_GET_NSTYPE = 0xB703  # ioctl on an nsfs file: the namespace's CLONE_NEW* type
_UMOUNT_NOFOLLOW = 8


def handle_path(name: str) -> str:
    """Where container ``name``'s network namespace is held (a validated name only)."""
    names.validate_name(name)
    return os.path.join(state.kind_dir(KIND), name)


def _netns_inode(fd: int) -> int | None:
    """The inode of the network namespace ``fd`` opens; None if it is not one."""
    try:
        if fcntl.ioctl(fd, _NS_GET_NSTYPE) != sysc.CLONE_NEWNET:
            return None
    except OSError:
        return None  # not an nsfs file (a plain file left where a mount was)
    return os.fstat(fd).st_ino


def open_held(name: str, inode: int | None) -> int | None:
    """An fd (close-on-exec) of ``name``'s held namespace if it is the one with ``inode``."""
    try:
        fd = os.open(handle_path(name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    if inode is None or _netns_inode(fd) != inode:
        os.close(fd)
        return None
    return fd


def held(rec: dict[str, Any]) -> bool:
    """The container's recorded network namespace is held by its handle."""
    fd = open_held(str(rec["name"]), rec.get("netns_inode"))
    if fd is None:
        return False
    os.close(fd)
    return True


def hold(name: str, pid: int, inode: int) -> None:
    """Bind-mount ``/proc/PID/ns/net`` at the handle, if it is namespace ``inode``.

    Nothing to do when the handle already holds it. OSError when the process
    is not in that namespace (any more) or the mount fails; the empty file made
    for the mount is removed again then.
    """
    os.makedirs(state.sub(KIND), mode=0o755, exist_ok=True)
    path = handle_path(name)
    fd = open_held(name, inode)
    if fd is not None:
        os.close(fd)
        return
    release(name)  # a stale handle (another namespace, a plain file) goes first
    src = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if os.fstat(src).st_ino != inode:
            raise OSError(errno.ESRCH, f"process {pid} is not in the container's namespace")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        os.close(os.open(path, flags, 0o444))
        try:
            # Through the fd (not the pid's path): the namespace checked above is the one held.
            sysc.mount(f"/proc/self/fd/{src}", path, None, sysc.MS_BIND, None)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
    finally:
        os.close(src)


def release(name: str) -> bool:
    """Unmount and remove ``name``'s handle (every mount stacked on it); True if one was there.

    The namespace itself goes when nothing else holds it (its processes, a
    copy of the mount elsewhere); the kernel then removes its interfaces.
    """
    path = handle_path(name)
    if not os.path.lexists(path):
        return False
    for _ in range(64):  # a handle mounted twice over (two racing holds) unmounts twice
        try:
            sysc.umount2(path, sysc.MNT_DETACH | _UMOUNT_NOFOLLOW)
        except OSError as err:
            if err.errno in (errno.EINVAL, errno.ENOENT):
                break  # not (or no longer) a mount point
            raise
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return True


def handles() -> list[str]:
    """Names of the containers whose namespaces have a handle (for gc)."""
    try:
        entries = os.listdir(state.kind_dir(KIND))
    except OSError:
        return []
    return sorted(e for e in entries if names.NAME_RE.fullmatch(e))
