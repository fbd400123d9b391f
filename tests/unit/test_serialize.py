"""Snapshot <-> JSON: exact round trip, the documented shape, one-line errors."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest
from fixtures.model.sample import sample_snapshot
from fixtures.model.strategies import snapshots
from hypothesis import HealthCheck, given, settings

from netlens.errors import SnapshotFileError
from netlens.model import findings as F
from netlens.model import types as T
from netlens.model.serialize import (
    dumps,
    load_file,
    loads,
    snapshot_from_dict,
    snapshot_to_dict,
)

pytestmark = pytest.mark.unit
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "model"


def _reference(obj: Any) -> Any:
    """An independent, slow conversion (dataclasses.fields walk) to check the fast one."""
    if isinstance(obj, T.IfRef):
        return obj.key
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _reference(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [_reference(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _reference(obj[k]) for k in sorted(obj)}
    return obj


def test_round_trip_fixture_is_exact() -> None:
    snap = sample_snapshot()
    assert snapshot_from_dict(json.loads(dumps(snap))) == snap
    assert loads(dumps(snap, pretty=True)) == snap


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots)
def test_round_trip_property(snap: T.Snapshot) -> None:
    assert loads(dumps(snap)) == snap


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots)
def test_fast_writer_matches_reference_conversion(snap: T.Snapshot) -> None:
    """The hand-written to_dict writes every field, nothing else, same values."""
    doc = snapshot_to_dict(snap)
    ref = _reference(snap)
    assert doc == ref
    # field order is the dataclass order (diff-friendly, documented)
    assert list(doc) == [
        "schema_version",
        "taken_at",
        "root",
        "warnings",
        "server",
        "namespaces",
        "containers",
        "veth_pairs",
        "findings",
        "skipped",
    ]


def _dict_path(snap: T.Snapshot, extra: dict[str, Any] | None = None) -> str:
    doc = snapshot_to_dict(snap)
    if extra:
        doc.update(extra)
    return json.dumps(doc, separators=(",", ":"), allow_nan=False)


def test_compact_writer_is_the_dict_path_byte_for_byte() -> None:
    """dumps() writes text directly; it must equal json.dumps of the dict document."""
    snap = sample_snapshot()
    assert dumps(snap) == _dict_path(snap)
    odd = dataclasses.replace(
        snap,
        warnings=('caf\u00e9 "quoted"\n', "\u2603"),
        taken_at=1700000000.125,
    )
    assert dumps(odd) == _dict_path(odd)
    rates = {"rates": {"x": [1.5, None, "y"]}, "more": 1}
    assert dumps(snap, extra=rates) == _dict_path(snap, rates)
    # an extra key that replaces a snapshot key keeps its place, as dict.update does
    assert dumps(snap, extra={"root": "x"}) == _dict_path(snap, {"root": "x"})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots)
def test_compact_writer_matches_dict_path_property(snap: T.Snapshot) -> None:
    assert dumps(snap) == _dict_path(snap)


def test_every_model_field_is_written() -> None:
    """A field added to types.py without a serializer change fails here."""
    doc = snapshot_to_dict(sample_snapshot())
    ns = doc["namespaces"][0]
    itf = ns["interfaces"][1]
    checks: list[tuple[type, dict[str, Any]]] = [
        (T.Snapshot, doc),
        (T.Server, doc["server"]),
        (T.Netns, ns),
        (T.Interface, itf),
        (T.Address, itf["addresses"][0]),
        (T.Counters, itf["counters"]),
        (T.Route, ns["routes"][0]),
        (T.NextHop, ns["routes"][3]["nexthops"][0]),
        (T.Rule, ns["rules"][0]),
        (T.Neighbour, ns["neighbours"][0]),
        (T.FdbEntry, ns["fdb"][0]),
        (T.NatRule, ns["nat"][0]),
        (T.Container, doc["containers"][0]),
        (T.VethPair, doc["veth_pairs"][0]),
        (T.L3Vrf, doc["namespaces"][3]["vrfs"][0]),
    ]
    for cls, obj in checks:
        assert set(obj) == {f.name for f in dataclasses.fields(cls)}, cls.__name__


def test_dumps_is_deterministic_and_sorted() -> None:
    a, b = sample_snapshot(), sample_snapshot()
    assert dumps(a) == dumps(b)
    doc = json.loads(dumps(a))
    labels = doc["containers"][0]["labels"]
    assert list(labels) == sorted(labels)
    assert "\n" not in dumps(a)
    assert dumps(a, pretty=True).startswith(f'{{\n  "schema_version": "{T.SCHEMA_VERSION}"')


def test_golden_snapshot_file_loads_to_fixture() -> None:
    """tests/fixtures/model/snapshot.json is the fixture's dump (regenerate: see test_export)."""
    path = FIXTURES / "snapshot.json"
    if os.environ.get("NETLENS_REGEN_GOLDEN") == "1":
        path.write_text(dumps(sample_snapshot(), pretty=True) + "\n")
    assert load_file(path) == sample_snapshot()
    assert path.read_text() == dumps(sample_snapshot(), pretty=True) + "\n"


def test_ifref_written_as_key() -> None:
    doc = snapshot_to_dict(sample_snapshot())
    assert doc["veth_pairs"][0] == {"a": "netns:4026531840/10", "b": "netns:4026532300/2"}
    assert doc["veth_pairs"][3]["b"] is None


def test_nan_is_refused() -> None:
    snap = dataclasses.replace(sample_snapshot(), taken_at=float("nan"))
    with pytest.raises(ValueError):
        dumps(snap)
    snap = dataclasses.replace(sample_snapshot(), taken_at=float("inf"))
    with pytest.raises(ValueError):
        dumps(snap)


_FINDING: dict[str, Any] = {
    "check": "veth-peer-down",
    "severity": "error",
    "title": "t",
    "objects": [{"kind": "netns", "id": "netns:1", "name": "a"}],
    "evidence": [],
    "fix": None,
}


def _doc() -> dict[str, Any]:
    return json.loads(dumps(sample_snapshot()))


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d.pop("schema_version"), "not a netlens dump"),
        (lambda d: d.update(schema_version="2.0"), "schema version 2.0"),
        (lambda d: d.pop("server"), "missing required key 'server'"),
        (
            lambda d: d["namespaces"][0].pop("id"),
            "snapshot.namespaces[0]: missing required key 'id'",
        ),
        (
            lambda d: d["namespaces"][1]["interfaces"][1].update(mtu="1500"),
            "snapshot.namespaces[1].interfaces[1].mtu: expected an integer, got a string",
        ),
        (
            lambda d: d["namespaces"][0].update(is_host=1),
            "snapshot.namespaces[0].is_host: expected true or false, got an integer",
        ),
        (lambda d: d["namespaces"][0]["interfaces"][0].update(mtu=True), "expected an integer"),
        (lambda d: d["veth_pairs"][0].update(a="eth0"), "interface key like"),
        (lambda d: d["veth_pairs"][0].update(a="netns:1/x"), "interface key like"),
        (lambda d: d["containers"][0].update(labels={"a": 1}), "labels.a: expected a string"),
        (lambda d: d["namespaces"][0].update(pids=[1, "2"]), "pids[1]: expected an integer"),
        (lambda d: d.update(namespaces={}), "snapshot.namespaces: expected a list"),
        (lambda d: d["namespaces"].append(3), "snapshot.namespaces[5]: expected an object"),
        (
            lambda d: d.update(findings=[dict(_FINDING, severity="fatal")]),
            "snapshot.findings[0].severity: expected one of 'error', 'warning', 'info', "
            "got 'fatal'",
        ),
        (
            lambda d: d.update(findings=[dict(_FINDING, objects=[{"kind": "netns"}])]),
            "snapshot.findings[0].objects[0]: missing required key 'id'",
        ),
    ],
)
def test_bad_documents_give_one_line(mutate: Any, needle: str) -> None:
    d = _doc()
    mutate(d)
    with pytest.raises(SnapshotFileError) as err:
        snapshot_from_dict(d)
    msg = str(err.value)
    assert needle in msg
    assert "\n" not in msg


def test_newer_minor_is_read_and_unknown_keys_ignored() -> None:
    d = _doc()
    d["schema_version"] = "1.9"
    d["future_top"] = {"x": 1}
    d["namespaces"][0]["future_field"] = 3
    d["rates"] = {"netns:1/2": {"rx_bps": 1.0}}
    snap = snapshot_from_dict(d)
    assert snap.schema_version == "1.9"
    assert dataclasses.replace(snap, schema_version=T.SCHEMA_VERSION) == sample_snapshot()


def test_older_minor_without_tc_reads_it_as_none() -> None:
    """A 1.1 dump (before interfaces had ``tc``) still loads, with tc None."""
    d = _doc()
    d["schema_version"] = "1.1"
    for ns in d["namespaces"]:
        for itf in ns["interfaces"]:
            del itf["tc"]
    snap = snapshot_from_dict(d)
    assert all(i.tc is None for i in snap.interfaces())
    shaped = [i for i in sample_snapshot().interfaces() if i.tc is not None]
    assert [i.tc.summary() for i in shaped if i.tc] == ["10mbit 20ms~5ms loss 1.5%"]


def test_older_minor_without_network_reads_it_as_none() -> None:
    """A 1.0 dump (before interfaces had ``network``) still loads, with network None."""
    d = _doc()
    d["schema_version"] = "1.0"
    for ns in d["namespaces"]:
        for itf in ns["interfaces"]:
            del itf["network"]
    snap = snapshot_from_dict(d)
    assert all(i.network is None for i in snap.interfaces())
    br0 = next(i for i in sample_snapshot().interfaces() if i.name == "br0")
    assert br0.network == "lan" and br0.display_name == "lan (br0)"


def test_older_minor_without_fdb_age_reads_it_as_none() -> None:
    """A 1.0 dump (before MAC table entries had ``age``) still loads; a 1.1 one
    keeps the age exactly."""
    d = _doc()
    d["schema_version"] = "1.0"
    entries = [f for ns in d["namespaces"] for f in ns["fdb"]]
    assert entries
    for f in entries:
        del f["age"]
    snap = snapshot_from_dict(d)
    assert all(f.age is None for ns in snap.namespaces for f in ns.fdb)
    host = sample_snapshot().namespaces[0]
    aged = dataclasses.replace(host, fdb=(dataclasses.replace(host.fdb[0], age=12.34),))
    back = loads(dumps(dataclasses.replace(sample_snapshot(), namespaces=(aged,))))
    assert back.namespaces[0].fdb[0].age == 12.34


def test_findings_round_trip_as_model_objects() -> None:
    """1.3 findings read back as the model's classes, severity as the enum member."""
    f = F.Finding(
        "mtu-mismatch",
        F.Severity.WARNING,
        "MTU 1500 against 9000",
        (F.ObjectRef("interface", "netns:4026531840/10", "host:veth0"),),
        ("veth0 mtu 1500", "peer mtu 9000"),
        "ip link set veth0 mtu 9000",
    )
    snap = dataclasses.replace(
        sample_snapshot(), findings=(f,), skipped=(F.Skipped("conntrack-near-max", "live"),)
    )
    back = loads(dumps(snap))
    assert back == snap
    assert back.findings[0].severity is F.Severity.WARNING
    assert snapshot_to_dict(snap)["findings"][0] == {
        "check": "mtu-mismatch",
        "severity": "warning",
        "title": "MTU 1500 against 9000",
        "objects": [{"kind": "interface", "id": "netns:4026531840/10", "name": "host:veth0"}],
        "evidence": ["veth0 mtu 1500", "peer mtu 9000"],
        "fix": "ip link set veth0 mtu 9000",
    }


def test_older_minor_without_findings_reads_none() -> None:
    """A 1.2 dump (before findings) loads with no findings and nothing skipped."""
    d = _doc()
    d["schema_version"] = "1.2"
    del d["findings"], d["skipped"]
    snap = snapshot_from_dict(d)
    assert (snap.findings, snap.skipped) == ((), ())
    assert loads(json.dumps(d)).findings == ()


def test_absent_optional_keys_take_defaults() -> None:
    d = _doc()
    itf = d["namespaces"][0]["interfaces"][0]
    for key in ("carrier", "alias", "counters", "addresses", "uplink", "mtu"):
        itf.pop(key)
    snap = snapshot_from_dict(d)
    lo = snap.namespaces[0].interfaces[0]
    assert (lo.carrier, lo.counters, lo.addresses, lo.uplink, lo.mtu) == (
        None,
        None,
        (),
        False,
        1500,
    )


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "expected an object"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_load_file_errors(tmp_path: Path, content: bytes, needle: str) -> None:
    p = tmp_path / "bad.json"
    p.write_bytes(content)
    with pytest.raises(SnapshotFileError) as err:
        load_file(p)
    assert needle in str(err.value)
    assert str(p) in str(err.value)


def test_load_file_missing(tmp_path: Path) -> None:
    with pytest.raises(SnapshotFileError, match=r"cannot read .*nope\.json"):
        load_file(tmp_path / "nope.json")
