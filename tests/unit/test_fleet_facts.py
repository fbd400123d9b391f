"""The fleet's partial dump reader agrees with the full one, and refuses what loading refuses."""

from __future__ import annotations

import dataclasses
import json

import pytest
from fleet_sim import sim_dump_doc, sim_snapshot

from netlens.commands.dump import with_findings
from netlens.errors import SnapshotFileError
from netlens.fleet.facts import facts_from_json, facts_of
from netlens.fleet.merge import ServerResult, fleet_document
from netlens.model.serialize import dumps, loads
from netlens.model.types import Snapshot
from tests.tui.fixture import make_snapshot


def snapshots() -> list[Snapshot]:
    big = with_findings(make_snapshot(per_bridge=(100, 99)))
    assert big.findings and len(big.containers) == 200
    return [sim_snapshot("lab1", "lab2", findings=3), sim_snapshot("lab2", None), big]


@pytest.mark.parametrize("n", range(3))
def test_facts_from_the_json_are_the_facts_of_the_snapshot(n: int) -> None:
    snap = snapshots()[n]
    text = dumps(snap)
    got = facts_from_json(text.encode())
    assert got == facts_of(snap) == facts_of(loads(text))
    assert got.containers == len(snap.containers) and got.hostname == snap.server.hostname
    assert got.vxlan or n == 2  # the recorded lab has a tunnel: the comparison covers one


def test_a_result_from_bytes_makes_the_same_row_and_loads_on_demand() -> None:
    snap = sim_snapshot("lab1", "lab2", findings=2)
    data = dumps(snap).encode()
    from_bytes = ServerResult("a", facts=facts_from_json(data), dump=data)
    from_snap = ServerResult("a", snapshot=snap)
    peer = ServerResult("b", snapshot=sim_snapshot("lab2", "lab1"))
    doc_a = fleet_document([from_bytes, peer], "1", now=0.0)
    doc_b = fleet_document([from_snap, peer], "1", now=0.0)
    assert doc_a == doc_b and doc_a["vxlan_links"]
    assert from_bytes.snapshot is None  # the row did not need the whole dump
    full = from_bytes.full_snapshot()
    assert full == snap and from_bytes.full_snapshot() is full


def test_hostile_names_read_as_loading_reads_them() -> None:
    doc = sim_dump_doc("lab1", "lab2")
    doc["server"]["hostname"] = "bad\udcffname"  # a non-UTF-8 name, as json.dumps writes it
    text = json.dumps(doc)
    assert facts_from_json(text).hostname == loads(text).server.hostname


@pytest.mark.parametrize(
    ("mangle", "why"),
    [
        (lambda d: d.update(schema_version="2.0"), "schema version 2.0 is not readable"),
        (lambda d: d["server"].update(cpu_count="many"), "Expected `int`"),
        (lambda d: d.pop("namespaces"), "missing required field `namespaces`"),
    ],
)
def test_what_loading_refuses_is_refused(mangle: object, why: str) -> None:
    doc = sim_dump_doc("lab1", "lab2")
    mangle(doc)  # type: ignore[operator]
    text = json.dumps(doc)
    with pytest.raises(SnapshotFileError, match=why):
        facts_from_json(text, where="x's dump")
    with pytest.raises(SnapshotFileError):
        loads(text)


def test_a_cut_dump_is_not_json() -> None:
    text = json.dumps(sim_dump_doc("lab1", "lab2"))
    with pytest.raises(SnapshotFileError, match=r"^x: not valid JSON"):
        facts_from_json(text[:-2], where="x")


def test_uplinks_come_from_the_host_namespace_only() -> None:
    snap = snapshots()[2]
    host = snap.host
    assert host is not None
    ups = [i.name for i in host.interfaces if i.uplink]
    assert [u[0] for u in facts_of(snap).uplinks] == ups
    other = [dataclasses.replace(ns, is_host=False) for ns in snap.namespaces]
    none_host = dataclasses.replace(snap, namespaces=tuple(other))
    assert facts_from_json(dumps(none_host)).uplinks == ()
