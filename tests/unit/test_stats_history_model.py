"""History against a naive model: every frame kept in a list, everything recomputed.

The ring buffer is built for memory (float32 slots, one shared clock ring, tracks
freed when idle or gone); the model below keeps every frame and answers each
question the slow, obvious way. Any sequence of frames (keys coming, going and
idling, irregular intervals, rings that wrap) must give the same series,
averages, peaks and live keys. Values are small integers, exact in float32.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netlens.stats.history import AVERAGE_WINDOWS, History
from netlens.stats.types import ZERO, Rate, StatsFrame

pytestmark = pytest.mark.unit

KEYS = ("a", "b")
ATTRS = {  # what each series attribute adds up, by Rate field
    "rx_bps": ("rx_bps",),
    "tx_bps": ("tx_bps",),
    "total_bps": ("rx_bps", "tx_bps"),
    "rx_pps": ("rx_pps",),
    "tx_pps": ("tx_pps",),
    "total_pps": ("rx_pps", "tx_pps"),
    "drops": ("rx_drops", "tx_drops"),
    "errors": ("rx_errors", "tx_errors"),
}
small = st.integers(0, 3).map(float)
rates = st.builds(Rate, small, small, small, small, small, small, small, small)
cell = st.none() | st.just(ZERO) | rates  # None: the key is not in the frame
frames = st.lists(
    st.tuples(st.sampled_from([0.0, 0.5, 1.0, 2.0, 7.0]), st.tuples(cell, cell)),
    min_size=1,
    max_size=24,
)

Frame = tuple[float, tuple[Rate | None, Rate | None]]


def nonzero(r: Rate | None) -> bool:
    return r is not None and any(getattr(r, f) for f in Rate.__slots__)


def live_since(seq: list[Frame], k: int, capacity: int) -> int | None:
    """Index of the frame where key ``k``'s current track began, None when it has none.

    A track begins at a non-zero rate when there is none; it ends when the key is
    missing from a frame, or at the end of a ring lap that saw no non-zero rate of
    it for a whole ring length."""
    start: int | None = None
    last = -1
    for i, (_dt, cells) in enumerate(seq):
        r = cells[k]
        if r is None:
            start = None
        elif nonzero(r):
            if start is None:
                start = i
            last = i
        if i % capacity == capacity - 1 and start is not None and last < i + 1 - capacity:
            start = None
    return start


def value(seq: list[Frame], k: int, i: int, attr: str, capacity: int) -> float:
    """What frame ``i`` contributes to key ``k``'s series: its rate if the track that
    holds it is still the key's track now."""
    start = live_since(seq, k, capacity)
    r = seq[i][1][k]
    if start is None or i < start or r is None:
        return 0.0
    return float(sum(getattr(r, f) for f in ATTRS[attr]))


def build(seq: list[Frame], capacity: int) -> History:
    h = History(capacity=capacity)
    for t, (dt, cells) in enumerate(seq):
        present = {KEYS[k]: r for k, r in enumerate(cells) if r is not None}
        h.record(StatsFrame(taken_at=float(t), interval=dt, containers=present))
    return h


@settings(deadline=None)
@given(frames, st.integers(1, 8), st.sampled_from(sorted(ATTRS)), st.integers(0, 30))
def test_series_matches_the_model(seq: list[Frame], capacity: int, attr: str, n: int) -> None:
    h = build(seq, capacity)
    total = len(seq)
    assert len(h) == min(total, capacity)
    want_n = min(n, total, capacity)
    for k, key in enumerate(KEYS):
        want = [value(seq, k, i, attr, capacity) for i in range(total - want_n, total)]
        assert h.series(key, attr, n=n) == want, key
        assert h.series(key, attr, n=n, section="containers") == want
        assert h.series(key, attr, n=n, section="bridges") == [0.0] * want_n


@settings(deadline=None)
@given(frames, st.integers(1, 8), st.sampled_from(sorted(ATTRS)))
def test_averages_match_the_model(seq: list[Frame], capacity: int, attr: str) -> None:
    """Time-weighted over the newest intervals that fill each window (iftop's 2/10/40 s);
    zero-length intervals weigh nothing; the ring's oldest slot bounds the look-back."""
    h = build(seq, capacity)
    total = len(seq)
    for k, key in enumerate(KEYS):
        want = []
        for window in AVERAGE_WINDOWS:
            acc = span = 0.0
            for i in range(total - 1, max(total - capacity, 0) - 1, -1):
                dt = seq[i][0]
                if dt <= 0:
                    continue
                take = min(dt, window - span)
                acc += value(seq, k, i, attr, capacity) * take
                span += take
                if span >= window:
                    break
            want.append(acc / span if span > 0 else 0.0)
        if live_since(seq, k, capacity) is None:
            want = [0.0, 0.0, 0.0]
        assert h.averages(key, attr=attr) == pytest.approx(tuple(want)), key


@settings(deadline=None)
@given(frames, st.integers(1, 8))
def test_peaks_and_live_keys_match_the_model(seq: list[Frame], capacity: int) -> None:
    h = build(seq, capacity)
    live = []
    for k, key in enumerate(KEYS):
        start = live_since(seq, k, capacity)
        if start is None:
            assert h.peak(key) == ZERO
            continue
        live.append(key)
        held = [r for _dt, cells in seq[start:] if (r := cells[k]) is not None]
        want = Rate(*(max(getattr(r, f) for r in held) for f in Rate.__slots__))
        assert h.peak(key) == want
        assert h.peak(key, section="containers") == want
    assert sorted(h.keys("containers")) == live
    assert h.keys("nowhere") == []


def test_unknown_attribute_and_bad_capacity_are_refused() -> None:
    h = History(capacity=2)
    with pytest.raises(ValueError, match="unknown attribute 'bogus'"):
        h.series("a", "bogus")
    with pytest.raises(ValueError, match="unknown attribute 'bogus'"):
        h.averages("a", attr="bogus")
    with pytest.raises(ValueError, match="at least 1"):
        History(capacity=0)
    assert History(capacity=1).capacity == 1
    assert h.averages("a") == (0.0, 0.0, 0.0)  # nothing recorded yet


def test_every_default_section_is_recorded_and_found_in_order() -> None:
    h = History(capacity=3)
    one = {"k": Rate(rx_bps=1.0)}
    h.record(
        StatsFrame(
            taken_at=1.0,
            interval=1.0,
            containers={"c": Rate(rx_bps=2.0)},
            bridges={"k": Rate(rx_bps=3.0)},
            veth_pairs={"v": Rate(tx_bps=4.0)},
            uplinks={"u": Rate(rx_pps=5.0)},
            vrfs={"k": Rate(rx_bps=6.0)},
            interfaces=one,  # not a default section: not recorded
            server=Rate(tx_pps=7.0),
        )
    )
    assert h.series("c", "rx_bps") == [2.0]
    assert h.series("k", "rx_bps") == [3.0]  # bridges come before vrfs
    assert h.series("k", "rx_bps", section="vrfs") == [6.0]
    assert h.series("v", "tx_bps") == [4.0]
    assert h.series("u", "rx_pps") == [5.0]
    assert h.series("server", "tx_pps") == [7.0]
    assert h.series("k", "rx_bps", section="interfaces") == [0.0]
    assert h.keys("interfaces") == []


# --- the cases a random draw rarely makes ------------------------------------------------------
def rec(h: History, t: float, dt: float = 1.0, section: str = "containers", **rates: Rate) -> None:
    h.record(StatsFrame(taken_at=t, interval=dt, **{section: dict(rates)}))  # type: ignore[arg-type]


@pytest.mark.parametrize("field", Rate.__slots__)
def test_a_rate_with_only_one_field_set_is_recorded(field: str) -> None:
    h = History(capacity=4)
    rec(h, 1, a=Rate(**{field: 2.0}))
    attr = {"rx_drops": "drops", "tx_drops": "drops", "rx_errors": "errors", "tx_errors": "errors"}
    assert h.series("a", attr.get(field, field)) == [2.0]
    assert getattr(h.peak("a"), field) == 2.0


def test_an_idle_key_does_not_stop_the_keys_after_it() -> None:
    h = History(capacity=4)
    rec(h, 1, idle=ZERO, quiet=Rate(), busy=Rate(rx_bps=3.0))
    assert h.series("busy", "rx_bps") == [3.0] and h.keys("containers") == ["busy"]


def test_a_one_sample_gap_does_not_show_the_previous_lap() -> None:
    """Ring of 3: written at t0..t3, idle at t4 (its slot still holds t1's value from
    the previous lap), written at t5: t4 must read zero."""
    h = History(capacity=3)
    for t in range(4):
        rec(h, t, a=Rate(rx_bps=float(10 + t)))
    rec(h, 4, a=ZERO)
    rec(h, 5, a=Rate(rx_bps=15.0))
    assert h.series("a", "rx_bps") == [13.0, 0.0, 15.0]


def test_idle_tracks_are_freed_only_at_the_end_of_a_lap() -> None:
    h = History(capacity=4)
    rec(h, 0, a=Rate(rx_bps=1.0))
    for t in range(1, 5):
        rec(h, t, a=ZERO)
    assert h.keys("containers") == ["a"]  # idle for 4 samples, but the lap ends at t=7
    assert h.peak("a").rx_bps == 1.0
    for t in range(5, 7):
        rec(h, t, a=ZERO)
    assert h.keys("containers") == ["a"]  # t=6: still one sample before the lap's end
    rec(h, 7, a=ZERO)
    assert h.keys("containers") == [] and h.peak("a") == ZERO


def test_averages_of_one_sample_and_of_intervals_of_zero_length() -> None:
    h = History(capacity=5)
    rec(h, 1, dt=4.0, a=Rate(tx_bps=8.0))
    assert h.averages("a") == (8.0, 8.0, 8.0)
    z = History(capacity=5)
    rec(z, 1, dt=0.0, a=Rate(tx_bps=8.0))
    rec(z, 2, dt=0.0, a=Rate(tx_bps=8.0))
    assert z.averages("a") == (0.0, 0.0, 0.0)  # no time passed: no average, no division


def test_averages_and_peaks_read_the_section_asked_for() -> None:
    h = History(capacity=5, sections=("bridges", "vrfs"))
    h.record(
        StatsFrame(
            taken_at=1, interval=1, bridges={"k": Rate(rx_bps=4.0)}, vrfs={"k": Rate(rx_bps=9.0)}
        )
    )
    assert h.averages("k", attr="rx_bps") == (4.0, 4.0, 4.0)  # bridges first
    assert h.averages("k", section="vrfs", attr="rx_bps") == (9.0, 9.0, 9.0)
    assert h.peak("k").rx_bps == 4.0 and h.peak("k", section="vrfs").rx_bps == 9.0


def test_defaults_are_600_samples_and_series_of_300() -> None:
    h = History()
    assert h.capacity == 600
    for t in range(650):
        rec(h, t, a=Rate(rx_bps=float(t)))
    assert len(h) == 600
    got = h.series("a", "rx_bps")
    assert len(got) == 300 and got[0] == 350.0 and got[-1] == 649.0


def test_unknown_attribute_names_the_known_ones() -> None:
    with pytest.raises(ValueError) as exc:
        History(capacity=2).series("a", "bogus")
    assert str(exc.value) == (
        "unknown attribute 'bogus'; one of rx_bps, tx_bps, total_bps, rx_pps, tx_pps, "
        "total_pps, drops, errors"
    )
    with pytest.raises(ValueError, match=r"^history capacity must be at least 1$"):
        History(capacity=0)
