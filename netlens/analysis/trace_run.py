"""One trace from what a user typed to its answer: the steps ``netlens trace`` and
the dashboard's ``t`` share.

Resolving SRC and DST against only the namespaces on the path, falling back to a
whole discovery for bad input (so the error offers the closest names), the static
walk, and with ``probe`` the real packets: written once here so that the dashboard
shows exactly what the command prints. The caller brings what differs: the command
wraps the probe so SIGTERM unwinds it (signals can only be set in the main thread;
the dashboard runs this in a worker thread and passes no wrapper).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from netlens.analysis.tracetypes import DELIVERED, Finding, TraceResult
from netlens.errors import DiscoveryError, NeedsRootError, UsageError

PROTOS = ("icmp", "tcp", "udp")


@dataclass(frozen=True, slots=True)
class TraceRequest:
    """A trace as the user asked for it (``proto`` None: icmp, or tcp with a port)."""

    src: str
    dst: str
    proto: str | None = None
    dport: int | None = None
    sport: int | None = None
    probe: bool = False
    allow_external: bool = False
    with_filters: bool = True

    @property
    def protocol(self) -> str:
        """The protocol to trace; a port without tcp or udp raises UsageError."""
        proto = self.proto or ("tcp" if self.dport is not None else "icmp")
        if proto not in PROTOS:
            raise UsageError(f"unknown protocol {proto!r}: use icmp, tcp or udp")
        if proto == "icmp" and (self.dport is not None or self.sport is not None):
            raise UsageError("--port and --sport need --proto tcp or udp")
        return proto


@dataclass(frozen=True, slots=True)
class TraceOutcome:
    """The static answer and, with a probe, the probe's document (``to_dict``)."""

    request: TraceRequest
    result: TraceResult
    probe: dict[str, Any] | None = None


ProbeGuard = Callable[[Callable[[], dict[str, Any]]], dict[str, Any]]


def _direct(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    return fn()


def run_trace(req: TraceRequest, probe_guard: ProbeGuard = _direct) -> TraceOutcome:
    """Trace ``req`` on the live host (root). Raises UsageError for bad input,
    NeedsRootError, DiscoveryError; a probe's temporary state is removed by
    :func:`netlens.analysis.probe.run_probe` itself."""
    from netlens.analysis.endpoints import resolve
    from netlens.analysis.scope import Scope
    from netlens.analysis.trace import trace
    from netlens.discovery.nsfind import find_namespaces
    from netlens.kernel.nsquery import NsQuery

    proto = req.protocol
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
        # not is the owner looked up after (see _dst_after). A probe must know
        # the owner before it sends anything.
        lazy_dst = is_ip(req.dst) and not req.probe
        wanted = [*scope.locate(req.src), *([] if lazy_dst else scope.locate(req.dst))]
        scope.load(wanted)
        try:
            src = resolve(scope.snap, req.src, is_dst=False)
            dst = resolve(scope.snap, req.dst, is_dst=True)
        except UsageError:
            # Not found among the namespaces read: the whole host decides (and
            # offers the closest names), as slow as a dump but only for bad input.
            from netlens.discovery import discover

            whole = discover(with_nat=False)
            src = resolve(whole, req.src, is_dst=False)
            dst = resolve(whole, req.dst, is_dst=True)
            scope.load([e.ns.inode for e in (src, dst) if e.ns is not None])
            src = resolve(scope.snap, req.src, is_dst=False)
            dst = resolve(scope.snap, req.dst, is_dst=True)
        if req.probe:
            from netlens.analysis.probe import check_target

            check_target(dst, req.allow_external)
        res = trace(
            scope, src, dst, q, proto=proto, sport=req.sport, dport=req.dport,
            with_filters=req.with_filters,
        )  # fmt: skip
        if lazy_dst and dst.ns is None:
            res = _dst_after(scope, res, req.dst)
        probe: dict[str, Any] | None = None
        if req.probe:
            from netlens.analysis.probe import check_path, run_probe

            check_path(res, req.allow_external)
            probe = probe_guard(lambda: run_probe(scope, q, res, src, dst).to_dict())
    return TraceOutcome(req, res, probe)


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _dst_after(scope: Any, res: TraceResult, spec: str) -> TraceResult:
    """The result as if DST's owner had been known before the walk: the
    namespaces on the path are read now, so the owner usually is among them
    (delivered: the last hop's); only otherwise is every namespace asked."""
    from netlens.analysis.endpoints import resolve

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
