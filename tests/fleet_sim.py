"""Simulated fleet servers for the fleet tests: recorded dumps and rate samples.

Each simulated server is the recorded lab dump (tests/fixtures/model/snapshot.json)
under another hostname, with its own addresses, so two of them form a VXLAN tunnel
(VNI 100, lab1 192.0.2.10 <-> lab2 192.0.2.20) the fleet must find. Samples are
built with the stats layer's own frame_to_json, so they are what an agent sends.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

from netlens.commands.stats import frame_document
from netlens.model.findings import Finding, ObjectRef, Severity
from netlens.model.serialize import dumps, loads
from netlens.model.types import Snapshot
from netlens.stats.types import Density, Rate, StatsFrame

RECORDED = Path(__file__).resolve().parent / "fixtures" / "model" / "snapshot.json"
ADDRESS = {"lab1": "192.0.2.10", "lab2": "192.0.2.20", "lab3": "192.0.2.30"}


def sim_dump_doc(hostname: str, peer: str | None, findings: int = 0) -> dict[str, Any]:
    """The recorded dump as server ``hostname``; its vxlan100 points at ``peer``
    (None: the tunnel points at an address no server of the fleet has)."""
    doc = copy.deepcopy(json.loads(RECORDED.read_text()))
    doc["server"]["hostname"] = hostname
    me = ADDRESS[hostname]
    for ns in doc["namespaces"]:
        for itf in ns["interfaces"]:
            if itf["name"] == "eth0" and ns["is_host"]:
                itf["addresses"][0]["address"] = me
            if itf["kind"] == "vxlan":
                itf["vxlan"]["local"] = me
                itf["vxlan"]["remote"] = ADDRESS[peer] if peer else "203.0.113.99"
    if findings:
        snap = loads(json.dumps(doc))
        host = snap.namespaces[0].id
        made = tuple(
            Finding(
                f"sim-{n}",
                Severity.WARNING,
                f"simulated {n}",
                (ObjectRef("netns", host, "host"),),
                (),
            )
            for n in range(findings)
        )
        doc = json.loads(dumps(dataclasses.replace(snap, findings=made)))
    return doc


def sim_snapshot(hostname: str, peer: str | None, findings: int = 0) -> Snapshot:
    return loads(json.dumps(sim_dump_doc(hostname, peer, findings)))


def sim_sample(snap: Snapshot, rx_bps: float, tx_bps: float) -> dict[str, Any]:
    """A rate sample of ``snap``'s server: containers send/receive the given totals,
    10 Gbit/s of uplink capacity, 1 GiB of memory used."""
    density = Density(
        containers=len(snap.containers),
        namespaces=len(snap.namespaces),
        veths=len(snap.veth_pairs),
        bridges=1,
        processes=10,
        cpu_count=snap.server.cpu_count,
        mem_total=snap.server.mem_total,
        mem_used=1 << 30,
        containers_mem=1 << 28,
        containers_per_core=1.5,
        containers_per_gib=0.5,
        uplink_capacity_bps=10e9,
        containers_cpu_percent=12.5,
    )
    frame = StatsFrame(
        taken_at=snap.taken_at + 1,
        interval=1.0,
        server=Rate(rx_bps=rx_bps, tx_bps=tx_bps),
        uplinks={"u": Rate(rx_bps=rx_bps * 2, tx_bps=tx_bps * 2)},
        density=density,
        uplink_capacity_bps=10e9,
    )
    return frame_document(frame, {})
