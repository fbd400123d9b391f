"""Ring buffers of past rates: sparklines, iftop-style 2 s / 10 s / 40 s averages, peaks.

Memory is the constraint: a host with 1000 busy containers has ~5000 keys, and
600 samples of 8 Python floats per key would be hundreds of megabytes. So:

- one shared ring holds each sample's time and measured interval; per key only
  a compact bytearray of six float32 fields per slot (rx/tx bit/s, rx/tx
  packets/s, drops/s, errors/s: 24 bytes a slot, 14 KiB a key at 600 slots);
- a key's ring is allocated on its first non-zero rate and only non-zero rates
  are written (idle keys cost nothing, slots after a key's last write read as
  zero); a ring is freed as soon as its key is missing from a frame (the object
  is gone) or once it has been zero for a whole ring length, so containers
  that come and go leave nothing behind;
- peaks are kept exact, as a :class:`Rate` per key (field-wise maximum).

Keys are per section (``containers``, ``bridges``, ``veth_pairs``, ``uplinks``,
``vrfs``, ``server`` and, when asked for, ``interfaces``) because a bridge's
aggregate and its own interface share one key. Lookups without a section try them
in that order. Raw interfaces are off by default: they double the cost of a
sample on a large host and views draw the aggregates (an uplink is in
``uplinks``, a veth in ``veth_pairs``).
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterable

from netlens.stats.types import ZERO, Rate, StatsFrame

SECTIONS = ("containers", "bridges", "veth_pairs", "uplinks", "vrfs", "interfaces", "server")
DEFAULT_SECTIONS = ("containers", "bridges", "veth_pairs", "uplinks", "vrfs", "server")
SERVER_KEY = "server"
_W = 6  # stored fields per slot
_ATTRS = {
    "rx_bps": (0,),
    "tx_bps": (1,),
    "total_bps": (0, 1),
    "rx_pps": (2,),
    "tx_pps": (3,),
    "total_pps": (2, 3),
    "drops": (4,),
    "errors": (5,),
}
AVERAGE_WINDOWS = (2.0, 10.0, 40.0)


_SLOT = struct.Struct(f"={_W}f")
_ZERO_SLOT = bytes(_SLOT.size)


class _Track:
    __slots__ = ("buf", "last", "peak")

    def __init__(self, capacity: int) -> None:
        self.buf = bytearray(_SLOT.size * capacity)
        self.last = -1  # sample index of the last non-zero write
        self.peak = [0.0] * 8  # field-wise maxima in Rate field order


class History:
    """Per-key rings of the last ``capacity`` samples."""

    def __init__(self, capacity: int = 600, sections: Iterable[str] = DEFAULT_SECTIONS) -> None:
        if capacity < 1:
            raise ValueError("history capacity must be at least 1")
        self.capacity = capacity
        self.sections = tuple(sections)
        self._times = array("d", bytes(8 * capacity))
        self._dts = array("d", bytes(8 * capacity))
        self._n = 0  # samples recorded so far
        self._tracks: dict[str, dict[str, _Track]] = {s: {} for s in self.sections}

    # --- writing -------------------------------------------------------------------
    def record(self, frame: StatsFrame) -> None:
        """Append one frame. Called from the sampling thread only."""
        idx = self._n
        slot = idx % self.capacity
        self._times[slot] = frame.taken_at
        self._dts[slot] = frame.interval
        for section in self.sections:
            data: dict[str, Rate] = (
                {SERVER_KEY: frame.server} if section == SERVER_KEY else getattr(frame, section)
            )
            tracks = self._tracks[section]
            if len(tracks) > len(data) or not tracks.keys() <= data.keys():
                # the object is gone (a removed container, a deleted link): so is
                # its history, at once, so that churn leaves no memory behind
                for key in tracks.keys() - data.keys():
                    del tracks[key]
            off = slot * _SLOT.size
            pack = _SLOT.pack_into
            for key, r in data.items():
                if r is ZERO:
                    continue
                rb, tb, rp, tp = r.rx_bps, r.tx_bps, r.rx_pps, r.tx_pps
                rd, td, re, te = r.rx_drops, r.tx_drops, r.rx_errors, r.tx_errors
                if not (rb or tb or rp or tp or rd or td or re or te):
                    continue  # slots after a track's last write read as zero
                tr = tracks.get(key)
                if tr is None:
                    tr = tracks[key] = _Track(self.capacity)  # fresh: all zeros
                elif tr.last < idx - 1:
                    self._clear_gap(tr, idx)
                pack(tr.buf, off, rb, tb, rp, tp, rd + td, re + te)
                tr.last = idx
                pk = tr.peak
                for i, v in enumerate((rb, tb, rp, tp, rd, td, re, te)):
                    if v > pk[i]:
                        pk[i] = v
        self._n = idx + 1
        if slot == self.capacity - 1:
            self._expire()

    def _clear_gap(self, tr: _Track, idx: int) -> None:
        """Zero the slots after the track's last write up to ``idx`` (exclusive):
        they hold values from an earlier lap of the ring."""
        start = max(tr.last + 1, idx - self.capacity + 1, 0)
        size = _SLOT.size
        for i in range(start, idx):
            b = (i % self.capacity) * size
            tr.buf[b : b + size] = _ZERO_SLOT

    def _expire(self) -> None:
        """Free tracks with nothing non-zero left in the ring (and their peaks)."""
        horizon = self._n - self.capacity
        for section in self.sections:
            tracks = self._tracks[section]
            for key in [k for k, t in tracks.items() if t.last < horizon]:
                del tracks[key]

    # --- reading -------------------------------------------------------------------
    def _find(self, key: str, section: str | None) -> tuple[str, _Track | None]:
        if section is not None:
            return section, self._tracks.get(section, {}).get(key)
        for s in self.sections:
            tr = self._tracks[s].get(key)
            if tr is not None:
                return s, tr
        return "", None

    def __len__(self) -> int:
        return min(self._n, self.capacity)

    def keys(self, section: str) -> list[str]:
        """Keys of a section that currently hold history (had traffic recently)."""
        return list(self._tracks.get(section, {}))

    def series(
        self, key: str, attr: str = "total_bps", n: int = 300, section: str | None = None
    ) -> list[float]:
        """The last ``n`` values (oldest first) of one attribute; zeros where idle.

        Shorter than ``n`` only while fewer samples exist.
        """
        cols = _ATTRS.get(attr)
        if cols is None:
            raise ValueError(f"unknown attribute {attr!r}; one of {', '.join(_ATTRS)}")
        avail = len(self)
        n = max(0, min(n, avail))
        _, tr = self._find(key, section)
        if tr is None or n == 0:
            return [0.0] * n
        out: list[float] = []
        last = tr.last
        unpack = _SLOT.unpack_from
        size = _SLOT.size
        for i in range(self._n - n, self._n):
            if i > last:
                out.append(0.0)  # nothing written since: idle or absent
            else:
                vals = unpack(tr.buf, (i % self.capacity) * size)
                out.append(float(sum(vals[c] for c in cols)))
        return out

    def averages(
        self, key: str, section: str | None = None, attr: str = "total_bps"
    ) -> tuple[float, float, float]:
        """Time-weighted mean of ``attr`` over the last 2 s, 10 s and 40 s (as iftop)."""
        cols = _ATTRS.get(attr)
        if cols is None:
            raise ValueError(f"unknown attribute {attr!r}")
        _, tr = self._find(key, section)
        if tr is None or self._n == 0:
            return (0.0, 0.0, 0.0)
        results: list[float] = []
        for window in AVERAGE_WINDOWS:
            acc = 0.0
            span = 0.0
            for i in range(self._n - 1, max(self._n - self.capacity, 0) - 1, -1):
                slot = i % self.capacity
                dt = self._dts[slot]
                if dt <= 0:
                    continue
                v = 0.0
                if i <= tr.last:
                    vals = _SLOT.unpack_from(tr.buf, slot * _SLOT.size)
                    v = float(sum(vals[c] for c in cols))
                take = min(dt, window - span)
                acc += v * take
                span += take
                if span >= window:
                    break
            results.append(acc / span if span > 0 else 0.0)
        return (results[0], results[1], results[2])

    def peak(self, key: str, section: str | None = None) -> Rate:
        """Field-wise maximum seen while the key had history (peak hold)."""
        _, tr = self._find(key, section)
        if tr is None:
            return ZERO
        return Rate(*tr.peak)
