"""`netlens trace SRC DST`: why can (or can't) SRC reach DST, hop by hop.

Resolves SRC and DST (container, VRF, address or CONTAINER:IFNAME), then asks
each namespace's kernel on the path for its own decision
(netlens.analysis.trace), reading only the namespaces on that path
(netlens.analysis.scope). Static: nothing is sent. Exit 0 when the
packet is delivered or leaves the host, 1 when it is dropped or the answer is
unknown, 2 for bad input. Like every command module, only argparse at import.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from netlens.analysis.trace_run import TraceRequest


PROTOS = ("icmp", "tcp", "udp")  # the same as netlens.analysis.trace_run.PROTOS


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
    p.add_argument(
        "--probe",
        action="store_true",
        help="also send real packets from SRC and watch them (nft trace, counters, drop reason)",
    )
    p.add_argument(
        "--allow-external",
        action="store_true",
        help="with --probe: allow a DST no namespace of this host owns",
    )
    p.set_defaults(func=run)


def check_args(args: argparse.Namespace) -> str:
    """The protocol to trace; bad combinations raise UsageError."""
    return _request(args).protocol


def _request(args: argparse.Namespace) -> TraceRequest:
    from netlens.analysis.trace_run import TraceRequest

    return TraceRequest(
        src=args.src, dst=args.dst, proto=args.proto, dport=args.port, sport=args.sport,
        probe=args.probe, allow_external=args.allow_external,
        with_filters=not args.no_filters,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from netlens.analysis.render import render
    from netlens.analysis.trace_run import run_trace
    from netlens.analysis.tracetypes import DELIVERED, LEAVES

    out = run_trace(_request(args), probe_guard=_on_signals)
    res, probe = out.result, out.probe
    doc = res.to_dict()
    if probe is not None:
        doc["probe"] = probe
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        from netlens.analysis.render import render_probe

        text = render(res)
        if probe is not None:
            text += "\n" + render_probe(probe)
        sys.stdout.write(text + "\n")
    if probe is not None:
        return 0 if probe["result"] == DELIVERED and probe["answer"] != "refused" else 1
    return 0 if res.verdict.result in (DELIVERED, LEAVES) else 1


def _on_signals(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run the probe with SIGTERM and SIGHUP unwinding like Ctrl-C, so its
    ``finally`` removes the trace tables and the tracefs instance (SIGKILL
    cannot be caught: nothing can clean up after it)."""
    import signal

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return fn()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
