"""``netlens link set|show|reset|down|up``: the link verbs of the runtime.

Only argparse here: building the ``netlens`` parser must stay cheap. Each
handler imports :mod:`netlens_runtime.linkops` (and through it, when it changes
something, pyroute2) itself.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

TARGET_HELP = "LAB:NODE:IF (a lab node's interface) or CONTAINER:IF"


def add_commands(sub: Any) -> None:
    """Register ``link set|show|reset|down|up`` on the ``netlens`` sub-parser set."""
    p: argparse.ArgumentParser = sub.add_parser(
        "link", help="impair lab and container links (rate, delay, loss...), pull cables"
    )
    link_sub = p.add_subparsers(dest="link_command", metavar="ACTION", required=True)
    s = link_sub.add_parser(
        "set",
        help="impair an interface (merged into what is set; 0 clears a setting)",
        description="Impair an interface. Given settings are merged into what is set"
        " already; 0 clears one. Rate uses tbf; delay, jitter, corrupt and duplicate need"
        " the kernel's netem; loss uses netem when it runs anyway, else nftables.",
    )
    s.add_argument("target", help=TARGET_HELP)
    s.add_argument("--rate", help="rate limit, e.g. 100mbit, 512kbit, 1gbit")
    s.add_argument("--delay", help="added delay, e.g. 20ms")
    s.add_argument("--jitter", help="delay variation, e.g. 5ms (needs a delay)")
    s.add_argument("--loss", help="random loss, e.g. 1%%")
    s.add_argument("--corrupt", help="corrupted packets, e.g. 0.1%%")
    s.add_argument("--duplicate", help="duplicated packets, e.g. 0.1%%")
    s.add_argument(
        "--direction",
        choices=("both", "egress", "ingress"),
        default="both",
        help="what the interface sends (egress), receives (ingress) or both (default)",
    )
    s.set_defaults(func=_guard(_cmd_set))
    show = link_sub.add_parser("show", help="list what is set where")
    show.add_argument("lab", nargs="?", help="only this lab's nodes")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=_guard(_cmd_show))
    reset = link_sub.add_parser("reset", help="remove every impairment of an interface")
    reset.add_argument("target", help=TARGET_HELP)
    reset.set_defaults(func=_guard(_cmd_reset))
    for verb, what in (
        ("down", "take both ends of a link down, as a pulled cable"),
        ("up", "bring both ends of a link back up (routes too)"),
    ):
        q = link_sub.add_parser(verb, help=what)
        q.add_argument("target", help=TARGET_HELP)
        q.set_defaults(func=_guard(_cmd_down if verb == "down" else _cmd_up))


def _guard(func: Any) -> Any:
    """The runtime CLI's guard (one line, not a traceback), naming the link verb."""
    from netlens_runtime.cli import _guard as guard

    return guard(func, lambda args: f"link {args.link_command}")


def _cmd_set(args: argparse.Namespace) -> int:
    from netlens_runtime.errors import BadInput
    from netlens_runtime.lab_impair import FIELDS, ImpairError, ImpairSpec, parse_changes

    raw = {f: getattr(args, f) for f in FIELDS}
    if all(v is None for v in raw.values()):
        raise BadInput("link set: give at least one of --rate, --delay, --jitter, --loss,"
                       " --corrupt, --duplicate")  # fmt: skip
    try:
        changes = parse_changes(raw)
    except ImpairError as exc:
        raise BadInput(f"link set: --{exc}") from None
    from netlens_runtime import linkops

    label, egress, ingress = linkops.set_impair(args.target, ImpairSpec(changes, args.direction))
    print(f"{label}: egress {egress.describe()}; ingress {ingress.describe()}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    import json

    from netlens_runtime import linkops
    from netlens_runtime.lab_impair import Impair

    rows = linkops.show(args.lab)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print("no impaired or downed links" + (f" in lab {args.lab}" if args.lab else ""))
        return 0
    table = [("TARGET", "DIR", "RATE", "DELAY", "JITTER", "LOSS", "CORRUPT", "DUP", "LINK")]
    for row in rows:
        for direction in [d for d in ("egress", "ingress") if row[d]] or ["-"]:
            c = Impair.from_json(row.get(direction)).cells()
            table.append(
                (row["target"], direction, c["rate"], c["delay"], c["jitter"], c["loss"],
                 c["corrupt"], c["duplicate"], row["state"])
            )  # fmt: skip
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _cmd_reset(args: argparse.Namespace) -> int:
    from netlens_runtime import linkops

    print(f"{linkops.reset(args.target)}: no impairments")
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    from netlens_runtime import linkstate

    print(linkstate.link_down(args.target))
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    from netlens_runtime import linkstate

    line, failed = linkstate.link_up(args.target)
    print(line)
    for item in failed:
        print(f"netlens: route not restored: {item}", file=sys.stderr)
    return 1 if failed else 0
