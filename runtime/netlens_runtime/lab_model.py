"""What a validated lab is: frozen dataclasses with lab-local names, and where each came from.

:mod:`netlens_runtime.lab_spec` builds them from a lab file, ``lab up``
(:mod:`netlens_runtime.lab_ops`) and the link verbs read them. Pure data: no
YAML, no checks, so every reader imports only this.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netlens_runtime.errors import BadInput
from netlens_runtime.lab_impair import ImpairSpec

MAX_NODE_COUNT = 5000
"""Upper bound for ``count`` (and ``--nodes``): a lab of more nodes is a typo."""


PRIMARY_IFNAME = "eth0"
"""Name of a node's interface on its primary network (the runtime's choice)."""


@dataclass(frozen=True, slots=True)
class Where:
    """A place in the lab file: ``file:line`` plus the dotted field path."""

    file: str
    line: int
    path: str

    def error(self, message: str) -> BadInput:
        """A :class:`BadInput` naming this place, ready to raise."""
        prefix = f"{self.path}: " if self.path else ""
        return BadInput(f"{self.file}:{self.line}: {prefix}{message}")


@dataclass(frozen=True, slots=True)
class LabNetwork:
    """A bridge segment of the lab (the runtime's network)."""

    name: str
    subnet: str | None = None
    gateway: str | None = None
    nat: bool = False
    mtu: int = 1500
    bridge: str | None = None
    internal: bool = False
    allow_from: tuple[str, ...] = ()
    """Lab networks (their lab names) or outside CIDRs that may open connections into it."""
    line: int = field(default=0, compare=False)
    """Line of the network in its lab file, for errors the runtime reports later."""


@dataclass(frozen=True, slots=True)
class LabInterface:
    """An extra attachment of a node to a lab network (a router's second leg)."""

    network: str
    ifname: str
    ip: str | None = None
    """Address without prefix; the prefix comes from the network's subnet."""
    impair: ImpairSpec | None = None
    """``impair:``: what this leg suffers (``lab up`` applies it with linkops)."""


@dataclass(frozen=True, slots=True)
class LabRoute:
    """A static route inside a node: ``to`` is a CIDR or ``default``."""

    to: str
    via: str | None = None
    dev: str | None = None


@dataclass(frozen=True, slots=True)
class LabLink:
    """A point-to-point veth straight between two nodes (no bridge)."""

    a: str
    a_ifname: str
    b: str
    b_ifname: str
    a_addr: str | None = None
    b_addr: str | None = None
    mtu: int | None = None
    impair: ImpairSpec | None = None
    """``impair:``: what each direction of the cable suffers (each end's egress)."""


@dataclass(frozen=True, slots=True)
class LabNode:
    """One container of the lab, with lab-local names (``r1``, not ``lab-r1``)."""

    name: str
    command: tuple[str, ...] = ("sleep", "infinity")
    network: str | None = None
    ip: str | None = None
    rootfs: str | None = None
    layers: tuple[str, ...] = ()
    """An image's layer directories, topmost first: the root is their read-only
    overlay (containerlab ``image``, native ``layers``); excludes ``rootfs``."""
    memory: str | None = None
    cpus: float | None = None
    cap_add: tuple[str, ...] = ()
    pids_limit: int | None = None
    """None: the runtime's default (names.PIDS_DEFAULT); 0: no limit."""
    log_size: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    sysctls: dict[str, str] = field(default_factory=dict)
    hostname: str | None = None
    publish: tuple[str, ...] = ()
    binds: tuple[str, ...] = ()
    interfaces: tuple[LabInterface, ...] = ()
    routes: tuple[LabRoute, ...] = ()
    privileged: bool = False
    security_opt: tuple[str, ...] = ()
    exec: tuple[str, ...] = ()
    """Commands run in the node once the lab is built (links up), in order; each must
    exit 0 (containerlab's ``exec``)."""
    impair: ImpairSpec | None = None
    """``impair:`` of the node itself: its primary interface (eth0) suffers it."""


@dataclass(frozen=True, slots=True)
class LabFlow:
    """A traffic generator flow between two nodes of the lab (demo traffic)."""

    src: str
    dst: str
    proto: str = "tcp"
    port: int = 5201
    min_bps: int = 1_000_000
    max_bps: int = 10_000_000


@dataclass(frozen=True, slots=True)
class LabSpec:
    """A validated lab: what ``lab up`` builds, in creation order."""

    name: str
    path: str
    networks: tuple[LabNetwork, ...]
    nodes: tuple[LabNode, ...]
    links: tuple[LabLink, ...] = ()
    traffic: tuple[LabFlow, ...] = ()

    def node(self, name: str) -> LabNode:
        """The node called ``name`` (lab-local)."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def network(self, name: str) -> LabNetwork:
        """The network called ``name`` (lab-local)."""
        for n in self.networks:
            if n.name == name:
                return n
        raise KeyError(name)
