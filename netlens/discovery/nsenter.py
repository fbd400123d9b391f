"""Open sockets inside other network namespaces without forking.

pyroute2's ``IPRoute(netns=...)`` forks a helper per namespace (about 7 ms each)
and, by default, *creates* a missing namespace (``O_CREAT``). An inspector must do
neither. Instead a short-lived dedicated thread calls ``setns(2)`` into each
target namespace, opens a socket there and switches back: a socket stays bound
to the namespace it was created in, so the caller can use it from any thread
afterwards. 1000 namespaces open in tens of milliseconds this way.

Only the worker thread ever changes namespace (``setns`` with CLONE_NEWNET acts
on the calling thread), so the rest of the process - the Textual event loop
included - never leaves the host namespace.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import resource
import socket
import stat
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

CLONE_NEWNET = 0x40000000
NS_GET_NSTYPE = 0xB703  # ioctl: which kind of namespace an nsfs fd refers to
NETLINK_ROUTE = 0
NETLINK_NETFILTER = 12

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
