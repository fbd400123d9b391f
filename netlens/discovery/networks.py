"""Which network owns each host bridge, by the name users know it by.

The kernel knows a bridge as ``nlb827cbd6c2a``, ``br-3f2a1c9e8d7b`` or
``podman1``; the engineer knows it as ``demo-lan``, ``backend`` or ``podman``.
Each engine keeps that mapping in its own state files (see the
``bridge_networks`` reader in each module of :mod:`netlens.discovery.engines`);
this merges them. Read-only and daemon-free, like container identity: a
missing or torn file costs only its names.

When two engines claim one bridge name (a bridge made by hand with a
colliding name), the first reader wins: netlens's runtime, Docker, Podman,
then plain CNI configurations.
"""

from __future__ import annotations

from collections.abc import Iterable

from netlens.discovery.engines import cni, docker, netlens_rt, podman


def bridge_networks(
    *,
    netlens_state_dir: str | None = None,
    docker_root: str = docker.DEFAULT_ROOT,
    podman_dirs: Iterable[str] = podman.NETWORK_DIRS,
    cni_dir: str = cni.DEFAULT_DIR,
) -> dict[str, str]:
    """Host bridge interface name -> network name, from every engine's state."""
    out: dict[str, str] = {}
    for found in (
        netlens_rt.bridge_networks(netlens_state_dir),
        docker.bridge_networks(docker_root),
        podman.bridge_networks(podman_dirs),
        cni.bridge_networks(cni_dir),
    ):
        for bridge, name in found.items():
            out.setdefault(bridge, name)
    return out
