"""Logs of detached containers: capped and rotated without a daemon.

A detached container's stdout and stderr used to be its log file itself: a
``yes`` wrote 2 GB to /run (host memory on most hosts) in 3 s. Nothing can cap a
file that a container writes directly (RLIMIT_FSIZE would hit every file the
container writes), and netlens has no daemon to rotate it. So each detached
container writes into a pipe read by its own logger process, as Podman's conmon
does: the C program ``netlens-spawn log HALF PATH`` (log_helper.c, built with
netlens-spawn), or, on a host without a C compiler, a POSIX shell loop around
``head -c``. The logger appends to ``<name>.log`` and, when the next chunk would
take it past half the ``--log-size``, renames it to ``<name>.log.1`` (replacing
the one before) and starts a new file, at a line end where one fits. The log
thus never takes more than ``--log-size`` (default 10 MiB) on disk, and holds
at least the last half of it.

Cost, measured on the 2-core reference VM: ~50 kB of private memory per logger
(the C program; the shell fallback, sh and head, ~1 MB); started by a fork from
netlens-spawn for a batch (0.12 ms) or a posix_spawn from Python for a single
``run -d`` (0.5-2 ms). It reads in 64 kB chunks, so a container writing as fast
as it can is slowed to what the logger writes, not stopped.

The logger runs in its own session, outside the container (in netlens's
caller's cgroup), and exits at EOF: when the container's last process is gone.
If it is killed, the container gets EPIPE (or SIGPIPE) on its next write, as a
Docker container whose shim died would. ``netlens logs`` reads the rotated file
and then the current one, and follows across a rotation.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO

SHELL_LOGGER = r"""
half=$1 path=$2
umask 027
exec 3>&1 1>/dev/null
flock -n 3 2>/dev/null
size() { stat -L -c %s "/proc/$$/fd/3" 2>/dev/null || echo 0; }
ino() { stat -L -c %d:%i "$1" 2>/dev/null; }
have=$(size)
while :; do
  room=$((half - have))
  if [ "$room" -le 0 ]; then
    if [ "$(ino /proc/$$/fd/3)" != "$(ino "$path")" ] || ! mv -f "$path" "$path.1" \
       || ! exec 3>>"$path"; then
      exec cat >/dev/null
    fi
    flock -n 3 2>/dev/null
    have=0 room=$half
  fi
  stdbuf -o0 head -c "$room" >&3 || exec cat >/dev/null
  now=$(size)
  [ $((now - have)) -lt "$room" ] && exit 0
  have=$now
done
"""
"""The fallback logger: the same job and rotation as log_helper.c (not at line ends:
``head -c`` counts bytes), at the price of two processes (sh waiting in head).
``stdbuf -o0``: head writes through stdio, a line would wait in its buffer; and not
``dd``, whose byte count counts a pipe's short reads as whole blocks."""


def start(path: str, max_bytes: int, program: str | None) -> int:
    """Open (create) ``path``, start its logger; return the pipe's write end (close-on-exec).

    ``program`` is netlens-spawn (helper.find()); None: the shell fallback. The
    file is opened here, not by the logger, so that a logger of a container
    removed meanwhile never creates its file again (see log_helper.c).
    """
    half = max(max_bytes // 2, 1)
    log = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640
    )
    try:
        r, w = os.pipe2(os.O_CLOEXEC)
    except OSError:
        os.close(log)
        raise
    actions: list[tuple[int, ...] | tuple[int, int, str, int, int]] = [
        (os.POSIX_SPAWN_DUP2, r, 0),
        (os.POSIX_SPAWN_DUP2, log, 1),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
    ]
    if program is not None:
        exe, argv = program, ["netlens-log", "log", str(half), path]
    else:
        exe, argv = "/bin/sh", ["netlens-log", "-c", SHELL_LOGGER, "netlens-log", str(half), path]
        # The C logger closes every other fd itself; the shell cannot: none may
        # stay open in it (a caller's pipe would never see EOF while it runs).
        actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds() if fd > 2]
    try:
        os.posix_spawn(
            exe, argv, {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}, file_actions=actions, setsid=True
        )
    except OSError:
        os.close(w)
        if program is None:
            raise
        # netlens-spawn cannot run here after all (copied from another machine):
        # the shell logger does the same job.
        return start(path, max_bytes, None)
    finally:
        os.close(r)
        os.close(log)
    return w


def _inheritable_fds() -> list[int]:
    out = []
    for entry in os.listdir("/proc/self/fd"):
        fd = int(entry)
        try:
            if os.get_inheritable(fd):
                out.append(fd)
        except OSError:
            continue  # the listing's own fd, closed by now
    return out


def read_chunks(
    current: str, follow: bool = False, alive: Callable[[], bool] | None = None
) -> Iterator[bytes]:
    """The log's bytes: the rotated file, then the current one; with ``follow``, what
    the container writes next, across rotations, until ``alive()`` says it stopped.

    The current file is opened first: if the logger rotates before the rotated
    file is opened, that one is the file already held (read once), and the output
    stays in order without a gap.
    """
    try:
        fh = _open(current)
    except FileNotFoundError:
        fh = None
    try:
        with _open(current + ".1") as old:
            if fh is None or os.fstat(old.fileno()).st_ino != os.fstat(fh.fileno()).st_ino:
                while data := old.read(65536):
                    yield data
    except FileNotFoundError:
        pass
    if fh is None:
        return
    finished = False
    try:
        while True:
            data = fh.read(65536)
            if data:
                yield data
                continue
            if not follow:
                return
            try:
                rotated = os.stat(current).st_ino != os.fstat(fh.fileno()).st_ino
            except FileNotFoundError:
                return  # the container was removed
            if rotated:  # the renamed file no longer grows: finish it, then the new one
                while data := fh.read(65536):
                    yield data
                done = os.fstat(fh.fileno()).st_ino
                fh.close()
                fh = _open(current)
                # Rotated twice while we finished it (a slow reader, a loaded host):
                # the file in between is now the rotated one. Read it before the new
                # one, unless it is the file just finished or the one now held.
                try:
                    with _open(current + ".1") as mid:
                        ino = os.fstat(mid.fileno()).st_ino
                        if ino not in (done, os.fstat(fh.fileno()).st_ino):
                            while data := mid.read(65536):
                                yield data
                except FileNotFoundError:
                    pass
                continue
            if finished:
                return
            if alive is not None and not alive():
                wait_for_logger(current)  # then one more pass for its last chunk
                finished = True
                continue
            time.sleep(0.2)
    finally:
        fh.close()


def _open(path: str) -> BinaryIO:
    """A log file for reading; a symlink there is refused (ELOOP), never followed."""
    return open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb")


def wait_for_logger(path: str, timeout: float = 10.0) -> None:
    """Wait until no logger writes ``path`` (it holds an exclusive flock while it does).

    A logger that rotates meanwhile moves to a new file at the same path: the
    wait is over when the lock of the file now at ``path`` is free.
    """
    import fcntl

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        return
                    time.sleep(0.02)
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return
        except FileNotFoundError:
            return
        finally:
            os.close(fd)
