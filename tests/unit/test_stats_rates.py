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
