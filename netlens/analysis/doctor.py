"""``netlens doctor``: run every check on one snapshot, worst findings first.

:func:`targets` decides which namespaces need a live read (few: the multi-homed
ones for rp_filter, those with a bridge and br_netfilter on for the forward
filter, the host and NAT namespaces for conntrack); :func:`diagnose` runs the
checks on the snapshot plus those facts. With a saved dump (``--from FILE``)
there are no live facts: the checks that need them are listed as skipped, and
the rp_filter check works from the ``all`` value the dump carries.

Headless: no textual, no rich (an import-linter contract says so).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from netlens.analysis import checks_host, checks_l2, checks_l3
from netlens.analysis.findings import Report
from netlens.analysis.netfacts import NetFacts, NsTarget, read_facts
from netlens.analysis.topo import shared_segments
from netlens.model.findings import Finding, Severity, Skipped
from netlens.model.types import Netns, Snapshot

LIVE_ONLY = {
    "forward-drop-bridge": "needs the live forward filter (nft chains, br_netfilter)",
    "conntrack-near-max": "needs the live nf_conntrack_count and nf_conntrack_max",
    "neighbour-table-near-limit": "needs the live gc_thresh3",
}
"""Checks a saved dump cannot answer, and the fact each lacks."""

StaticCheck = Callable[[Snapshot], list[Finding]]
STATIC: tuple[StaticCheck, ...] = (
    checks_l2.veth_peer_down,
    checks_l2.mtu_mismatch,
    checks_l2.duplicates,
    checks_l2.bridge_port_state,
    checks_l3.ip_forward_off,
    checks_l3.gateway_not_connected,
    checks_l3.default_gateway_failed,
    checks_l3.hidden_routes,
    checks_l3.overlapping_subnets,
    checks_host.unused_namespace,
    checks_host.bridge_ports,
)


def paths(ns: Netns) -> tuple[str, ...]:
    """Paths that may open ``ns``: its bind mounts, its /run/netns names, a few of
    its processes (every one is checked against the inode before use)."""
    out = [*ns.mounts, *(f"/run/netns/{n}" for n in ns.names)]
    out += [f"/proc/{pid}/ns/net" for pid in ns.pids[:3]]
    if ns.is_host:
        out += ["/proc/self/ns/net", "/proc/1/ns/net"]
    return tuple(dict.fromkeys(out))


def _target(ns: Netns) -> NsTarget:
    return NsTarget(ns.id, ns.inode, paths(ns))


def targets(
    snapshot: Snapshot,
) -> tuple[dict[NsTarget, Sequence[str]], list[NsTarget], list[NsTarget]]:
    """(rp_filter targets with their interface names, forward-filter targets,
    conntrack targets): the only namespaces a live doctor enters."""
    rp: dict[NsTarget, Sequence[str]] = {}
    fwd: list[NsTarget] = []
    ct: list[NsTarget] = []
    for ns in snapshot.namespaces:
        v4 = [
            i.name
            for i in ns.interfaces
            if i.kind != "loopback" and any(a.family == 4 for a in i.addresses)
        ]
        if len(v4) >= 2:
            rp[_target(ns)] = v4
        has_bridge = any(i.kind == "bridge" for i in ns.interfaces)
        if has_bridge and ns.sysctls.get("net.bridge.bridge-nf-call-iptables") == "1":
            fwd.append(_target(ns))
        if ns.is_host or ns.nat:
            ct.append(_target(ns))
    return rp, fwd, ct


def gather(snapshot: Snapshot) -> NetFacts:
    """The live facts for :func:`diagnose` (root: entering namespaces needs it)."""
    rp, fwd, ct = targets(snapshot)
    here = snapshot.host is not None and _own_inode() == snapshot.host.inode
    return read_facts(rp_filter=rp, forward=fwd, conntrack=ct, neighbour_tables=here)


def _own_inode() -> int | None:
    try:
        return os.stat("/proc/thread-self/ns/net").st_ino
    except OSError:
        return None


def diagnose(snapshot: Snapshot, facts: NetFacts | None, source: str = "live") -> Report:
    """Every check over ``snapshot``; ``facts`` None means a saved dump."""
    found: list[Finding] = []
    with shared_segments(snapshot):
        for check in STATIC:
            found += check(snapshot)
        found += checks_l3.rp_filter_asymmetric(snapshot, facts.rp_filter if facts else None)
    skipped: list[Skipped] = []
    if facts is None:
        skipped += [Skipped(c, why) for c, why in LIVE_ONLY.items()]
        skipped.append(
            Skipped(
                "rp-filter-asymmetric",
                "partly: per-interface rp_filter is not in a dump; used net.ipv4.conf.all only",
            )
        )
    else:
        found += checks_l2.forward_drop(snapshot, facts.forward)
        found += checks_host.conntrack_full(snapshot, facts.conntrack_count, facts.conntrack_max)
        if facts.gc_thresh3:
            found += checks_host.neighbour_tables(snapshot, facts.gc_thresh3)
        else:
            skipped.append(
                Skipped("neighbour-table-near-limit", "gc_thresh3 is read in the host namespace")
            )
        skipped += [Skipped("live-read", e) for e in facts.errors]
    found.sort(key=lambda f: (f.severity.rank, f.check, f.title))
    return Report(
        findings=tuple(found),
        skipped=tuple(skipped),
        source=source,
        taken_at=snapshot.taken_at,
        schema_version=snapshot.schema_version,
    )


def at_least(report: Report, severity: Severity) -> Report:
    """Only the findings as bad as ``severity`` or worse (``--severity``)."""
    import dataclasses

    kept = tuple(f for f in report.findings if f.severity.rank <= severity.rank)
    return dataclasses.replace(report, findings=kept)


NOT_CHECKED = "doctor"
"""The ``skipped`` entry of a dump written with ``--no-findings``: no check ran."""


def recorded(snapshot: Snapshot, source: str = "dump") -> Report | None:
    """The findings a saved dump carries (schema 1.3), or None when it carries none
    to trust: a dump older than 1.3 (no ``findings``, no ``skipped``) or one written
    with ``--no-findings``. ``netlens dump`` always lists the live-only checks under
    ``skipped``, so an empty ``findings`` beside them is a clean bill, not a gap."""
    if any(s.check == NOT_CHECKED for s in snapshot.skipped):
        return None
    if not snapshot.findings and not snapshot.skipped:
        return None
    return Report(
        findings=snapshot.findings,
        skipped=snapshot.skipped,
        source=source,
        taken_at=snapshot.taken_at,
        schema_version=snapshot.schema_version,
    )


def report_for(snapshot: Snapshot, live: bool, source: str = "dump") -> Report:
    """What a view shows for ``snapshot``: on the live host every check (the live
    facts read now); on a saved dump what it recorded, else the snapshot-only checks.
    Blocking (a live read enters namespaces): call it from a worker thread."""
    if live:
        return diagnose(snapshot, gather(snapshot))
    return recorded(snapshot, source) or diagnose(snapshot, None, source=source)
