"""Per-server results merged into the fleet document (pure: unit-tested without SSH).

A :class:`ServerResult` is what the client learned about one server: its state
and, as far as it got, the agent's header, the dump and the first rate sample.
:func:`fleet_document` turns a list of them into the JSON document of
``netlens fleet --json`` (validated by fleet_schema.json). A server that got only
part of the way (slow after its dump) still contributes what it sent; the others
are rows with their state and a one-line reason and nulls elsewhere, so a reader
can tell "0 containers" from "not known".
"""

from __future__ import annotations

import dataclasses
import ipaddress
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from netlens.model.types import Snapshot

FLEET_SCHEMA_VERSION = "1.0"
STATES = ("ok", "unreachable", "slow", "version_mismatch", "error", "connecting")
"""``error``: the server answered but not with a usable agent stream (a command
that failed, garbage on stdout); its reason says which. ``connecting``: ``--watch``
has not heard from it yet."""


@dataclasses.dataclass
class ServerResult:
    """What one server gave, however far the client got."""

    alias: str
    state: str = "ok"
    reason: str | None = None
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    header: dict[str, Any] | None = None
    # Out of the repr: a 200-container dump's repr is megabytes, and asyncio formats
    # a finished task's result into error messages (Python 3.11's asyncio.run put
    # back its SIGINT handler through one: 0.2 s of CPU on 50 servers' results).
    snapshot: Snapshot | None = dataclasses.field(default=None, repr=False)
    sample: dict[str, Any] | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass(frozen=True)
class VxlanEnd:
    """One VXLAN device of one server, with what a peer must match."""

    server: str
    netns: str
    interface: str
    vni: int
    local: str | None
    remote: str | None


def _round(v: Any) -> Any:
    return round(v, 3) if isinstance(v, float) else v


def _bandwidth(sample: dict[str, Any] | None) -> dict[str, Any] | None:
    if sample is None:
        return None
    srv = sample.get("server") or {}
    up = sample.get("uplink_total") or {}
    return {
        "containers_rx_bps": _round(srv.get("rx_bps")),
        "containers_tx_bps": _round(srv.get("tx_bps")),
        "uplink_rx_bps": _round(up.get("rx_bps")),
        "uplink_tx_bps": _round(up.get("tx_bps")),
        "uplink_capacity_bps": _round(srv.get("uplink_capacity_bps")),
        "utilisation": _round(srv.get("utilisation")),
    }


def _findings(snap: Snapshot) -> dict[str, Any]:
    by = Counter(str(f.severity) for f in snap.findings)
    return {"total": len(snap.findings), "by_severity": dict(sorted(by.items()))}


def _uplinks(snap: Snapshot) -> list[dict[str, Any]]:
    host = snap.host
    if host is None:
        return []
    return [
        {"name": i.name, "speed_mbps": i.speed_mbps, "operstate": i.operstate}
        for i in host.interfaces
        if i.uplink
    ]


def vxlan_ends(alias: str, snap: Snapshot) -> list[VxlanEnd]:
    """Every VXLAN device of a dump (any namespace)."""
    return [
        VxlanEnd(alias, ns.id, i.name, i.vxlan.vni, i.vxlan.local, i.vxlan.remote)
        for ns in snap.namespaces
        for i in ns.interfaces
        if i.kind == "vxlan" and i.vxlan is not None
    ]


_ADDRESSES: dict[int, tuple[Snapshot, frozenset[str]]] = {}
"""server_addresses by dump: a server's dump is fixed for its session while the fleet
is merged again on every sample (the snapshot is kept with its id, so the id stays
its own)."""


def server_addresses(snap: Snapshot) -> frozenset[str]:
    """The addresses a VXLAN peer could name as this server: global-scope ones of
    every namespace. Loopback and link-local are left out: every server has them,
    so they would tie every tunnel to every server."""
    hit = _ADDRESSES.get(id(snap))
    if hit is not None and hit[0] is snap:
        return hit[1]
    if len(_ADDRESSES) > 1024:  # servers come and go in a long --watch
        _ADDRESSES.clear()
    found = frozenset(_addresses(snap))
    _ADDRESSES[id(snap)] = (snap, found)
    return found


def _addresses(snap: Snapshot) -> set[str]:
    out: set[str] = set()
    for ns in snap.namespaces:
        for i in ns.interfaces:
            for a in i.addresses:
                if a.scope == "global" and not _is_loopback(a.address):
                    out.add(a.address)
    return out


def _is_loopback(address: str) -> bool:
    """ipaddress's is_loopback, without parsing every IPv4 address of a big server
    (10 000 of them on 50 servers of 200 containers: 0.1 s): a dotted IPv4 address
    is loopback exactly when it is in 127.0.0.0/8."""
    if ":" not in address:
        return address.startswith("127.")
    return ipaddress.ip_address(address).is_loopback


def server_summary(r: ServerResult) -> dict[str, Any]:
    """One row of the fleet document."""
    snap, sample = r.snapshot, r.sample
    density = (sample or {}).get("density") or {}
    row: dict[str, Any] = {
        "alias": r.alias,
        "state": r.state,
        "reason": r.reason,
        "labels": dict(sorted(r.labels.items())),
        "hostname": None,
        "netlens_version": None,
        "agent_protocol": None,
        "root": None,
        "containers": None,
        "namespaces": None,
        "findings": None,
        "cpu": None,
        "memory": None,
        "bandwidth": _bandwidth(sample),
        "uplinks": [],
        "headroom": density.get("headroom") or {},
        "vxlan": [],
    }
    if r.header is not None:
        row["netlens_version"] = r.header.get("netlens_version")
        row["agent_protocol"] = r.header.get("netlens_agent")
        row["hostname"] = r.header.get("hostname")
    if snap is not None:
        row["hostname"] = snap.server.hostname
        row["root"] = snap.root
        row["containers"] = len(snap.containers)
        row["namespaces"] = len(snap.namespaces)
        row["findings"] = _findings(snap)
        row["cpu"] = {
            "count": snap.server.cpu_count,
            "containers_percent": density.get("containers_cpu_percent"),
        }
        row["memory"] = {"total": snap.server.mem_total, "used": density.get("mem_used")}
        row["uplinks"] = _uplinks(snap)
        row["vxlan"] = [
            {"netns": e.netns, "interface": e.interface, "vni": e.vni, "local": e.local,
             "remote": e.remote}
            for e in vxlan_ends(r.alias, snap)
        ]  # fmt: skip
    return row


def vxlan_links(results: list[ServerResult]) -> list[dict[str, Any]]:
    """Tunnels between two servers of the fleet: same VNI, and one end's remote is
    an address of the other server. ``symmetric`` when both ends point at each
    other (a working unicast tunnel); a one-way match is listed too, because a
    tunnel configured on one side only is exactly what an engineer looks for."""
    ends: list[VxlanEnd] = []
    addrs: dict[str, frozenset[str]] = {}
    for r in results:
        if r.snapshot is None:
            continue
        mine = vxlan_ends(r.alias, r.snapshot)
        ends.extend(mine)
        addrs[r.alias] = server_addresses(r.snapshot) | {e.local for e in mine if e.local}

    def points_at(e: VxlanEnd, server: str) -> bool:
        return e.remote is not None and e.remote in addrs.get(server, frozenset())

    links: dict[tuple[VxlanEnd, VxlanEnd], bool] = {}
    for a in ends:
        for b in ends:
            if a.server == b.server or a.vni != b.vni:
                continue
            ab, ba = points_at(a, b.server), points_at(b, a.server)
            if not (ab or ba):
                continue
            key = (a, b) if (a.server, a.interface) <= (b.server, b.interface) else (b, a)
            links[key] = ab and ba
    out = []
    for (a, b), symmetric in sorted(
        links.items(), key=lambda kv: (kv[0][0].vni, kv[0][0].server, kv[0][1].server)
    ):
        out.append(
            {
                "vni": a.vni,
                "symmetric": symmetric,
                "a": _end(a),
                "b": _end(b),
            }
        )
    return out


def _end(e: VxlanEnd) -> dict[str, Any]:
    return {
        "server": e.server,
        "netns": e.netns,
        "interface": e.interface,
        "local": e.local,
        "remote": e.remote,
    }


def _sum(rows: list[dict[str, Any]], *path: str) -> float | int:
    total: float | int = 0
    for row in rows:
        v: Any = row
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        if isinstance(v, (int, float)):
            total += v
    return round(total, 3) if isinstance(total, float) else total


def fleet_document(
    results: list[ServerResult], netlens_version: str, now: float | None = None
) -> dict[str, Any]:
    """The merged fleet document (see fleet_schema.json), servers in the order given."""
    rows = [server_summary(r) for r in results]
    return {
        "fleet_schema_version": FLEET_SCHEMA_VERSION,
        "netlens_version": netlens_version,
        "generated_at": round(time.time() if now is None else now, 3),
        "servers": rows,
        "totals": {
            "servers": len(rows),
            "by_state": dict(sorted(Counter(r["state"] for r in rows).items())),
            "containers": _sum(rows, "containers"),
            "namespaces": _sum(rows, "namespaces"),
            "findings": _sum(rows, "findings", "total"),
            "containers_rx_bps": _sum(rows, "bandwidth", "containers_rx_bps"),
            "containers_tx_bps": _sum(rows, "bandwidth", "containers_tx_bps"),
            "uplink_capacity_bps": _sum(rows, "bandwidth", "uplink_capacity_bps"),
        },
        "vxlan_links": vxlan_links(results),
    }


def schema_path() -> str:
    """Where fleet_schema.json lives (installed as package data next to this module)."""
    import os

    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "fleet_schema.json")
