"""Doctor checks of the host as a whole: leftover namespaces and tables near their limits."""

from __future__ import annotations

from netlens.analysis.findings import Finding, ObjectRef, Severity, if_ref, ns_ref, shell
from netlens.model.types import Snapshot

BRIDGE_MAX_PORTS = 1023
"""Ports one Linux bridge takes (BR_MAX_PORTS is 1024, port number 0 is reserved):
the next ``ip link set X master BR`` fails with EXFULL."""
NEAR = 0.9
"""A table this full (of its limit) is a warning; full is an error."""


def unused_namespace(snapshot: Snapshot) -> list[Finding]:
    """A namespace only a bind mount keeps alive: no process, no container, and no
    link but loopback. Typically what a removed container or an ``ip netns add``
    left behind; it costs little, but it clutters every listing."""
    out: list[Finding] = []
    for ns in snapshot.namespaces:
        if ns.is_host or ns.pids or not ns.complete:
            continue
        owner = snapshot.container(ns.container) if ns.container else None
        if owner is not None and owner.engine != "netns":  # netns: just its ip netns name
            continue
        if not (ns.names or ns.mounts):
            continue
        links = [i for i in ns.interfaces if i.kind != "loopback" and i.name != "lo"]
        if links:
            continue
        if ns.names:
            fix = f"ip netns delete {shell(ns.names[0])}"
        else:
            fix = " && ".join(f"umount {shell(m)} && rm -f {shell(m)}" for m in ns.mounts)
        out.append(
            Finding(
                "unused-namespace",
                Severity.INFO,
                f"namespace {ns.name} is unused: no process, only a bind mount, no link but lo",
                (ns_ref(ns),),
                (
                    "processes: none",
                    "held by: "
                    + ", ".join(ns.mounts or tuple(f"/run/netns/{n}" for n in ns.names)),
                    "links: " + (", ".join(i.name for i in ns.interfaces) or "none"),
                ),
                fix,
            )
        )
    return out


def _level(used: int, limit: int) -> Severity | None:
    if limit <= 0:
        return None
    if used >= limit:
        return Severity.ERROR
    if used >= NEAR * limit:
        return Severity.WARNING
    return None


def bridge_ports(snapshot: Snapshot, limit: int = BRIDGE_MAX_PORTS) -> list[Finding]:
    out: list[Finding] = []
    for ns in snapshot.namespaces:
        count: dict[int, int] = {}
        for itf in ns.interfaces:
            if itf.master is not None and itf.port is not None:
                count[itf.master] = count.get(itf.master, 0) + 1
        for idx, n in sorted(count.items()):
            sev = _level(n, limit)
            br = ns.interface(idx)
            if sev is None or br is None:
                continue
            out.append(
                Finding(
                    "bridge-port-limit",
                    sev,
                    f"bridge {ns.name}:{br.name} has {n} of at most {limit} ports",
                    (if_ref(ns, br),),
                    (f"{n} ports enslaved to {br.name}", f"kernel limit {limit} (BR_MAX_PORTS)"),
                    None,
                )
            )
    return out


def conntrack_full(snapshot: Snapshot, counts: dict[str, int], limit: int | None) -> list[Finding]:
    """Each namespace's conntrack count against the global nf_conntrack_max: at
    the limit the kernel drops new connections ("table full, dropping packet")."""
    out: list[Finding] = []
    if not limit:
        return out
    for ns in snapshot.namespaces:
        n = counts.get(ns.id)
        sev = _level(n or 0, limit)
        if n is None or sev is None:
            continue
        out.append(
            Finding(
                "conntrack-near-max",
                sev,
                f"{ns.name}: conntrack holds {n} of {limit} entries",
                (ns_ref(ns),),
                (f"nf_conntrack_count = {n}", f"nf_conntrack_max = {limit}"),
                f"sysctl -w net.netfilter.nf_conntrack_max={limit * 2}",
            )
        )
    return out


def neighbour_tables(snapshot: Snapshot, gc_thresh3: dict[int, int]) -> list[Finding]:
    """The ARP and ND tables are shared by every namespace; past gc_thresh3 the
    kernel refuses new entries ("neighbour table overflow") and hosts go silent."""
    out: list[Finding] = []
    for family, limit in sorted(gc_thresh3.items()):
        n = sum(1 for ns in snapshot.namespaces for e in ns.neighbours if e.family == family)
        sev = _level(n, limit)
        if sev is None:
            continue
        proto = "ipv4" if family == 4 else "ipv6"
        out.append(
            Finding(
                "neighbour-table-near-limit",
                sev,
                f"IPv{family} neighbour entries: {n} of gc_thresh3 {limit} (all namespaces)",
                (ObjectRef("host", snapshot.host.id if snapshot.host else "", "host"),),
                (
                    f"{n} IPv{family} neighbour entries over {len(snapshot.namespaces)} namespaces",
                    f"net.{proto}.neigh.default.gc_thresh3 = {limit}",
                ),
                f"sysctl -w net.{proto}.neigh.default.gc_thresh3={limit * 2}",
            )
        )
    return out
