"""``netlens demo``: build the bundled demo lab, make traffic, open the dashboard.

The demo is the quickest way to see netlens work: a dozen namespaces on three
bridges, two router nodes, NAT on one segment, and a traffic generator in this
same process moving a few to tens of Mbit/s between the lab's own nodes (never
anywhere outside). On exit - quitting the dashboard, Ctrl-C or SIGTERM - the
traffic stops *first* (an open socket would keep its namespace alive) and the
lab is removed, unless ``--keep``.

``--no-dashboard`` is for tests and scripts: up, traffic for ``--duration``
seconds, a report of the bytes moved, down.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from types import FrameType
from typing import Any

from netlens.errors import NeedsRootError, UsageError


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="build the demo lab, generate traffic between its nodes, open the dashboard",
        description="Build the bundled demo lab (netlens_runtime/labs/demo.yaml), run traffic "
        "between its nodes and open the dashboard; remove it all on exit.",
    )
    p.add_argument("--keep", action="store_true", help="leave the lab up on exit")
    p.add_argument(
        "--no-dashboard",
        action="store_true",
        help="no UI: build, run traffic for --duration seconds, report, remove",
    )
    p.add_argument(
        "--duration", type=float, default=10.0, help="seconds of traffic with --no-dashboard"
    )
    p.add_argument("--nodes", type=int, help="grow the demo to N nodes in all")
    p.add_argument("--name", default=None, help="lab name (default: demo)")
    p.add_argument("--file", default=None, help="another lab file with a traffic: section")
    p.add_argument("--no-traffic", action="store_true", help="build the lab only")
    p.set_defaults(func=run)


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class _Terminated(Exception):
    """SIGTERM or SIGHUP, turned into an exception so the cleanup in ``finally`` runs."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated()


def run(args: argparse.Namespace) -> int:
    from netlens_runtime.lab_bundled import bundled_lab
    from netlens_runtime.lab_ops import lab_down, lab_traffic, lab_up, summary_lines
    from netlens_runtime.lab_record import read_record
    from netlens_runtime.lab_spec import load_lab

    if args.duration is not None and args.duration < 0:
        raise UsageError("--duration must be positive")
    path = args.file or bundled_lab("demo")
    spec = load_lab(path, scale=args.nodes, name=args.name)
    if os.geteuid() != 0:
        raise NeedsRootError(
            "'netlens demo' needs root: it builds namespaces (try: sudo make demo)"
        )
    if read_record(spec.name) is not None:
        print(f"netlens: removing the previous {spec.name!r} lab first", file=sys.stderr)
        lab_down(spec.name)

    # SIGTERM (kill, make) and SIGHUP (terminal closed) clean up like Ctrl-C.
    old_handlers = {sig: signal.signal(sig, _on_sigterm) for sig in _STOP_SIGNALS}
    gen: Any = None
    rc = 0
    t0 = time.monotonic()
    try:
        rec = lab_up(spec, log=lambda m: print(f"netlens: {m}", file=sys.stderr))
        took = time.monotonic() - t0
        if not args.no_traffic and spec.traffic:
            gen = lab_traffic(spec, rec)
            gen.start()
        lines = [
            f"lab {spec.name}: {len(spec.nodes)} nodes, {len(spec.networks)} networks,"
            f" {len(spec.links)} links, up in {took:.2f} s",
            *summary_lines(spec, rec, limit=16),
        ]
        if gen is not None:
            lines.append(f"traffic: {len(spec.traffic)} flows between lab nodes")
        if args.no_dashboard:
            print("\n".join(lines), flush=True)
            _sleep(args.duration)
            if gen is not None:
                rc = _report(gen)
        else:
            _dashboard_or_wait(args, lines)
    except (KeyboardInterrupt, _Terminated):
        rc = 0
    finally:
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)  # do not interrupt the cleanup
        try:
            if gen is not None:
                gen.stop()
            if args.keep:
                print(f"lab {spec.name} kept; remove it with: netlens lab down {spec.name}")
            elif read_record(spec.name) is not None:
                for err in lab_down(spec.name):
                    print(f"netlens: {err}", file=sys.stderr)
                    rc = 1
        finally:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
    return rc


def _sleep(seconds: float) -> None:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.5))


def _dashboard_or_wait(args: argparse.Namespace, lines: list[str]) -> None:
    """Open the dashboard; until it exists, show the summary and wait for Ctrl-C."""
    from netlens.commands import dashboard

    try:
        dashboard.run(args)
        return
    except UsageError as err:
        if "not built yet" not in str(err):
            raise
    print("\n".join(lines))
    print("(the dashboard is not built yet; try 'netlens dump' in another terminal)")
    print("Ctrl-C to stop and remove the lab", flush=True)
    while True:
        time.sleep(3600)


def _report(gen: Any) -> int:
    """Print bytes per flow; non-zero when a flow failed or moved nothing."""
    rc = 0
    for name, st in gen.stats().items():
        state = f"error: {st.error}" if st.error else "ok"
        print(f"  flow {name:<28} sent {st.sent:>12} B  received {st.received:>12} B  {state}")
        if st.error or st.received == 0:
            rc = 1
    return rc
