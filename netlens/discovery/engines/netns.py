"""``ip netns``: a namespace bind-mounted under /run/netns is known by that name.

Asked after every engine: engines bind-mount their namespaces there too
(Podman's ``netns-<uuid>``), and their own records name them better.
"""

from __future__ import annotations

from netlens.discovery.engines import Claims, EngineReader, Namespace
from netlens.model import Container, Engine


class _Claims(Claims):
    def fallback(self, ns: Namespace) -> Container | None:
        if not ns.handle.names:
            return None
        name = ns.handle.names[0]
        return Container(
            id=f"netns:{name}",
            engine=Engine.NETNS,
            name=name,
            netns=ns.id,
            engine_id=name,
            pid=ns.lowest,
            pids=ns.pids,
            command=ns.command or None,
            cgroup=ns.cgroup,
        )


READER = EngineReader(name="netns", claims=_Claims)
