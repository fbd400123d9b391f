"""``discover()``: the live host as one :class:`~netlens.model.Snapshot`.

Pipeline: find namespace handles -> one setns pass opens a netlink socket (and
reads sysctls) in each -> dumps -> parse -> resolve. Identity and NAT come from
their own modules and are merged in by namespace id.
"""

from __future__ import annotations

import logging
import os

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
    nat: dict[int, tuple[NatRule, ...]] = {}
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
    if with_nat:
        try:
            from netlens.discovery.nat import read_nat

            nat = read_nat(handles)
        except Exception as err:
            log.warning("reading NAT rules failed", exc_info=True)
            warnings.append(f"reading NAT rules failed: {err}")
    source = LiveNetlink()
    try:
        return build_snapshot(
            handles,
            source,
            LiveProc(proc_root),
            containers=containers,
            nat=nat,
            root=root,
            warnings=warnings,
        )
    finally:
        source.close()
