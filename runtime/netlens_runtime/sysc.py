"""Thin ctypes wrappers for the Linux system calls Python 3.11 lacks.

Why ctypes and not util-linux: the runtime creates containers between fork and
exec in the same process, and spawning ``unshare``/``nsenter``/``ip`` per
container costs several milliseconds each. Every wrapper raises ``OSError`` with
the real errno so callers can roll back precisely.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
# clone without releasing the GIL: with ctypes' usual GIL release another Python
# thread could hold the GIL at the instant of the copy, and the child (which has
# only the calling thread) would deadlock taking it back.
_clone_syscall = ctypes.PyDLL("libc.so.6", use_errno=True).syscall
_clone_syscall.restype = ctypes.c_long

# System call numbers differ per architecture (those from 424 on are shared).
# Known here: x86_64 (the project's machines) and aarch64 (asm-generic/unistd.h).
_NUMBERS = {
    "x86_64": {"rt_sigaction": 13, "rt_sigprocmask": 14, "clone": 56, "pivot_root": 155,
               "capset": 126, "setns": 308},
    "aarch64": {"rt_sigaction": 134, "rt_sigprocmask": 135, "clone": 220, "pivot_root": 41,
                "capset": 91, "setns": 268},
}  # fmt: skip
_NUMBERS["amd64"] = _NUMBERS["x86_64"]
_NUMBERS["arm64"] = _NUMBERS["aarch64"]
MACHINE = platform.machine()
_OURS = _NUMBERS.get(MACHINE, {})
SYS_RT_SIGACTION = _OURS.get("rt_sigaction", -1)
SYS_RT_SIGPROCMASK = _OURS.get("rt_sigprocmask", -1)
SYS_CLONE = _OURS.get("clone", -1)
SYS_PIVOT_ROOT = _OURS.get("pivot_root", -1)
SYS_CAPSET = _OURS.get("capset", -1)
SYS_SETNS = _OURS.get("setns", -1)
SYS_PIDFD_OPEN = 434
SYS_PIDFD_SEND_SIGNAL = 424
SYS_MOUNT_SETATTR = 442
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429


def _nr(number: int) -> int:
    """``number``, or one clear error where this module does not know the numbers."""
    if number < 0:
        from netlens_runtime.errors import RuntimeFailure

        raise RuntimeFailure(
            f"the container runtime supports x86_64 and aarch64 only, not {MACHINE or 'unknown'}"
        )
    return number


CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWCGROUP = 0x02000000
SIGCHLD = 17

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
AT_EMPTY_PATH = 0x1000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4

PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int) -> None:
    _check(_syscall(_nr(SYS_SETNS), ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def clone(flags: int) -> int:
    """fork(2) with namespace flags: returns 0 in the child, the pid in the parent.

    A raw clone skips Python's after-fork hooks; it is only used from a
    single-threaded caller whose child runs a few syscalls and then execs.
    """
    return _check(
        _clone_syscall(_nr(SYS_CLONE), ctypes.c_ulong(flags | SIGCHLD), None, None, None, None),
        "clone",
    )


SYS_CLONE3 = 435
CLONE_INTO_CGROUP = 0x200000000


def clone3(flags: int, cgroup_fd: int = -1) -> int:
    """clone3(2) like :func:`clone`, optionally starting the child in a v2 cgroup.

    CLONE_INTO_CGROUP avoids writing cgroup.procs afterwards, a migration that
    takes the cgroup threadgroup lock and costs milliseconds per process.
    """
    if cgroup_fd >= 0:
        flags |= CLONE_INTO_CGROUP
    args = struct.pack("11Q", flags, 0, 0, 0, SIGCHLD, 0, 0, 0, 0, 0, max(cgroup_fd, 0))
    buf = ctypes.create_string_buffer(args, len(args))
    return _check(_clone_syscall(SYS_CLONE3, buf, ctypes.c_size_t(len(args))), "clone3")


def mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    ret = _libc.mount(
        src.encode() if src is not None else None,
        target.encode(),
        fstype.encode() if fstype is not None else None,
        ctypes.c_ulong(flags),
        data.encode() if data is not None else None,
    )
    _check(ret, f"mount {target}")


def umount2(target: str, flags: int) -> None:
    _check(_libc.umount2(target.encode(), ctypes.c_int(flags)), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_syscall(_nr(SYS_PIVOT_ROOT), new_root.encode(), put_old.encode()), "pivot_root")


def mount_setattr_rdonly_private(path: str) -> None:
    """Make every mount under ``path`` read-only and private in one syscall."""
    mount_setattr(path, MOUNT_ATTR_RDONLY, MS_PRIVATE)


def mount_setattr(
    path: str, attr_set: int, propagation: int = 0, fd: int = AT_FDCWD, flags: int = AT_RECURSIVE
) -> None:
    """mount_setattr(2): set ``attr_set`` (MOUNT_ATTR_*) and ``propagation`` (MS_PRIVATE...).

    ``fd`` with ``path=""`` and AT_EMPTY_PATH in ``flags`` changes a detached
    tree from :func:`open_tree` before it is attached.
    """
    attr = struct.pack("QQQQ", attr_set, 0, propagation, 0)
    buf = ctypes.create_string_buffer(attr, len(attr))
    ret = _syscall(
        SYS_MOUNT_SETATTR,
        ctypes.c_int(fd),
        path.encode(),
        ctypes.c_uint(flags),
        buf,
        ctypes.c_size_t(len(attr)),
    )
    _check(ret, f"mount_setattr {path}")


def open_tree(path: str) -> int:
    """A detached recursive copy of the mount tree at ``path`` (close-on-exec fd).

    The copy is made in the caller's mount namespace and can be attached in
    another one later (:func:`move_mount`): a container's child opens its
    volumes before it enters the batch's template, where host paths are gone.
    """
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE
    fd = _syscall(SYS_OPEN_TREE, ctypes.c_int(AT_FDCWD), path.encode(), ctypes.c_uint(flags))
    return _check(fd, f"open_tree {path}")


def move_mount(tree_fd: int, target: str) -> None:
    """Attach a detached tree (from :func:`open_tree`) at ``target``."""
    ret = _syscall(
        SYS_MOVE_MOUNT,
        ctypes.c_int(tree_fd),
        b"",
        ctypes.c_int(AT_FDCWD),
        target.encode(),
        ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH),
    )
    _check(ret, f"move_mount {target}")


def reset_signals() -> None:
    """Every signal back to its default action and none blocked (just before exec).

    A container's command must not inherit what its creator ignored or blocked.
    The raw syscall also reaches signals 32 and 33, which glibc's sigaction refuses.
    """
    action, mask = _nr(SYS_RT_SIGACTION), _nr(SYS_RT_SIGPROCMASK)
    dfl = ctypes.create_string_buffer(32)  # handler, flags, restorer, mask: zero = SIG_DFL
    for sig in range(1, 65):
        if sig not in (9, 19):  # SIGKILL and SIGSTOP cannot be changed
            _syscall(action, ctypes.c_int(sig), dfl, None, ctypes.c_size_t(8))
    none = ctypes.create_string_buffer(8)
    _syscall(mask, ctypes.c_int(2), none, None, ctypes.c_size_t(8))  # SIG_SETMASK


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")


def prctl(option: int, arg2: int = 0, arg3: int = 0) -> None:
    _check(
        _libc.prctl(
            ctypes.c_int(option),
            ctypes.c_ulong(arg2),
            ctypes.c_ulong(arg3),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
        ),
        "prctl",
    )


PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def set_seccomp(program: bytes) -> None:
    """Load a classic-BPF seccomp filter (``struct sock_filter`` array) on this thread.

    Needs no_new_privs or CAP_SYS_ADMIN; the filter holds for every later exec.
    """
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
    mode, zero = ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.c_ulong(0)
    ret = _libc.prctl(ctypes.c_int(PR_SET_SECCOMP), mode, ctypes.byref(prog), zero, zero)
    _check(ret, "seccomp")


def capset(caps: int) -> None:
    """Set effective, permitted and inheritable sets of this thread to ``caps``."""
    header = struct.pack("Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    lo, hi = caps & 0xFFFFFFFF, caps >> 32
    data = struct.pack("IIIIII", lo, lo, lo, hi, hi, hi)
    hbuf = ctypes.create_string_buffer(header, len(header))
    dbuf = ctypes.create_string_buffer(data, len(data))
    _check(_syscall(_nr(SYS_CAPSET), hbuf, dbuf), "capset")


def pidfd_open(pid: int) -> int:
    return _check(_syscall(SYS_PIDFD_OPEN, ctypes.c_int(pid), ctypes.c_uint(0)), "pidfd_open")


def mknod(path: str, mode: int, major: int, minor: int) -> None:
    os.mknod(path, mode, os.makedev(major, minor))
