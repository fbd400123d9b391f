"""`netlens agent`: the server side of ``netlens fleet``, spoken over an SSH channel.

It writes the protocol of :mod:`netlens.fleet.protocol` to stdout: a header line,
the full dump (exactly ``netlens dump --json``), then one ``netlens stats --json``
frame per interval. It stops when stdin closes (the SSH channel went away: sshd
closes the command's stdin, it sends no signal without a terminal), on SIGTERM or
SIGHUP, or when stdout breaks (SIGPIPE is ignored by Python, so a write fails
with EPIPE). Each way ends in the same ``finally``, so the monitor's sockets and
namespaces handles are released and nothing stays running on the server.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from netlens.commands.stats import _count, _positive_float


class _Stop(BaseException):
    """Raised in the main thread by the signal handler: not an Exception, so no
    ``except Exception`` on the way swallows it."""


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "agent",
        help="stream a dump and rate samples as NDJSON for 'netlens fleet' (run over SSH)",
        description=(
            "Print a protocol header, the full dump and then one rate sample per "
            "interval, one JSON document per line, until stdin closes, SIGTERM, or "
            "the reader goes away. 'netlens fleet' runs it on each server over SSH."
        ),
    )
    p.add_argument(
        "--interval", type=_positive_float, default=1.0, metavar="S", help="seconds (default 1)"
    )
    p.add_argument(
        "--count", type=_count, default=0, metavar="N", help="samples to send (0: until stopped)"
    )
    p.set_defaults(func=run)


def _watch_stdin(fd: int, active: Any) -> None:
    """Block on stdin until EOF, then stop the main thread with SIGTERM (a thread
    cannot raise in another; a signal to ourselves reaches the main thread's
    handler even while it sleeps in the monitor's wait).

    Raw ``os.read`` on the descriptor, not ``sys.stdin``: a daemon thread blocked
    inside a buffered reader holds its lock, and the interpreter aborts at exit
    when it cannot take that lock (SIGABRT instead of a clean exit on SIGTERM)."""
    import os
    import signal
    import threading

    def watch() -> None:
        try:
            while os.read(fd, 4096):
                pass
        except OSError:
            pass
        if active.is_set():  # not after run() put the default handler back
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="agent-stdin", daemon=True).start()


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Header, dump, samples (see the module doc)."""
    import signal
    import threading

    from netlens import __version__
    from netlens.commands.dump import with_findings
    from netlens.commands.stats import frame_document, names_of
    from netlens.fleet import protocol
    from netlens.model.serialize import dumps
    from netlens.stats.live import LiveMonitor

    out = out or sys.stdout

    def stop(signum: int, frame: Any) -> None:
        raise _Stop

    active = threading.Event()
    active.set()
    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    mon = LiveMonitor(interval=args.interval, history_seconds=max(args.interval, 60))
    try:
        if out is sys.stdout and (fd := _stdin_fd()) is not None:
            _watch_stdin(fd, active)
        snap = mon.open()
        out.write(protocol.line(protocol.header(__version__, snap.server.hostname)))
        out.write(dumps(with_findings(snap)) + "\n")
        out.flush()
        names = names_of(snap)
        sent = 0
        while args.count == 0 or sent < args.count:
            new_snap, frame = mon.tick()
            if new_snap is not None:
                names = names_of(new_snap)
            out.write(protocol.line(frame_document(frame, names)))
            out.flush()
            sent += 1
    except (_Stop, BrokenPipeError):
        _quiet_stdout()
    finally:
        active.clear()
        mon.close()
        for s, h in old.items():
            signal.signal(s, h)
    return 0


def _stdin_fd() -> int | None:
    """stdin's descriptor, or None when there is none (closed at start): then only
    a signal or a broken stdout stops the agent."""
    try:
        return sys.stdin.fileno() if sys.stdin is not None else None
    except (OSError, ValueError, AttributeError):
        return None


def _quiet_stdout() -> None:
    """After EPIPE, point stdout at /dev/null: the interpreter's final flush would
    otherwise report the broken pipe as an error at exit."""
    import contextlib
    import os

    with contextlib.suppress(OSError):
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
