"""A trace as text: a hop table read like ``traceroute`` plus ``ip route get``.

Every name printed (namespaces, interfaces, process names, rule text) comes from
outside netlens and goes through :func:`netlens.kernel.inert.terminal` first.
"""

from __future__ import annotations

from typing import Any

from netlens.analysis.tracetypes import DELIVERED, LEAVES, Hop, TraceResult
from netlens.kernel.inert import terminal as t


def _route(hop: Hop) -> str:
    r = hop.route or {}
    if r.get("error"):
        return f"refused ({r['error']})"
    words = [str(r.get("type", "?"))]
    if hop.gateway:
        words.append(f"via {hop.gateway}")
    if hop.oif:
        words.append(f"dev {t(hop.oif.name)}")
    if r.get("table") is not None:
        words.append(f"table {r['table']}")
    return " ".join(words)


def _neigh(hop: Hop) -> str:
    n = hop.neighbour
    if not n:
        return "-"
    return f"{n['ip']} {n.get('mac') or '-'} {str(n.get('state', '')).upper()}"


def _l2(hop: Hop) -> str:
    step = hop.l2
    if step is None:
        return "-"
    if step.via == "bridge" and step.bridge is not None:
        port = f" port {t(step.port.name)}" if step.port else ""
        nf = " br_netfilter" if step.br_netfilter else ""
        return f"bridge {t(step.bridge.name)} fdb {step.fdb or '?'}{port}{nf}"
    return t(step.via)


def render(res: TraceResult) -> str:
    """The human output: a header, the hop table, notes, findings and the verdict."""
    q = res.query
    lines = [
        f"trace {t(str(q['src']))} -> {t(str(q['dst']))}  "
        f"{q['proto']}{'' if q.get('dport') is None else ' dport ' + str(q['dport'])}"
    ]
    rows = [("#", "VRF", "IN", "PACKET", "ROUTE", "NEXT HOP", "L2 / NEXT VRF")]
    for hop in res.hops:
        nxt = _l2(hop)
        if hop.l2 is not None and hop.l2.ingress is not None:
            nxt += f" -> {t(hop.l2.ingress.netns_name)}:{t(hop.l2.ingress.name)}"
        rows.append(
            (
                str(hop.index),
                t(hop.netns_name),
                t(hop.iif.name) if hop.iif else "-",
                hop.packet.text(),
                _route(hop),
                _neigh(hop),
                nxt,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        head = "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=False))
        lines.append(f"{head}  {row[-1]}".rstrip())
    for hop in res.hops:
        extra: list[str] = []
        if hop.sysctls:
            extra.append(" ".join(f"{k}={v}" for k, v in sorted(hop.sysctls.items())))
        if hop.filter:
            f = hop.filter
            extra.append(
                f"filter {f['hook']}: {f['verdict']}"
                + (f" ({t(f['rule'])})" if f.get("rule") else "")
            )
        extra += [f"nat: {t(n)}" for n in hop.nat]
        extra += [t(n) for n in hop.notes]
        for e in extra:
            lines.append(f"  {hop.index}: {e}")
    if res.min_mtu is not None:
        lines.append(f"smallest MTU on the path: {res.min_mtu} ({t(res.min_mtu_at or '')})")
    for finding in res.findings:
        at = f" at hop {finding.hop}" if finding.hop is not None else ""
        lines.append(f"{finding.severity}{at}: {t(finding.text)}")
    v = res.verdict
    head = {DELIVERED: "DELIVERED", LEAVES: "LEAVES THE HOST"}.get(v.result, v.result.upper())
    at = f" at hop {v.hop}" if v.hop is not None and v.result not in (DELIVERED, LEAVES) else ""
    lines.append(f"verdict: {head}{at}: {t(v.reason)}")
    for e in v.evidence:
        if e:
            lines.append(f"  evidence: {t(e)}")
    return "\n".join(lines)


def render_probe(p: dict[str, Any]) -> str:
    """The ``--probe`` section: what the real packets did, after the static answer."""
    lines = [f"probe: {p['sent']} {p['proto']} packet(s) sent, answer: {p['answer'] or 'none'}"]
    if p["seen_in"]:
        lines.append(f"  seen by the kernel in: {', '.join(t(n) for n in p['seen_in'])}")
    for c in p["counters"]:
        lines.append(
            f"  counters {t(c['interface'])}: rx +{c['rx_packets']} tx +{c['tx_packets']}"
            f" rx_dropped +{c['rx_dropped']} tx_dropped +{c['tx_dropped']}"
        )
    for d in p["drops"]:
        lines.append(f"  kernel drop: {t(d['reason'])} at {t(d['location'])}")
    if p["other_drops"]:
        lines.append(f"  ({p['other_drops']} drop(s) of other traffic on the host ignored)")
    for n in p["notes"]:
        lines.append(f"  note: {t(n)}")
    at = f" at hop {p['died_at']}" if p["died_at"] is not None else ""
    lines.append(f"probe verdict: {p['result'].upper()}{at}: {t(p['reason'])}")
    for e in p["evidence"]:
        lines.append(f"  evidence: {t(e)}")
    if not p["agrees"]:
        lines.append(f"DISAGREEMENT: {t(p['disagreement'] or '')}")
    return "\n".join(lines)
