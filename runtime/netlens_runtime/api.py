"""Public Python API of the bundled runtime: networks and containers.

Used by lab files and by anyone scripting the runtime. The work is done in
:mod:`netlens_runtime.networks`, :mod:`netlens_runtime.create`,
:mod:`netlens_runtime.containers` and :mod:`netlens_runtime.leftovers`; this module
adds the dataclass specs. Every mutation holds
the state lock, journals what it is about to make, and rolls back everything it
made when a step fails, so a failed create leaves nothing behind and
:func:`gc` finishes the job after a SIGKILL.

State lives under ``$NETLENS_STATE_DIR`` (default /run/netlens):
``containers/<name>.json`` (keys: name, id, pid, netns_inode, network, ip,
rootfs, host_view, volumes, command, labels, created, state, cgroup, host_veth, ...),
``networks/<name>.json``, ``logs/<name>.log`` (and the rotated ``.log.1``),
``labs/<name>.json``, ``pending/``, ``quarantine/`` (records that could not be
used, each with a ``.why``) and ``lock``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netlens_runtime import create, hostview, networks
from netlens_runtime.containers import (
    connect,
    get_container,
    list_containers,
    remove_container,
    remove_containers,
    stop_container,
)
from netlens_runtime.errors import require_root
from netlens_runtime.leftovers import gc
from netlens_runtime.liveness import is_running
from netlens_runtime.netpolicy import set_allow_from
from netlens_runtime.networks import list_networks, remove_network

__all__ = [
    "ContainerSpec",
    "NetworkSpec",
    "connect",
    "create_container",
    "create_containers",
    "create_network",
    "gc",
    "get_container",
    "is_running",
    "list_containers",
    "list_networks",
    "remove_container",
    "remove_containers",
    "remove_network",
    "require_root",
    "set_allow_from",
    "stop_container",
]


@dataclass
class NetworkSpec:
    """A bridge network: subnet and gateway are chosen by IPAM when None.

    Networks are isolated from each other: ``allow_from`` names the networks
    (or outside CIDRs) whose containers may open connections to this one's.
    ``internal`` forwards nothing out of the network (no NAT, no default route
    in its containers, nothing published).
    """

    name: str
    subnet: str | None = None
    gateway: str | None = None
    nat: bool = True
    mtu: int = 1500
    bridge: str | None = None
    internal: bool = False
    allow_from: list[str] = field(default_factory=list)


@dataclass
class ContainerSpec:
    """One container; ``network=None`` means no network (only lo).

    ``security_opt``: ``["seccomp=unconfined"]`` or ``["seccomp=/path/profile.json"]``
    (Docker's format); by default the runtime's own profile. ``privileged``: every
    capability, no seccomp filter.
    """

    name: str
    command: list[str] = field(default_factory=lambda: ["sleep", "infinity"])
    network: str | None = "default"
    ip: str | None = None
    memory: str | None = None
    cpus: float | None = None
    publish: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    cap_add: list[str] = field(default_factory=list)
    rootfs: str | None = None
    sysctls: dict[str, str] = field(default_factory=dict)
    hostname: str | None = None
    pids_limit: int | str | None = None
    """None: names.PIDS_DEFAULT (2048); 0 or -1: no limit."""
    log_size: int | str | None = None
    """The most a detached container's log takes on disk (e.g. "10m", the default)."""
    volumes: list[str] = field(default_factory=list)
    """``HOST:CONTAINER[:ro]`` bind mounts (netlens run -v, lab ``binds``)."""
    host_view: str = hostview.DEFAULT_VIEW
    """"tools": the host's tools, not its secrets; "full": the whole host root read-only."""
    privileged: bool = False
    security_opt: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    """An image's layer directories, topmost first (lab_image.resolve): the root is
    their read-only overlay. Excludes ``rootfs``, which is a one-layer image's."""


def create_network(spec: NetworkSpec) -> dict[str, Any]:
    """Create a bridge network and its rules; Conflict if name, bridge or subnet is taken."""
    return networks.create_network(spec)


def create_container(spec: ContainerSpec, attach: bool = False) -> dict[str, Any]:
    """Create and start one container; return its state record.

    ``attach=True`` keeps its stdout/stderr on ours (``netlens run`` without -d);
    its PID 1 is then our child, to ``os.waitpid``.
    """
    return create.create_container(spec, attach)


def create_containers(specs: list[ContainerSpec]) -> list[dict[str, Any]]:
    """Create and start many containers: one lock, one netlink batch, all or nothing."""
    return create.create_containers(list(specs))
