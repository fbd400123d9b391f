"""The shipped JSON Schema: valid itself, matches the model, accepts real dumps."""

from __future__ import annotations

import copy
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fixtures.model.sample import sample_snapshot

from netlens.model import types as T
from netlens.model.serialize import dumps, schema_path, snapshot_to_dict

pytestmark = pytest.mark.unit

SCHEMA: dict[str, Any] = json.loads(Path(schema_path()).read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

# schema $defs name -> model class it documents
DEFS = {
    "address": T.Address,
    "counters": T.Counters,
    "bridge_info": T.BridgeInfo,
    "bridge_port_info": T.BridgePortInfo,
    "vxlan_info": T.VxlanInfo,
    "vlan_info": T.VlanInfo,
    "bond_info": T.BondInfo,
    "macvlan_info": T.MacvlanInfo,
    "interface": T.Interface,
    "traffic_control": T.TrafficControl,
    "nexthop": T.NextHop,
    "route": T.Route,
    "rule": T.Rule,
    "neighbour": T.Neighbour,
    "fdb_entry": T.FdbEntry,
    "l3vrf": T.L3Vrf,
    "nat_rule": T.NatRule,
    "netns": T.Netns,
    "container": T.Container,
    "server": T.Server,
    "veth_pair": T.VethPair,
}


def test_schema_is_valid_draft_2020_12() -> None:
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_schema_is_packaged() -> None:
    """pyproject ships model/*.json as package data; the file sits in the package dir."""
    import netlens.model

    assert schema_path().startswith(netlens.model.__path__[0])


@pytest.mark.parametrize("name", sorted(DEFS))
def test_schema_documents_every_model_field(name: str) -> None:
    """Every dataclass field is a required, described property, and nothing else is."""
    d = SCHEMA["$defs"][name]
    fields = {f.name for f in dataclasses.fields(DEFS[name])}
    assert set(d["properties"]) == fields
    assert set(d["required"]) == fields
    assert d["additionalProperties"] is False
    assert d.get("description")
    for key, prop in d["properties"].items():
        assert prop.get("description"), f"{name}.{key} has no description"


def test_top_level_matches_snapshot() -> None:
    fields = {f.name for f in dataclasses.fields(T.Snapshot)}
    assert set(SCHEMA["properties"]) == fields | {"rates"}
    assert set(SCHEMA["required"]) == fields
    for key, prop in SCHEMA["properties"].items():
        assert prop.get("description"), key


def test_schema_version_pattern_follows_model() -> None:
    major = T.SCHEMA_VERSION.split(".")[0]
    assert SCHEMA["properties"]["schema_version"]["pattern"] == f"^{major}\\.[0-9]+$"


def test_fixture_dump_validates() -> None:
    VALIDATOR.validate(json.loads(dumps(sample_snapshot(), pretty=True)))


def test_rates_is_an_optional_object() -> None:
    doc = snapshot_to_dict(sample_snapshot())
    doc["rates"] = {"interfaces": {"netns:1/2": {"rx_bps": 1.5}}}
    VALIDATOR.validate(doc)
    doc["rates"] = [1]
    assert not VALIDATOR.is_valid(doc)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(schema_version="2.0"),
        lambda d: d.update(extra=1),
        lambda d: d["namespaces"][0].pop("interfaces"),
        lambda d: d["namespaces"][0]["interfaces"][0].update(mtu="1500"),
        lambda d: d["namespaces"][0]["interfaces"][0].update(peer="eth0"),
        lambda d: d["namespaces"][0]["interfaces"][0]["addresses"][0].update(family=5),
        lambda d: d["containers"][0].update(engine="kubernetes"),
        lambda d: d["veth_pairs"][0].update(c=None),
    ],
)
def test_schema_rejects_bad_documents(mutate: Any) -> None:
    """The schema is strict enough to catch drift: each mutation must be invalid."""
    doc = copy.deepcopy(snapshot_to_dict(sample_snapshot()))
    mutate(doc)
    assert not VALIDATOR.is_valid(doc)


_JSON_TYPE = {str: "string", int: "integer", bool: "boolean", float: "number", T.IfRef: "string"}


def _types_of(prop: dict[str, Any]) -> set[str]:
    """The JSON types a schema property allows, following $ref and anyOf."""
    if "$ref" in prop:
        return _types_of(SCHEMA["$defs"][prop["$ref"].rsplit("/", 1)[1]])
    if "anyOf" in prop:
        return set().union(*(_types_of(p) for p in prop["anyOf"]))
    if "enum" in prop and "type" not in prop:
        return {_JSON_TYPE[type(v)] if v is not None else "null" for v in prop["enum"]}
    t = prop["type"]
    return set(t) if isinstance(t, list) else {t}


def _declared_types(hint: Any) -> set[str]:
    """The JSON types the codec writes for a field's type hint."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return set().union(*(_declared_types(a) for a in typing.get_args(hint)))
    if hint is type(None):
        return {"null"}
    if typing.get_origin(hint) is tuple:
        return {"array"}
    if typing.get_origin(hint) is dict or dataclasses.is_dataclass(hint):
        return {"object"}
    return {_JSON_TYPE[hint]}


@pytest.mark.parametrize("name", sorted(DEFS))
def test_schema_follows_the_declarations(name: str) -> None:
    """The schema cannot drift from types.py: property order is the declaration
    order (the order dumps write), and each property allows exactly the JSON types
    the codec writes for the field's type hint (nullable exactly when Optional)."""
    cls = DEFS[name]
    hints = typing.get_type_hints(cls)
    props = SCHEMA["$defs"][name]["properties"]
    assert list(props) == [f.name for f in dataclasses.fields(cls)]
    for key, prop in props.items():
        assert _types_of(prop) == _declared_types(hints[key]), f"{name}.{key}"


def test_top_level_follows_the_declaration() -> None:
    hints = typing.get_type_hints(T.Snapshot)
    assert [k for k in SCHEMA["properties"] if k != "rates"] == list(T.Snapshot.JSON_ORDER)
    assert SCHEMA["required"] == list(T.Snapshot.JSON_ORDER)
    for key in T.Snapshot.JSON_ORDER:
        assert _types_of(SCHEMA["properties"][key]) == _declared_types(hints[key]), key
