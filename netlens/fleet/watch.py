"""``netlens fleet --watch``: keep every server's agent streaming, reconnect with backoff.

Each server has a task of its own that runs the agent over SSH and keeps its
latest result (state, dump, newest sample) in a shared dict; when the stream
ends, stalls or cannot start, the task waits and tries again, doubling the wait
from 1 s up to :data:`MAX_BACKOFF` and starting over at 1 s once samples flow.
The printing loop reads the dict once per interval, so a slow or dead server
never delays the others' rows. Cancelling (Ctrl-C, ``--count`` reached) closes
every channel, and with it every agent (see netlens/commands/agent.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from netlens.fleet.client import one_line, query_host
from netlens.fleet.config import HostSpec
from netlens.fleet.merge import ServerResult

MAX_BACKOFF = 60.0


async def watch_host(
    spec: HostSpec,
    local_version: str,
    interval: float,
    ssh_config: list[str] | None,
    results: dict[str, ServerResult],
    first_wait: float = 1.0,
    changed: Callable[[str], None] | None = None,
) -> None:
    """Run forever (until cancelled): stream, and on any end wait and reconnect.

    ``changed(alias)`` is called after each new result is in ``results`` (every
    sample, every lost connection): the fleet view redraws on it instead of
    polling."""
    backoff = first_wait

    def seen(r: ServerResult) -> None:
        nonlocal backoff
        results[spec.alias] = r
        backoff = first_wait
        if changed is not None:
            changed(spec.alias)

    while True:
        try:
            r = await query_host(spec, local_version, interval, ssh_config, on_sample=seen)
        except Exception as err:  # a fault of ours, not the server's: its row says so
            r = ServerResult(spec.alias, "error", one_line(err), dict(spec.labels))
        r.reason = f"{r.reason}; retrying in {backoff:g} s"
        results[spec.alias] = r
        if changed is not None:
            changed(spec.alias)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF)


async def watch_fleet(
    specs: list[HostSpec],
    local_version: str,
    interval: float,
    ssh_config: list[str] | None,
    emit: Callable[[list[ServerResult]], None],
    count: int = 0,
) -> None:
    """Call ``emit`` with every server's latest result once per interval, ``count``
    times (0: until cancelled)."""
    results = {
        s.alias: ServerResult(s.alias, state="connecting", labels=dict(s.labels)) for s in specs
    }
    tasks = [
        asyncio.create_task(watch_host(s, local_version, interval, ssh_config, results))
        for s in specs
    ]
    try:
        n = 0
        while count == 0 or n < count:
            await asyncio.sleep(interval)
            emit([results[s.alias] for s in specs])
            n += 1
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
