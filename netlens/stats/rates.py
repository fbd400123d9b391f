"""Rate maths: turn two counter samples into per-second rates, wrap and reset aware.

Kernel counters only grow, except when they do not:

- a *wrap*: a driver that keeps 32-bit counters (zero-extended into the 64-bit
  stats) rolls over after 4 GiB; a true 64-bit counter would take decades, but
  the maths handles it the same way;
- a *reset*: the interface was deleted and recreated (same name, maybe the same
  ifindex), or a driver reset its statistics.

A wrong guess either way must never produce a spike or a negative rate, so the
rules lean towards "reset" (one interval reported as zero, baseline restarted):

1. a counter that did not decrease moved by ``cur - prev``;
2. a decrease is accepted as a wrap only when the wrapped distance is less than
   half the counter's range (32-bit when ``prev`` fits in 32 bits, else 64-bit)
   *and* it is the only counter of that interface that decreased - a reset takes
   bytes and packets down together, two counters wrapping in the same interval
   is not plausible;
3. anything else is a reset: every delta of that interval is zero.

An interval under a microsecond (clock step, two samples in the same tick) gives
zero rates.
"""

from __future__ import annotations

from collections.abc import Sequence

from netlens.stats.types import ZERO, Rate

MIN_INTERVAL = 1e-6
"""Shorter intervals give no rate: two reads that close say nothing about a rate,
and dividing by a denormal would make an infinite one."""
WRAP32 = 1 << 32
WRAP64 = 1 << 64

# Field order of a counters tuple: the kernel's own rtnl_link_stats64 order, so the
# sampler can keep the tuple struct.unpack_from returns as is.
FIELDS = (
    "rx_packets",
    "tx_packets",
    "rx_bytes",
    "tx_bytes",
    "rx_errors",
    "tx_errors",
    "rx_dropped",
    "tx_dropped",
)
NFIELDS = len(FIELDS)

CounterTuple = tuple[int, int, int, int, int, int, int, int]


def counter_delta(prev: int, cur: int) -> int | None:
    """How far one counter moved; None when the move can only be a reset.

    >>> counter_delta(10, 15)
    5
    >>> counter_delta(2**32 - 10, 5)  # 32-bit wrap
    15
    >>> counter_delta(1000, 10) is None  # reset
    True
    """
    if cur >= prev:
        return cur - prev
    if prev < WRAP32 and cur < WRAP32:
        wrapped = cur + WRAP32 - prev
        return wrapped if wrapped < WRAP32 // 2 else None
    wrapped = cur + WRAP64 - prev
    return wrapped if 0 <= wrapped < WRAP64 // 2 else None


def deltas(prev: Sequence[int], cur: Sequence[int]) -> tuple[list[int], bool]:
    """Deltas of all counters of one interface and whether it was a reset.

    On a reset all deltas are zero: the interval is lost rather than guessed.
    """
    if all(c >= p for p, c in zip(prev, cur, strict=True)):  # the common case
        return [c - p for p, c in zip(prev, cur, strict=True)], False
    out: list[int] = []
    decreased = 0
    reset = False
    for p, c in zip(prev, cur, strict=True):
        if c < p:
            decreased += 1
        d = counter_delta(p, c)
        if d is None:
            reset = True
            d = 0
        out.append(d)
    if reset or decreased > 1:
        return [0] * len(out), True
    return out, False


def rate_from_deltas(d: Sequence[int], seconds: float) -> Rate:
    """A :class:`Rate` from counter deltas in :data:`FIELDS` order over ``seconds``."""
    if seconds < MIN_INTERVAL:
        return ZERO
    inv = 1.0 / seconds
    return Rate(
        rx_bps=d[2] * 8 * inv,
        tx_bps=d[3] * 8 * inv,
        rx_pps=d[0] * inv,
        tx_pps=d[1] * inv,
        rx_drops=d[6] * inv,
        tx_drops=d[7] * inv,
        rx_errors=d[4] * inv,
        tx_errors=d[5] * inv,
    )


def rate(prev: Sequence[int], cur: Sequence[int], seconds: float) -> tuple[Rate, bool]:
    """Rate of one interface between two samples; the flag says it was a reset."""
    d, was_reset = deltas(prev, cur)
    return rate_from_deltas(d, seconds), was_reset


def swap(r: Rate) -> Rate:
    """The same traffic seen from the other end of a cable (rx <-> tx)."""
    return Rate(
        rx_bps=r.tx_bps,
        tx_bps=r.rx_bps,
        rx_pps=r.tx_pps,
        tx_pps=r.rx_pps,
        rx_drops=r.tx_drops,
        tx_drops=r.rx_drops,
        rx_errors=r.tx_errors,
        tx_errors=r.rx_errors,
    )


def rate_to_dict(r: Rate) -> dict[str, float]:
    """JSON-ready form of a rate (bits/s and counts/s, rounded to 0.001)."""
    return {
        "rx_bps": round(r.rx_bps, 3),
        "tx_bps": round(r.tx_bps, 3),
        "rx_pps": round(r.rx_pps, 3),
        "tx_pps": round(r.tx_pps, 3),
        "rx_drops": round(r.rx_drops, 3),
        "tx_drops": round(r.tx_drops, 3),
        "rx_errors": round(r.rx_errors, 3),
        "tx_errors": round(r.tx_errors, 3),
    }


def rate_max(a: Rate, b: Rate) -> Rate:
    """Field-wise maximum (peak hold)."""
    return Rate(
        max(a.rx_bps, b.rx_bps),
        max(a.tx_bps, b.tx_bps),
        max(a.rx_pps, b.rx_pps),
        max(a.tx_pps, b.tx_pps),
        max(a.rx_drops, b.rx_drops),
        max(a.tx_drops, b.tx_drops),
        max(a.rx_errors, b.rx_errors),
        max(a.tx_errors, b.tx_errors),
    )
