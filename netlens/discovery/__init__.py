"""Read-only discovery of every network namespace on the host.

Collectors read the live kernel (netlink, procfs, sysfs, engine state files) and
return plain model objects; nothing here creates or changes anything, and
objects that vanish mid-walk are skipped, never fatal.

This module stays import-light: :func:`discover` imports the collectors when
called, so ``import netlens.discovery`` costs nothing on fast paths.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from netlens.model import Snapshot

__all__ = ["discover"]


def discover(
    *,
    proc_root: str = "/proc",
    with_identity: bool = True,
    with_nat: bool = True,
    deep: bool | None = None,
) -> Snapshot:
    """Snapshot of the live host (see :func:`netlens.discovery.core.discover`)."""
    from netlens.discovery.core import discover as _discover

    return _discover(proc_root=proc_root, with_identity=with_identity, with_nat=with_nat, deep=deep)
