"""Mininet: its hosts are shells started as ``bash --norc -is mininet:<name>``.

Mininet keeps no state on disk; the node name is on the command line of the
namespace's lowest pid, which no engine of the table claimed before.
"""

from __future__ import annotations

import re

from netlens.discovery.engines import Claims, EngineReader, Namespace
from netlens.model import Container, Engine

_NODE = re.compile(r"(?:^|\s)mininet:(\S+)")


class _Claims(Claims):
    def fallback(self, ns: Namespace) -> Container | None:
        command = ns.command
        m = _NODE.search(command) if command else None
        if m is None:
            return None
        return Container(
            id=f"mininet:{m.group(1)}",
            engine=Engine.MININET,
            name=m.group(1),
            netns=ns.id,
            engine_id=m.group(1),
            pid=ns.lowest,
            pids=ns.pids,
            command=command,
            cgroup=ns.cgroup,
        )


READER = EngineReader(name="mininet", claims=_Claims)
