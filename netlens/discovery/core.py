"""``discover()``: the live host as one :class:`~netlens.model.Snapshot`.

Pipeline: find namespace handles -> one setns pass opens a netlink socket in
each and starts the NAT probe there -> dumps -> parse -> resolve. Identity comes
from its own module; NAT rules are read afterwards (tools run only where the
probe saw NAT) and merged in by namespace inode.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping

from netlens.discovery.nsfind import find_namespaces
from netlens.discovery.resolve import build_snapshot
from netlens.discovery.sources import LiveNetlink, LiveProc
from netlens.model import Container, NatRule, Snapshot

log = logging.getLogger(__name__)

NOT_ROOT_WARNING = (
    "not root: only this process's own network namespace was read; entering other "
    "namespaces (setns) needs root (CAP_SYS_ADMIN), and so do other users' processes"
)


def discover(
    *, proc_root: str = "/proc", with_identity: bool = True, with_nat: bool = True
) -> Snapshot:
    """Read every network namespace of this host; never creates or changes anything.

    Raises :class:`netlens.errors.DiscoveryError` only when nothing at all could be
    read; a namespace that vanishes mid-walk is skipped.
    """
    root = os.geteuid() == 0
    handles = find_namespaces(proc_root)
    containers: list[Container] = []
    warnings: list[str] = [] if root else [NOT_ROOT_WARNING]
    # Identity and NAT are their own collectors; a failure there costs their part
    # of the picture (said in a warning), never the whole snapshot.
    if with_identity:
        try:
            from netlens.discovery.identity import identify

            containers = identify(handles, proc_root=proc_root)
        except Exception as err:
            log.warning("container identity failed", exc_info=True)
            warnings.append(f"container identity failed: {err}")
    source = LiveNetlink(nat_probe=with_nat)
    try:
        snap = build_snapshot(
            handles,
            source,
            LiveProc(proc_root),
            containers=containers,
            root=root,
            warnings=warnings,
        )
        if not with_nat:
            return snap
        # The visit that opened each namespace's socket (here, or in the helper
        # process) also probed it for NAT; tools run only where it saw NAT.
        try:
            from netlens.discovery.nat import read_nat

            nat = read_nat(handles, probes=source.nat_probes(handles))
        except Exception as err:
            log.warning("reading NAT rules failed", exc_info=True)
            notes = list(snap.warnings)
            notes.insert(len(warnings), f"reading NAT rules failed: {err}")
            return dataclasses.replace(snap, warnings=tuple(notes))
        return with_nat_rules(snap, nat)
    finally:
        source.close()


def with_nat_rules(snap: Snapshot, nat: Mapping[int, tuple[NatRule, ...]]) -> Snapshot:
    """``snap`` with each namespace's NAT rules (by inode) filled in."""
    if not nat:
        return snap
    namespaces = tuple(
        dataclasses.replace(n, nat=nat[n.inode]) if n.inode in nat else n for n in snap.namespaces
    )
    return dataclasses.replace(snap, namespaces=namespaces)
