"""Which series exist: metric names, label values per entity, and the series cap.

The structure of the host (which containers, veths, bridges, namespaces and
uplinks exist) changes far less often than the counters, so the labels of every
series are worked out once per snapshot (:class:`Layout`) and each sample only
fills in values. Everything here is plain data; :mod:`netlens.exporter.collector`
turns it into Prometheus metric families and exposition text.

Naming follows the Prometheus conventions: the ``netlens_`` prefix, base units
(bytes, seconds), ``_total`` on counters, ``receive``/``transmit`` in the name
(like node_exporter) rather than a direction label.

Cardinality. Each entity costs 8 counter series (bytes, packets, drops, errors,
each received and transmitted) plus 8 rate gauges when rates are on. With N
containers, each in its own namespace with one veth, that is about 3 x 16 x N
series (container, namespace, veth pair): 48 000 at 1000 containers. The
``max_series`` cap keeps whole entities in a fixed priority (uplinks, bridges,
containers, namespaces, veth pairs: the veth pair repeats its container's
traffic from the cable's side, so it goes first) and, within a kind, in label
order, so the same entities survive from one scrape to the next instead of
flapping. What is left out is counted (``netlens_exporter_series_dropped``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from netlens.model.types import Snapshot
from netlens.stats.aggregate import Plan

PREFIX = "netlens"

DIRECTIONS = ("receive", "transmit")
_DONE = {"receive": "received", "transmit": "transmitted"}
QUANTITIES = ("bytes", "packets", "drops", "errors")


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of entity: its name in metric names, its StatsFrame section, labels."""

    name: str
    section: str
    labelnames: tuple[str, ...]
    what: str  # for HELP texts


KINDS = (
    Kind("uplink", "uplinks", ("interface", "kind"), "host uplink (physical NIC, bond, vlan)"),
    Kind("bridge", "bridges", ("interface", "netns"), "bridge, as the switch sees it"),
    Kind(
        "container", "containers", ("container", "engine", "netns"), "container, seen from inside"
    ),
    Kind("netns", "vrfs", ("netns",), "network namespace (VRF): traffic through its IP stack"),
    Kind("veth", "veth_pairs", ("interface", "netns", "peer", "peer_netns"), "veth pair"),
)
"""In cap priority: the first kinds are kept when the cap bites."""


def family_names(kind: Kind, rates: bool) -> list[tuple[str, str, str, int]]:
    """(name, type, help, field index) of every family of one kind.

    Field indexes follow :class:`~netlens.stats.types.Rate`: rx/tx bytes,
    packets, drops, errors. Counter names carry ``_total`` as exposed.
    """
    out: list[tuple[str, str, str, int]] = []
    for qi, q in enumerate(QUANTITIES):
        for di, d in enumerate(DIRECTIONS):
            idx = qi * 2 + di
            base = f"{PREFIX}_{kind.name}_{d}_{q}"
            out.append(
                (f"{base}_total", "counter", f"{q.capitalize()} {_DONE[d]} by the {kind.what}", idx)
            )
    if rates:
        for qi, q in enumerate(QUANTITIES):
            for di, d in enumerate(DIRECTIONS):
                idx = qi * 2 + di
                base = f"{PREFIX}_{kind.name}_{d}_{q}"
                out.append(
                    (
                        f"{base}_per_second",
                        "gauge",
                        f"{q.capitalize()} per second {_DONE[d]} by the {kind.what}, last sample",
                        idx,
                    )
                )
    return out


@dataclass(slots=True)
class Rows:
    """The entities of one kind that are exported: keys and label values, aligned.

    ``prefixes`` caches, per family name, the exposition text before each value
    (``name{labels} ``): built at the first render after a structure change.
    """

    kind: Kind
    keys: list[str] = field(default_factory=list)
    labels: list[tuple[str, ...]] = field(default_factory=list)
    prefixes: dict[str, list[str]] = field(default_factory=dict)


@dataclass(slots=True)
class Layout:
    """Every entity series of one snapshot, after the cap."""

    rows: list[Rows]
    rates: bool
    series: int = 0  # entity series kept
    dropped: int = 0  # entity series left out by the cap


def _unique(labels: list[tuple[str, ...]], ids: list[str]) -> list[tuple[str, ...]]:
    """Make label sets unique: two series with the same labels would be rejected by
    Prometheus (duplicate sample). A clash (two namespaces both named ``web``) gets
    the entity's id appended to its first label value, for the clashing ones only."""
    seen = Counter(labels)
    if all(n == 1 for n in seen.values()):
        return labels
    return [
        (f"{lab[0]}@{i}", *lab[1:]) if seen[lab] > 1 else lab
        for lab, i in zip(labels, ids, strict=True)
    ]


def entity_labels(snap: Snapshot, plan: Plan) -> dict[str, tuple[list[str], list[tuple[str, ...]]]]:
    """Keys and label values of every entity, per section, sorted by labels."""
    ns_name = {ns.id: ns.name for ns in snap.namespaces}
    itfs = {i.ref.key: i for ns in snap.namespaces for i in ns.interfaces}
    peers = {p.a.key: p.b.key if p.b else None for p in snap.veth_pairs}

    def itf_name(key: str | None) -> str:
        if key is None:
            return ""
        i = itfs.get(key)
        return i.name if i is not None else key

    def netns_of(key: str | None) -> str:
        if key is None:
            return ""
        return ns_name.get(key.rpartition("/")[0], "")

    out: dict[str, list[tuple[str, tuple[str, ...]]]] = {k.section: [] for k in KINDS}
    for u in plan.uplinks:
        i = itfs.get(u)
        out["uplinks"].append((u, (itf_name(u), i.kind if i else "")))
    for br in plan.bridges:
        out["bridges"].append((br, (itf_name(br), netns_of(br))))
    names = {c.id: c for c in snap.containers}
    for cid, netns in plan.containers.items():
        c = names.get(cid)
        out["containers"].append(
            (
                cid,
                (
                    c.name if c else cid,
                    c.engine if c else "",
                    ns_name.get(netns, "") if netns else "",
                ),
            )
        )
    for ns_id in plan.ns_sources:
        out["vrfs"].append((ns_id, (ns_name.get(ns_id, ns_id),)))
    for a in plan.veth_pairs:
        peer = peers.get(a)
        out["veth_pairs"].append((a, (itf_name(a), netns_of(a), itf_name(peer), netns_of(peer))))
    result: dict[str, tuple[list[str], list[tuple[str, ...]]]] = {}
    for section, items in out.items():
        items.sort(key=lambda kv: (kv[1], kv[0]))
        keys = [k for k, _ in items]
        result[section] = (keys, _unique([lab for _, lab in items], keys))
    return result


def build_layout(snap: Snapshot, plan: Plan, max_series: int, rates: bool) -> Layout:
    """The series to export for one snapshot: every entity, until ``max_series``
    entity series are reached (whole entities, in :data:`KINDS` priority)."""
    labels = entity_labels(snap, plan)
    budget = max_series
    layout = Layout(rows=[], rates=rates)
    for kind in KINDS:
        per = len(family_names(kind, rates))
        keys, labs = labels[kind.section]
        room = max(0, min(len(keys), budget // per))
        budget -= room * per
        layout.series += room * per
        layout.dropped += (len(keys) - room) * per
        layout.rows.append(Rows(kind, keys[:room], labs[:room]))
    return layout
