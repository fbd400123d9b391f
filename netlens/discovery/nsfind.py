"""Find every network namespace on the host (named, process-held, bind-mounted).

A namespace lives as long as something holds it: a process or thread inside it
(``/proc/PID/ns/net``, ``/proc/PID/task/TID/ns/net``) or an nsfs bind mount
(``/run/netns/NAME`` for ``ip netns``, ``/run/docker/netns/<sandbox>``, podman's,
or any custom path; all listed in ``/proc/self/mountinfo``). Every source is read
as text or link targets only: nothing is opened, so nothing is created or kept
alive. Identity is the nsfs (dev, inode) pair, which the link target
``net:[INODE]`` and the mountinfo line both carry.

Two rarer holders cost more to find and are an opt-in *deep scan*
(``deep=True`` or ``NETLENS_DEEP_SCAN=1``; ``netlens dump --deep``): an nsfs bind
mount that lives only in another mount namespace (``ip netns add`` run inside a
container or an ``unshare -m`` shell; and every ``ip netns exec`` shell keeps
copies of the /run/netns mounts that existed when it started, which keep a
deleted namespace alive), and an open file descriptor (a tool that opened
/run/netns/X and then deleted it). Such a namespace gets a path through the
holder: ``/proc/PID/root/<mount point>`` or ``/proc/PID/fd/N``.

``proc_root`` is a test seam: unit tests point it at a recorded tree whose
``ns/net`` entries are dangling symlinks named ``net:[INODE]``.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Mapping
from dataclasses import dataclass

from netlens.kernel.consts import CLONE_NEWNET, NS_GET_NSTYPE

NETNS_RUN_DIR = "/run/netns"
DEEP_ENV = "NETLENS_DEEP_SCAN"


@dataclass(frozen=True, slots=True)
class NsHandle:
    """One network namespace found on the host, deduplicated by (dev, inode).

    ``path`` is one path that opens it (``/run/netns/X``, a bind mount, or
    ``/proc/PID/ns/net``); ``names`` are its /run/netns names, ``mounts`` every
    nsfs bind mount of it, ``pids`` the processes (thread group ids) inside it.
    """

    dev: int
    inode: int
    path: str
    is_host: bool = False
    names: tuple[str, ...] = ()
    mounts: tuple[str, ...] = ()
    pids: tuple[int, ...] = ()

    @property
    def id(self) -> str:
        """The model's Netns.id."""
        return f"netns:{self.inode}"


def _ns_inode(target: str) -> int | None:
    """``net:[4026531833]`` -> 4026531833."""
    if target.startswith("net:[") and target.endswith("]"):
        try:
            return int(target[5:-1])
        except ValueError:
            return None
    return None


def _readlink_inode(path: str) -> int | None:
    try:
        return _ns_inode(os.readlink(path))
    except OSError:
        return None


def _unescape(field: str) -> str:
    r"""mountinfo escapes space, tab, newline and backslash as ``\ooo``."""
    if "\\" not in field:
        return field
    out = []
    i = 0
    while i < len(field):
        code = field[i + 1 : i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[tuple[int, int, str]]:
    """nsfs mounts of network namespaces: (dev, inode, mount point) per line."""
    out: list[tuple[int, int, str]] = []
    for line in text.splitlines():
        if "net:[" not in line:
            continue
        left, sep, right = line.partition(" - ")
        if not sep or not right.startswith("nsfs "):
            continue
        fields = left.split(" ")
        if len(fields) < 5:
            continue
        inode = _ns_inode(fields[3])
        if inode is None:
            continue
        major, _, minor = fields[2].partition(":")
        try:
            dev = os.makedev(int(major), int(minor))
        except ValueError:
            continue
        out.append((dev, inode, _unescape(fields[4])))
    return out


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def host_namespace(proc_root: str = "/proc") -> tuple[int, str] | None:
    """(inode, path) of the host namespace: PID 1's; when PID 1 hides itself (an
    init some sandboxes protect), kthreadd's, since kernel threads live in the
    initial namespace; ours only when neither is readable (not root).

    Ours is the last resort because netlens may itself run inside a namespace
    (``ip netns exec X netlens``): that namespace is not the host."""
    for pid in ("1", "2", "self"):
        if pid == "2" and not _is_kthreadd(proc_root, 2):  # read only when init hides
            continue
        path = f"{proc_root}/{pid}/ns/net"
        inode = _readlink_inode(path)
        if inode is not None:
            return inode, path
    return None


def _is_kthreadd(proc_root: str, pid: int) -> bool:
    """Whether ``pid`` is the kernel's thread creator: besides init, the only task
    whose parent is 0 in the initial PID namespace (in a container's PID
    namespace PID 2 is an ordinary process with a parent)."""
    for line in _read(f"{proc_root}/{pid}/status").splitlines():
        if line.startswith("PPid:"):
            return line.split()[1:] == ["0"]
    return False


def find_namespaces(proc_root: str = "/proc", *, deep: bool | None = None) -> list[NsHandle]:
    """Every network namespace visible from here: host first, then by inode.

    Sources: processes and their threads under ``proc_root``, and nsfs bind
    mounts in ``proc_root/self/mountinfo``; with ``deep`` (default: the
    ``NETLENS_DEEP_SCAN`` environment variable) also bind mounts in other mount
    namespaces and open file descriptors, for namespaces nothing else holds.
    Unreadable entries (other users' processes when not root, processes that
    exit mid-scan) are skipped.
    """
    if deep is None:
        deep = os.environ.get(DEEP_ENV, "") not in ("", "0")
    pids: dict[int, set[int]] = {}
    first_path: dict[int, str] = {}
    try:
        entries = os.listdir(proc_root)
    except OSError:
        entries = []
    readlink = os.readlink
    for entry in entries:
        if not entry.isdigit():
            continue
        base = f"{proc_root}/{entry}"
        try:
            inode = _ns_inode(readlink(f"{base}/ns/net"))
        except OSError:
            continue
        pid = int(entry)
        if inode is not None:
            pids.setdefault(inode, set()).add(pid)
            first_path.setdefault(inode, f"{base}/ns/net")
        try:
            tids = os.listdir(f"{base}/task")
        except OSError:
            continue
        if len(tids) <= 1:
            continue
        for tid in tids:
            if tid == entry:
                continue
            tpath = f"{base}/task/{tid}/ns/net"
            tinode = _readlink_inode(tpath)
            if tinode is not None and tinode != inode:
                pids.setdefault(tinode, set()).add(pid)
                first_path.setdefault(tinode, tpath)

    mounts: dict[int, list[str]] = {}
    devs: dict[int, int] = {}
    for dev, inode, point in parse_mountinfo(_read(f"{proc_root}/self/mountinfo")):
        lst = mounts.setdefault(inode, [])
        if point not in lst:
            lst.append(point)
        devs.setdefault(inode, dev)

    default_dev = _nsfs_dev(proc_root, devs)
    found_host = host_namespace(proc_root)
    host = found_host[0] if found_host else None
    if deep:
        known = set(pids) | set(mounts) | ({host} if host is not None else set())
        for inode, (dev, path, is_mount) in _deep_scan(
            proc_root, entries, known, default_dev
        ).items():
            first_path[inode] = path
            if is_mount:
                mounts[inode] = [path]
                devs[inode] = dev
    handles: list[NsHandle] = []
    # first_path also holds namespaces the deep scan found only through an fd.
    for inode in set(first_path) | set(mounts) | ({host} if host is not None else set()):
        points = sorted(mounts.get(inode, ()))
        names = tuple(
            p[len(NETNS_RUN_DIR) + 1 :]
            for p in points
            if p.startswith(NETNS_RUN_DIR + "/") and "/" not in p[len(NETNS_RUN_DIR) + 1 :]
        )
        if found_host and inode == host:
            path = found_host[1]
        elif names:
            path = f"{NETNS_RUN_DIR}/{names[0]}"
        elif points:
            path = points[0]
        elif inode in first_path:
            path = first_path[inode]
        else:
            path = f"{proc_root}/self/ns/net"
        handles.append(
            NsHandle(
                dev=devs.get(inode, default_dev),
                inode=inode,
                path=path,
                is_host=inode == host,
                names=names,
                mounts=tuple(points),
                pids=tuple(sorted(pids.get(inode, ()))),
            )
        )
    handles.sort(key=lambda h: (not h.is_host, h.inode))
    return handles


def _deep_scan(
    proc_root: str, entries: list[str], known: set[int], nsfs_dev: int
) -> dict[int, tuple[int, str, bool]]:
    """Namespaces not in ``known`` held by a foreign mount or an open fd: inode ->
    (nsfs dev or 0, a path through the holder, whether that path is a mount).

    Each mount namespace is read once (processes sharing one are deduplicated by
    its inode, ours is skipped: the caller read it); fds are read per process,
    which is what makes this scan cost more than the default one.
    """
    found: dict[int, tuple[int, str, bool]] = {}
    own_mnt = _readlink_any(f"{proc_root}/self/ns/mnt")
    seen_mnt = {own_mnt} if own_mnt else set()
    readlink = os.readlink
    for entry in entries:
        if not entry.isdigit():
            continue
        base = f"{proc_root}/{entry}"
        mnt = _readlink_any(f"{base}/ns/mnt")
        if mnt is not None and mnt not in seen_mnt:
            seen_mnt.add(mnt)
            for dev, inode, point in parse_mountinfo(_read(f"{base}/mountinfo")):
                if inode not in known and inode not in found:
                    found[inode] = (dev, f"{base}/root{point}", True)
        try:
            fds = os.listdir(f"{base}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = readlink(f"{base}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("net:["):
                held = _ns_inode(target)
            elif target.startswith("/"):
                # Opened through a bind mount, the link shows that path (or "/" once
                # unmounted), not net:[...]: stat says whether it is an nsfs file.
                held = _nsfs_fd_inode(f"{base}/fd/{fd}", nsfs_dev, known, found)
            else:
                continue  # sockets, pipes, anon inodes
            if held is not None and held not in known and held not in found:
                found[held] = (0, f"{base}/fd/{fd}", False)
    return found


def _nsfs_fd_inode(
    path: str, nsfs_dev: int, known: set[int], found: Mapping[int, object]
) -> int | None:
    """The inode of a network namespace file held open at ``path``, else None.

    nsfs files of every namespace type share one device; only an ioctl on an
    open fd tells a network namespace from a mount or pid one. Opening an
    existing nsfs file creates nothing.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    if st.st_dev != nsfs_dev or st.st_ino in known or st.st_ino in found:
        return None
    try:
        # The fd may have been replaced by a FIFO or tty since the stat: never block
        # on it nor make it our terminal, and check what was actually opened.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (nsfs_dev, st.st_ino):
            return None
        kind = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        return None
    finally:
        os.close(fd)
    return st.st_ino if kind == CLONE_NEWNET else None


def _readlink_any(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _nsfs_dev(proc_root: str, devs: dict[int, int]) -> int:
    """The nsfs superblock's device number (one for all namespaces)."""
    try:
        return os.stat(f"{proc_root}/self/ns/net").st_dev
    except OSError:
        pass
    for dev in devs.values():
        return dev
    return 0
