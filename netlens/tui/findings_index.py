"""The doctor's findings as the dashboard shows them: rows, and badges per topology node.

A finding names model objects by the dump's ids (a namespace, an interface, a route's
namespace); the topology draws other nodes (a VRF box, a switch bar, the server). This
module maps one onto the other, once per report, in the worker thread that ran the
doctor, so the event loop only paints. It imports no textual: the mapping is plain
data and is tested without an app.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netlens.analysis.findings import Report
from netlens.model.findings import Finding, ObjectRef, Severity
from netlens.tui.index import ViewIndex

SERVER = "server"
"""The topology's node for the host itself (its box at the top)."""

MARK = {Severity.ERROR: "✖", Severity.WARNING: "▲", Severity.INFO: "●"}
"""One glyph per severity, so a badge says how bad without colour too."""


@dataclass(frozen=True, slots=True)
class Badge:
    """What a node's badge shows: its worst finding's severity and how many it has."""

    worst: Severity
    count: int

    @property
    def text(self) -> str:
        return f"{MARK[self.worst]}{self.count}"

    @property
    def role(self) -> str:
        """The theme role that colours it (``finding-error`` ...)."""
        return f"finding-{self.worst.value}"


@dataclass
class FindingsIndex:
    """One doctor report over one :class:`ViewIndex`: the findings in report order
    (worst first), the checks that did not run, and per topology node its badge and
    its findings."""

    index: ViewIndex
    findings: tuple[Finding, ...] = ()
    skipped: tuple[str, ...] = ()  # "check: reason", for the view's footer
    source: str = ""
    badges: dict[str, Badge] = field(default_factory=dict)
    nodes: dict[int, tuple[str, ...]] = field(default_factory=dict)  # finding nr -> nodes

    @classmethod
    def build(cls, index: ViewIndex, report: Report) -> FindingsIndex:
        out = cls(
            index,
            report.findings,
            tuple(f"{s.check}: {s.reason}" for s in report.skipped),
            report.source,
        )
        own = own_nodes(index)
        worst: dict[str, Severity] = {}
        count: dict[str, int] = {}
        for n, finding in enumerate(report.findings):
            nodes = tuple(dict.fromkeys(node_of(index, o, own) for o in finding.objects))
            out.nodes[n] = nodes
            for node in nodes:
                count[node] = count.get(node, 0) + 1
                w = worst.get(node)
                if w is None or finding.severity.rank < w.rank:
                    worst[node] = finding.severity
        out.badges = {node: Badge(worst[node], count[node]) for node in count}
        return out

    def counts(self) -> dict[Severity, int]:
        out = dict.fromkeys(Severity, 0)
        for f in self.findings:
            out[f.severity] += 1
        return out


def own_nodes(index: ViewIndex) -> set[str]:
    """The interfaces the topology draws as nodes of their own: bridges and vxlans."""
    return {i.ref.key for i in (*index.bridges, *index.vxlans)}


def node_of(index: ViewIndex, ref: ObjectRef, own: set[str] | None = None) -> str:
    """The topology node that carries ``ref``'s badge (``own``: :func:`own_nodes`).

    A bridge or a vxlan is its own node; a bridge port in the host is its
    bridge (the switch bar it hangs from); anything else in a container's namespace is
    that VRF's box, and anything else in the host namespace (a route, a sysctl, an
    unbridged link, an uplink) is the server box. An id the index does not know (a namespace that
    vanished since the doctor ran) falls back to the server, so no finding goes unseen.
    """
    ns_id, _, _ = ref.id.partition("/")
    ns = index.ns.get(ns_id)
    if ns is None:
        return SERVER
    if ref.kind == "interface" and "/" in ref.id:
        key = ref.id
        if key in (own if own is not None else own_nodes(index)):
            return key
        if ns.is_host:
            return index.bridge_of_port.get(key, SERVER)
    return SERVER if ns.is_host else ns_id
