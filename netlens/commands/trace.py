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
    from netlens.analysis.scope import Scope
    from netlens.analysis.trace import trace
    from netlens.analysis.tracetypes import DELIVERED, LEAVES
    from netlens.discovery.nsfind import find_namespaces
    from netlens.kernel.nsquery import NsQuery

    proto = check_args(args)
    if os.geteuid() != 0:
        raise NeedsRootError(
            "trace asks the kernel inside every namespace on the path; run as root"
        )
    handles = find_namespaces()
    if not handles:
        raise DiscoveryError("could not read any network namespace")
    with NsQuery() as q:
        # Only the namespaces on the path are read (analysis.scope): SRC's, DST's and
        # the host's first, then whichever a cable or a bridge port leads into.
        scope = Scope(handles, q)
        # A DST address needs no search for its owner before the walk (that asks
        # every namespace on the host): the walk reaches it, and only when it does
        # not is the owner looked up after (see _dst_after). --probe must know
        # the owner before it sends anything.
        lazy_dst = _is_ip(args.dst) and not args.probe
        wanted = [*scope.locate(args.src), *([] if lazy_dst else scope.locate(args.dst))]
        scope.load(wanted)
        try:
            src = resolve(scope.snap, args.src, is_dst=False)
            dst = resolve(scope.snap, args.dst, is_dst=True)
        except UsageError:
            # Not found among the namespaces read: the whole host decides (and
            # offers the closest names), as slow as a dump but only for bad input.
            from netlens.discovery import discover

            whole = discover(with_nat=False)
            src = resolve(whole, args.src, is_dst=False)
            dst = resolve(whole, args.dst, is_dst=True)
            scope.load([e.ns.inode for e in (src, dst) if e.ns is not None])
            src = resolve(scope.snap, args.src, is_dst=False)
            dst = resolve(scope.snap, args.dst, is_dst=True)
        if args.probe:
            from netlens.analysis.probe import check_target

            check_target(dst, args.allow_external)
        res = trace(
            scope, src, dst, q, proto=proto, sport=args.sport, dport=args.port,
            with_filters=not args.no_filters,
        )  # fmt: skip
        if lazy_dst and dst.ns is None:
            res = _dst_after(scope, res, args.dst)
        probe: dict[str, Any] | None = None
        if args.probe:
            from netlens.analysis.probe import check_path

            check_path(res, args.allow_external)
            probe = _probe(scope, q, res, src, dst)
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


def _is_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _dst_after(scope: Any, res: Any, spec: str) -> Any:
    """The result as if DST's owner had been known before the walk: the
    namespaces on the path are read now, so the owner usually is among them
    (delivered: the last hop's); only otherwise is every namespace asked."""
    import dataclasses

    from netlens.analysis.endpoints import resolve
    from netlens.analysis.tracetypes import DELIVERED, Finding

    dst = resolve(scope.snap, spec, is_dst=True)
    if dst.ns is None and scope.load_owner(spec):
        dst = resolve(scope.snap, spec, is_dst=True)
    if dst.ns is None:
        return res
    query = {**res.query, "dst_netns": dst.ns.id}
    findings = res.findings
    last = res.hops[-1] if res.hops else None
    if res.verdict.result == DELIVERED and last is not None and last.netns != dst.ns.id:
        # the same warning trace() gives when it knew DST's namespace in advance
        findings = (
            *findings,
            Finding(
                "warning",
                last.index,
                f"{last.packet.dst} is delivered to {last.netns_name}, not to {dst.ns.name} "
                "(NAT or a duplicate address)",
            ),
        )
    return dataclasses.replace(res, query=query, findings=findings)


def _probe(scope: Any, q: Any, res: Any, src: Any, dst: Any) -> dict[str, Any]:
    """Run the probe with SIGTERM and SIGHUP unwinding like Ctrl-C, so its
    ``finally`` removes the trace tables and the tracefs instance (SIGKILL
    cannot be caught: nothing can clean up after it)."""
    import signal

    from netlens.analysis.probe import run_probe

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return run_probe(scope, q, res, src, dst).to_dict()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
