"""``netlens_doctor_findings{severity}``: the doctor's findings, counted for Prometheus.

The exporter asks for the counts on every sample (once a second), but a doctor run
on a large host takes up to a second and enters namespaces for its live facts, so
:class:`DoctorCounts` never runs it on the sampler's thread: it starts a run in a
thread of its own when the structure changed (a new snapshot object) or the last
run is older than ``every`` seconds, and answers with the counts of the last
finished run meanwhile. Before the first run has finished it answers None, and
the family is left out (the exporter does not invent zeros for checks it has not
run).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from netlens.analysis.findings import Report
from netlens.model.types import Snapshot

RunFn = Callable[[Snapshot], Report]


def _live_report(snapshot: Snapshot) -> Report:
    from netlens.analysis.doctor import report_for

    return report_for(snapshot, live=True)


class DoctorCounts:
    """A :data:`netlens.exporter.hostmetrics.FindingsHook` that never blocks.

    ``run`` is the doctor (the live one by default; tests pass one of their own),
    ``every`` the most seconds a count may age on an unchanged structure (the live
    facts, conntrack and neighbour tables, move without a structure change).
    """

    def __init__(self, run: RunFn = _live_report, every: float = 60.0) -> None:
        self.run = run
        self.every = every
        self.runs = 0  # finished runs (the tests and the curious read it)
        self.failures = 0
        self._lock = threading.Lock()
        self._counts: dict[str, int] | None = None
        self._for: Snapshot | None = None  # the snapshot the running/last run is about
        self._started = 0.0
        self._thread: threading.Thread | None = None

    def __call__(self, snap: Snapshot) -> Mapping[str, int] | None:
        with self._lock:
            busy = self._thread is not None and self._thread.is_alive()
            due = snap is not self._for or time.monotonic() - self._started >= self.every
            if due and not busy:
                self._for, self._started = snap, time.monotonic()
                self._thread = threading.Thread(
                    target=self._work, args=(snap,), name="netlens-doctor", daemon=True
                )
                self._thread.start()
            return self._counts

    def _work(self, snap: Snapshot) -> None:
        try:
            counts = self.run(snap).counts()
        except Exception:  # a failed run keeps the last counts; the next one retries
            with self._lock:
                self.failures += 1
            return
        with self._lock:
            self._counts = counts
            self.runs += 1

    def wait(self, timeout: float) -> bool:
        """Wait for the run in progress (tests); True when none is left running."""
        t = self._thread
        if t is not None:
            t.join(timeout)
        return t is None or not t.is_alive()
