"""`netlens trace SRC DST`: why can (or can't) SRC reach DST, hop by hop.

Discovers the host, resolves SRC and DST (container, VRF, address or
CONTAINER:IFNAME), then asks each namespace's kernel on the path for its own
decision (netlens.analysis.trace). Static: nothing is sent. Exit 0 when the
packet is delivered or leaves the host, 1 when it is dropped or the answer is
unknown, 2 for bad input. Like every command module, only argparse at import.
"""

from __future__ import annotations

import argparse
from typing import Any

from netlens.errors import DiscoveryError, NeedsRootError, UsageError

PROTOS = ("icmp", "tcp", "udp")


def _port(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"port out of range 1-65535: {value}")
    return value


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "trace",
        help="follow one packet from SRC to DST through every VRF, bridge and rule",
        description=(
            "Ask each namespace's kernel on the path which route, neighbour and bridge port "
            "one packet from SRC to DST takes, with NAT, filter verdicts, sysctls, the "
            "smallest MTU and the return path; end with one verdict. Nothing is sent. "
            "SRC and DST: a container, a VRF (namespace name, netns:<inode>, inode, 'host'), "
            "an IP address, or CONTAINER:IFNAME."
        ),
    )
    p.add_argument(
        "src", metavar="SRC", help="where the packet starts: container, VRF, IP or CONTAINER:IFNAME"
    )
    p.add_argument(
        "dst", metavar="DST", help="where it goes: container, VRF, IP or CONTAINER:IFNAME"
    )
    p.add_argument(
        "--proto", choices=PROTOS, default=None, help="protocol (default icmp, or tcp with --port)"
    )
    p.add_argument("--port", type=_port, metavar="PORT", help="destination port (tcp/udp)")
    p.add_argument("--sport", type=_port, metavar="PORT", help="source port (tcp/udp)")
    p.add_argument("--json", action="store_true", help="JSON output (schema netlens-trace/1)")
    p.add_argument(
        "--no-filters", action="store_true", help="skip reading nftables filter rules (faster)"
    )
    p.set_defaults(func=run)


def check_args(args: argparse.Namespace) -> str:
    """The protocol to trace; bad combinations raise UsageError."""
    proto: str = args.proto or ("tcp" if args.port is not None else "icmp")
    if proto == "icmp" and (args.port is not None or args.sport is not None):
        raise UsageError("--port and --sport need --proto tcp or udp")
    return proto


def run(args: argparse.Namespace) -> int:
    import json
    import os
    import sys

    from netlens.analysis.endpoints import resolve
    from netlens.analysis.render import render
    from netlens.analysis.trace import trace
    from netlens.analysis.tracetypes import DELIVERED, LEAVES
    from netlens.discovery import discover
    from netlens.kernel.nsquery import NsQuery

    proto = check_args(args)
    if os.geteuid() != 0:
        raise NeedsRootError(
            "trace asks the kernel inside every namespace on the path; run as root"
        )
    snap = discover()
    if not snap.namespaces:
        raise DiscoveryError("could not read any network namespace")
    src = resolve(snap, args.src, is_dst=False)
    dst = resolve(snap, args.dst, is_dst=True)
    with NsQuery() as q:
        res = trace(
            snap, src, dst, q, proto=proto, sport=args.sport, dport=args.port,
            with_filters=not args.no_filters,
        )  # fmt: skip
    if args.json:
        sys.stdout.write(json.dumps(res.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(render(res) + "\n")
    return 0 if res.verdict.result in (DELIVERED, LEAVES) else 1
