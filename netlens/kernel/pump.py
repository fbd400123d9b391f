"""The parent's side of the discovery helper process: start it, read its frames.

With many namespaces, discovery hands their dumps to a helper process (the C
walker ``netlens-walk`` where it is built, else :func:`netlens.kernel.serve.serve`
forked or started afresh) so that the kernel's dump work runs on one core while
this process parses on the other. :class:`Pump` starts that helper and turns
its framed stream back into replies per namespace; whoever uses it (discovery's
live source) falls back to reading directly when it fails.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gc
import marshal
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from netlens.kernel import decode, nsenter, serve, wire
from netlens.kernel import walker as walker_mod

if TYPE_CHECKING:
    import subprocess

Reply = bytes | wire.Decoded | OSError
"""One answer: raw reply bytes, rows the helper decoded, or the kernel's error."""

F_SETPIPE_SZ = 1031


class Pump:
    """Runs the requests of many namespaces in a helper process.

    The helper (``netlens-walk``, the C walker of walk.c, in enter mode when it
    is built; else :mod:`netlens.kernel.serve`) runs each namespace's requests in order and
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
        self.need = serve.FRAME.size
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
                    walker_mod.forget()
        if spawned is not None:
            self.fd = spawned
            self.kind = "walk"
        elif start == "fork" and threading.active_count() == 1:
            self.fd = self._fork(fds, mode)
        else:
            self.kind = "exec"
            import subprocess

            argv = [sys.executable, "-I", "-S", serve.__file__, ",".join(self.requests)]
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
        no imports (a fresh ``python3 -I -S serve.py`` needs 60-70 ms before its
        first namespace, and the helper is the long pole of a large walk). Only
        done while this process has a single thread, so no lock another thread
        holds can be inherited; the child runs nothing but :func:`serve.serve`
        and leaves with ``os._exit`` (no atexit handlers, no flushed buffers)."""
        parts = mode.split("+")
        r, w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's coverage is not collected
            code = 1
            try:
                gc.disable()  # touch as few inherited pages as possible
                os.close(r)
                serve.serve(
                    self.requests,
                    fds,
                    w,
                    dict(decode.DECODERS),
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
        size = serve.FRAME.size
        nreq = len(self.requests)
        last = nreq - (0 if self.with_nat else 1)
        unpack = serve.FRAME.unpack_from
        self.need = size
        while len(data) - off >= size:
            pos, idx, status, length = unpack(data, off)
            nat_frame = status == serve.STATUS_NAT
            if pos >= len(self.inodes) or idx > nreq or (idx == nreq) != nat_frame:
                raise ValueError(f"bad helper frame {pos} {idx} {status}")
            if len(data) - off - size < length:
                self.need = size + length
                break
            payload = data[off + size : off + size + length]
            off += size + length
            value: Reply
            if status == serve.STATUS_NAT:
                nat = marshal.loads(payload)
                if not (isinstance(nat, tuple) and len(nat) == 3):
                    raise ValueError("bad NAT frame")
                if not self.with_nat:
                    raise ValueError("NAT frame not asked for")
                self.nat[self.inodes[pos]] = nat
                self.done[pos] = self.partial.pop(pos, {})
                self.finished += 1
                continue
            if status == serve.STATUS_DECODED:
                rows = marshal.loads(payload)
                if not isinstance(rows, list):
                    raise ValueError("bad decoded frame")
                value = wire.Decoded(rows)
            elif status == serve.STATUS_ERROR:
                code, _, text = payload.decode("utf-8", "replace").partition(":")
                value = OSError(int(code) if code.isdigit() else errno.EIO, text)
            elif status == serve.STATUS_INTERRUPTED:
                value = wire.Interrupted(payload)
            elif status == serve.STATUS_DATA:
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
            walker_mod.forget()

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
