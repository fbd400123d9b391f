"""`netlens fleet`: one view of many servers, each reached over SSH.

Runs ``netlens agent`` on every server at once (netlens.fleet.client), waits for
each one's dump and first rate sample (or its own timeout), closes the channels,
and prints the merged fleet document (``--json``, schema
netlens/fleet/fleet_schema.json) or a table with one row per server. An
unreachable, slow or foreign server is a row with its state and reason: it
never holds up the others and it does not make the command fail; exit status 1
says only that no server at all answered.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from netlens.commands.stats import _count, _positive_float
from netlens.errors import UsageError
from netlens.kernel.inert import terminal
from netlens.stats.units import rate, size


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "fleet",
        help="one row per server over SSH: containers, bandwidth, memory, CPU, findings",
        description=(
            "Connect to every HOST (and the fleet file's hosts) over SSH, run "
            "'netlens agent' there, and merge what they send into one fleet document. "
            "~/.ssh/config and the SSH agent apply as for ssh."
        ),
    )
    p.add_argument("hosts", nargs="*", metavar="HOST", help="a host as ssh would take it")
    p.add_argument("--file", metavar="FLEET.yaml", help="fleet file: hosts, user, key, port, ...")
    p.add_argument("--json", action="store_true", help="print the fleet document as JSON")
    p.add_argument("--pretty", action="store_true", help="indent the JSON")
    p.add_argument(
        "--tui",
        action="store_true",
        help="show the fleet in the dashboard, kept current (as --watch); Enter opens a "
        "server's full dashboard",
    )
    p.add_argument(
        "--theme",
        default=argparse.SUPPRESS,
        help="dashboard theme for a server's dashboard (as 'netlens --theme')",
    )
    p.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="S",
        help="per-server deadline in seconds (default: the fleet file's, else 15)",
    )
    p.add_argument(
        "--interval",
        type=_positive_float,
        default=1.0,
        metavar="S",
        help="seconds the agents measure rates over (default 1)",
    )
    p.add_argument(
        "--watch",
        action="store_true",
        help="keep streaming: print the fleet every interval (NDJSON with --json), "
        "reconnecting lost servers with backoff",
    )
    p.add_argument(
        "--count",
        type=_count,
        default=0,
        metavar="N",
        help="with --watch: documents to print (0: until Ctrl-C)",
    )
    p.add_argument(
        "--ssh-config",
        action="append",
        metavar="FILE",
        help="read this ssh config instead of ~/.ssh/config (repeatable)",
    )
    p.set_defaults(func=run)


def _num(v: Any) -> str:
    return "-" if v is None else str(v)


def _bps(bw: dict[str, Any], key: str) -> str:
    v = bw.get(key)
    return "-" if v is None else rate(float(v))


def format_table(doc: dict[str, Any]) -> str:
    """The plain-text view: one row per server, then the cross-server tunnels."""
    lines = [
        f"{'SERVER':<20} {'STATE':<16} {'CTRS':>5} {'NETNS':>5} {'RX':>10} {'TX':>10} "
        f"{'UPLINK':>10} {'MEM':>17} {'CPU':>4} {'FIND':>4}"
    ]
    for s in doc["servers"]:
        bw = s["bandwidth"] or {}
        mem = s["memory"] or {}
        cpu = s["cpu"] or {}
        find = s["findings"] or {}

        lines.append(
            f"{terminal(s['alias'])[:20]:<20} {s['state']:<16} {_num(s['containers']):>5} "
            f"{_num(s['namespaces']):>5} {_bps(bw, 'containers_rx_bps'):>10} "
            f"{_bps(bw, 'containers_tx_bps'):>10} {_bps(bw, 'uplink_capacity_bps'):>10} "
            f"{size(mem.get('used')) + '/' + size(mem.get('total')):>17} "
            f"{_num(cpu.get('count')):>4} {_num(find.get('total')):>4}"
        )
        if s["reason"]:
            lines.append(f"  {terminal(s['reason'])}")
    for link in doc["vxlan_links"]:
        a, b = link["a"], link["b"]
        how = "" if link["symmetric"] else "  (one way)"
        lines.append(
            f"vxlan {link['vni']}: {terminal(a['server'])}:{terminal(a['interface'])} <-> "
            f"{terminal(b['server'])}:{terminal(b['interface'])}{how}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Query the fleet, print the document or the table."""
    import asyncio
    import json
    import os

    from netlens import __version__
    from netlens.fleet.client import query_fleet
    from netlens.fleet.config import hosts_from
    from netlens.fleet.merge import ServerResult, fleet_document

    out = out or sys.stdout
    if args.tui and args.json:
        raise UsageError("--tui and --json contradict each other; pick one")
    if args.count and not args.watch:
        raise UsageError("--count goes with --watch")
    if args.count and args.tui:
        raise UsageError("--count goes with --watch's printing, not with --tui")
    if args.tui and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("--tui needs a terminal; for scripts use 'netlens fleet --json'")
    for path in args.ssh_config or ():
        if not os.access(path, os.R_OK):
            raise UsageError(f"cannot read ssh config {path}")
    specs = hosts_from(list(args.hosts), args.file, args.timeout)
    if args.tui:
        return run_tui(specs, args)
    if args.watch:
        return run_watch(specs, args, out)
    results: list[ServerResult] = []

    async def query() -> None:  # returns nothing: see ServerResult.snapshot's comment
        results.extend(await query_fleet(specs, __version__, args.interval, args.ssh_config))

    asyncio.run(query())
    doc = fleet_document(results, __version__)
    if args.json:
        kw: dict[str, Any] = {"indent": 2} if args.pretty else {"separators": (",", ":")}
        out.write(json.dumps(doc, allow_nan=False, **kw) + "\n")
    else:
        out.write(format_table(doc) + "\n")
    out.flush()
    answered = any(r.dump_facts() is not None for r in results)
    return 0 if answered else 1


def run_tui(specs: list[Any], args: argparse.Namespace) -> int:
    """The fleet view, kept current by a feed that streams every server (and
    reconnects lost ones) for as long as the command runs; Enter on a server opens
    its dashboard (read-only, on the dump it sent), and quitting that comes back to
    the fleet, whose connections stayed open meanwhile."""
    from netlens import __version__
    from netlens.commands.dashboard import launch
    from netlens.fleet.feed import FleetFeed
    from netlens.tui.fleet import DumpSource, FleetApp

    feed = FleetFeed(specs, __version__, args.interval, args.ssh_config)
    feed.start()
    try:
        while True:
            app = FleetApp(feed)
            alias = app.run()
            feed.subscribe(None)
            if alias is None:
                return 0
            assert app.chosen is not None
            launch(DumpSource(app.chosen, alias), args)
    finally:
        feed.stop()


def run_watch(specs: list[Any], args: argparse.Namespace, out: TextIO) -> int:
    """``--watch``: one fleet document (or table) per interval until ``--count``."""
    import asyncio
    import json

    from netlens import __version__
    from netlens.fleet.merge import ServerResult, fleet_document
    from netlens.fleet.watch import watch_fleet

    tty = out.isatty() and not args.json
    printed = 0

    def emit(results: list[ServerResult]) -> None:
        nonlocal printed
        doc = fleet_document(results, __version__)
        if args.json:
            out.write(json.dumps(doc, allow_nan=False, separators=(",", ":")) + "\n")
        else:
            out.write(("\x1b[H\x1b[J" if tty else "\n" if printed else "") + format_table(doc))
            out.write("\n")
        out.flush()
        printed += 1

    asyncio.run(watch_fleet(specs, __version__, args.interval, args.ssh_config, emit, args.count))
    return 0
