"""The host: the namespace pid 1 lives in, named after the machine's hostname.

Not an engine, but the first row of the table: the host namespace is never a
container, whatever state files or cgroups its processes carry.
"""

from __future__ import annotations

from netlens.discovery.engines import Claims, EngineReader, Namespace, Options, read_text
from netlens.model import Container, Engine


class _Claims(Claims):
    def __init__(self, opts: Options) -> None:
        self.proc_root: str = opts["proc_root"]

    def recorded(self, ns: Namespace) -> Container | None:
        h = ns.handle
        if not h.is_host:
            return None
        name = (read_text(f"{self.proc_root}/sys/kernel/hostname") or "").strip() or "host"
        pid = 1 if 1 in h.pids else (min(h.pids) if h.pids else None)
        return Container(
            id=f"host:{name}",
            engine=Engine.HOST,
            name=name,
            netns=h.id,
            engine_id=name,
            pid=pid,
            pids=h.pids,
            state="running",
        )


READER = EngineReader(name="host", claims=_Claims)
