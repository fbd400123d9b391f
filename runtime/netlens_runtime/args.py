"""What network and container creation read: the plain argument classes and their protocols.

``netlens run`` builds a :class:`ContainerArgs`, lab files and scripts an
``api.ContainerSpec`` (a dataclass): creation reads either through the
``NetworkLike``/``ContainerLike`` protocols. No ``dataclasses`` import here: its
``inspect`` import costs ~10 ms of the 150 ms budget of ``netlens run``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netlens_runtime import hostview

if TYPE_CHECKING:
    from typing import Protocol

    class NetworkLike(Protocol):
        """What network creation reads: api.NetworkSpec or :class:`NetworkArgs`."""

        name: str
        subnet: str | None
        gateway: str | None
        nat: bool
        mtu: int
        bridge: str | None
        internal: bool
        allow_from: list[str]

    class ContainerLike(Protocol):
        """What container creation reads: api.ContainerSpec or :class:`ContainerArgs`."""

        name: str
        command: list[str]
        network: str | None
        ip: str | None
        memory: str | None
        cpus: float | None
        publish: list[str]
        env: dict[str, str]
        labels: dict[str, str]
        cap_add: list[str]
        rootfs: str | None
        layers: list[str]
        sysctls: dict[str, str]
        hostname: str | None
        volumes: list[str]
        host_view: str
        privileged: bool
        security_opt: list[str]


class NetworkArgs:
    """Plain twin of api.NetworkSpec (no dataclasses import on the CLI's fast path)."""

    def __init__(
        self,
        name: str,
        subnet: str | None = None,
        gateway: str | None = None,
        nat: bool = True,
        mtu: int = 1500,
        bridge: str | None = None,
        internal: bool = False,
        allow_from: list[str] | None = None,
    ) -> None:
        self.name, self.subnet, self.gateway = name, subnet, gateway
        self.nat, self.mtu, self.bridge = nat, mtu, bridge
        self.internal, self.allow_from = internal, list(allow_from or [])


class ContainerArgs:
    """Plain twin of api.ContainerSpec, same fields and defaults."""

    def __init__(
        self,
        name: str,
        command: list[str] | None = None,
        network: str | None = "default",
        ip: str | None = None,
        memory: str | None = None,
        cpus: float | None = None,
        publish: list[str] | None = None,
        pids_limit: int | str | None = None,
        log_size: int | str | None = None,
        env: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        cap_add: list[str] | None = None,
        rootfs: str | None = None,
        sysctls: dict[str, str] | None = None,
        hostname: str | None = None,
        volumes: list[str] | None = None,
        host_view: str = hostview.DEFAULT_VIEW,
        privileged: bool = False,
        security_opt: list[str] | None = None,
        layers: list[str] | None = None,
    ) -> None:
        self.name = name
        self.command = command if command is not None else ["sleep", "infinity"]
        self.network, self.ip, self.memory, self.cpus = network, ip, memory, cpus
        self.pids_limit, self.log_size = pids_limit, log_size
        self.publish = publish or []
        self.env = env or {}
        self.labels = labels or {}
        self.cap_add = cap_add or []
        self.rootfs = rootfs
        self.layers = layers or []
        self.sysctls = sysctls or {}
        self.hostname = hostname
        self.volumes = volumes or []
        self.host_view = host_view
        self.privileged = privileged
        self.security_opt = security_opt or []
