"""``discover()``: the live host as one :class:`~netlens.model.Snapshot`.

Pipeline: find namespace handles -> one setns pass opens a netlink socket in
each and starts the NAT probe there -> dumps -> parse -> resolve. Identity comes
from its own module; NAT rules are read afterwards (tools run only where the
probe saw NAT) and merged in by namespace inode.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from netlens.discovery.live_source import LiveNetlink, LiveProc
from netlens.discovery.nsfind import find_namespaces
from netlens.kernel.wire import FIRST_ROUND

if TYPE_CHECKING:
    from netlens.discovery.nat import NsProbe
    from netlens.discovery.nat_tools import StartedTools
    from netlens.discovery.nsfind import NsHandle
    from netlens.model import Container, NatRule, Snapshot


def _warn(msg: str) -> None:
    """Log a collector's failure (logging is imported only then: it costs 5 ms of
    start-up before the helper process can start)."""
    import logging

    logging.getLogger(__name__).warning(msg, exc_info=True)


NOT_ROOT_WARNING = (
    "not root: only this process's own network namespace was read; entering other "
    "namespaces (setns) needs root (CAP_SYS_ADMIN), and so do other users' processes"
)


def discover(
    *,
    proc_root: str = "/proc",
    with_identity: bool = True,
    with_nat: bool = True,
    deep: bool | None = None,
) -> Snapshot:
    """Read every network namespace of this host; never creates or changes anything.

    Raises :class:`netlens.errors.DiscoveryError` only when nothing at all could be
    read; a namespace that vanishes mid-walk is skipped. ``deep`` also looks for
    namespaces held only by a mount in another mount namespace or by an open fd
    (costly on hosts with many mount namespaces; None: ``NETLENS_DEEP_SCAN``).
    """
    root = os.geteuid() == 0
    handles = find_namespaces(proc_root, deep=deep)
    source = LiveNetlink(nat_probe=with_nat)
    tools: StartedTools | None = None
    try:
        # Start the namespace walk first: with many namespaces the helper process
        # (netlens-walk, else a fork of this one) enters them while this process
        # imports the model and the resolver and reads container identity.
        # Nothing above this line imports the model. build_snapshot finds the source already open.
        failed = source.open(handles)
        source.prefetch([h.inode for h in handles if h.inode not in failed], FIRST_ROUND)
        tools = _start_nat_tools(source, handles) if with_nat else None
        from netlens.discovery.resolve import build_snapshot

        containers: list[Container] = []
        warnings: list[str] = [] if root else [NOT_ROOT_WARNING]
        # Identity and NAT are their own collectors; a failure there costs their
        # part of the picture (said in a warning), never the whole snapshot.
        networks: dict[str, str] = {}
        if with_identity:
            try:
                from netlens.discovery.identity import identify

                containers = identify(handles, proc_root=proc_root)
            except Exception as err:
                _warn("container identity failed")
                warnings.append(f"container identity failed: {err}")
            try:
                from netlens.discovery.networks import bridge_networks

                networks = bridge_networks()
            except Exception as err:
                _warn("reading the engines' networks failed")
                warnings.append(f"reading the engines' networks failed: {err}")
        snap = build_snapshot(
            handles,
            source,
            LiveProc(proc_root),
            containers=containers,
            root=root,
            warnings=warnings,
            networks=networks,
        )
        if not with_nat:
            return snap
        # The visit that opened each namespace's socket (here, or in the helper
        # process) also probed it for NAT; tools run only where it saw NAT.
        try:
            from netlens.discovery.nat_tools import read_nat

            nat = read_nat(handles, probes=source.nat_probes(handles), started=tools)
        except Exception as err:
            _warn("reading NAT rules failed")
            notes = list(snap.warnings)
            notes.insert(len(warnings), f"reading NAT rules failed: {err}")
            return dataclasses.replace(snap, warnings=tuple(notes))
        return with_nat_rules(snap, nat)
    finally:
        if tools is not None:
            tools.close()
        source.close()


def _start_nat_tools(source: LiveNetlink, handles: Sequence[NsHandle]) -> StartedTools | None:
    """Start the NAT tools of the namespaces probed in this process (the host's,
    usually the one with NAT) now: they run while the helper process walks the
    other namespaces instead of after it (25 ms of a 1000-namespace dump). A
    failure here only means they run later, in :func:`read_nat`."""
    try:
        from netlens.discovery.nat_tools import start_tools

        return start_tools(p for p in source.early_nat_probes(handles) if _has_nat(p[1]))
    except Exception:
        _warn("starting the NAT tools early failed")
        return None


def _has_nat(probe: NsProbe) -> bool:
    return probe.nft_nat or probe.legacy_nat4 or probe.legacy_nat6


def with_nat_rules(snap: Snapshot, nat: Mapping[int, tuple[NatRule, ...]]) -> Snapshot:
    """``snap`` with each namespace's NAT rules (by inode) filled in."""
    if not nat:
        return snap
    namespaces = tuple(
        dataclasses.replace(n, nat=nat[n.inode]) if n.inode in nat else n for n in snap.namespaces
    )
    return dataclasses.replace(snap, namespaces=namespaces)
