"""The shape of a trace's answer, declared once for the renderers and ``--json``.

A trace is a list of hops and one verdict. A hop is one namespace (a VRF) the
packet crosses, with what the kernel decided there; a bridge crossed on the way
is part of the hop that sent the frame onto it (``l2``), the way a network
engineer reads ``traceroute`` with the switches left implicit.

``TRACE_SCHEMA`` names the JSON shape (``to_dict``); README documents it. Bump
the number when a field changes meaning or disappears.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

TRACE_SCHEMA = "netlens-trace/1"

DELIVERED, LEAVES, DROPPED, UNKNOWN = "delivered", "leaves", "dropped", "unknown"


@dataclass(frozen=True, slots=True)
class Packet:
    """The packet as it is at some point of the path (NAT may rewrite it)."""

    src: str
    dst: str
    proto: str = "icmp"
    sport: int | None = None
    dport: int | None = None

    def text(self) -> str:
        if self.proto in ("tcp", "udp") and self.dport is not None:
            sport = f":{self.sport}" if self.sport is not None else ""
            return f"{self.proto} {self.src}{sport} -> {self.dst}:{self.dport}"
        return f"{self.proto} {self.src} -> {self.dst}"


@dataclass(frozen=True, slots=True)
class Iface:
    """An interface named for people: ``name`` plus the namespace it lives in."""

    netns: str
    netns_name: str
    ifindex: int
    name: str
    mtu: int | None = None


@dataclass(frozen=True, slots=True)
class L2Step:
    """The frame's way from the egress interface to the next namespace's ingress.

    ``via`` is ``veth`` (a cable) or ``bridge``; for a bridge, ``fdb`` says how it
    chose the port: ``learned`` (an FDB entry, ``port``), ``flooded`` (no entry),
    ``local``; ``filter`` is the br_netfilter verdict when frames go through
    iptables.
    """

    via: str
    bridge: Iface | None = None
    fdb: str | None = None
    port: Iface | None = None
    port_state: str | None = None
    ingress: Iface | None = None
    br_netfilter: bool = False


@dataclass(frozen=True, slots=True)
class Hop:
    """One namespace on the path and what its kernel decided."""

    index: int
    netns: str
    netns_name: str
    role: str  # source, router, destination
    packet: Packet
    iif: Iface | None = None
    route: dict[str, Any] | None = None
    oif: Iface | None = None
    gateway: str | None = None
    neighbour: dict[str, Any] | None = None
    l2: L2Step | None = None
    nat: tuple[str, ...] = ()
    filter: dict[str, Any] | None = None
    sysctls: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Finding:
    severity: str  # error, warning, info
    hop: int | None
    text: str


@dataclass(frozen=True, slots=True)
class Verdict:
    result: str  # delivered, leaves, dropped, unknown
    hop: int | None
    reason: str
    evidence: tuple[str, ...] = ()
    listener: dict[str, Any] | None = None
    uplink: Iface | None = None


@dataclass(frozen=True, slots=True)
class TraceResult:
    query: dict[str, Any]
    hops: tuple[Hop, ...]
    verdict: Verdict
    min_mtu: int | None = None
    min_mtu_at: str | None = None
    findings: tuple[Finding, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document (``schema`` first)."""
        doc = dataclasses.asdict(self)
        for hop in doc["hops"]:
            hop["sysctls"] = dict(hop["sysctls"])
        return {"schema": TRACE_SCHEMA, **doc}
