"""Plain, frozen data describing one host's container networking.

No pyroute2 object ever reaches this package: discovery converts kernel replies
into these dataclasses, so the same graph, stats and views run on live hosts and
on recorded fixtures or saved dumps.
"""

from netlens.model.findings import Finding, ObjectRef, Severity, Skipped
from netlens.model.types import (
    SCHEMA_VERSION,
    Address,
    BondInfo,
    BridgeInfo,
    BridgePortInfo,
    Container,
    Counters,
    Engine,
    FdbEntry,
    IfRef,
    Interface,
    L3Vrf,
    MacvlanInfo,
    NatRule,
    Neighbour,
    Netns,
    NextHop,
    Route,
    Rule,
    Server,
    Snapshot,
    TrafficControl,
    VethPair,
    VlanInfo,
    VxlanInfo,
)

__all__ = [
    "SCHEMA_VERSION",
    "Address",
    "BondInfo",
    "BridgeInfo",
    "BridgePortInfo",
    "Container",
    "Counters",
    "Engine",
    "FdbEntry",
    "Finding",
    "IfRef",
    "Interface",
    "L3Vrf",
    "MacvlanInfo",
    "NatRule",
    "Neighbour",
    "Netns",
    "NextHop",
    "ObjectRef",
    "Route",
    "Rule",
    "Server",
    "Severity",
    "Skipped",
    "Snapshot",
    "TrafficControl",
    "VethPair",
    "VlanInfo",
    "VxlanInfo",
]
