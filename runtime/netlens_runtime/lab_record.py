"""What a lab owns and what it is called: its record, its runtime names, its plan.

The record (``$NETLENS_STATE_DIR/labs/<name>.json``) lists everything a lab will
own before anything is created (:func:`plan`), so ``lab down`` can remove a lab
whose ``lab up`` was killed half-way; it is claimed exclusively, so a second
``lab up`` of the same name is refused instead of fighting over objects. Node and
network names are lab-scoped (``<lab>-<node>``); the host ends of multi-homed
nodes' extra legs are derived from them.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from netlens_runtime.errors import Conflict
from netlens_runtime.lab_model import LabNode, LabSpec

LAB_LABEL = "netlens.lab"


NODE_LABEL = "netlens.lab.node"


def node_name(lab: str, node: str) -> str:
    """Runtime name of a lab node: node names are lab-scoped."""
    return f"{lab}-{node}"


def network_name(lab: str, net: str) -> str:
    """Runtime name of a lab network."""
    return f"{lab}-{net}"


def host_ifname(container: str, ifname: str) -> str:
    """Host end of a multi-homed node's extra leg: short, stable, unique (<= 15 bytes)."""
    digest = hashlib.sha1(f"{container}/{ifname}".encode()).hexdigest()[:11]
    return f"lx{digest}"


@dataclass
class LabRecord:
    """What a lab owns, as stored in ``labs/<name>.json``."""

    name: str
    file: str
    status: str = "creating"
    created: float = field(default_factory=time.time)
    networks: list[str] = field(default_factory=list)
    nodes: dict[str, str] = field(default_factory=dict)
    """Lab-local node name -> runtime container name."""
    addresses: dict[str, list[str]] = field(default_factory=dict)
    """Lab-local node name -> its addresses (CIDR), for summaries and traffic."""
    host_links: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.file,
            "status": self.status,
            "created": self.created,
            "networks": self.networks,
            "nodes": self.nodes,
            "addresses": self.addresses,
            "host_links": self.host_links,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabRecord:
        """A record from checked JSON (see records.check_lab; KeyError if no name)."""
        return cls(
            name=str(data["name"]),
            file=str(data.get("file", "")),
            status=str(data.get("status", "up")),
            created=float(data.get("created", 0.0)),
            networks=[str(x) for x in data.get("networks", [])],
            nodes={str(k): str(v) for k, v in data.get("nodes", {}).items()},
            addresses={str(k): [str(a) for a in v] for k, v in data.get("addresses", {}).items()},
            host_links=[str(x) for x in data.get("host_links", [])],
        )


def record_path(name: str) -> str:
    from netlens_runtime import state

    return state.lab_path(name)


def claim_record(rec: LabRecord) -> None:
    """Create the record exclusively: refuse a lab that is already (being) built.

    The record is written to a temporary file and hard-linked into place, which
    fails if the name exists: readers never see a half-written record.
    """
    from netlens_runtime import state

    os.makedirs(os.path.join(state.state_dir(), "labs"), mode=0o755, exist_ok=True)
    path = record_path(rec.name)
    tmp = state.temp_path(path)
    _write_temp(tmp, rec)
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise Conflict(
            f"lab {rec.name!r} is already up (run 'netlens lab down {rec.name}' first)"
        ) from None
    finally:
        os.unlink(tmp)


def save_record(rec: LabRecord) -> None:
    from netlens_runtime import state

    path = record_path(rec.name)
    tmp = state.temp_path(path)
    _write_temp(tmp, rec)
    os.replace(tmp, path)


def _write_temp(tmp: str, rec: LabRecord) -> None:
    """A fresh temporary file (no symlink followed, nothing left from before)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    with open(os.open(tmp, flags, 0o644), "w") as fh:
        json.dump(rec.to_json(), fh, indent=1)


def read_record(name: str) -> LabRecord | None:
    """The record of lab ``name``, or None when no such lab is recorded.

    BadInput for a name that is not a lab name; NotFound (saying why) for a
    record that cannot be used.
    """
    from netlens_runtime import state

    data = state.load_lab(name)
    return None if data is None else LabRecord.from_json(data)


def list_labs() -> list[LabRecord]:
    """Every usable lab record, sorted by name (others are reported and set aside)."""
    from netlens_runtime import state

    return [LabRecord.from_json(data) for _, data in sorted(state.load_labs().items())]


def _addresses(spec: LabSpec, node: LabNode) -> list[str]:
    out: list[str] = []
    if node.network is not None and node.ip is not None:
        subnet = spec.network(node.network).subnet
        if subnet is not None:
            out.append(f"{node.ip}/{ipaddress.ip_network(subnet).prefixlen}")
    for iface in node.interfaces:
        subnet = spec.network(iface.network).subnet
        if iface.ip is not None and subnet is not None:
            out.append(f"{iface.ip}/{ipaddress.ip_network(subnet).prefixlen}")
    for link in spec.links:
        if link.a == node.name and link.a_addr:
            out.append(link.a_addr)
        if link.b == node.name and link.b_addr:
            out.append(link.b_addr)
    return out


def plan(spec: LabSpec) -> LabRecord:
    """The record of everything ``spec`` will own, before anything exists."""
    rec = LabRecord(name=spec.name, file=spec.path)
    rec.networks = [network_name(spec.name, n.name) for n in spec.networks]
    for node in spec.nodes:
        rec.nodes[node.name] = node_name(spec.name, node.name)
        rec.addresses[node.name] = _addresses(spec, node)
        for iface in node.interfaces:
            rec.host_links.append(host_ifname(rec.nodes[node.name], iface.ifname))
    return rec
