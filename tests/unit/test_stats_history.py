"""History rings: series, iftop averages, peak hold and freeing idle keys."""

from __future__ import annotations

import pytest

from netlens.stats.history import History
from netlens.stats.types import ZERO, Rate, StatsFrame

pytestmark = pytest.mark.unit


def frame(t: float, dt: float = 1.0, **containers: Rate) -> StatsFrame:
    return StatsFrame(taken_at=t, interval=dt, containers=dict(containers))


def test_series_pads_with_zeros_and_keeps_order() -> None:
    h = History(capacity=5)
    h.record(frame(1, c=ZERO))
    h.record(frame(2, c=Rate(rx_bps=10, tx_bps=1)))
    h.record(frame(3, c=ZERO))
    h.record(frame(4, c=Rate(rx_bps=30)))
    assert h.series("c", "total_bps") == [0.0, 11.0, 0.0, 30.0]
    assert h.series("c", "rx_bps", n=2) == [0.0, 30.0]
    assert h.series("nobody", n=3) == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError):
        h.series("c", "bogus")


def test_ring_wraps_and_stale_slots_read_zero() -> None:
    h = History(capacity=3)
    for t in range(1, 4):
        h.record(frame(t, c=Rate(rx_bps=float(t))))
    for t in range(4, 6):
        h.record(frame(t, c=ZERO))  # idle: nothing written, the old lap must not show
    h.record(frame(6, c=Rate(rx_bps=6.0)))
    assert h.series("c", "rx_bps") == [0.0, 0.0, 6.0]


def test_averages_are_time_weighted_over_2_10_40_seconds() -> None:
    h = History(capacity=100)
    for t in range(1, 51):  # 50 s: 1000 b/s, except the last 5 s at 6000 b/s
        v = 6000.0 if t > 45 else 1000.0
        h.record(frame(t, c=Rate(tx_bps=v)))
    a2, a10, a40 = h.averages("c")
    assert a2 == pytest.approx(6000)
    assert a10 == pytest.approx((5 * 6000 + 5 * 1000) / 10)
    assert a40 == pytest.approx((5 * 6000 + 35 * 1000) / 40)


def test_averages_with_irregular_intervals() -> None:
    h = History(capacity=10)
    h.record(frame(1, dt=1.5, c=Rate(rx_bps=100)))
    h.record(frame(2, dt=0.5, c=Rate(rx_bps=300)))
    a2, _, _ = h.averages("c")
    assert a2 == pytest.approx((0.5 * 300 + 1.5 * 100) / 2)


def test_peak_holds_fieldwise_maximum() -> None:
    h = History(capacity=10)
    h.record(frame(1, c=Rate(rx_bps=5, tx_bps=1, rx_drops=3)))
    h.record(frame(2, c=Rate(rx_bps=1, tx_bps=9)))
    p = h.peak("c")
    assert (p.rx_bps, p.tx_bps, p.rx_drops) == (5, 9, 3)
    assert h.peak("none") == ZERO


def test_idle_keys_are_freed_after_a_full_ring_and_gone_keys_at_once() -> None:
    h = History(capacity=4)
    h.record(frame(1, idle=Rate(rx_bps=1), busy=Rate(rx_bps=1), gone=Rate(tx_bps=5)))
    h.record(frame(2, idle=ZERO, busy=Rate(rx_bps=1)))
    assert sorted(h.keys("containers")) == ["busy", "idle"]  # `gone` left the frame
    assert h.series("gone", n=2) == [0.0, 0.0]
    for t in range(3, 10):
        h.record(frame(t, idle=ZERO, busy=Rate(rx_bps=1)))
    assert h.keys("containers") == ["busy"]


def test_sections_disambiguate_shared_keys() -> None:
    h = History(capacity=4, sections=("bridges", "interfaces"))
    f = StatsFrame(
        taken_at=1, interval=1, bridges={"k": Rate(rx_bps=100)}, interfaces={"k": Rate(rx_bps=1)}
    )
    h.record(f)
    assert h.series("k", "rx_bps") == [100.0]  # bridges before interfaces
    assert h.series("k", "rx_bps", section="interfaces") == [1.0]
