"""The few live facts ``netlens doctor`` needs that a snapshot does not carry.

Discovery reads what exists (links, routes, neighbours, the netconf sysctls);
some checks need more, and only in a few namespaces, so they are read here, on
demand, from one setns worker thread:

- per-interface ``rp_filter`` (the snapshot has ``all`` and ``default``; the
  kernel applies ``max(all, IF)``), only in namespaces the caller names
  (the multi-homed ones);
- the forward filter where bridged traffic crosses it: the nftables chains
  hooked at forward with a drop policy (the NAT probe's chain dump), and the
  text of their tables (``nft list table``; ``iptables-legacy-save -t filter``
  when a legacy filter table exists) so the caller can see which bridges have
  an ACCEPT rule, only where the caller asks (namespaces with a bridge and
  ``bridge-nf-call-iptables=1``);
- ``nf_conntrack_count`` per namespace (the kernel limits each namespace's count
  by the one global ``nf_conntrack_max``), only where asked;
- ``gc_thresh3`` of the IPv4 and IPv6 neighbour tables (global tables shared by
  every namespace, so read once, on the host).

Each namespace is entered by a path the snapshot names (a bind mount, a
process), checked against the namespace's inode, so a recycled pid is never
mistaken for it. Namespace entry and the chain probe still live in
``netlens.discovery`` (this is the only module here that imports them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

from netlens.discovery.nat import probe_here
from netlens.kernel import nsenter

_TOOL_TIMEOUT_S = 10.0
CONNTRACK_COUNT = "/proc/sys/net/netfilter/nf_conntrack_count"
CONNTRACK_MAX = "/proc/sys/net/netfilter/nf_conntrack_max"
GC_THRESH3 = {
    4: "/proc/sys/net/ipv4/neigh/default/gc_thresh3",
    6: "/proc/sys/net/ipv6/neigh/default/gc_thresh3",
}


@dataclass(frozen=True, slots=True)
class NsTarget:
    """A namespace to enter: its inode and the paths that may open it."""

    id: str
    inode: int
    paths: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ForwardFilter:
    """The forward filter of one namespace, as read.

    ``drops`` names each forward-hooked chain with a drop policy
    (``ip filter FORWARD``); ``text`` is the rules of the tables holding them
    (nft syntax) and of the legacy filter table (iptables-save syntax).
    """

    br_nf_call_iptables: bool | None
    drops: tuple[str, ...] = ()
    text: str = ""


@dataclass(frozen=True, slots=True)
class NetFacts:
    """What :func:`read_facts` found, keyed by namespace id (``netns:<inode>``)."""

    rp_filter: dict[str, dict[str, int]] = field(default_factory=dict)
    forward: dict[str, ForwardFilter] = field(default_factory=dict)
    conntrack_count: dict[str, int] = field(default_factory=dict)
    conntrack_max: int | None = None
    gc_thresh3: dict[int, int] = field(default_factory=dict)
    errors: tuple[str, ...] = ()


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _open_target(target: NsTarget) -> int | None:
    """An nsfs fd for ``target`` whose inode is the one discovered, else None."""
    for path in target.paths:
        fd = nsenter.open_netns(path)
        if fd is None:
            continue
        if os.fstat(fd).st_ino == target.inode:
            return fd
        os.close(fd)
    return None


def _rp_filters(ifnames: Sequence[str]) -> dict[str, int]:
    """Runs inside the namespace: rp_filter of ``all`` and of each interface."""
    out: dict[str, int] = {}
    for name in ("all", *ifnames):
        if "/" in name or name in (".", ".."):
            continue  # not a sysctl directory name
        val = _read_int(f"/proc/sys/net/ipv4/conf/{name}/rp_filter")
        if val is not None:
            out[name] = val
    return out


def _forward_filter(fd: int) -> ForwardFilter:
    """Runs inside the namespace: chain dump and br_netfilter; then, if a forward
    chain drops, the tools (started from this thread, so they inherit its namespace)."""
    probe = probe_here(fd, with_br_nf=True)
    drops = tuple(
        f"{c.family} {c.table} {c.name}"
        for c in probe.chains
        if c.hook == "forward" and c.policy == "drop" and c.family in ("ip", "inet", "bridge")
    )
    texts: list[str] = []
    legacy = "filter" in probe.legacy_tables4
    if drops or legacy:
        nft = shutil.which("nft")
        tables = {(c.family, c.table) for c in probe.chains if c.hook == "forward"}
        for family, table in sorted(tables):
            if nft:
                texts.append(_run([nft, "list", "table", family, table]))
        if legacy and shutil.which("iptables-legacy-save"):
            legacy_text = _run(["iptables-legacy-save", "-t", "filter"])
            texts.append(legacy_text)
            if any(line.startswith(":FORWARD DROP") for line in legacy_text.splitlines()):
                drops = (*drops, "iptables-legacy filter FORWARD")
    return ForwardFilter(probe.br_nf_call_iptables, drops, "\n".join(texts))


def _run(argv: list[str]) -> str:
    try:
        res = subprocess.run(
            argv, capture_output=True, text=True, timeout=_TOOL_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return res.stdout if res.returncode == 0 else ""


def read_facts(
    *,
    rp_filter: dict[NsTarget, Sequence[str]] | None = None,
    forward: Sequence[NsTarget] = (),
    conntrack: Sequence[NsTarget] = (),
    neighbour_tables: bool = True,
) -> NetFacts:
    """Read the facts asked for, each namespace entered once from one worker thread.

    A namespace that cannot be entered (it vanished, a path went stale) is
    skipped and named in ``errors``; the caller reports its checks as not run.
    """
    rp = rp_filter or {}
    wanted: dict[str, NsTarget] = {}
    for t in (*rp, *forward, *conntrack):
        wanted.setdefault(t.id, t)
    fwd_ids = {t.id for t in forward}
    ct_ids = {t.id for t in conntrack}
    rp_names = {t.id: tuple(names) for t, names in rp.items()}
    errors: list[str] = []
    fds: list[int] = []
    order: list[NsTarget] = []
    for t in wanted.values():
        fd = _open_target(t)
        if fd is None:
            errors.append(f"{t.id}: cannot enter (gone, or no path to it)")
            continue
        fds.append(fd)
        order.append(t)

    def visit(fd: int | str) -> tuple[dict[str, int] | None, ForwardFilter | None, int | None]:
        t = order[fds.index(int(fd))]
        rps = _rp_filters(rp_names[t.id]) if t.id in rp_names else None
        fwd = _forward_filter(int(fd)) if t.id in fwd_ids else None
        count = _read_int(CONNTRACK_COUNT) if t.id in ct_ids else None
        return rps, fwd, count

    out_rp: dict[str, dict[str, int]] = {}
    out_fwd: dict[str, ForwardFilter] = {}
    out_ct: dict[str, int] = {}
    try:
        results = nsenter.run_in_netns(list(fds), visit)
    finally:
        for fd in fds:
            os.close(fd)
    for t, res in zip(order, results, strict=True):
        if isinstance(res, OSError):
            errors.append(f"{t.id}: {res.strerror or res}")
            continue
        rps, fwd, count = res
        if rps is not None:
            out_rp[t.id] = rps
        if fwd is not None:
            out_fwd[t.id] = fwd
        if count is not None:
            out_ct[t.id] = count
    gc: dict[int, int] = {}
    if neighbour_tables:
        for family, path in GC_THRESH3.items():
            val = _read_int(path)
            if val is not None:
                gc[family] = val
    return NetFacts(
        rp_filter=out_rp,
        forward=out_fwd,
        conntrack_count=out_ct,
        conntrack_max=_read_int(CONNTRACK_MAX) if conntrack else None,
        gc_thresh3=gc,
        errors=tuple(errors),
    )
