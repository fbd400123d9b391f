"""The last row: a namespace only processes hold is named after its lowest pid.

``sleep[1234]``: what ``unshare -n`` or a program's own namespace looks like. A
namespace held only by a bind mount nobody claims gets no row at all.
"""

from __future__ import annotations

from netlens.discovery.engines import Claims, EngineReader, Namespace
from netlens.model import Container, Engine


class _Claims(Claims):
    def fallback(self, ns: Namespace) -> Container | None:
        lowest = ns.lowest
        if lowest is None:
            return None
        comm = ns.comm(lowest)
        return Container(
            id=f"process:{lowest}",
            engine=Engine.PROCESS,
            name=f"{comm}[{lowest}]",
            netns=ns.id,
            engine_id=str(lowest),
            pid=lowest,
            pids=ns.pids,
            command=ns.command or f"[{comm}]",
            cgroup=ns.cgroup,
        )


READER = EngineReader(name="process", claims=_Claims)
