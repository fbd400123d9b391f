"""Enter network namespaces without forking: discovery, stats and the runtime.

pyroute2's ``IPRoute(netns=...)`` forks a helper per namespace (about 7 ms each)
and, by default, *creates* a missing namespace (``O_CREAT``). An inspector must do
neither. Instead a short-lived dedicated thread calls ``setns(2)`` into each
target namespace, opens a socket there and switches back: a socket stays bound
to the namespace it was created in, so the caller can use it from any thread
afterwards. 1000 namespaces open in tens of milliseconds this way.

Only the worker thread ever changes namespace (``setns`` with CLONE_NEWNET acts
on the calling thread), so the rest of the process - the Textual event loop
included - never leaves the host namespace.

Two policies for a failure inside a namespace, both needed: discovery's
:func:`run_in_netns` records it per namespace and walks on (a namespace that
vanishes mid-walk is normal), the runtime's :func:`in_netns` and :func:`call_in`
stop at the first one and raise it (a lab must not silently lose a route).
Python 3.11 has no ``os.setns``, hence ctypes.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import resource
import socket
import stat
import struct
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from netlens.kernel.consts import CLONE_NEWNET, NETLINK_ROUTE, NS_GET_NSTYPE

_libc = ctypes.CDLL(None, use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.setns.restype = ctypes.c_int

T = TypeVar("T")


def setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
    """Move the *calling thread* into the namespace behind ``fd``."""
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def is_netns_fd(fd: int) -> bool:
    """True when ``fd`` is an nsfs handle of a network namespace.

    A removed Docker container can leave an empty plain file where its namespace
    was bind-mounted; only a real nsfs handle answers NS_GET_NSTYPE.
    """
    try:
        return fcntl.ioctl(fd, NS_GET_NSTYPE) == CLONE_NEWNET
    except OSError:
        return False


def open_netns(path: str) -> int | None:
    """Open a namespace handle read-only; None if it is gone or not a netns.

    Never passes O_CREAT: opening must not create anything. O_NONBLOCK and
    O_NOCTTY: a ``/proc/PID/fd/N`` or bind-mount path may be a FIFO (whose open
    would block until a writer came) or a tty (which would become our terminal);
    nsfs files are regular files, so anything else is closed unasked.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        plain = stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        plain = False
    if not plain or not is_netns_fd(fd):
        os.close(fd)
        return None
    return fd


def raise_fd_limit(wanted: int = 65536) -> int:
    """Raise RLIMIT_NOFILE's soft limit towards ``wanted`` (1000 namespaces need
    more than the default 1024 fds once sockets are kept open). Returns the new
    soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, wanted), hard) if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def run_in_netns(targets: Sequence[int | str], func: Callable[[int | str], T]) -> list[T | OSError]:
    """Call ``func(target)`` once inside each namespace, from one worker thread.

    ``targets`` are open nsfs fds or paths (``/proc/PID/ns/net``, ``/run/netns/X``).
    Each result is func's return value, or the OSError that entering or running
    raised (a namespace that vanished mid-walk is normal, never fatal).
    """
    results: list[T | OSError] = []
    failure: list[BaseException] = []

    def worker() -> None:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            for target in targets:
                fd: int | None
                own_fd = False
                if isinstance(target, str):
                    fd = open_netns(target)
                    own_fd = True
                    if fd is None:
                        results.append(OSError(errno.ENOENT, f"not a network namespace: {target}"))
                        continue
                else:
                    fd = target
                try:
                    setns(fd, CLONE_NEWNET)
                    try:
                        results.append(func(target))
                    except OSError as err:
                        results.append(err)
                    finally:
                        setns(home, CLONE_NEWNET)
                except OSError as err:
                    results.append(err)
                finally:
                    if own_fd:
                        os.close(fd)
        except BaseException as exc:  # pragma: no cover - surfaced to the caller below
            failure.append(exc)
        finally:
            os.close(home)

    thread = threading.Thread(target=worker, name="netlens-setns", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return results


def netlink_socket(protocol: int = NETLINK_ROUTE, rcvbuf: int = 1 << 20) -> socket.socket:
    """Open and bind a netlink socket in the calling thread's current namespace."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, protocol)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((0, 0))
    except OSError:
        sock.close()
        raise
    return sock


def open_netlink_sockets(
    targets: Sequence[int | str], protocol: int = NETLINK_ROUTE
) -> list[socket.socket | None]:
    """One bound netlink socket per namespace (None where it could not be entered).

    The sockets keep working after the worker thread returns home; the caller
    owns and must close them.
    """
    out: list[socket.socket | None] = []
    for res in run_in_netns(targets, lambda _t: netlink_socket(protocol)):
        out.append(None if isinstance(res, OSError) else res)
    return out


_RCVTIMEO = struct.pack("@ll", 5, 0)  # struct timeval, native longs


def timed_netlink_socket(_target: int | str = "") -> socket.socket:
    """A NETLINK_ROUTE socket in the calling thread's namespace with a kernel-side
    receive timeout (no extra syscalls per read, unlike ``settimeout``), so that one
    stuck namespace cannot hang a walk. Made to run inside :func:`run_in_netns`."""
    sock = netlink_socket(rcvbuf=1 << 18)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _RCVTIMEO)
    return sock


def own_netns_inode() -> int | None:
    """The inode of the calling thread's network namespace (None: no /proc)."""
    try:
        return os.stat("/proc/thread-self/ns/net").st_ino
    except OSError:
        return None


def read_small(path: str) -> str | None:
    """The first 256 bytes of a small procfs file, stripped (None: unreadable). Paths
    under /proc/sys/net resolve against the *calling thread's* namespace, so inside
    :func:`run_in_netns` they read the target's values."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 256).decode("ascii", "replace").strip()
    except OSError:
        return None
    finally:
        os.close(fd)


def in_netns(paths: Sequence[str], func: Callable[[str], T]) -> list[T]:
    """Call ``func(path)`` inside each namespace in turn, from one worker thread.

    The first exception stops the walk and is re-raised in the caller (a lab
    must not silently lose a route). The worker always returns to the host
    namespace before it runs the next item or ends.
    """
    results: list[T] = []
    failure: list[BaseException] = []

    def worker() -> None:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            for path in paths:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    setns(fd)
                    try:
                        results.append(func(path))
                    finally:
                        setns(home)
                finally:
                    os.close(fd)
        except BaseException as exc:
            failure.append(exc)
        finally:
            os.close(home)

    thread = threading.Thread(target=worker, name="netlens-lab-setns", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return results


def call_in(netns_fd: int | None, func: Callable[[], T]) -> T:
    """``func()`` on a worker thread inside the namespace of ``netns_fd`` (None: ours).

    Like :func:`in_netns` for one namespace the caller already opened (and
    checked, e.g. against a container record's inode): link control enters a
    node that way. A process ``func`` starts is born in that namespace too
    (fork copies the calling thread's namespaces), so ``nft`` runs there.
    """
    result: list[T] = []
    failure: list[BaseException] = []

    def worker() -> None:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if netns_fd is not None:
                setns(netns_fd)
            try:
                result.append(func())
            finally:
                if netns_fd is not None:
                    setns(home)
        except BaseException as exc:
            failure.append(exc)
        finally:
            os.close(home)

    thread = threading.Thread(target=worker, name="netlens-netns-call", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]
