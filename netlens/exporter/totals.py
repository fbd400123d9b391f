"""Counters for Prometheus: kernel counter deltas folded like the rates, then summed.

Prometheus wants counters (``_total``) and computes rates itself. The kernel keeps
counters per interface only; a container's, a bridge's or a VRF's traffic is a
fold of several interfaces (:mod:`netlens.stats.aggregate` says which and from
which side). Folding the *absolute* kernel counters would give totals that drop
whenever a link of the fold disappears (a container restarts its veth), and
Prometheus takes every drop for a reset: ``rate()`` would then show a spike the
size of the whole history. So each sample's per-interface *deltas* (wrap and
reset aware, :func:`netlens.stats.rates.deltas`) go through the very same
:func:`~netlens.stats.aggregate.aggregate` as the rates, and the folded deltas
are added to running totals. Every exported counter is thus monotonic and
counts what netlens saw since the exporter started watching that entity; an
interface counts from its first sample on (its earlier history is not ours to
attribute to a fold).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from netlens.stats.aggregate import Plan, aggregate
from netlens.stats.rates import CounterTuple, deltas, rate_from_deltas
from netlens.stats.types import ZERO, Rate

SECTIONS = ("containers", "veth_pairs", "bridges", "vrfs", "uplinks")
"""The folds of a frame that get counters, by their StatsFrame attribute name."""

Latest = Callable[[str], CounterTuple | None]


class Totals:
    """Running totals per section and key: 8 floats in :class:`Rate` field order
    (rx bytes, tx bytes, rx packets, tx packets, rx drops, tx drops, rx errors,
    tx errors)."""

    def __init__(self) -> None:
        self._prev: dict[str, CounterTuple] = {}
        self.totals: dict[str, dict[str, list[float]]] = {s: {} for s in SECTIONS}

    def update(self, plan: Plan, keys: Iterable[str], latest: Latest) -> None:
        """Fold the counters moved since the last call into the totals.

        ``keys``: every sampled interface key; ``latest``: its absolute counters
        (``CounterSampler.latest``). Keys no longer sampled are forgotten.
        """
        moved: dict[str, Rate] = {}
        prev = self._prev
        now: dict[str, CounterTuple] = {}
        for key in keys:
            cur = latest(key)
            if cur is None:
                continue
            now[key] = cur
            p = prev.get(key)
            if p is None or p == cur:
                continue
            d, _reset = deltas(p, cur)
            moved[key] = rate_from_deltas(d, 1.0)
        self._prev = now
        if not moved:
            return
        folded = aggregate(plan, moved, 0.0, 1.0)
        for section in SECTIONS:
            acc = self.totals[section]
            for key, r in getattr(folded, section).items():
                if r is ZERO:
                    continue
                t = acc.get(key)
                if t is None:
                    acc[key] = t = [0.0] * 8
                t[0] += r.rx_bps / 8  # the fold counts bits, like the rates
                t[1] += r.tx_bps / 8
                t[2] += r.rx_pps
                t[3] += r.tx_pps
                t[4] += r.rx_drops
                t[5] += r.tx_drops
                t[6] += r.rx_errors
                t[7] += r.tx_errors

    def get(self, section: str, key: str) -> list[float] | None:
        return self.totals[section].get(key)

    def forget_missing(self, plan: Plan) -> None:
        """Drop the totals of entities the new plan no longer has (bounded memory:
        a host that starts and stops containers all day does not grow without end)."""
        live = {
            "containers": plan.containers.keys(),
            "veth_pairs": plan.veth_pairs.keys(),
            "bridges": plan.bridges.keys(),
            "vrfs": plan.ns_sources.keys(),
            "uplinks": set(plan.uplinks),
        }
        for section in SECTIONS:
            acc = self.totals[section]
            keep = live[section]
            for key in [k for k in acc if k not in keep]:
                del acc[key]
