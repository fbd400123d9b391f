"""Where discovery's raw inputs come from: the live kernel, or a recorded fixture.

The parsers and the resolver never touch a socket or a file. They ask a
:class:`NetlinkSource` for raw netlink reply bytes per (namespace, request) and
for namespace ids, and a :class:`ProcSource` for procfs/sysfs text. The live
implementations read this host; the fixture implementations replay a directory
written by ``python3 -m netlens.discovery.capture``; the recording wrappers sit on
a live source and keep everything that was asked, which is how capture works.
So unit tests run the exact resolver code on bytes captured from a real host.

Fixture directory layout::

    proc/                 recorded procfs subset (ns/net links are dangling symlinks)
    sys/                  recorded sysfs subset (class/net/X/speed, device marker, ...)
    netlink/<inode>/<request>.bin   raw dump replies (``link``, ``addr``, ...)
    meta.json             {"sysctls": {inode: {...}}, "host_nsids": {inode: nsid},
                           "nsids": [[asker, target, nsid], ...], "errors": {inode: text},
                           "cpu_count": N}
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gc
import marshal
import os
import signal
import socket
import struct
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from netlens.discovery import nsenter, wire
from netlens.discovery.nsfind import NsHandle

if TYPE_CHECKING:
    import subprocess

Reply = bytes | wire.Decoded | OSError
"""One answer: raw reply bytes, rows the helper decoded, or the kernel's error."""

BRIDGE_SYSCTLS: dict[str, str] = {
    "net.bridge.bridge-nf-call-iptables": "/proc/sys/net/bridge/bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables": "/proc/sys/net/bridge/bridge-nf-call-ip6tables",
}
"""Per-namespace sysctls read from /proc/sys inside namespaces that have a bridge
(whether bridged traffic crosses iptables). The forwarding and rp_filter family
comes over netlink (``netlink.NETCONF``): with 1000 namespaces each /proc/sys/net
read costs about 250 us, so procfs is kept to the few namespaces that need it."""


class NetlinkSource(Protocol):
    """Raw rtnetlink replies per namespace (keyed by nsfs inode)."""

    def open(self, handles: Sequence[NsHandle]) -> dict[int, OSError]:
        """Get ready to read ``handles``. Returns the ones that could not be read,
        with why (ENOENT: vanished; EPERM: needs root)."""
        ...

    def prefetch(self, inodes: Sequence[int], requests: Sequence[str]) -> None:
        """Hint: :meth:`dumps` will be called with ``requests`` for each of ``inodes``
        in this order; a source may start fetching them in the background."""
        ...

    def dumps(self, inode: int, requests: Sequence[str]) -> dict[str, Reply]:
        """Raw reply bytes per request (``netlink.REQUESTS`` names or
        ``netlink.NETCONF``), or the error the kernel answered."""
        ...

    def sysctls(self, inodes: Sequence[int]) -> dict[int, dict[str, str]]:
        """The :data:`BRIDGE_SYSCTLS` values as read inside each namespace."""
        ...

    def host_nsids(self) -> dict[int, int]:
        """inode -> the id the host namespace gives it (only assigned ids)."""
        ...

    def ask_nsids(self, asker: int, targets: Sequence[int]) -> list[int | None]:
        """The ids namespace ``asker`` gives each target (None: no id)."""
        ...

    def close(self) -> None: ...


class ProcSource(Protocol):
    """procfs and sysfs text, addressed by absolute path (``/proc/meminfo``)."""

    proc_root: str

    def read_text(self, path: str) -> str | None: ...

    def exists(self, path: str) -> bool: ...

    def readlink(self, path: str) -> str | None: ...


# --- live -------------------------------------------------------------------------------------
def _read_small(path: str) -> str | None:
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


_RCVTIMEO = struct.pack("@ll", 5, 0)  # struct timeval, native longs


def _open_socket(_target: int | str) -> socket.socket:
    """Runs inside the target namespace (worker thread). A kernel-side receive
    timeout (no extra syscalls per read, unlike ``settimeout``) keeps one stuck
    namespace from hanging the whole walk."""
    sock = nsenter.netlink_socket(rcvbuf=1 << 18)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _RCVTIMEO)
    return sock


F_SETPIPE_SZ = 1031
PUMP_MIN_NAMESPACES = 48
"""Below this many namespaces the helper process costs more than it saves."""


class _Pump:
    """Runs the requests of many namespaces in a helper process.

    The helper (``netlens-walk``, the C walker of walk.c, in enter mode when it
    is built; else ``wire.py``) runs each namespace's requests in order and
    streams framed replies over a pipe. The parent parses one namespace while
    the helper's kernel work for the next ones runs on the other core. If the
    helper fails (dies, writes garbage), :meth:`take` returns None and the
    caller falls back to reading directly.
    """

    def __init__(
        self,
        requests: Sequence[str],
        targets: list[tuple[int, int]],
        mode: str = "",
        start: str = "fork",
        walker: str | None = None,
    ) -> None:
        """``targets``: (inode, fd) in order; the fds are open sockets, or with
        ``mode`` ``enter[+nat[+legacy]]`` nsfs handles the helper enters itself.
        ``walker``: the netlens-walk program (enter mode only), started with
        posix_spawn, which is safe from a process with threads too. Otherwise
        ``start``: ``fork`` (when single-threaded) or ``exec`` (a fresh interpreter)."""
        self.requests = tuple(requests)
        self.pos = {inode: i for i, (inode, _fd) in enumerate(targets)}
        self.inodes = [inode for inode, _fd in targets]
        self.with_nat = "nat" in mode.split("+")
        self.nat: dict[int, tuple[bytes | str, str, str]] = {}
        self.done: dict[int, dict[str, Reply]] = {}
        self.partial: dict[int, dict[str, Reply]] = {}
        self.chunks: list[bytes] = []
        self.avail = 0
        self.need = wire.FRAME.size
        self.failed = False
        self.finished = 0  # namespaces whose last frame came
        fds = [fd for _i, fd in targets]
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = 0
        self.kind = "fork"
        """How the helper runs: ``walk`` (netlens-walk), ``fork`` or ``exec`` (Python)."""
        spawned = None
        if walker is not None and mode.split("+")[0] == "enter":
            try:
                spawned = self._spawn(walker, fds, mode)
            except OSError as err:  # Python instead, this time
                if err.errno in (errno.ENOENT, errno.ENOEXEC, errno.EACCES, errno.EPERM):
                    # the program itself cannot run here (gone, wrong machine):
                    # not again in this process; a busy moment (EAGAIN,
                    # ENOMEM, EMFILE) leaves it for the next walk
                    from netlens.discovery import walker as walker_mod

                    walker_mod.forget()
        if spawned is not None:
            self.fd = spawned
            self.kind = "walk"
        elif start == "fork" and threading.active_count() == 1:
            self.fd = self._fork(fds, mode)
        else:
            self.kind = "exec"
            import subprocess

            argv = [sys.executable, "-I", "-S", wire.__file__, ",".join(self.requests)]
            if mode:
                argv.append(mode)
            self.proc = subprocess.Popen(
                [*argv, *map(str, fds)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                pass_fds=fds,
            )
            assert self.proc.stdout is not None
            self.fd = self.proc.stdout.fileno()
        # A roomy pipe: fewer wake-ups for multi-megabyte replies, and the helper
        # never waits for this process while it imports the model and reads
        # container identity (about 1 MB of rows from 500 namespaces meanwhile).
        # Root may exceed pipe-max-size.
        for size in (1 << 22, 1 << 20):
            try:
                fcntl.fcntl(self.fd, F_SETPIPE_SZ, size)
                break
            except OSError:
                continue

    def _spawn(self, walker: str, fds: list[int], mode: str) -> int:
        """Start netlens-walk with the nsfs fds dup2'ed onto fresh numbers above
        the handles and the pipe (the copies have no FD_CLOEXEC; a dup2 of an
        fd onto itself would clear it only with glibc >= 2.29), stdout the pipe,
        stdin and stderr /dev/null, an empty environment. posix_spawn, not
        subprocess: importing subprocess would delay the start by milliseconds.
        Raises OSError (the Python helper runs instead) when the fd limit
        cannot hold the copies."""
        if any(fd < 3 for fd in fds):
            raise OSError(errno.EBADF, "an nsfs fd on a standard stream")
        r, w = os.pipe2(os.O_CLOEXEC)
        if w < 3:  # our stdout was closed: the pipe must not be dup2'ed onto itself
            w, low = fcntl.fcntl(w, fcntl.F_DUPFD_CLOEXEC, 3), w
            os.close(low)
        base = max(*fds, r, w) + 1
        targets = range(base, base + len(fds))
        if nsenter.raise_fd_limit(base + len(fds) + 16) < base + len(fds):
            os.close(r)
            os.close(w)
            raise OSError(errno.EMFILE, "the fd limit cannot hold the walker's handles")
        actions: list[tuple[Any, ...]] = [
            (os.POSIX_SPAWN_DUP2, w, 1),
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
        ]
        actions += [(os.POSIX_SPAWN_DUP2, fd, t) for fd, t in zip(fds, targets, strict=True)]
        argv = [walker, ",".join(self.requests), mode, *map(str, targets)]
        try:
            self.pid = os.posix_spawn(walker, argv, {}, file_actions=actions)
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
        return r

    def _fork(self, fds: list[int], mode: str) -> int:
        """Start the helper as a fork of this process: no interpreter start and
        no imports (a fresh ``python3 -I -S wire.py`` needs 60-70 ms before its
        first namespace, and the helper is the long pole of a large walk). Only
        done while this process has a single thread, so no lock another thread
        holds can be inherited; the child runs nothing but :func:`wire.serve`
        and leaves with ``os._exit`` (no atexit handlers, no flushed buffers)."""
        from netlens.discovery.decode import DECODERS

        parts = mode.split("+")
        r, w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's coverage is not collected
            code = 1
            try:
                gc.disable()  # touch as few inherited pages as possible
                os.close(r)
                wire.serve(
                    self.requests,
                    fds,
                    w,
                    dict(DECODERS),
                    enter="enter" in parts,
                    nat="nat" in parts,
                    legacy="legacy" in parts,
                )
                code = 0
            except BaseException:  # the child must never return into the caller
                code = 1
            finally:
                os._exit(code)
        os.close(w)
        self.pid = pid
        return r

    def drain(self) -> None:
        """Read to the end (the NAT frames of namespaces nobody took)."""
        while self.pos and not self.failed:
            self._read()
            for p in list(self.done):
                self.pos.pop(self.inodes[p], None)
                del self.done[p]

    def take(self, inode: int) -> dict[str, Reply] | None:
        pos = self.pos.pop(inode, None)
        if pos is None:
            return None
        while pos not in self.done and not self.failed:
            self._read()
        return self.done.pop(pos, None)

    def _read(self) -> None:
        try:
            chunk = os.read(self.fd, 1 << 18)
        except OSError:
            chunk = b""
        if not chunk:
            self._fail()
            return
        self.chunks.append(chunk)
        self.avail += len(chunk)
        if self.avail < self.need:
            return  # a large reply still arriving: join only once it is complete
        data = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        try:
            off = self._frames(data)
        except (ValueError, EOFError, TypeError, IndexError):
            self._fail()  # garbage: the rest is read directly
            return
        rest = data[off:]
        self.chunks = [rest] if rest else []
        self.avail = len(rest)

    def _frames(self, data: bytes) -> int:
        """Take the complete frames at the start of ``data``; returns how far.
        Raises ValueError (or what ``marshal.loads`` raises) on anything a
        helper never writes."""
        off = 0
        size = wire.FRAME.size
        nreq = len(self.requests)
        last = nreq - (0 if self.with_nat else 1)
        unpack = wire.FRAME.unpack_from
        self.need = size
        while len(data) - off >= size:
            pos, idx, status, length = unpack(data, off)
            nat_frame = status == wire.STATUS_NAT
            if pos >= len(self.inodes) or idx > nreq or (idx == nreq) != nat_frame:
                raise ValueError(f"bad helper frame {pos} {idx} {status}")
            if len(data) - off - size < length:
                self.need = size + length
                break
            payload = data[off + size : off + size + length]
            off += size + length
            value: Reply
            if status == wire.STATUS_NAT:
                nat = marshal.loads(payload)
                if not (isinstance(nat, tuple) and len(nat) == 3):
                    raise ValueError("bad NAT frame")
                if not self.with_nat:
                    raise ValueError("NAT frame not asked for")
                self.nat[self.inodes[pos]] = nat
                self.done[pos] = self.partial.pop(pos, {})
                self.finished += 1
                continue
            if status == wire.STATUS_DECODED:
                rows = marshal.loads(payload)
                if not isinstance(rows, list):
                    raise ValueError("bad decoded frame")
                value = wire.Decoded(rows)
            elif status == wire.STATUS_ERROR:
                code, _, text = payload.decode("utf-8", "replace").partition(":")
                value = OSError(int(code) if code.isdigit() else errno.EIO, text)
            elif status == wire.STATUS_INTERRUPTED:
                value = wire.Interrupted(payload)
            elif status == wire.STATUS_DATA:
                value = payload
            else:
                raise ValueError(f"bad helper frame status {status}")
            got = self.partial.setdefault(pos, {})
            got[self.requests[idx]] = value
            if idx == last:
                self.done[pos] = self.partial.pop(pos)
                self.finished += 1
        return off

    def _fail(self) -> None:
        """The helper stopped or wrote garbage before the end: the caller reads the
        rest directly. A walker that fails is not started again by this process
        (unless it simply had nothing more to say)."""
        self.failed = True
        if self.kind == "walk" and self.finished < len(self.inodes):
            from netlens.discovery import walker

            walker.forget()

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            return
        if self.pid:
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(self.pid, os.WNOHANG) == (0, 0):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.pid, signal.SIGKILL)
                    os.waitpid(self.pid, 0)
            self.pid = 0
            os.close(self.fd)


def _read_sysctls(_target: int | str) -> dict[str, str]:
    """Runs inside the target namespace: /proc/sys/net resolves against the
    *calling thread's* namespace, so these are the target's values."""
    values: dict[str, str] = {}
    for key, path in BRIDGE_SYSCTLS.items():
        val = _read_small(path)
        if val is not None:
            values[key] = val
    return values


class LiveNetlink:
    """Reads the live host.

    With many namespaces (and root) the helper process enters every namespace
    itself, opens its socket there, dumps and streams the replies, so the setns
    pass runs on the second core while this process imports the model (the C
    walker, whose decoding is cheap, takes this process's own namespace too,
    first; the Python helper leaves it to this process). Otherwise one
    setns pass here opens a socket in every namespace. Sockets for namespaces the
    helper serves are opened here only when needed (asking a namespace for
    nsids, or when the helper fails).

    Knobs (environment): ``NETLENS_DISCOVERY_HELPER`` ``0`` no helper process at
    all, ``exec`` a fresh ``python3 wire.py`` instead of a fork when the Python
    helper runs, anything else the default; ``NETLENS_WALK_HELPER=0`` never the
    C walker ``netlens-walk`` (by default it is the helper whenever it is built,
    see :mod:`netlens.discovery.walker`; the Python helper is its fallback).
    """

    def __init__(self, *, nat_probe: bool = False) -> None:
        self.socks: dict[int, socket.socket] = {}
        self.fds: dict[int, int] = {}
        self.host: int | None = None
        self._host_nsids: dict[int, int] | None = None
        self._pump: _Pump | None = None
        helper = os.environ.get("NETLENS_DISCOVERY_HELPER", "1")
        self.use_pump = helper != "0"
        # "exec": a fresh interpreter instead of a fork (tests, and a fallback knob)
        self.helper_start = "exec" if helper == "exec" else "fork"
        # The C walker (netlens-walk) replaces the Python helper where it is built;
        # NETLENS_WALK_HELPER=0 keeps the Python one (netlens.discovery.walker).
        self.use_walker = os.environ.get("NETLENS_WALK_HELPER") != "0"
        # With nat_probe, the visit that opens the rtnetlink socket also starts the
        # NAT probe (nat.start_probe) in each namespace: entering 1000 namespaces a
        # second time for NAT alone cost 150-500 ms.
        self.nat_probe = nat_probe
        self._started: dict[int, Any] = {}  # inode -> nat.StartedProbe
        self._early: dict[int, Any] = {}  # inode -> nat.NsProbe (early_nat_probes)
        self._lazy: set[int] = set()  # inodes whose socket the helper opens
        self._opened: tuple[tuple[int, ...], dict[int, OSError]] | None = None
        self._own_later: int | None = None  # own namespace, opened after the helper starts

    def open(self, handles: Sequence[NsHandle]) -> dict[int, OSError]:
        key = tuple(h.inode for h in handles)
        if self._opened is not None and self._opened[0] == key:
            return dict(self._opened[1])  # discover() opened early
        failed = self._open(handles)
        self._opened = (key, failed)
        return dict(failed)

    def _opener(self) -> Callable[[int | str], socket.socket]:
        if not self.nat_probe:
            return _open_socket
        legacy = _legacy_present()
        started = self._started

        from netlens.discovery import nat

        def open_and_probe(target: int | str) -> socket.socket:
            sock = _open_socket(target)
            started[int(target)] = nat.start_probe(legacy)  # keyed by fd until open ends
            return sock

        return open_and_probe

    def _open(self, handles: Sequence[NsHandle]) -> dict[int, OSError]:
        nsenter.raise_fd_limit((3 if self.nat_probe else 2) * len(handles) + 256)
        failed: dict[int, OSError] = {}
        own = _own_inode()
        todo: list[tuple[NsHandle, int]] = []
        mine: int | None = None
        for h in handles:
            if h.is_host:
                self.host = h.inode
            fd = nsenter.open_netns(h.path)
            if fd is None:
                err = errno.EACCES if _exists(h.path) else errno.ENOENT
                failed[h.inode] = OSError(err, os.strerror(err))
                continue
            if os.fstat(fd).st_ino != h.inode:  # the path now names another namespace
                os.close(fd)
                failed[h.inode] = OSError(errno.ENOENT, "namespace vanished")
                continue
            self.fds[h.inode] = fd
            if h.inode == own:
                mine = h.inode
            else:
                todo.append((h, fd))
        # The helper enters the namespaces itself (it holds our nsfs fds, so none
        # can vanish meanwhile); setns needs root, and a few namespaces are read
        # faster here.
        if self.use_pump and os.geteuid() == 0 and len(todo) >= PUMP_MIN_NAMESPACES:
            self._lazy = {h.inode for h, _fd in todo}
            # This process's own namespace is opened once the helper runs (see
            # prefetch): its NAT probe imports the model, which the helper
            # need not wait for.
            self._own_later = mine
            return failed
        if mine is not None:
            self._open_own(mine, failed)
        if todo:
            self._open_here([h.inode for h, _fd in todo], failed)
        self._key_started_by_inode()
        return failed

    def _open_own(self, inode: int, failed: dict[int, OSError] | None = None) -> None:
        """Open the socket (and start the NAT probe) in this process's own namespace."""
        try:
            self.socks[inode] = self._opener()(self.fds[inode])
        except OSError as err:
            if failed is not None:
                failed[inode] = err
        self._key_started_by_inode()

    def _open_own_later(self) -> None:
        inode, self._own_later = self._own_later, None
        if inode is not None and inode not in self.socks:
            self._open_own(inode)

    def _open_here(
        self,
        inodes: Sequence[int],
        failed: dict[int, OSError] | None = None,
        opener: Callable[[int | str], socket.socket] | None = None,
    ) -> None:
        """One setns pass opening sockets (and starting NAT probes) in ``inodes``."""
        inodes = [i for i in inodes if i in self.fds and i not in self.socks]
        results = nsenter.run_in_netns([self.fds[i] for i in inodes], opener or self._opener())
        for inode, res in zip(inodes, results, strict=True):
            self._lazy.discard(inode)
            if isinstance(res, OSError):
                if failed is not None:
                    failed[inode] = res
            else:
                self.socks[inode] = res

    def _key_started_by_inode(self) -> None:
        by_fd = {fd: inode for inode, fd in self.fds.items()}
        self._started = {by_fd.get(k, k): v for k, v in self._started.items()}

    def _open_lazy(self) -> None:
        """The helper failed: open the sockets it would have used, in one pass."""
        if self._lazy:
            self._open_here(sorted(self._lazy))
            self._key_started_by_inode()

    def _sock(self, inode: int) -> socket.socket | None:
        if inode == self._own_later:
            self._open_own_later()
        if inode in self._lazy:
            self._open_here([inode], opener=_open_socket)
        return self.socks.get(inode)

    def prefetch(self, inodes: Sequence[int], requests: Sequence[str]) -> None:
        # With the Python helper, the first namespace (the host: usually the
        # largest) is read here directly while the helper starts up, and the
        # helper takes all the others. The C walker starts in a millisecond and
        # decodes the host's thousands of links and routes in one, where Python
        # here took tens of milliseconds: it takes the host too, first, while
        # this process imports the model and reads container identity.
        if self._pump is not None:
            return
        rest = inodes[1:]
        lazy = [i for i in rest if i in self._lazy]
        if lazy:
            mode = "enter"
            if self.nat_probe:
                mode += "+nat+legacy" if _legacy_present() else "+nat"
            walker = _walker() if self.use_walker else None
            if walker is not None and inodes[0] in self.fds:
                lazy.insert(0, inodes[0])
            # One walker: a second one, each taking every other namespace, made
            # the dump slower on 2 cores (0.436 s against 0.393 s median), as this
            # process needs the other core to parse what the walker sends.
            targets = [(i, self.fds[i]) for i in lazy]
            try:
                self._pump = _Pump(requests, targets, mode, self.helper_start, walker)
            except OSError:
                self._pump = None
                self._open_lazy()
            self._open_lazy_outside(set(lazy))
            self._open_own_later()
            return
        targets = [(i, self.socks[i].fileno()) for i in rest if i in self.socks]
        if not self.use_pump or len(targets) < PUMP_MIN_NAMESPACES:
            return
        try:
            self._pump = _Pump(requests, targets, "", self.helper_start)
        except OSError:
            self._pump = None

    def _open_lazy_outside(self, served: set[int]) -> None:
        """Namespaces the helper will not serve (not asked for in this order) get
        their sockets here."""
        left = [i for i in self._lazy if i not in served]
        if left:
            self._open_here(left)
            self._key_started_by_inode()

    def dumps(self, inode: int, requests: Sequence[str]) -> dict[str, Reply]:
        pump = self._pump
        if pump is not None and tuple(requests) == pump.requests and inode in pump.pos:
            got = pump.take(inode)
            if got is not None:
                return got
            if inode in self._lazy:
                self._open_lazy()  # the helper failed: the rest is read here
            else:
                self._reopen(inode)  # the helper failed: its half-read socket is unusable
        sock = self._sock(inode)
        if sock is None:
            err = OSError(errno.ENOENT, "namespace not open")
            return dict.fromkeys(requests, err)
        try:
            return dict(wire.exchange(sock, requests))
        except OSError as err:
            self._reopen(inode)  # a timed-out dump may still be queued on that socket
            return dict.fromkeys(requests, err)

    def early_nat_probes(self, handles: Sequence[NsHandle]) -> list[tuple[NsHandle, Any]]:
        """(handle, ``nat.NsProbe``) of the namespaces probed in this process (its
        own, or all of them without the helper), finished now so that their NAT
        tools can start while the helper walks the rest; :meth:`nat_probes`
        returns the same results later. Call it after :meth:`prefetch`."""
        from netlens.discovery import nat

        self._open_own_later()
        out: list[tuple[NsHandle, Any]] = []
        for h in handles:
            started = self._started.pop(h.inode, None)
            if started is not None:
                probe = self._early[h.inode] = nat.finish_probe(started)
                out.append((h, probe))
        return out

    def nat_probes(self, handles: Sequence[NsHandle]) -> list[Any]:
        """The NAT probe (``nat.NsProbe``) of each handle, in order; None where the
        namespace could not be entered. Needs ``nat_probe=True``; call it after the
        dumps (the helper sends each namespace's probe with its replies)."""
        from netlens.discovery import nat

        self._open_own_later()
        pump = self._pump
        if pump is not None:
            pump.drain()
        wired = pump.nat if pump is not None else {}
        out: list[nat.NsProbe | None] = []
        for h in handles:
            started = self._started.pop(h.inode, None)
            if started is not None:
                out.append(nat.finish_probe(started))
            elif h.inode in self._early:
                out.append(self._early[h.inode])
            elif h.inode in wired:
                out.append(nat.probe_from_wire(*wired[h.inode]))
            else:
                out.append(None)
        return out

    def _reopen(self, inode: int) -> None:
        old = self.socks.pop(inode, None)
        if old is not None:
            old.close()
        fd = self.fds.get(inode)
        if fd is not None:
            res = nsenter.run_in_netns([fd], _open_socket)[0]
            if not isinstance(res, OSError):
                self.socks[inode] = res

    def sysctls(self, inodes: Sequence[int]) -> dict[int, dict[str, str]]:
        own = _own_inode()
        out: dict[int, dict[str, str]] = {}
        todo = [i for i in inodes if i in self.fds]
        if own is not None and own in todo:
            out[own] = _read_sysctls(own)
            todo.remove(own)
        results = nsenter.run_in_netns([self.fds[i] for i in todo], _read_sysctls)
        for inode, res in zip(todo, results, strict=True):
            if not isinstance(res, OSError):
                out[inode] = res
        return out

    def host_nsids(self) -> dict[int, int]:
        if self._host_nsids is None:
            self._host_nsids = {}
            host = self.host
            sock = self._sock(host) if host is not None else None
            if host is not None and sock is not None:
                inodes = [i for i in self.fds if i != self.host]
                try:
                    answers = wire.ask_nsids(sock, [self.fds[i] for i in inodes])
                except OSError:
                    self._reopen(host)
                    return self._host_nsids
                self._host_nsids = {
                    i: n for i, n in zip(inodes, answers, strict=True) if n is not None
                }
        return self._host_nsids

    def ask_nsids(self, asker: int, targets: Sequence[int]) -> list[int | None]:
        sock = self._sock(asker)
        fds = [self.fds.get(t) for t in targets]
        if sock is None:
            return [None] * len(targets)
        known = [fd for fd in fds if fd is not None]
        try:
            answers = iter(wire.ask_nsids(sock, known)) if known else iter(())
        except OSError:
            self._reopen(asker)
            return [None] * len(targets)
        return [next(answers) if fd is not None else None for fd in fds]

    def close(self) -> None:
        if self._pump is not None:
            self._pump.close()
            self._pump = None
        for started in self._started.values():
            if started.sock is not None:
                started.sock.close()
        self._started.clear()
        for sock in self.socks.values():
            sock.close()
        for fd in self.fds.values():
            os.close(fd)
        self.socks.clear()
        self.fds.clear()


def _walker() -> str | None:
    """The netlens-walk built with the package, or None: the Python helper."""
    from netlens.discovery import walker

    return walker.find()


def _legacy_present() -> bool:
    """``nat.legacy_present`` without importing nat (and the model) before the
    helper process starts: the iptables-legacy table lists exist in every
    namespace or in none."""
    return any(os.path.exists(p) for p in wire.LEGACY_PATHS)


def _own_inode() -> int | None:
    try:
        return os.stat("/proc/thread-self/ns/net").st_ino
    except OSError:
        return None


def _exists(path: str) -> bool:
    try:
        os.lstat(path)
        return True
    except OSError:
        return False


class LiveProc:
    """The live procfs/sysfs; ``proc_root`` replaces ``/proc`` (a test seam)."""

    def __init__(self, proc_root: str = "/proc", sys_root: str = "/sys") -> None:
        self.proc_root = proc_root
        self.sys_root = sys_root

    def _map(self, path: str) -> str:
        if path.startswith("/proc/"):
            return self.proc_root + path[5:]
        if path.startswith("/sys/"):
            return self.sys_root + path[4:]
        return path

    def read_text(self, path: str) -> str | None:
        try:
            with open(self._map(path), encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except OSError:
            return None

    def exists(self, path: str) -> bool:
        return _exists(self._map(path))

    def readlink(self, path: str) -> str | None:
        try:
            return os.readlink(self._map(path))
        except OSError:
            return None


# --- fixtures (replay) ------------------------------------------------------------------------
class FixtureNetlink:
    """Replays a captured fixture directory (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        import json  # fixtures only: kept off the live path's start-up

        meta: dict[str, Any] = json.loads((self.root / "meta.json").read_text())
        self.meta = meta
        self._sysctls = {int(k): dict(v) for k, v in meta.get("sysctls", {}).items()}
        self._host = {int(k): int(v) for k, v in meta.get("host_nsids", {}).items()}
        self._nsids = {(int(a), int(t)): n for a, t, n in meta.get("nsids", [])}
        self._errors = {int(k): str(v) for k, v in meta.get("errors", {}).items()}

    def open(self, handles: Sequence[NsHandle]) -> dict[int, OSError]:
        failed: dict[int, OSError] = {}
        for h in handles:
            if h.inode in self._errors:
                failed[h.inode] = OSError(errno.EPERM, self._errors[h.inode])
            elif not (self.root / "netlink" / str(h.inode)).is_dir():
                failed[h.inode] = OSError(errno.ENOENT, "namespace vanished")
        return failed

    def prefetch(self, inodes: Sequence[int], requests: Sequence[str]) -> None:
        pass

    def dumps(self, inode: int, requests: Sequence[str]) -> dict[str, Reply]:
        out: dict[str, Reply] = {}
        for request in requests:
            path = self.root / "netlink" / str(inode) / f"{request}.bin"
            try:
                out[request] = path.read_bytes()
            except FileNotFoundError:
                if request == "qdisc":  # recorded before netlens read qdiscs: none seen
                    out[request] = b""
                    continue
                out[request] = OSError(errno.ENOENT, f"no recorded {request} reply for {inode}")
        return out

    def sysctls(self, inodes: Sequence[int]) -> dict[int, dict[str, str]]:
        return {i: self._sysctls[i] for i in inodes if i in self._sysctls}

    def host_nsids(self) -> dict[int, int]:
        return dict(self._host)

    def ask_nsids(self, asker: int, targets: Sequence[int]) -> list[int | None]:
        return [self._nsids.get((asker, t)) for t in targets]

    def close(self) -> None:
        pass


class FixtureProc:
    """Replays recorded procfs/sysfs text: ``/proc/x`` is ``ROOT/proc/x``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.proc_root = str(self.root / "proc")

    def _map(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def read_text(self, path: str) -> str | None:
        try:
            return self._map(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    def exists(self, path: str) -> bool:
        p = self._map(path)
        return p.exists() or p.is_symlink()

    def readlink(self, path: str) -> str | None:
        try:
            return os.readlink(self._map(path))
        except OSError:
            return None


# --- recording (capture) ----------------------------------------------------------------------
class RecordingNetlink:
    """Wraps a source and keeps every answer, to be written as a fixture."""

    def __init__(self, inner: NetlinkSource) -> None:
        self.inner = inner
        self.replies: dict[tuple[int, str], bytes] = {}
        self.nsids: dict[tuple[int, int], int | None] = {}
        self.sysctl_values: dict[int, dict[str, str]] = {}
        self.errors: dict[int, str] = {}
        self.host: dict[int, int] = {}

    def open(self, handles: Sequence[NsHandle]) -> dict[int, OSError]:
        failed = self.inner.open(handles)
        for inode, err in failed.items():
            if err.errno != errno.ENOENT:
                self.errors[inode] = str(err)
        return failed

    def prefetch(self, inodes: Sequence[int], requests: Sequence[str]) -> None:
        self.inner.prefetch(inodes, requests)

    def dumps(self, inode: int, requests: Sequence[str]) -> dict[str, Reply]:
        replies = self.inner.dumps(inode, requests)
        for request, data in replies.items():
            if isinstance(data, bytes):
                self.replies[(inode, request)] = data
        return replies

    def sysctls(self, inodes: Sequence[int]) -> dict[int, dict[str, str]]:
        values = self.inner.sysctls(inodes)
        self.sysctl_values.update(values)
        return values

    def host_nsids(self) -> dict[int, int]:
        self.host = self.inner.host_nsids()
        return self.host

    def ask_nsids(self, asker: int, targets: Sequence[int]) -> list[int | None]:
        answers = self.inner.ask_nsids(asker, targets)
        for t, n in zip(targets, answers, strict=True):
            self.nsids[(asker, t)] = n
        return answers

    def close(self) -> None:
        self.inner.close()

    def write(self, root: Path, extra_meta: dict[str, Any]) -> None:
        for (inode, request), data in self.replies.items():
            d = root / "netlink" / str(inode)
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{request}.bin").write_bytes(data)
        meta: dict[str, Any] = {
            "sysctls": {str(k): v for k, v in sorted(self.sysctl_values.items())},
            "host_nsids": {str(k): v for k, v in sorted(self.host.items())},
            "nsids": [[a, t, n] for (a, t), n in sorted(self.nsids.items()) if n is not None],
            "errors": {str(k): v for k, v in sorted(self.errors.items())},
            **extra_meta,
        }
        import json

        (root / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")


class RecordingProc:
    """Wraps a ProcSource and copies every file it reads into a fixture tree."""

    def __init__(self, inner: ProcSource) -> None:
        self.inner = inner
        self.proc_root = inner.proc_root
        self.texts: dict[str, str] = {}
        self.present: set[str] = set()
        self.links: dict[str, str] = {}

    def read_text(self, path: str) -> str | None:
        text = self.inner.read_text(path)
        if text is not None:
            self.texts[path] = text
        return text

    def exists(self, path: str) -> bool:
        found = self.inner.exists(path)
        if found:
            self.present.add(path)
        return found

    def readlink(self, path: str) -> str | None:
        target = self.inner.readlink(path)
        if target is not None:
            self.links[path] = target
        return target

    def write(self, root: Path) -> None:
        for path, target in self.links.items():
            p = root / path.lstrip("/")
            p.parent.mkdir(parents=True, exist_ok=True)
            if not p.is_symlink():
                p.symlink_to(target)
        for path, text in self.texts.items():
            p = root / path.lstrip("/")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        for path in self.present:
            p = root / path.lstrip("/")
            if not p.exists() and not p.is_symlink():
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text("")
