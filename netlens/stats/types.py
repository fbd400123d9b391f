"""What the live layer hands to views: plain frozen rates keyed by model ids.

Keys are the model's ids: ``IfRef.key`` for interfaces and bridges, ``Container.id``
for containers, ``Netns.id`` for VRFs. Rates are per second: bits for bytes
counters (SI, like every network tool), packets, drops and errors as counts/s.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Rate:
    """One direction pair of rates. For a container, tx is what the container sent."""

    rx_bps: float = 0.0
    tx_bps: float = 0.0
    rx_pps: float = 0.0
    tx_pps: float = 0.0
    rx_drops: float = 0.0
    tx_drops: float = 0.0
    rx_errors: float = 0.0
    tx_errors: float = 0.0

    @property
    def total_bps(self) -> float:
        return self.rx_bps + self.tx_bps

    def __add__(self, other: Rate) -> Rate:
        return Rate(
            self.rx_bps + other.rx_bps,
            self.tx_bps + other.tx_bps,
            self.rx_pps + other.rx_pps,
            self.tx_pps + other.tx_pps,
            self.rx_drops + other.rx_drops,
            self.tx_drops + other.tx_drops,
            self.rx_errors + other.rx_errors,
            self.tx_errors + other.tx_errors,
        )


ZERO = Rate()


@dataclass(frozen=True, slots=True)
class Usage:
    """Memory and CPU of one container (or the server total)."""

    mem_bytes: int | None = None
    mem_limit: int | None = None
    cpu_percent: float | None = None  # of one core, 100 = one core busy
    cpu_limit: float | None = None  # in cores
    processes: int = 0


@dataclass(frozen=True, slots=True)
class Density:
    """How full the server is: counts, resources and headroom."""

    containers: int
    namespaces: int
    veths: int
    bridges: int
    processes: int
    cpu_count: int
    mem_total: int
    mem_used: int
    containers_mem: int  # sum of container memory
    containers_per_core: float
    containers_per_gib: float
    uplink_capacity_bps: float | None  # sum of known uplink speeds
    headroom: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (used, max)
    containers_cpu_percent: float | None = None  # sum over containers, 100 = one core


@dataclass(frozen=True, slots=True)
class StatsFrame:
    """One sample's worth of rates, aggregated every way a view needs."""

    taken_at: float
    interval: float  # measured seconds since the previous sample
    interfaces: dict[str, Rate] = field(default_factory=dict)  # IfRef.key
    containers: dict[str, Rate] = field(default_factory=dict)  # Container.id
    veth_pairs: dict[str, Rate] = field(default_factory=dict)  # IfRef.key of the pair's `a` end
    bridges: dict[str, Rate] = field(default_factory=dict)  # IfRef.key of the bridge
    vrfs: dict[str, Rate] = field(default_factory=dict)  # Netns.id
    uplinks: dict[str, Rate] = field(default_factory=dict)  # IfRef.key
    server: Rate = ZERO  # total container traffic
    usage: dict[str, Usage] = field(default_factory=dict)  # Container.id
    density: Density | None = None
    uplink_capacity_bps: float | None = None  # sum of known uplink speeds (one direction)

    @property
    def uplink_total(self) -> Rate:
        """All uplinks together, from the host's side (tx = leaving the server)."""
        total = ZERO
        for r in self.uplinks.values():
            total = total + r
        return total

    @property
    def server_utilisation(self) -> float | None:
        """Container traffic against uplink capacity, busier direction, 0..1+.

        Links are full duplex, so each direction has the whole capacity; None when
        no uplink speed is known.
        """
        if not self.uplink_capacity_bps:
            return None
        return max(self.server.rx_bps, self.server.tx_bps) / self.uplink_capacity_bps
