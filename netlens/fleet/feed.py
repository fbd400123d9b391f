"""The live fleet for the dashboard: every server streaming in a thread of its own.

``netlens fleet --tui`` shows the fleet, opens a server's dashboard and comes
back, as often as the engineer likes. Those are separate Textual apps, one after
the other, each with its own event loop; the SSH connections must outlive them
(reconnecting 50 servers each time the engineer leaves a dashboard would cost the
first screen again). So :class:`FleetFeed` runs :func:`netlens.fleet.watch.watch_host`
for every server in an asyncio loop on a daemon thread, keeps each server's
latest result, and tells whoever listens that something changed.

Notices are coalesced: after one, the next comes only once the listener has read
the fleet (:meth:`FleetFeed.current`), so 50 servers sampling every second cost
the view one redraw per read, not 50 messages queued behind a slow frame. The
listener is called on the feed's thread; Textual's ``post_message`` is
thread-safe, which is all the view needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from netlens.fleet.config import HostSpec
from netlens.fleet.merge import ServerResult, fleet_document
from netlens.fleet.watch import watch_host

if TYPE_CHECKING:
    from netlens.model.types import Snapshot

STOP_WAIT = 10.0
"""Seconds :meth:`FleetFeed.stop` waits for the channels to close (each close is
bounded at 2 s in the client; this only guards against a wedged thread)."""


class FleetFeed:
    """``start()``, then ``current()`` whenever the listener says so; ``stop()`` always."""

    def __init__(
        self,
        specs: list[HostSpec],
        local_version: str,
        interval: float,
        ssh_config: list[str] | None,
    ) -> None:
        self.specs = specs
        self.local_version = local_version
        self.interval = interval
        self.ssh_config = ssh_config
        self._results = {
            s.alias: ServerResult(s.alias, state="connecting", labels=dict(s.labels)) for s in specs
        }
        self._lock = threading.Lock()
        self._listener: Callable[[], None] | None = None
        self._pending = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="netlens-fleet", daemon=True)
        self._thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        tasks = [
            asyncio.create_task(
                watch_host(
                    s,
                    self.local_version,
                    self.interval,
                    self.ssh_config,
                    self._results,
                    changed=self._changed,
                )
            )
            for s in self.specs
        ]
        try:
            await self._stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        """Close every channel (and with it every agent) and end the thread."""
        self.subscribe(None)
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(STOP_WAIT)

    def _changed(self, alias: str) -> None:
        with self._lock:
            listener = self._listener
            if listener is None or self._pending:
                return
            self._pending = True
        listener()

    def subscribe(self, listener: Callable[[], None] | None) -> None:
        """Call ``listener`` (on the feed's thread) when the fleet changed since the
        last :meth:`current`; None stops the notices. A new listener is called once
        at once, so it draws what is already known."""
        with self._lock:
            self._listener = listener
            self._pending = listener is not None
        if listener is not None:
            listener()

    def results(self) -> list[ServerResult]:
        """Every server's latest result, in the order of the specs (copies: the feed's
        thread goes on replacing its own)."""
        with self._lock:
            self._pending = False
            return [dataclasses.replace(self._results[s.alias]) for s in self.specs]

    def current(self) -> tuple[dict[str, Any], set[str]]:
        """The fleet document now, and the aliases whose dump was received."""
        rs = self.results()
        return fleet_document(rs, self.local_version), {r.alias for r in rs if r.dump_facts()}

    def snapshot(self, alias: str) -> Snapshot | None:
        """That server's latest dump, decoded now (the drill-down's; the feed itself
        reads only the dump's facts). :class:`~netlens.errors.SnapshotFileError` when
        it does not load."""
        r = self._results.get(alias)  # the live result: its decoded dump is kept there
        return None if r is None else r.full_snapshot()
