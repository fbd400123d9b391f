"""What the fleet document needs of a server's dump, read without building the dump.

A fleet row needs a handful of things from a server's dump: its hostname, CPUs
and memory, whether the agent was root, how many containers and namespaces,
its findings by severity, its uplinks, its VXLAN devices and the addresses a
tunnel could name it by. Building the whole :class:`~netlens.model.types.Snapshot`
for that (every interface, address, route and container as objects) is most of
the client's CPU for a big fleet: 4.5 ms per 200-container dump, 50 of them.
msgspec decoding into small structs of just these fields skips the rest
without building it. The full snapshot is decoded only when someone opens that
server (``--tui``'s drill-down), from the dump's bytes, which the client keeps.

:func:`facts_of` computes the same :class:`DumpFacts` from a Snapshot (tests and
callers that hold one); tests/unit/test_fleet_facts.py proves the two agree.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import json
from collections import Counter
from typing import TYPE_CHECKING, Any

import msgspec

from netlens.errors import SnapshotFileError
from netlens.model.types import SCHEMA_VERSION

if TYPE_CHECKING:
    from netlens.model.types import Snapshot


@dataclasses.dataclass(frozen=True)
class VxlanEnd:
    """One VXLAN device of one server, with what a peer must match."""

    server: str
    netns: str
    interface: str
    vni: int
    local: str | None
    remote: str | None


@dataclasses.dataclass(frozen=True)
class DumpFacts:
    """The parts of one server's dump the fleet document shows or matches on."""

    hostname: str
    root: bool
    cpu_count: int
    mem_total: int
    containers: int
    namespaces: int
    findings: tuple[tuple[str, int], ...]  # (severity, count), sorted by severity
    uplinks: tuple[tuple[str, int | None, str], ...]  # (name, speed_mbps, operstate)
    vxlan: tuple[tuple[str, str, int, str | None, str | None], ...]
    """(netns, interface, vni, local, remote), in dump order."""
    addresses: frozenset[str]
    """Global-scope, non-loopback addresses of every namespace: what a VXLAN peer
    could name this server by."""

    @property
    def findings_total(self) -> int:
        return sum(n for _, n in self.findings)

    def vxlan_ends(self, alias: str) -> list[VxlanEnd]:
        return [VxlanEnd(alias, *v) for v in self.vxlan]


def is_loopback(address: str) -> bool:
    """ipaddress's is_loopback, without parsing every IPv4 address of a big server
    (10 000 of them on 50 servers of 200 containers: 0.1 s): a dotted IPv4 address
    is loopback exactly when it is in 127.0.0.0/8."""
    if ":" not in address:
        return address.startswith("127.")
    return ipaddress.ip_address(address).is_loopback


def _make(
    hostname: str,
    root: bool,
    cpu_count: int,
    mem_total: int,
    containers: int,
    severities: list[str],
    namespaces: list[tuple[bool, str, list[Any]]],
) -> DumpFacts:
    """Shared by both readers: ``namespaces`` is (is_host, id, interfaces) with
    interfaces that have the model's attribute names (model objects or the
    structs below), so both compute every fact the same way."""
    uplinks = []
    vxlan = []
    addresses: set[str] = set()
    host = next((n for n, (is_host, _, _) in enumerate(namespaces) if is_host), None)
    for n, (_, ns_id, interfaces) in enumerate(namespaces):
        for i in interfaces:
            if n == host and i.uplink:  # Snapshot.host: the first host namespace
                uplinks.append((i.name, i.speed_mbps, i.operstate))
            if i.kind == "vxlan" and i.vxlan is not None:
                x = i.vxlan
                vxlan.append((ns_id, i.name, x.vni, x.local, x.remote))
            for a in i.addresses:
                if a.scope == "global" and not is_loopback(a.address):
                    addresses.add(a.address)
    return DumpFacts(
        hostname=hostname,
        root=root,
        cpu_count=cpu_count,
        mem_total=mem_total,
        containers=containers,
        namespaces=len(namespaces),
        findings=tuple(sorted(Counter(severities).items())),
        uplinks=tuple(uplinks),
        vxlan=tuple(vxlan),
        addresses=frozenset(addresses),
    )


def facts_of(snap: Snapshot) -> DumpFacts:
    """The facts of a decoded dump."""
    return _make(
        snap.server.hostname,
        snap.root,
        snap.server.cpu_count,
        snap.server.mem_total,
        len(snap.containers),
        [str(f.severity) for f in snap.findings],
        [(ns.is_host, ns.id, list(ns.interfaces)) for ns in snap.namespaces],
    )


# --- the partial reader: the model's field names and defaults (netlens/model/types.py)


class _Address(msgspec.Struct):
    address: str
    scope: str = "global"


class _Vxlan(msgspec.Struct):
    vni: int
    remote: str | None = None
    local: str | None = None


class _Interface(msgspec.Struct):
    name: str
    kind: str
    operstate: str = "unknown"
    addresses: list[_Address] = []
    vxlan: _Vxlan | None = None
    uplink: bool = False
    speed_mbps: int | None = None


class _Netns(msgspec.Struct):
    id: str
    is_host: bool
    interfaces: list[_Interface] = []


class _Server(msgspec.Struct):
    hostname: str
    cpu_count: int
    mem_total: int


class _Finding(msgspec.Struct):
    severity: str


class _Nothing(msgspec.Struct):
    pass


class _Dump(msgspec.Struct):
    schema_version: str
    server: _Server
    namespaces: list[_Netns]
    root: bool = True
    containers: list[_Nothing] = []
    findings: list[_Finding] = []


@functools.cache
def _decoder() -> msgspec.json.Decoder[_Dump]:
    return msgspec.json.Decoder(_Dump)


def facts_from_json(data: bytes | str, where: str = "dump") -> DumpFacts:
    """The facts of a dump's JSON text; :class:`SnapshotFileError` (one line) when it
    is not a dump this netlens reads (the same schema-major rule as loading it)."""
    try:
        d = _decoder().decode(data)
    except msgspec.ValidationError as err:
        raise SnapshotFileError(f"{where}: {err}") from None
    except msgspec.DecodeError:
        # also a lone surrogate escape (a non-UTF-8 name json.dumps wrote as "\udcff"),
        # which msgspec refuses and json accepts: as loading the dump does, json decides
        try:
            d = msgspec.convert(json.loads(data), _Dump)
        except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
            raise SnapshotFileError(f"{where}: not valid JSON ({err})") from None
        except msgspec.ValidationError as err:
            raise SnapshotFileError(f"{where}: {err}") from None
    major = SCHEMA_VERSION.split(".", 1)[0]
    if d.schema_version.split(".", 1)[0] != major:
        raise SnapshotFileError(
            f"{where}: schema version {d.schema_version} is not readable by this netlens "
            f"(reads {major}.x); use the netlens that wrote it"
        )
    return _make(
        d.server.hostname,
        d.root,
        d.server.cpu_count,
        d.server.mem_total,
        len(d.containers),
        [f.severity for f in d.findings],
        [(ns.is_host, ns.id, list(ns.interfaces)) for ns in d.namespaces],
    )
