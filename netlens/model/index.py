"""O(1) lookups over a snapshot.

``Snapshot.netns()``, ``.interface()`` and ``.container()`` scan tuples, which is
fine once but quadratic when a view or the graph builder resolves every veth
peer of 1000 namespaces. Build one :class:`SnapshotIndex` per snapshot and look
things up in dicts instead. Pure Python, no networkx: the dump path uses it too.
"""

from __future__ import annotations

from netlens.model.types import Container, IfRef, Interface, Netns, Snapshot


class SnapshotIndex:
    """Dictionaries over one snapshot (built once in O(size), read-only afterwards)."""

    __slots__ = (
        "bridge_ports",
        "by_key",
        "container_by_netns",
        "containers",
        "netns",
        "netns_by_name",
        "snapshot",
    )

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.netns: dict[str, Netns] = {}
        self.netns_by_name: dict[str, Netns] = {}
        self.by_key: dict[str, Interface] = {}
        self.containers: dict[str, Container] = {}
        self.container_by_netns: dict[str, Container] = {}
        # bridge key -> its ports' keys, in ifindex order of the snapshot
        self.bridge_ports: dict[str, list[str]] = {}
        for ns in snapshot.namespaces:
            self.netns[ns.id] = ns
            for name in (ns.name, *ns.names):
                self.netns_by_name.setdefault(name, ns)
            kinds = {i.ifindex: i.kind for i in ns.interfaces}
            for itf in ns.interfaces:
                key = f"{ns.id}/{itf.ifindex}"
                self.by_key[key] = itf
                if itf.kind == "bridge":
                    self.bridge_ports.setdefault(key, [])
                if itf.master is not None and kinds.get(itf.master) == "bridge":
                    self.bridge_ports.setdefault(f"{ns.id}/{itf.master}", []).append(key)
        for c in snapshot.containers:
            self.containers[c.id] = c
            if c.netns is not None:
                self.container_by_netns.setdefault(c.netns, c)

    def interface(self, ref: IfRef | str) -> Interface | None:
        """The interface behind an :class:`IfRef` or its key string."""
        key = ref if isinstance(ref, str) else f"{ref.netns}/{ref.ifindex}"
        return self.by_key.get(key)

    def peer(self, itf: Interface) -> Interface | None:
        """The other end of a veth, when it was resolved and is in the snapshot."""
        return self.interface(itf.peer) if itf.peer is not None else None

    def container_of(self, ns_id: str) -> Container | None:
        """The container behind a namespace: by ``Netns.container``, else ``Container.netns``."""
        ns = self.netns.get(ns_id)
        if ns is not None and ns.container is not None:
            c = self.containers.get(ns.container)
            if c is not None:
                return c
        return self.container_by_netns.get(ns_id)

    def ports(self, bridge: IfRef | str) -> list[Interface]:
        """The interfaces enslaved to a bridge, in snapshot order."""
        key = bridge if isinstance(bridge, str) else f"{bridge.netns}/{bridge.ifindex}"
        return [self.by_key[k] for k in self.bridge_ports.get(key, ())]
