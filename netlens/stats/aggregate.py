"""Fold per-interface rates into what an engineer asks about.

The mapping from interfaces to containers, cables, switches, VRFs and uplinks
depends only on the structure of the host, which changes far less often than
the counters. :class:`Plan` is therefore built once per :class:`Snapshot` (lists
of keys per aggregate) and applied to every sample in a few dict lookups.

Perspectives and definitions (each chosen so that nothing is counted twice):

- **interface**: the kernel's own view: rx is what the interface received.
- **container**: seen from inside the container: tx is what the container sent.
  It is its namespace's VRF total (below). If the
  namespace could not be sampled, its veth's host end is used, swapped.
  Containers that share a namespace (a pod) each show the namespace's total.
- **veth pair**: keyed by the ``a`` end and seen from it. Bytes/packets come
  from ``a`` (or ``b`` swapped if ``a`` is missing); drops and errors add both
  ends, so a frame lost anywhere on the cable shows up on the pair.
- **bridge**: the switch's view, rx = frames it took in on any port, tx = frames
  it sent out. It is the sum of its ports' counters plus the bridge device's own
  counters swapped (the bridge device is the host's port into the switch). The
  bridge device's counters alone would miss everything forwarded port to port.
- **VRF** (namespace): traffic through its IP stack: interfaces without
  loopback and without bridge ports (their traffic enters the stack through the
  bridge device, counting it twice would double it). A link missing from the
  sample is replaced by its veth peer, swapped.
- **uplink**: host interfaces with ``uplink=True``.
- **server**: total container traffic (each namespace behind a container once),
  next to the uplinks' total and their summed capacity where the speed is known.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netlens.model.types import Engine, Snapshot
from netlens.stats.rates import swap
from netlens.stats.types import ZERO, Rate, StatsFrame


@dataclass(frozen=True, slots=True)
class Source:
    """Where one contribution comes from: a key, else its peer's key swapped."""

    key: str
    peer: str | None = None


@dataclass(slots=True)
class Plan:
    """Precomputed key lists per aggregate for one snapshot."""

    containers: dict[str, str | None] = field(default_factory=dict)  # -> netns, None: no own
    veth_pairs: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    bridges: dict[str, tuple[list[str], str]] = field(default_factory=dict)  # ports, own key
    uplinks: list[str] = field(default_factory=list)
    server_netns: list[str] = field(default_factory=list)  # container namespaces, once each
    ns_sources: dict[str, list[Source]] = field(default_factory=dict)  # Netns.id -> links
    uplink_capacity_bps: float | None = None


def build_plan(snap: Snapshot) -> Plan:
    """Index a snapshot into a :class:`Plan`."""
    plan = Plan()
    peers: dict[str, str] = {}
    for pair in snap.veth_pairs:
        if pair.b is not None:
            peers[pair.a.key] = pair.b.key
            peers[pair.b.key] = pair.a.key
        plan.veth_pairs[pair.a.key] = (pair.a.key, pair.b.key if pair.b else None)

    ns_sources: dict[str, list[Source]] = {}
    capacity = 0.0
    capacity_known = False
    for ns in snap.namespaces:
        srcs: list[Source] = []
        bridges = {i.ifindex for i in ns.interfaces if i.kind == "bridge"}
        ports: dict[int, list[str]] = {b: [] for b in bridges}
        for itf in ns.interfaces:
            key = itf.ref.key
            if itf.kind == "loopback" or itf.name == "lo":
                continue
            if itf.master is not None and itf.master in ports:
                ports[itf.master].append(key)
            else:
                peer = itf.peer.key if itf.peer else peers.get(key)
                srcs.append(Source(key, peer))
            if ns.is_host and itf.uplink:
                plan.uplinks.append(key)
                if itf.speed_mbps and itf.speed_mbps > 0:
                    capacity += itf.speed_mbps * 1e6
                    capacity_known = True
        for b, keys in ports.items():
            own = f"{ns.id}/{b}"
            plan.bridges[own] = (keys, own)
        ns_sources[ns.id] = srcs

    seen_ns: set[str] = set()
    host = snap.host
    for c in snap.containers:
        if c.engine == Engine.HOST:
            continue
        if c.netns is None or (host is not None and c.netns == host.id):
            # Host-network containers share the host's counters: no own traffic.
            plan.containers[c.id] = None
            continue
        plan.containers[c.id] = c.netns
        if c.netns not in seen_ns:
            seen_ns.add(c.netns)
            plan.server_netns.append(c.netns)
    plan.uplink_capacity_bps = capacity if capacity_known else None
    plan.ns_sources = ns_sources
    return plan


def _total(rates: list[Rate]) -> Rate:
    """Sum of rates with one Rate built at the end (frozen dataclasses are slow to make)."""
    if not rates:
        return ZERO
    if len(rates) == 1:
        return rates[0]
    a = b = c = d = e = f = g = h = 0.0
    for r in rates:
        a += r.rx_bps
        b += r.tx_bps
        c += r.rx_pps
        d += r.tx_pps
        e += r.rx_drops
        f += r.tx_drops
        g += r.rx_errors
        h += r.tx_errors
    return Rate(a, b, c, d, e, f, g, h)


def _sum(keys: list[str], rates: dict[str, Rate]) -> Rate:
    got = rates.get
    return _total([r for r in map(got, keys) if r is not None and r is not ZERO])


def _sum_sources(srcs: list[Source], rates: dict[str, Rate]) -> Rate:
    parts: list[Rate] = []
    for s in srcs:
        r = rates.get(s.key)
        if r is None and s.peer is not None:
            pr = rates.get(s.peer)
            r = swap(pr) if pr is not None else None
        if r is not None and r is not ZERO:
            parts.append(r)
    return _total(parts)


def aggregate(plan: Plan, rates: dict[str, Rate], taken_at: float, interval: float) -> StatsFrame:
    """Apply a plan to one sample's interface rates."""
    vrfs_first = {ns: _sum_sources(srcs, rates) for ns, srcs in plan.ns_sources.items()}
    containers = {
        cid: vrfs_first.get(ns, ZERO) if ns else ZERO for cid, ns in plan.containers.items()
    }
    pairs: dict[str, Rate] = {}
    for akey, (a, b) in plan.veth_pairs.items():
        ra = rates.get(a)
        rb = rates.get(b) if b else None
        if ra is None and rb is None:
            pairs[akey] = ZERO
            continue
        base = ra if ra is not None else swap(rb) if rb is not None else ZERO
        if ra is not None and rb is not None:
            base = Rate(
                base.rx_bps,
                base.tx_bps,
                base.rx_pps,
                base.tx_pps,
                ra.rx_drops + rb.tx_drops,
                ra.tx_drops + rb.rx_drops,
                ra.rx_errors + rb.tx_errors,
                ra.tx_errors + rb.rx_errors,
            )
        pairs[akey] = base
    bridges: dict[str, Rate] = {}
    for bkey, (ports, own) in plan.bridges.items():
        r = _sum(ports, rates)
        o = rates.get(own)
        bridges[bkey] = r + swap(o) if o is not None and o is not ZERO else r
    vrfs = vrfs_first
    uplinks = {k: rates.get(k, ZERO) for k in plan.uplinks}
    server = _total([vrfs[n] for n in plan.server_netns if n in vrfs])
    return StatsFrame(
        taken_at=taken_at,
        interval=interval,
        interfaces=rates,
        containers=containers,
        veth_pairs=pairs,
        bridges=bridges,
        vrfs=vrfs,
        uplinks=uplinks,
        server=server,
        uplink_capacity_bps=plan.uplink_capacity_bps,
    )
