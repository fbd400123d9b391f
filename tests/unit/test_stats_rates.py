"""Rate maths: wraps, resets and intervals never give a spike or a negative rate."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netlens.stats.rates import (
    FIELDS,
    WRAP32,
    WRAP64,
    counter_delta,
    deltas,
    rate,
    rate_from_deltas,
    rate_max,
    rate_to_dict,
    swap,
)
from netlens.stats.types import ZERO, Rate

pytestmark = pytest.mark.unit

u64 = st.integers(min_value=0, max_value=WRAP64 - 1)
counters8 = st.lists(u64, min_size=8, max_size=8)
BYTES_RX = FIELDS.index("rx_bytes")
BYTES_TX = FIELDS.index("tx_bytes")


@settings(deadline=None)  # a shared CI machine must not make these flaky
@given(u64, st.integers(min_value=0, max_value=2**40))
def test_growth_is_the_difference(prev: int, step: int) -> None:
    cur = prev + step
    if cur < WRAP64:
        assert counter_delta(prev, cur) == step


@settings(deadline=None)  # a shared CI machine must not make these flaky
@given(st.integers(min_value=1, max_value=2**40), st.integers(min_value=0, max_value=2**40))
def test_wrap_at_2_64(before_wrap: int, after_wrap: int) -> None:
    assert counter_delta(WRAP64 - before_wrap, after_wrap) == before_wrap + after_wrap


@settings(deadline=None)  # a shared CI machine must not make these flaky
@given(st.integers(min_value=1, max_value=2**30), st.integers(min_value=0, max_value=2**30 - 1))
def test_wrap_at_2_32(before_wrap: int, after_wrap: int) -> None:
    assert counter_delta(WRAP32 - before_wrap, after_wrap) == before_wrap + after_wrap


@settings(deadline=None)  # a shared CI machine must not make these flaky
@given(st.integers(min_value=WRAP32, max_value=2**63 - 1), st.data())
def test_a_large_counter_going_down_is_a_reset(prev: int, data: st.DataObject) -> None:
    cur = data.draw(st.integers(min_value=0, max_value=prev - 1))
    assert counter_delta(prev, cur) is None


@settings(deadline=None)  # a shared CI machine must not make these flaky
@given(st.integers(min_value=0, max_value=2**31 - 1), st.data())
def test_a_small_32bit_counter_going_down_is_a_reset(prev: int, data: st.DataObject) -> None:
    if prev == 0:
        return
    cur = data.draw(st.integers(min_value=0, max_value=prev - 1))
    assert counter_delta(prev, cur) is None


@settings(deadline=None)  # a shared CI machine must not make these flaky
@given(counters8, counters8, st.floats(min_value=-10, max_value=10, allow_nan=False))
def test_rates_are_never_negative_nor_infinite(
    prev: list[int], cur: list[int], seconds: float
) -> None:
    r, _ = rate(prev, cur, seconds)
    for name in Rate.__slots__:
        v = getattr(r, name)
        assert v >= 0 and math.isfinite(v)


@settings(deadline=None)  # a shared CI machine must not make these flaky
@given(counters8, counters8)
def test_non_positive_or_denormal_interval_gives_zero(prev: list[int], cur: list[int]) -> None:
    assert rate(prev, cur, 0.0)[0] == ZERO
    assert rate(prev, cur, -1.0)[0] == ZERO
    assert rate(prev, cur, 5e-324)[0] == ZERO


@settings(deadline=None)  # a shared CI machine must not make these flaky
@given(counters8, st.data())
def test_reset_of_a_busy_interface_gives_no_spike(prev: list[int], data: st.DataObject) -> None:
    """An interface recreated between samples: bytes and packets drop together."""
    if prev[BYTES_RX] == 0 or prev[0] == 0:
        return
    cur = list(prev)
    cur[BYTES_RX] = data.draw(st.integers(0, prev[BYTES_RX] - 1))
    cur[0] = data.draw(st.integers(0, prev[0] - 1))  # rx_packets
    r, was_reset = rate(prev, cur, 1.0)
    assert was_reset
    assert r == ZERO


@settings(deadline=None)  # a shared CI machine must not make these flaky
@given(st.lists(st.integers(0, 2**40), min_size=8, max_size=8), st.floats(0.01, 100))
def test_rate_is_delta_over_time(d: list[int], seconds: float) -> None:
    r = rate_from_deltas(d, seconds)
    assert r.rx_bps == pytest.approx(d[BYTES_RX] * 8 / seconds)
    assert r.tx_bps == pytest.approx(d[BYTES_TX] * 8 / seconds)
    assert r.rx_pps == pytest.approx(d[FIELDS.index("rx_packets")] / seconds)
    assert r.tx_drops == pytest.approx(d[FIELDS.index("tx_dropped")] / seconds)
    assert r.rx_errors == pytest.approx(d[FIELDS.index("rx_errors")] / seconds)


def test_single_wrap_is_kept_but_two_decreases_mean_reset() -> None:
    prev = [10, 10, WRAP32 - 100, 50, 0, 0, 0, 0]
    cur = [20, 10, 400, 50, 0, 0, 0, 0]
    d, was_reset = deltas(prev, cur)
    assert not was_reset
    assert d[BYTES_RX] == 500
    cur2 = [5, 10, 400, 50, 0, 0, 0, 0]  # packets went down too: recreated
    d2, was_reset2 = deltas(prev, cur2)
    assert was_reset2 and d2 == [0] * 8


@settings(deadline=None)  # a shared CI machine must not make these flaky
@given(st.builds(Rate, *[st.floats(0, 1e12)] * 8))
def test_swap_is_an_involution_and_max_is_idempotent(r: Rate) -> None:
    assert swap(swap(r)) == r
    assert swap(r).rx_bps == r.tx_bps
    assert rate_max(r, r) == r
    assert rate_max(r, ZERO) == r


# --- every field, every counter order (mutation testing found these gaps) --------------
SIGNED_FIELDS = {  # Rate field -> (counter index, factor): bytes become bits
    "rx_bps": (FIELDS.index("rx_bytes"), 8),
    "tx_bps": (FIELDS.index("tx_bytes"), 8),
    "rx_pps": (FIELDS.index("rx_packets"), 1),
    "tx_pps": (FIELDS.index("tx_packets"), 1),
    "rx_drops": (FIELDS.index("rx_dropped"), 1),
    "tx_drops": (FIELDS.index("tx_dropped"), 1),
    "rx_errors": (FIELDS.index("rx_errors"), 1),
    "tx_errors": (FIELDS.index("tx_errors"), 1),
}
positions = st.integers(min_value=0, max_value=len(FIELDS) - 1)


def test_each_rate_field_reads_its_own_counter() -> None:
    """Distinct deltas per counter: a field computed from the wrong counter (tx_pps
    from rx packets, drops from errors) gives a different number."""
    d = [1, 2, 3, 5, 7, 11, 13, 17]  # FIELDS order, all different
    r = rate_from_deltas(d, 2.0)
    for name, (idx, factor) in SIGNED_FIELDS.items():
        assert getattr(r, name) == d[idx] * factor / 2.0, name


def test_an_interval_of_exactly_the_minimum_still_gives_a_rate() -> None:
    r = rate_from_deltas([0, 0, 1, 0, 0, 0, 0, 0], 1e-6)
    assert r.rx_bps == pytest.approx(8e6)


@settings(deadline=None)  # a shared CI machine must not make these flaky
@given(counters8, st.lists(st.integers(0, 2**40), min_size=8, max_size=8), st.floats(0.01, 100))
def test_growing_counters_give_exact_deltas_in_any_order(
    prev: list[int], steps: list[int], seconds: float
) -> None:
    """No counter went down: every delta is exact, whichever counters moved."""
    cur = [min(p + s, WRAP64 - 1) for p, s in zip(prev, steps, strict=True)]
    d, was_reset = deltas(prev, cur)
    assert not was_reset
    assert d == [c - p for p, c in zip(prev, cur, strict=True)]
    r, _ = rate(prev, cur, seconds)
    for name, (idx, factor) in SIGNED_FIELDS.items():
        assert getattr(r, name) == pytest.approx(d[idx] * factor / seconds), name


@settings(deadline=None)  # a shared CI machine must not make these flaky
@given(positions, st.integers(1, 2**30), st.integers(0, 2**30 - 1), counters8)
def test_one_32bit_wrap_on_any_counter_is_kept(
    at: int, before: int, after: int, base: list[int]
) -> None:
    """A single wrap, on whichever counter: its delta is counted, the rest move normally."""
    prev = [min(b, WRAP32 - 1) // 2 for b in base]
    cur = list(prev)
    prev[at] = WRAP32 - before
    cur[at] = after
    d, was_reset = deltas(prev, cur)
    assert not was_reset
    assert d[at] == before + after
    assert all(d[i] == 0 for i in range(len(FIELDS)) if i != at)


@settings(deadline=None)  # a shared CI machine must not make these flaky
@given(st.sets(positions, min_size=2), st.integers(1, 2**20), st.integers(0, 2**20))
def test_two_or_more_counters_going_down_is_a_reset_even_if_each_could_wrap(
    down: set[int], before: int, after: int
) -> None:
    """Each decrease alone would be a plausible 32-bit wrap; two or more in one
    interval mean the interface was recreated: all zero, flagged as a reset."""
    prev = [1000] * len(FIELDS)
    cur = [2000] * len(FIELDS)
    for i in down:
        prev[i] = WRAP32 - before
        cur[i] = after
    d, was_reset = deltas(prev, cur)
    assert was_reset
    assert d == [0] * len(FIELDS)
    assert rate(prev, cur, 1.0) == (ZERO, True)


@settings(deadline=None)  # a shared CI machine must not make these flaky
@given(positions, st.integers(WRAP32, WRAP64 - 1), st.data())
def test_one_large_counter_going_down_is_a_reset_on_any_counter(
    at: int, prev_at: int, data: st.DataObject
) -> None:
    """A 64-bit counter that fell back by less than half its range (so a wrap would be
    at least half the range) is a reset, even alone."""
    cur_at = data.draw(st.integers(max(0, prev_at - WRAP64 // 2), prev_at - 1))
    prev = [5] * len(FIELDS)
    cur = [9] * len(FIELDS)
    prev[at], cur[at] = prev_at, cur_at
    d, was_reset = deltas(prev, cur)
    assert was_reset and d == [0] * len(FIELDS)


def test_wrap_distance_limits_are_half_the_range() -> None:
    """Exactly half the range is too far for a wrap (a reset); one less is a wrap."""
    half32 = WRAP32 // 2
    assert counter_delta(WRAP32 - 1, half32 - 2) == half32 - 1
    assert counter_delta(WRAP32 - 1, half32 - 1) is None
    half64 = WRAP64 // 2
    assert counter_delta(WRAP64 - 1, half64 - 2) == half64 - 1
    assert counter_delta(WRAP64 - 1, half64 - 1) is None
    # a 32-bit sized previous value falling to a 64-bit sized one never happens by
    # growth: cur > prev is growth whatever the sizes
    assert counter_delta(WRAP32 - 1, WRAP32) == 1
    # prev just above the 32-bit range wraps with the 64-bit arithmetic
    assert counter_delta(WRAP32, WRAP32 - 1) is None
    assert counter_delta(WRAP64 - 3, 2) == 5
    # a counter that stayed is no move and no reset
    assert counter_delta(7, 7) == 0
    assert deltas([7] * 8, [7] * 8) == ([0] * 8, False)


def test_rate_to_dict_keeps_every_field_rounded() -> None:
    """Every field, to three decimals (each value has more, and differs per field)."""
    r = Rate(*(k + 0.12345 for k in range(8)))
    assert rate_to_dict(r) == {
        "rx_bps": 0.123,
        "tx_bps": 1.123,
        "rx_pps": 2.123,
        "tx_pps": 3.123,
        "rx_drops": 4.123,
        "tx_drops": 5.123,
        "rx_errors": 6.123,
        "tx_errors": 7.123,
    }
    assert list(rate_to_dict(r)) == list(Rate.__slots__)  # the JSON keeps field order


@settings(deadline=None)  # a shared CI machine must not make these flaky
@given(st.builds(Rate, *[st.floats(0, 1e12)] * 8), st.builds(Rate, *[st.floats(0, 1e12)] * 8))
def test_swap_and_max_are_field_wise(a: Rate, b: Rate) -> None:
    s = swap(a)
    for name in Rate.__slots__:
        other = name.replace("rx_", "@").replace("tx_", "rx_").replace("@", "tx_")
        assert getattr(s, name) == getattr(a, other)
        assert getattr(rate_max(a, b), name) == max(getattr(a, name), getattr(b, name))


def test_counter_tuples_of_different_lengths_are_refused() -> None:
    """A sampler bug (a short counters tuple) must fail loudly, not pair counters up
    wrongly; also when the first counter already went down (the slow path)."""
    with pytest.raises(ValueError):
        deltas([1, 2], [3])
    with pytest.raises(ValueError):
        deltas([5, 1], [3])
