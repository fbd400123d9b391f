"""The dashboard's ``t`` and ``p``: what a trace needs from the dashboard, and its
answer as rows for the hop table.

Thin on purpose: the trace itself is :func:`netlens.analysis.trace_run.run_trace`,
the very steps ``netlens trace`` takes, run in a thread worker by
:class:`netlens.tui.screens.trace.TraceScreen`. Here only the pure parts, testable
without a host: the selected node as a SRC the resolver takes, the picker's text
as a :class:`TraceRequest`, the hops as table rows, and the topology nodes on the
path (to highlight them).

:data:`RUNNER` is looked up at each run, so a test can put a fake trace in its
place and drive the screens without root or namespaces.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from netlens.analysis.trace_run import PROTOS, TraceOutcome, TraceRequest, run_trace
from netlens.analysis.tracetypes import DELIVERED, LEAVES, Hop, Iface, TraceResult
from netlens.errors import UsageError
from netlens.kernel.inert import terminal as t
from netlens.model.types import IfRef, Snapshot

RUNNER: Callable[[TraceRequest], TraceOutcome] = run_trace
"""What runs a trace (in a worker thread): the live host's by default."""

HOP_COLUMNS = ("#", "VRF", "IN", "OUT", "ROUTE", "NEIGHBOUR / FDB", "NAT", "FILTER", "MTU")


def run(req: TraceRequest) -> TraceOutcome:
    """Run ``req`` with the current :data:`RUNNER` (called from a worker thread)."""
    return RUNNER(req)


def source_spec(snap: Snapshot, key: str) -> tuple[str, str]:
    """The SRC spec for the topology or table node ``key`` (a VRF, a container, an
    interface, a bridge) and a name for people. Namespace ids (``netns:<inode>``)
    are what the resolver takes and stay valid across snapshots; an interface
    becomes ``<netns id>:<ifname>`` (interface names never hold a colon)."""
    for ns in snap.namespaces:
        if key == ns.id:
            return ns.id, ns.name
    for c in snap.containers:
        if key == c.id:
            return c.id, c.name
    if "/" in key:
        try:
            ref = IfRef.parse(key)
        except ValueError:
            ref = None
        if ref is not None:
            for ns in snap.namespaces:
                if ns.id == ref.netns:
                    itf = next((i for i in ns.interfaces if i.ifindex == ref.ifindex), None)
                    if itf is not None:
                        return f"{ns.id}:{itf.name}", f"{ns.name}:{itf.name}"
    raise UsageError("select a VRF, a container or an interface to trace from")


def parse_request(src: str, dst: str, extra: str) -> TraceRequest:
    """The picker's fields as a request. ``extra`` is optional: ``tcp 80``,
    ``udp/53``, ``icmp`` or a bare port (tcp), as ``--proto``/``--port`` would
    give; bad text raises UsageError with the one line the picker shows."""
    dst = dst.strip()
    if not dst:
        raise UsageError("type a destination: container, VRF, IP or CONTAINER:IFNAME")
    proto: str | None = None
    port: int | None = None
    for word in extra.replace("/", " ").replace(",", " ").split():
        low = word.lower()
        if low in PROTOS and proto is None:
            proto = low
        elif word.isdigit() and port is None:
            port = int(word)
            if not 0 < port < 65536:
                raise UsageError(f"port out of range 1-65535: {port}")
        else:
            raise UsageError(f"not a protocol or port: {t(word)!r} (e.g. 'tcp 80', 'udp 53')")
    req = TraceRequest(src=src, dst=dst, proto=proto, dport=port)
    req.protocol  # noqa: B018  (raises UsageError for icmp with a port)
    return req


# -- the answer as rows ----------------------------------------------------------------------
def _itf(i: Iface | None) -> str:
    return t(i.name) if i is not None else "-"


def _route(hop: Hop) -> str:
    r = hop.route or {}
    if r.get("error"):
        return f"refused ({t(str(r['error']))})"
    words = [t(str(r.get("type", "?")))]
    if hop.gateway:
        words.append(f"via {t(hop.gateway)}")
    if r.get("table") is not None:
        words.append(f"table {r['table']}")
    return " ".join(words)


def _next(hop: Hop, last: bool) -> str:
    """The neighbour entry (MAC, state) and the bridge's choice; where the frame
    enters next only on the last row (otherwise the next row says it)."""
    parts: list[str] = []
    n = hop.neighbour
    if n:
        parts.append(f"{t(str(n.get('mac') or '-'))} {t(str(n.get('state', ''))).upper()}")
    step = hop.l2
    if step is not None:
        if step.via == "bridge" and step.bridge is not None:
            port = f" {_itf(step.port)}" if step.port is not None else ""
            nf = " br_netfilter" if step.br_netfilter else ""
            parts.append(f"{t(step.bridge.name)} fdb {t(step.fdb or '?')}{port}{nf}")
        if step.ingress is not None and last:
            parts.append(f"→ {t(step.ingress.netns_name)}:{t(step.ingress.name)}")
    return " · ".join(parts) or "-"


def _filter(hop: Hop) -> str:
    f = hop.filter
    if not f:
        return "-"
    return f"{t(str(f.get('hook', '?')))} {t(str(f.get('verdict', '?')))}"


def hop_rows(res: TraceResult) -> list[tuple[str, ...]]:
    """One row per hop, in :data:`HOP_COLUMNS` order, every name made inert."""
    rows: list[tuple[str, ...]] = []
    for hop in res.hops:
        last = hop is res.hops[-1]
        mtu = hop.oif.mtu if hop.oif is not None and hop.oif.mtu is not None else None
        rows.append(
            (
                str(hop.index),
                t(hop.netns_name),
                _itf(hop.iif),
                _itf(hop.oif),
                _route(hop),
                _next(hop, last),
                "; ".join(t(n) for n in hop.nat) or "-",
                _filter(hop),
                str(mtu) if mtu is not None else "-",
            )
        )
    return rows


def verdict_line(res: TraceResult) -> str:
    v = res.verdict
    head = {DELIVERED: "DELIVERED", LEAVES: "LEAVES THE HOST"}.get(v.result, v.result.upper())
    at = f" at hop {v.hop}" if v.hop is not None and v.result not in (DELIVERED, LEAVES) else ""
    line = f"verdict: {head}{at}: {t(v.reason)}"
    if res.min_mtu is not None:
        line += f"  (smallest MTU {res.min_mtu} at {t(res.min_mtu_at or '?')})"
    return line


def detail_lines(res: TraceResult) -> list[str]:
    """Evidence, findings and per-hop notes and sysctls: what the table has no room for."""
    lines = [f"  evidence: {t(e)}" for e in res.verdict.evidence if e]
    for f in res.findings:
        at = f" at hop {f.hop}" if f.hop is not None else ""
        lines.append(f"{f.severity}{at}: {t(f.text)}")
    for hop in res.hops:
        if hop.filter and hop.filter.get("rule"):
            lines.append(f"  {hop.index}: filter rule {t(str(hop.filter['rule']))}")
        if hop.sysctls:
            sysctls = " ".join(f"{k}={v}" for k, v in sorted(hop.sysctls.items()))
            lines.append(f"  {hop.index}: {t(sysctls)}")
        lines += [f"  {hop.index}: {t(n)}" for n in hop.notes]
    return lines


def probe_cells(res: TraceResult, probe: dict[str, Any]) -> list[str]:
    """The probe column, one cell per hop: died here, seen by the kernel here, the
    interface counters' deltas of this hop's interfaces, or not seen."""
    seen = set(probe.get("seen_in") or ())
    died = probe.get("died_at")
    counters = probe.get("counters") or ()
    cells = []
    for hop in res.hops:
        words: list[str] = []
        if died == hop.index:
            words.append("✖ died")
        elif hop.netns_name in seen:
            words.append("seen")
        mine = {f"{i.netns_name}:{i.name}" for i in (hop.iif, hop.oif) if i is not None}
        for c in counters:
            if c.get("interface") in mine:
                name = str(c["interface"]).rpartition(":")[2]
                words.append(f"{t(name)} rx+{c['rx_packets']} tx+{c['tx_packets']}")
        cells.append(" ".join(words) or ("not seen" if seen else "-"))
    return cells


def probe_lines(probe: dict[str, Any]) -> list[str]:
    """The probe's verdict and, when it and the static answer differ, the disagreement."""
    at = f" at hop {probe['died_at']}" if probe.get("died_at") is not None else ""
    lines = [
        f"probe: {probe.get('sent', 0)} {t(str(probe.get('proto', '')))} sent, "
        f"answer: {t(str(probe.get('answer') or 'none'))}",
        f"probe verdict: {t(str(probe.get('result', '?'))).upper()}{at}: "
        f"{t(str(probe.get('reason', '')))}",
    ]
    lines += [f"  kernel drop: {t(d['reason'])} at {t(d['location'])}" for d in probe["drops"]]
    lines += [f"  evidence: {t(e)}" for e in probe.get("evidence") or ()]
    lines += [f"  note: {t(n)}" for n in probe.get("notes") or ()]
    if not probe.get("agrees", True):
        lines.append(f"DISAGREEMENT: {t(str(probe.get('disagreement') or ''))}")
    else:
        lines.append("the probe agrees with the static answer")
    return lines


def path_nodes(snap: Snapshot, res: TraceResult) -> frozenset[str]:
    """Topology node keys on the path: each hop's VRF (the host's is the server box),
    the interfaces in and out, the bridges and ports crossed, the uplink it leaves by."""
    host = snap.host.id if snap.host is not None else None
    keys: set[str] = set()

    def add_ns(ns_id: str) -> None:
        keys.add(ns_id)
        if ns_id == host:
            keys.add("server")

    def add_if(i: Iface | None) -> None:
        if i is not None:
            keys.add(IfRef(i.netns, i.ifindex).key)

    for hop in res.hops:
        add_ns(hop.netns)
        add_if(hop.iif)
        add_if(hop.oif)
        if hop.l2 is not None:
            for i in (hop.l2.bridge, hop.l2.port, hop.l2.ingress):
                add_if(i)
    add_if(res.verdict.uplink)
    return frozenset(keys)
