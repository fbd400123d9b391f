"""Traffic control per interface, from an RTM_GETQDISC dump (``tc qdisc show``).

Whoever set it (``netlens link``, tc by hand, an engine), a qdisc that shapes or
impairs an interface is part of what the host does to its traffic: a rate limit
(tbf), delay, jitter, loss, corruption, duplication (netem), or a classful tree
(htb, hfsc, cake...). The defaults every device gets (noqueue, pfifo_fast, mq,
fq_codel...) say nothing and are left out, so most interfaces carry no
:class:`TrafficControl` at all.

The dump is one short reply per namespace; most namespaces have none of the
interesting kinds, which a byte search finds before any message is walked.
Parsed from bytes with ``struct`` (no pyroute2 on the discovery path).
"""

from __future__ import annotations

import struct

from netlens.kernel.consts import RTM_NEWQDISC, RTM_NEWTFILTER
from netlens.kernel.wire import iter_messages
from netlens.model import TrafficControl

TCA_KIND, TCA_OPTIONS = 1, 2
TC_H_ROOT = 0xFFFFFFFF
TC_H_INGRESS = 0xFFFFFFF1
TCA_TBF_PARMS, TCA_TBF_RATE64 = 1, 4
TCA_NETEM_CORRUPT, TCA_NETEM_LATENCY64, TCA_NETEM_JITTER64 = 4, 10, 11
PSCHED_TICK_NS = 64
"""netem's fixed struct carries delay and jitter in psched ticks (1 tick = 64 ns
since Linux 3.x); kernels since 4.15 also send them in ns (LATENCY64/JITTER64)."""

QUIET = frozenset(
    {"noqueue", "noop", "pfifo_fast", "pfifo", "bfifo", "mq", "fq_codel", "fq", "sfq",
     "codel", "pfifo_head_drop"}
)  # fmt: skip
"""Kinds that queue without shaping: not worth showing."""
INGRESS_KINDS = frozenset({"ingress", "clsact"})

_TCMSG = struct.Struct("=BxxxiIII")  # family, ifindex, handle, parent, info
_NLA = struct.Struct("=HH")
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")
_S64 = struct.Struct("=q")
_NETEM = struct.Struct("=IIIIII")  # latency, limit, loss, gap, duplicate, jitter
_MARKERS = (b"tbf\0", b"netem\0", b"htb\0", b"hfsc\0", b"cake\0", b"ingress\0", b"clsact\0",
            b"drr\0", b"prio\0", b"red\0", b"choke\0", b"qfq\0", b"ets\0", b"cbs\0", b"taprio\0",
            b"plug\0", b"multiq\0", b"sfb\0", b"pie\0", b"hhf\0", b"skbprio\0")  # fmt: skip


def _attrs(data: bytes, off: int, end: int) -> dict[int, tuple[int, int]]:
    out: dict[int, tuple[int, int]] = {}
    while off + 4 <= end:
        ln, typ = _NLA.unpack_from(data, off)
        if ln < 4 or off + ln > end:
            break
        out[typ & 0x3FFF] = (off + 4, off + ln)
        off += (ln + 3) & ~3
    return out


def _pct(value: int) -> float | None:
    """netem's probabilities are u32 fractions of 2^32-1; None for zero."""
    return round(value * 100 / 0xFFFFFFFF, 4) if value else None


def _tbf_rate(data: bytes, start: int, end: int) -> int | None:
    a = _attrs(data, start, end)
    span = a.get(TCA_TBF_RATE64)
    if span and span[1] - span[0] >= 8:
        return int(_U64.unpack_from(data, span[0])[0]) * 8
    span = a.get(TCA_TBF_PARMS)
    if span and span[1] - span[0] >= 12:
        return int(_U32.unpack_from(data, span[0] + 8)[0]) * 8  # tc_ratespec.rate, bytes/s
    return None


def _netem(data: bytes, start: int, end: int) -> dict[str, int | float | None]:
    if end - start < _NETEM.size:
        return {}
    latency, _limit, loss, _gap, duplicate, jitter = _NETEM.unpack_from(data, start)
    a = _attrs(data, start + ((_NETEM.size + 3) & ~3), end)
    lat_ns = latency * PSCHED_TICK_NS
    jit_ns = jitter * PSCHED_TICK_NS
    span = a.get(TCA_NETEM_LATENCY64)
    if span and span[1] - span[0] >= 8:
        lat_ns = _S64.unpack_from(data, span[0])[0]
    span = a.get(TCA_NETEM_JITTER64)
    if span and span[1] - span[0] >= 8:
        jit_ns = _S64.unpack_from(data, span[0])[0]
    corrupt = 0
    span = a.get(TCA_NETEM_CORRUPT)
    if span and span[1] - span[0] >= 4:
        corrupt = _U32.unpack_from(data, span[0])[0]
    return {
        "delay_us": round(lat_ns / 1000) or None,
        "jitter_us": round(jit_ns / 1000) or None,
        "loss_pct": _pct(loss),
        "duplicate_pct": _pct(duplicate),
        "corrupt_pct": _pct(corrupt),
    }


class _Draft:
    __slots__ = ("ingress", "kinds", "values")

    def __init__(self) -> None:
        self.kinds: list[tuple[int, str]] = []  # (depth order key, kind)
        self.values: dict[str, int | float | None] = {}
        self.ingress = False


def parse_qdiscs(data: bytes) -> dict[int, TrafficControl]:
    """ifindex -> what shapes that interface, for interfaces where anything does."""
    if not any(m in data for m in _MARKERS):
        return {}
    drafts: dict[int, _Draft] = {}
    size = len(data)
    for typ, _flags, start, msg_end in iter_messages(data):
        end = min(msg_end, size)  # a truncated last message: read what is there
        if typ != RTM_NEWQDISC or end - start < _TCMSG.size:
            continue
        _fam, index, _handle, parent, _info = _TCMSG.unpack_from(data, start)
        a = _attrs(data, start + _TCMSG.size, end)
        span = a.get(TCA_KIND)
        if span is None:
            continue
        kind = data[span[0] : span[1]].split(b"\0", 1)[0].decode("ascii", "replace")
        if kind in QUIET:
            continue
        d = drafts.setdefault(index, _Draft())
        if kind in INGRESS_KINDS or parent == TC_H_INGRESS:
            d.ingress = True
            continue
        d.kinds.append((0 if parent == TC_H_ROOT else 1, kind))
        opts = a.get(TCA_OPTIONS)
        if opts is None:
            continue
        if kind == "tbf":
            rate = _tbf_rate(data, *opts)
            cur = d.values.get("rate_bps")
            if rate and (not isinstance(cur, int) or rate < cur):
                d.values["rate_bps"] = rate  # two rates in one tree: the tighter one binds
        elif kind == "netem":
            d.values.update({k: v for k, v in _netem(data, *opts).items() if v is not None})
    out: dict[int, TrafficControl] = {}
    for index, d in drafts.items():
        v = d.values
        out[index] = TrafficControl(
            kinds=tuple(k for _, k in sorted(d.kinds, key=lambda x: x[0])),
            rate_bps=_int(v.get("rate_bps")),
            delay_us=_int(v.get("delay_us")),
            jitter_us=_int(v.get("jitter_us")),
            loss_pct=_float(v.get("loss_pct")),
            corrupt_pct=_float(v.get("corrupt_pct")),
            duplicate_pct=_float(v.get("duplicate_pct")),
            ingress=d.ingress,
        )
    return out


TCA_ACT_KIND, TCA_ACT_OPTIONS, TCA_MIRRED_PARMS = 1, 2, 2
TCA_EGRESS_REDIR = 1
_MIRRED = struct.Struct(
    "=IIiiiiI"
)  # tc_gen (index, capab, action, refcnt, bindcnt), eaction, ifindex


def redirect_target(data: bytes) -> int | None:
    """The ifindex an ingress filter's ``mirred egress redirect`` sends packets to.

    Whatever the classifier (u32, matchall, flower, bpf), its actions are nested
    attributes holding ``TCA_ACT_KIND "mirred"``: found by walking the nesting a
    few levels deep rather than by knowing every classifier's layout. The first
    redirect found wins (netlens puts one; more is someone else's design).
    """
    if b"mirred\0" not in data:
        return None
    size = len(data)
    for typ, _flags, start, msg_end in iter_messages(data):
        end = min(msg_end, size)
        if typ != RTM_NEWTFILTER or end - start < _TCMSG.size:
            continue
        found = _find_mirred(data, start + _TCMSG.size, end, 0)
        if found is not None:
            return found
    return None


def _find_mirred(data: bytes, off: int, end: int, depth: int) -> int | None:
    if depth > 5:
        return None
    a = _attrs(data, off, end)
    kind = a.get(TCA_ACT_KIND)
    if kind is not None and data[kind[0] : kind[1]].split(b"\0", 1)[0] == b"mirred":
        opts = a.get(TCA_ACT_OPTIONS)
        parms = _attrs(data, *opts).get(TCA_MIRRED_PARMS) if opts else None
        if parms and parms[1] - parms[0] >= _MIRRED.size:
            *_, eaction, ifindex = _MIRRED.unpack_from(data, parms[0])
            if eaction == TCA_EGRESS_REDIR:
                return int(ifindex)
        return None
    for start, stop in a.values():
        if stop - start >= 4:
            found = _find_mirred(data, start, stop, depth + 1)
            if found is not None:
                return found
    return None


def _int(v: int | float | None) -> int | None:
    return None if v is None else int(v)


def _float(v: int | float | None) -> float | None:
    return None if v is None else float(v)
