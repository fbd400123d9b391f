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
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from netlens.fleet.facts import DumpFacts, VxlanEnd, facts_of

if TYPE_CHECKING:
    from netlens.model.types import Snapshot

FLEET_SCHEMA_VERSION = "1.0"
STATES = ("ok", "unreachable", "slow", "version_mismatch", "error", "connecting")
"""``error``: the server answered but not with a usable agent stream (a command
that failed, garbage on stdout); its reason says which. ``connecting``: ``--watch``
has not heard from it yet."""


@dataclasses.dataclass
class ServerResult:
    """What one server gave, however far the client got.

    The client keeps a server's dump as it came (``dump``, bytes) with its
    :class:`DumpFacts` (``facts``), what the fleet document needs; the full
    :class:`Snapshot` is decoded only when asked for (:meth:`full_snapshot`, the
    drill-down). A result built with a ``snapshot`` (tests, callers that hold one)
    gets its facts from it."""

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
    facts: DumpFacts | None = dataclasses.field(default=None, repr=False)
    dump: bytes | None = dataclasses.field(default=None, repr=False)

    def dump_facts(self) -> DumpFacts | None:
        """The facts of the dump received, if one was."""
        if self.facts is None and self.snapshot is not None:
            self.facts = facts_of(self.snapshot)
        return self.facts

    def full_snapshot(self) -> Snapshot | None:
        """The whole dump as a Snapshot (decoded once, on first use); a dump that does
        not load raises :class:`~netlens.errors.SnapshotFileError` (one line)."""
        if self.snapshot is None and self.dump is not None:
            from netlens.model.serialize import loads

            self.snapshot = loads(self.dump, where=f"{self.alias}'s dump")
        return self.snapshot


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


def vxlan_ends(alias: str, snap: Snapshot) -> list[VxlanEnd]:
    """Every VXLAN device of a dump (any namespace)."""
    return facts_of(snap).vxlan_ends(alias)


def server_summary(r: ServerResult) -> dict[str, Any]:
    """One row of the fleet document."""
    facts, sample = r.dump_facts(), r.sample
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
    if facts is not None:
        row["hostname"] = facts.hostname
        row["root"] = facts.root
        row["containers"] = facts.containers
        row["namespaces"] = facts.namespaces
        row["findings"] = {"total": facts.findings_total, "by_severity": dict(facts.findings)}
        row["cpu"] = {
            "count": facts.cpu_count,
            "containers_percent": density.get("containers_cpu_percent"),
        }
        row["memory"] = {"total": facts.mem_total, "used": density.get("mem_used")}
        row["uplinks"] = [
            {"name": name, "speed_mbps": speed, "operstate": state}
            for name, speed, state in facts.uplinks
        ]
        row["vxlan"] = [
            {"netns": netns, "interface": name, "vni": vni, "local": local, "remote": remote}
            for netns, name, vni, local, remote in facts.vxlan
        ]
    return row


_LINKS: list[Any] = [(), []]
"""The last fleet's (alias, facts) pairs and its links: --watch and the fleet view
merge the fleet every second, and the tunnels change only with a dump (a new
DumpFacts object, on a reconnection), while matching every end against every
other is the merge's biggest cost with many servers sharing a VNI."""


def vxlan_links(results: list[ServerResult]) -> list[dict[str, Any]]:
    """Tunnels between two servers of the fleet: same VNI, and one end's remote is
    an address of the other server. ``symmetric`` when both ends point at each
    other (a working unicast tunnel); a one-way match is listed too, because a
    tunnel configured on one side only is exactly what an engineer looks for."""
    pairs = [(r.alias, f) for r in results if (f := r.dump_facts()) is not None]
    last, links = _LINKS
    if len(last) == len(pairs) and all(
        a == b and f is g for (a, f), (b, g) in zip(last, pairs, strict=True)
    ):
        return list(links)
    links = _match_links(pairs)
    _LINKS[:] = [pairs, links]
    return list(links)


def _match_links(pairs: list[tuple[str, DumpFacts]]) -> list[dict[str, Any]]:
    ends: list[VxlanEnd] = []
    addrs: dict[str, frozenset[str]] = {}
    for alias, facts in pairs:
        mine = facts.vxlan_ends(alias)
        ends.extend(mine)
        addrs[alias] = facts.addresses | {e.local for e in mine if e.local}

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
