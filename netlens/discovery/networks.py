"""Which network owns each host bridge, by the name users know it by.

The kernel knows a bridge as ``nlb827cbd6c2a``, ``br-3f2a1c9e8d7b`` or
``podman1``; the engineer knows it as ``demo-lan``, ``backend`` or ``podman``.
Each engine keeps that mapping in its own state files (see the
``bridge_networks`` reader in each module of :mod:`netlens.discovery.engines`);
this merges them. Read-only and daemon-free, like container identity: a
missing or torn file costs only its names.

When two engines claim one bridge name (a bridge made by hand with a
colliding name), the first reader of :data:`netlens.discovery.registry.READERS`
wins: netlens's runtime, Docker, Podman, then plain CNI configurations.
"""

from __future__ import annotations

from collections.abc import Iterable

from netlens.discovery import registry


def bridge_networks(**roots: str | Iterable[str] | None) -> dict[str, str]:
    """Host bridge interface name -> network name, from every engine's state.

    ``roots``: the readers' own keywords (``netlens_state_dir``, ``docker_root``,
    ``podman_dirs``, ``cni_dir``...), each defaulting to its engine's standard path.
    """
    readers = registry.READERS
    opts = registry.options(readers, dict(roots), "bridge_networks")
    out: dict[str, str] = {}
    for reader in readers:
        if reader.networks is None:
            continue
        for bridge, name in reader.networks(opts).items():
            out.setdefault(bridge, name)
    return out
