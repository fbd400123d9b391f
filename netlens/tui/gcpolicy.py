"""Keep CPython's full garbage collections off the key-press path.

With 1000 containers the dashboard holds ~150k tracked objects (snapshot, index,
widgets, history). Every automatic full (generation 2) collection walks all of
them: 100-300 ms on this machine kind, several times a minute, and whichever key
press it lands on feels stuck. Measured in the TUI bench: 7 full collections in
10 s, up to 295 ms each; they alone made the key-to-repaint p95 miss 100 ms.

The long-lived objects are moved to the permanent generation (:func:`gc.freeze`),
which automatic collections never walk, so those stay proportional to what was
allocated since. Freezing is O(1). Young cycles are collected first (a gen-1
collection, a few ms) so that garbage is not frozen with the live data. Cycles
that only become garbage after being frozen (an old index, a closed screen) are
reclaimed by a full unfreeze-collect-freeze: when the structure changed (the app
is redrawing anyway then) at most once per ``reclaim_every`` seconds, otherwise
once per ``idle_reclaim_every`` seconds, so one ~150 ms pause every ten minutes
replaces several a minute.
"""

from __future__ import annotations

import gc
import time


class GcPolicy:
    """``settle()`` after a tick or every few seconds; ``structure_changed()`` on a new index."""

    def __init__(
        self,
        settle_every: float = 5.0,
        reclaim_every: float = 60.0,
        idle_reclaim_every: float = 600.0,
    ) -> None:
        self.settle_every = settle_every
        self.reclaim_every = reclaim_every
        self.idle_reclaim_every = idle_reclaim_every
        self._last_settle = 0.0
        self._last_reclaim = time.monotonic()
        self.reclaims = 0

    def settle(self, force: bool = False) -> None:
        """Collect young cycles, then freeze whatever survived (rate-limited)."""
        now = time.monotonic()
        if not force and now - self._last_settle < self.settle_every:
            return
        self._last_settle = now
        if now - self._last_reclaim >= self.idle_reclaim_every:
            self._reclaim(now)
        else:
            gc.collect(1)
        gc.freeze()

    def structure_changed(self) -> None:
        """A new index replaced the old one: reclaim frozen cycles now and then."""
        now = time.monotonic()
        if now - self._last_reclaim >= self.reclaim_every:
            self._reclaim(now)
        self.settle(force=True)

    def _reclaim(self, now: float) -> None:
        self._last_reclaim = now
        self.reclaims += 1
        gc.unfreeze()
        gc.collect()

    @staticmethod
    def release() -> None:
        """Give frozen objects back to the collector (the app is exiting)."""
        gc.unfreeze()
