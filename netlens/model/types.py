"""The snapshot model: each network namespace is a VRF.

A router engineer reads a Linux host like a router: each network namespace is a
VRF with its own interfaces, routing tables and neighbours; veth pairs are
point-to-point cables between VRFs; a Linux bridge is a switch; the host's
physical NICs are the uplinks. These classes say exactly that, in plain frozen
data, so that discovery, recorded fixtures and saved dumps all produce the same
objects and two dumps of the same host compare equal.

Conventions:
- Identity of a namespace is its nsfs (dev, inode); ``Netns.id`` is
  ``"netns:<inode>"`` and stays stable for the namespace's whole life.
- An interface is addressed by :class:`IfRef` (namespace id + ifindex), because
  ifindexes are only unique inside one namespace (both ends of a veth often
  share one).
- Collections are tuples in a stable order so dumps diff cleanly; mappings are
  plain dicts that callers treat as read-only.
- Byte counts are bytes; rates (in ``netlens.stats``) are bits per second.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

SCHEMA_VERSION = "1.2"
"""Version of the dump schema (netlens/model/schema.json). Bump the major part
when a field changes meaning or disappears, the minor part when one is added."""


class Engine(StrEnum):
    """Who made the namespace. ``PROCESS`` is a namespace only a process holds."""

    HOST = "host"
    NETLENS = "netlens"
    DOCKER = "docker"
    PODMAN = "podman"
    LXC = "lxc"
    CONTAINERD = "containerd"
    MININET = "mininet"
    NETNS = "netns"
    PROCESS = "process"


class IfRef:
    """Points at one interface: namespace id plus ifindex inside that namespace.

    Immutable, hashable and ordered like a frozen dataclass, but deliberately not
    one: the JSON codec (netlens.model.serialize) writes every dataclass as an
    object, and an IfRef is written as its :attr:`key` string instead.
    """

    __slots__ = ("ifindex", "netns")
    __match_args__ = ("netns", "ifindex")
    netns: str
    ifindex: int

    def __init__(self, netns: str, ifindex: int) -> None:
        object.__setattr__(self, "netns", netns)
        object.__setattr__(self, "ifindex", ifindex)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"IfRef is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"IfRef is immutable: cannot delete {name!r}")

    def _t(self) -> tuple[str, int]:
        return (self.netns, self.ifindex)

    def __eq__(self, other: object) -> bool:
        return type(other) is IfRef and self._t() == other._t()

    def __hash__(self) -> int:
        return hash(self._t())

    def __lt__(self, other: IfRef) -> bool:
        return self._t() < other._t()

    def __le__(self, other: IfRef) -> bool:
        return self._t() <= other._t()

    def __gt__(self, other: IfRef) -> bool:
        return self._t() > other._t()

    def __ge__(self, other: IfRef) -> bool:
        return self._t() >= other._t()

    def __repr__(self) -> str:
        return f"IfRef(netns={self.netns!r}, ifindex={self.ifindex!r})"

    def __reduce__(self) -> tuple[type[IfRef], tuple[str, int]]:
        return (IfRef, self._t())

    @property
    def key(self) -> str:
        """A string id, used as the graph node id and in dumps (``netns:123/4``)."""
        return f"{self.netns}/{self.ifindex}"

    @classmethod
    def parse(cls, key: str) -> IfRef:
        """Inverse of :attr:`key`."""
        ns, _, idx = key.rpartition("/")
        return cls(ns, int(idx))


@dataclass(frozen=True, slots=True)
class Address:
    """An IP address on an interface (``ip addr``)."""

    family: int  # 4 or 6
    address: str
    prefixlen: int
    scope: str = "global"  # global, link, host, site
    broadcast: str | None = None
    label: str | None = None

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefixlen}"


@dataclass(frozen=True, slots=True)
class Counters:
    """Kernel interface counters (IFLA_STATS64) at the time of the snapshot."""

    rx_bytes: int = 0
    tx_bytes: int = 0
    rx_packets: int = 0
    tx_packets: int = 0
    rx_errors: int = 0
    tx_errors: int = 0
    rx_dropped: int = 0
    tx_dropped: int = 0


@dataclass(frozen=True, slots=True)
class BridgeInfo:
    """Bridge-wide settings (the 'switch')."""

    stp: bool = False
    vlan_filtering: bool = False
    forward_delay_cs: int | None = None  # centiseconds, as the kernel reports
    ageing_time_cs: int | None = None
    bridge_id: str | None = None
    root_id: str | None = None


@dataclass(frozen=True, slots=True)
class BridgePortInfo:
    """Per-port state of an interface enslaved to a bridge."""

    state: str = "forwarding"  # disabled, listening, learning, forwarding, blocking
    cost: int | None = None
    priority: int | None = None
    learning: bool | None = None
    flood: bool | None = None
    hairpin: bool | None = None


@dataclass(frozen=True, slots=True)
class VxlanInfo:
    vni: int
    remote: str | None = None  # unicast remote VTEP
    group: str | None = None  # multicast group
    local: str | None = None
    port: int | None = None
    underlay: int | None = None  # ifindex of the underlay device (IFLA_VXLAN_LINK)
    learning: bool | None = None


@dataclass(frozen=True, slots=True)
class VlanInfo:
    vlan_id: int
    protocol: str = "802.1Q"


@dataclass(frozen=True, slots=True)
class BondInfo:
    mode: str  # balance-rr, active-backup, 802.3ad, ...
    miimon: int | None = None


@dataclass(frozen=True, slots=True)
class MacvlanInfo:
    mode: str  # private, vepa, bridge, passthru, source


@dataclass(frozen=True, slots=True)
class TrafficControl:
    """What an interface's qdiscs do to what it sends (``tc qdisc show``).

    ``kinds`` are the shaping qdiscs of the egress tree, root first (``tbf``,
    ``netem``; the quiet defaults such as noqueue or fq_codel are left out). The
    numbers are what those qdiscs apply; None when not set. ``ingress`` is true
    when an ingress or clsact qdisc is attached: what arrives may be filtered or
    redirected; ``ingress_to`` names where (netlens shapes ingress by redirecting
    to an ifb device, which then carries its own TrafficControl).
    """

    kinds: tuple[str, ...] = ()
    rate_bps: int | None = None
    delay_us: int | None = None
    jitter_us: int | None = None
    loss_pct: float | None = None
    corrupt_pct: float | None = None
    duplicate_pct: float | None = None
    ingress: bool = False
    ingress_to: int | None = None
    """ifindex (same namespace) an ingress filter redirects arriving packets to with
    mirred: an ifb whose own ``tc`` then shapes what this interface receives."""

    def summary(self) -> str:
        """``10mbit 20ms~5ms loss 1%``: the settings in one short phrase for views."""
        words: list[str] = []
        if self.rate_bps:
            words.append(_rate_text(self.rate_bps))
        if self.delay_us:
            delay = _us_text(self.delay_us)
            words.append(f"{delay}~{_us_text(self.jitter_us)}" if self.jitter_us else delay)
        for name, value in (
            ("loss", self.loss_pct),
            ("corrupt", self.corrupt_pct),
            ("dup", self.duplicate_pct),
        ):
            if value:
                words.append(f"{name} {value:g}%")
        if not words:
            words.append("+".join(self.kinds) if self.kinds else "ingress filter")
        return " ".join(words)


def _rate_text(bps: int) -> str:
    for unit, scale in (("gbit", 10**9), ("mbit", 10**6), ("kbit", 10**3)):
        if bps >= scale:
            return f"{bps / scale:g}{unit}"
    return f"{bps}bit"


def _us_text(us: int) -> str:
    return f"{us / 1000:g}ms" if us >= 1000 else f"{us}us"


@dataclass(frozen=True, slots=True)
class Interface:
    """One link in one namespace (``ip -d link``), with its addresses."""

    netns: str
    ifindex: int
    name: str
    kind: str  # veth, bridge, vxlan, macvlan, vlan, bond, vrf, dummy, loopback, ether, tun, ...
    operstate: str = "unknown"  # up, down, unknown, lowerlayerdown, dormant, notpresent
    admin_up: bool = False
    carrier: bool | None = None
    mtu: int = 1500
    mac: str | None = None
    alias: str | None = None
    master: int | None = None  # ifindex of bridge / bond / vrf master, same namespace
    link: int | None = None  # IFLA_LINK: veth peer, vlan/macvlan lower device ifindex
    link_netnsid: int | None = None  # IFLA_LINK_NETNSID, as numbered by this namespace
    addresses: tuple[Address, ...] = ()
    peer: IfRef | None = None  # resolved veth peer; None if not a veth or peer vanished
    lower: IfRef | None = None  # resolved lower device (vlan, macvlan, vxlan underlay)
    bridge: BridgeInfo | None = None
    port: BridgePortInfo | None = None
    vxlan: VxlanInfo | None = None
    vlan: VlanInfo | None = None
    bond: BondInfo | None = None
    macvlan: MacvlanInfo | None = None
    vrf_table: int | None = None  # for kind == "vrf" (l3mdev)
    uplink: bool = False  # a physical NIC of the host (or a bond/vlan over one)
    speed_mbps: int | None = None  # from sysfs, uplinks only, None when unknown
    driver: str | None = None
    counters: Counters | None = None
    # The network an engine made this bridge for (a netlens network such as
    # ``demo-lan``, Docker's ``bridge`` for docker0, a Podman network): the name
    # users know it by, where the kernel only knows ``nlb827cbd6c2a`` or ``br-3f2a...``.
    network: str | None = None
    # Shaping or impairment on the interface (a rate, netem's delay/loss...); None
    # when only the default queueing runs. Since schema 1.2.
    tc: TrafficControl | None = None

    @property
    def ref(self) -> IfRef:
        return IfRef(self.netns, self.ifindex)

    @property
    def display_name(self) -> str:
        """How views name the link: ``demo-lan (nlb827cbd6c2a)`` when a network owns it."""
        return f"{self.network} ({self.name})" if self.network else self.name

    @property
    def up(self) -> bool:
        return self.admin_up and self.operstate in ("up", "unknown")


@dataclass(frozen=True, slots=True)
class NextHop:
    gateway: str | None = None
    ifindex: int | None = None
    dev: str | None = None
    weight: int = 1


@dataclass(frozen=True, slots=True)
class Route:
    """One route of one table (``ip route show table all``)."""

    family: int
    table: int  # 254 main, 255 local, 253 default, others by number
    dst: str  # "default" or CIDR
    type: str = "unicast"  # unicast, local, broadcast, blackhole, unreachable, prohibit, ...
    gateway: str | None = None
    ifindex: int | None = None
    dev: str | None = None
    protocol: str = "boot"  # kernel, boot, static, dhcp, bird, ... or a number
    scope: str = "universe"  # universe, link, host, site, nowhere
    metric: int | None = None
    prefsrc: str | None = None
    nexthops: tuple[NextHop, ...] = ()  # ECMP legs, empty for a single next hop


@dataclass(frozen=True, slots=True)
class Rule:
    """A policy routing rule (``ip rule``)."""

    family: int
    priority: int
    table: int
    action: str = "lookup"  # lookup, blackhole, unreachable, prohibit, goto, nop
    src: str | None = None
    dst: str | None = None
    iif: str | None = None
    oif: str | None = None
    fwmark: int | None = None
    invert: bool = False


@dataclass(frozen=True, slots=True)
class Neighbour:
    """An ARP / NDP entry (``ip neigh``)."""

    family: int
    ip: str
    mac: str | None
    ifindex: int
    dev: str | None
    state: str  # reachable, stale, delay, probe, failed, noarp, permanent, incomplete
    router: bool = False


@dataclass(frozen=True, slots=True)
class FdbEntry:
    """One row of a bridge's MAC table (``bridge fdb``)."""

    mac: str
    ifindex: int  # the port
    master: int | None  # bridge ifindex
    vlan: int | None = None
    state: str = "reachable"  # permanent, static, reachable, stale
    flags: tuple[str, ...] = ()  # self, master, extern_learn, ...
    # Seconds since the bridge last saw this MAC (NDA_CACHEINFO), at taken_at:
    # the age a switch's MAC table shows. None in dumps older than 1.1.
    age: float | None = None


@dataclass(frozen=True, slots=True)
class L3Vrf:
    """An l3mdev VRF device inside a namespace: a VRF within the VRF."""

    ifindex: int
    name: str
    table: int
    members: tuple[int, ...] = ()  # ifindexes enslaved to it


@dataclass(frozen=True, slots=True)
class NatRule:
    """A NAT rule as a network engineer reads it: who is translated to what."""

    source: str  # nftables, iptables-legacy
    family: str  # ip, ip6, inet
    table: str
    chain: str
    hook: str | None  # prerouting, postrouting, output, input
    action: str  # masquerade, snat, dnat, redirect
    proto: str | None = None
    src: str | None = None
    dst: str | None = None
    in_iface: str | None = None
    out_iface: str | None = None
    dport: str | None = None
    to_addr: str | None = None
    to_port: str | None = None
    comment: str | None = None
    text: str = ""  # the rule as its tool prints it


@dataclass(frozen=True, slots=True)
class Container:
    """The container or process behind a namespace."""

    id: str  # "<engine>:<engine id>" e.g. "docker:3f2a...", "process:1234"
    engine: str  # an Engine value
    name: str
    netns: str | None  # Netns.id
    engine_id: str | None = None
    pid: int | None = None  # the container's init / main process in the host pid namespace
    pids: tuple[int, ...] = ()
    command: str | None = None
    image: str | None = None
    state: str | None = None  # running, exited, ... as the engine says
    cgroup: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    # Every capability and no seccomp filter (netlens --privileged); None: the engine does not say.
    privileged: bool | None = None


@dataclass(frozen=True, slots=True)
class Netns:
    """A network namespace, which netlens treats as a VRF."""

    id: str  # "netns:<inode>"
    inode: int
    dev: int
    is_host: bool
    name: str  # display name: ip netns name, container name, or the id
    names: tuple[str, ...] = ()  # names under /run/netns
    mounts: tuple[str, ...] = ()  # nsfs bind mounts anywhere
    pids: tuple[int, ...] = ()  # processes (or threads' tgids) inside it, sorted
    nsid: int | None = None  # this namespace's id as numbered by the host namespace
    container: str | None = None  # Container.id
    interfaces: tuple[Interface, ...] = ()
    routes: tuple[Route, ...] = ()
    rules: tuple[Rule, ...] = ()
    neighbours: tuple[Neighbour, ...] = ()
    fdb: tuple[FdbEntry, ...] = ()
    vrfs: tuple[L3Vrf, ...] = ()
    nat: tuple[NatRule, ...] = ()
    sysctls: dict[str, str] = field(default_factory=dict)  # ip_forward, rp_filter, ...
    complete: bool = True  # False when the namespace vanished or failed mid-walk
    errors: tuple[str, ...] = ()

    def interface(self, ifindex: int) -> Interface | None:
        for itf in self.interfaces:
            if itf.ifindex == ifindex:
                return itf
        return None

    def by_name(self, name: str) -> Interface | None:
        for itf in self.interfaces:
            if itf.name == name:
                return itf
        return None

    def default_gateways(self) -> tuple[str, ...]:
        """Gateways of default routes in the main table, v4 first."""
        gws = [r for r in self.routes if r.dst == "default" and r.table == 254 and r.gateway]
        gws.sort(key=lambda r: (r.family, r.metric or 0))
        return tuple(r.gateway for r in gws if r.gateway)


@dataclass(frozen=True, slots=True)
class VethPair:
    """A virtual cable. ``b`` is None when the peer vanished during the walk."""

    a: IfRef
    b: IfRef | None


@dataclass(frozen=True, slots=True)
class Server:
    """The physical (or virtual) server that hosts everything."""

    hostname: str
    kernel: str
    arch: str
    cpu_count: int
    mem_total: int  # bytes
    boot_id: str | None = None
    uptime_s: float | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything netlens knows about a host at one instant."""

    server: Server
    namespaces: tuple[Netns, ...]
    containers: tuple[Container, ...] = ()
    veth_pairs: tuple[VethPair, ...] = ()
    taken_at: float = 0.0  # unix time
    root: bool = True  # False: only what an unprivileged user could read
    warnings: tuple[str, ...] = ()
    schema_version: str = SCHEMA_VERSION

    JSON_ORDER: ClassVar[tuple[str, ...]] = (
        "schema_version",
        "taken_at",
        "root",
        "warnings",
        "server",
        "namespaces",
        "containers",
        "veth_pairs",
    )
    """The order of the fields in a dump (every other class: declaration order):
    the version first, so a reader sees it before anything else, then the small
    scalars, then the big lists."""

    # --- lookups (derived, never stored) -------------------------------------------
    def netns(self, ns_id: str) -> Netns | None:
        for ns in self.namespaces:
            if ns.id == ns_id:
                return ns
        return None

    @property
    def host(self) -> Netns | None:
        for ns in self.namespaces:
            if ns.is_host:
                return ns
        return None

    def interface(self, ref: IfRef) -> Interface | None:
        ns = self.netns(ref.netns)
        return ns.interface(ref.ifindex) if ns else None

    def interfaces(self) -> Iterator[Interface]:
        for ns in self.namespaces:
            yield from ns.interfaces

    def container(self, cid: str) -> Container | None:
        for c in self.containers:
            if c.id == cid:
                return c
        return None

    def counts(self) -> dict[str, int]:
        """Density figures of the server: what a `show platform` would count."""
        kinds: dict[str, int] = {}
        for itf in self.interfaces():
            kinds[itf.kind] = kinds.get(itf.kind, 0) + 1
        return {
            "namespaces": len(self.namespaces),
            "containers": sum(1 for c in self.containers if c.engine != Engine.HOST),
            "interfaces": sum(kinds.values()),
            "veths": kinds.get("veth", 0),
            "veth_pairs": len(self.veth_pairs),
            "bridges": kinds.get("bridge", 0),
            "uplinks": sum(1 for i in self.interfaces() if i.uplink),
        }


JSONDict = dict[str, Any]
