"""One sample as Prometheus metrics: a prometheus-client Collector and a fast renderer.

:class:`Exposition` is everything one scrape shows, built once per sample by the
exporter's background thread from the live monitor's last frame. Two ways out:

- :class:`FrameCollector` is a prometheus-client ``Collector``: registered in a
  ``CollectorRegistry``, ``generate_latest`` and every other client tool see the
  same metric families (and the tests compare against them);
- :func:`render` writes the same text format directly. prometheus-client builds
  and escapes every label set on every call: about 40 us per sample here, so a
  second per scrape at 1000 containers. The labels only change with the host's
  structure, so :func:`render` keeps each series' ``name{labels} `` prefix and
  per sample only formats the numbers (with the client's own ``floatToGoString``).
  It is run once per sample in the background, never per scrape: a scrape hands
  out the last rendered bytes. The tests check it byte for byte against
  ``generate_latest`` on the same collector, hostile names included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.utils import floatToGoString as _untyped_float

from netlens.exporter.series import Layout, Rows, family_names
from netlens.exporter.totals import Totals
from netlens.stats.types import ZERO, Rate, StatsFrame

floatToGoString: Callable[[float], str] = _untyped_float
"""The client's number format (Go's): its signature is not annotated upstream."""

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The classic text format: every Prometheus since 2.0 reads it."""


@dataclass(slots=True)
class Extra:
    """A host-level family: few samples, labels built per sample.

    ``rows``: (sample name suffix, label values, value); ``_count``/``_sum`` for a
    summary, ``""`` otherwise.
    """

    name: str
    type: str  # counter (name ends in _total), gauge, summary
    help: str
    labelnames: tuple[str, ...] = ()
    rows: list[tuple[str, tuple[str, ...], float]] = field(default_factory=list)


@dataclass(slots=True)
class Exposition:
    """One scrape's worth: the entity series of a layout plus host-level families."""

    layout: Layout
    counters: list[list[list[float]]]  # per Rows, per entity: 8 totals
    rates: list[list[tuple[float, ...]]]  # per Rows, per entity: 8 rates (empty: rates off)
    extras: list[Extra]


def _rate_row(r: Rate) -> tuple[float, ...]:
    return (
        r.rx_bps / 8,
        r.tx_bps / 8,
        r.rx_pps,
        r.tx_pps,
        r.rx_drops,
        r.tx_drops,
        r.rx_errors,
        r.tx_errors,
    )


_NO_TOTALS = [0.0] * 8


def build_exposition(
    layout: Layout, frame: StatsFrame | None, totals: Totals, extras: list[Extra]
) -> Exposition:
    """Values for every series of ``layout`` from one frame and the running totals."""
    counters: list[list[list[float]]] = []
    rates: list[list[tuple[float, ...]]] = []
    for rows in layout.rows:
        acc = totals.totals[rows.kind.section]
        counters.append([acc.get(k) or _NO_TOTALS for k in rows.keys])
        if layout.rates:
            section: Mapping[str, Rate] = getattr(frame, rows.kind.section) if frame else {}
            rates.append([_rate_row(section.get(k, ZERO)) for k in rows.keys])
    return Exposition(layout, counters, rates, extras)


# --- as prometheus-client metric families -------------------------------------------------
def _family(name: str, typ: str, help_: str, labelnames: tuple[str, ...]) -> Metric:
    if typ == "counter":
        return CounterMetricFamily(name, help_, labels=labelnames)
    if typ == "gauge":
        return GaugeMetricFamily(name, help_, labels=labelnames)
    raise ValueError(f"no family type {typ}")


def families(expo: Exposition) -> Iterator[Metric]:
    """The metric families of one exposition, in :func:`render`'s order."""
    for rows, counts, rates in _entity_blocks(expo):
        for name, typ, help_, idx in family_names(rows.kind, expo.layout.rates):
            fam = _family(name, typ, help_, rows.kind.labelnames)
            values = counts if typ == "counter" else rates
            for labels, v in zip(rows.labels, values, strict=True):
                fam.add_metric(list(labels), v[idx])  # type: ignore[attr-defined]
            yield fam
    for ex in expo.extras:
        if ex.type == "summary":
            count = next(v for s, _, v in ex.rows if s == "_count")
            total = next(v for s, _, v in ex.rows if s == "_sum")
            yield SummaryMetricFamily(ex.name, ex.help, count_value=int(count), sum_value=total)
            continue
        fam = _family(ex.name, ex.type, ex.help, ex.labelnames)
        for _, labels, val in ex.rows:
            fam.add_metric(list(labels), val)  # type: ignore[attr-defined]
        yield fam


def _entity_blocks(
    expo: Exposition,
) -> Iterator[tuple[Rows, list[list[float]], list[tuple[float, ...]]]]:
    for i, rows in enumerate(expo.layout.rows):
        yield rows, expo.counters[i], expo.rates[i] if expo.layout.rates else []


class FrameCollector:
    """A prometheus-client Collector serving the last :class:`Exposition` it was given.

    ``collect`` builds nothing from the host: the exporter's background thread sets
    :attr:`current` once per sample; a registry can collect any time in between.
    """

    def __init__(self) -> None:
        self.current: Exposition | None = None

    def collect(self) -> Iterator[Metric]:
        expo = self.current
        if expo is not None:
            yield from families(expo)

    def describe(self) -> list[Metric]:
        return []  # the series depend on the host: no fixed description


# --- the text format, fast ------------------------------------------------------------------
def escape_label(value: str) -> str:
    """A label value as the text format quotes it (backslash, newline, double quote)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _prefix(name: str, labelnames: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not labelnames:
        return f"{name} "
    pairs = sorted(zip(labelnames, values, strict=True))
    inner = ",".join(f'{k}="{escape_label(v)}"' for k, v in pairs)
    return f"{name}{{{inner}}} "


def _header(name: str, typ: str, help_: str) -> str:
    doc = help_.replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {name} {doc}\n# TYPE {name} {typ}\n"


def render(expo: Exposition) -> bytes:
    """The exposition in the text format, as ``generate_latest`` would write it."""
    out: list[str] = []
    fmt = floatToGoString
    for rows, counts, rates in _entity_blocks(expo):
        kind = rows.kind
        for name, typ, help_, idx in family_names(kind, expo.layout.rates):
            out.append(_header(name, typ, help_))
            prefixes = rows.prefixes.get(name)
            if prefixes is None:
                prefixes = rows.prefixes[name] = [
                    _prefix(name, kind.labelnames, lab) for lab in rows.labels
                ]
            values = counts if typ == "counter" else rates
            out.append(
                "".join([f"{p}{fmt(v[idx])}\n" for p, v in zip(prefixes, values, strict=True)])
            )
    for ex in expo.extras:
        out.append(_header(ex.name, ex.type, ex.help))
        for suffix, labels, v in ex.rows:
            name = ex.name + suffix if ex.type == "summary" else ex.name
            out.append(f"{_prefix(name, ex.labelnames, labels)}{fmt(v)}\n")
    return "".join(out).encode()
