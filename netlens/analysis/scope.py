"""The part of the host a trace reads: only the namespaces on the path.

A whole discovery of 1000 namespaces (and their NAT tools) costs seconds on a
busy host; a trace crosses three or four. :class:`Scope` starts from the
namespace handles (names, inodes, pids: no netlink at all), reads SRC's and
DST's namespaces and the host's (most cables lead there), and reads another
one only when the path leads into it: the veth's peer, found by asking the
kernel (:mod:`netlens.kernel.peers`), or the owner of an address. Each read is
discovery's own pipeline on that subset (links, addresses, routes, bridge
ports, container identity), so a hop looks exactly as in ``dump``, except that
routes, neighbours and FDB entries are not dumped (the trace asks the kernel for
the one it needs; a namespace's routes are read only to name a refusing route),
and NAT rules are read when the packet enters a namespace.

:class:`Whole` wraps a complete :class:`~netlens.model.types.Snapshot` behind
the same few methods (the tests and the dashboard already hold one).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from netlens.kernel import nsenter
from netlens.kernel.nsquery import NsQuery
from netlens.kernel.peers import addresses_here, addrs_raw, link_peer, links_raw, which_nsid

if TYPE_CHECKING:
    from netlens.discovery.nsfind import NsHandle
    from netlens.discovery.sources import NetlinkSource
    from netlens.kernel.pump import Reply
    from netlens.model.types import Container, Interface, NatRule, Netns, Route, Snapshot


_V6_LOOPBACK = bytes(15) + b"\x01"


class World(Protocol):
    """What a trace asks of the host's model."""

    @property
    def snap(self) -> Snapshot: ...

    def netns(self, ns_id: str) -> Netns | None: ...

    def far_end(
        self, ns: Netns, itf: Interface, *, load: bool = True
    ) -> tuple[Netns, Interface] | None: ...

    def load_owner(self, ip: str) -> bool: ...

    def with_nat(self, ns: Netns) -> Netns: ...

    def with_routes(self, ns: Netns) -> Netns: ...

    def interface(self, ns: Netns, ifindex: int) -> tuple[Netns, Interface | None]: ...

    def full(self, ns: Netns) -> Netns: ...


def _far_end_in(snap: Snapshot, ns: Netns, itf: Interface) -> tuple[Netns, Interface] | None:
    fresh = snap.netns(ns.id)
    cur = fresh.interface(itf.ifindex) if fresh is not None else None
    peer = cur.peer if cur is not None else itf.peer
    if cur is None or cur.kind != "veth" or peer is None:
        return None
    far_ns = snap.netns(peer.netns)
    far = far_ns.interface(peer.ifindex) if far_ns else None
    return (far_ns, far) if far_ns is not None and far is not None else None


class Whole:
    """A complete snapshot as a :class:`World` (nothing is ever loaded)."""

    def __init__(self, snap: Snapshot) -> None:
        self._snap = snap

    @property
    def snap(self) -> Snapshot:
        return self._snap

    def netns(self, ns_id: str) -> Netns | None:
        return self._snap.netns(ns_id)

    def far_end(
        self, ns: Netns, itf: Interface, *, load: bool = True
    ) -> tuple[Netns, Interface] | None:
        return _far_end_in(self._snap, ns, itf)

    def load_owner(self, ip: str) -> bool:
        return False

    def with_nat(self, ns: Netns) -> Netns:
        return ns

    def with_routes(self, ns: Netns) -> Netns:
        return ns

    def interface(self, ns: Netns, ifindex: int) -> tuple[Netns, Interface | None]:
        return ns, ns.interface(ifindex)

    def full(self, ns: Netns) -> Netns:
        return ns


class Scope:
    """Namespaces read on demand (see the module doc). ``q`` asks the kernels."""

    def __init__(self, handles: Sequence[NsHandle], q: NsQuery, *, with_nat: bool = True) -> None:
        self.handles = list(handles)
        self.by_inode = {h.inode: h for h in self.handles}
        self.q = q
        self.with_nat_rules = with_nat
        self.loaded: list[int] = []
        self._snap: Snapshot | None = None
        self._containers: list[Container] | None = None
        self._owners: dict[bytes, list[int]] | None = None
        self._nat: dict[int, tuple[NatRule, ...]] = {}
        self._routes: dict[int, tuple[Route, ...]] = {}
        self.host = next((h.inode for h in self.handles if h.is_host), None)
        # namespaces read thin: only these interfaces (and their masters)
        self.thin: dict[int, set[int]] = {}

    # --- reading -------------------------------------------------------------------
    @property
    def snap(self) -> Snapshot:
        if self._snap is None:
            self.load([i for i in (self.host,) if i is not None])
        assert self._snap is not None
        return self._snap

    def load(self, inodes: Sequence[int]) -> None:
        """Read ``inodes`` too (with the ones already read: veths pair across them).
        The host is read first; thin (see :meth:`interface`) when it has many
        interfaces and nobody asked for it by name."""
        first = [self.host] if self._snap is None and self.host is not None else []
        if first and self.host not in inodes and _many_links():
            self.thin[first[0]] = set()
        fuller = [i for i in inodes if i in self.thin]
        for i in fuller:
            del self.thin[i]
        new = [
            i
            for i in dict.fromkeys([*first, *inodes])
            if i in self.by_inode and i not in self.loaded
        ]
        if not new and not fuller and self._snap is not None:
            return
        self.loaded.extend(new)
        self._snap = self._read([self.by_inode[i] for i in self.loaded])

    def interface(self, ns: Netns, ifindex: int) -> tuple[Netns, Interface | None]:
        """``ns`` (as read now) and its interface ``ifindex``, reading that one
        interface (and its master) if ``ns`` is read thin: on a host with a
        thousand veths, a trace needs the two or three it crosses."""
        itf = ns.interface(ifindex)
        if itf is not None:
            return ns, itf
        cur = self.snap.netns(ns.id)  # ``ns`` may predate a later read
        if cur is not None and (itf := cur.interface(ifindex)) is not None:
            return _carry(ns, cur), itf
        if ns.inode not in self.thin or ifindex in self.thin[ns.inode]:
            return ns, None
        self.thin[ns.inode].add(ifindex)
        self._snap = self._read([self.by_inode[i] for i in self.loaded])
        cur = self.snap.netns(ns.id)
        return (_carry(ns, cur), cur.interface(ifindex)) if cur is not None else (ns, None)

    def full(self, ns: Netns) -> Netns:
        """``ns`` with every interface (a bridge's flooding needs all its ports)."""
        if ns.inode in self.thin:
            self.load([ns.inode])
        return self.snap.netns(ns.id) or ns

    def _read(self, handles: list[NsHandle], *, light: bool = True) -> Snapshot:
        from netlens.discovery.identity import identify
        from netlens.discovery.live_source import LiveNetlink, LiveProc
        from netlens.discovery.resolve import build_snapshot

        live = LiveNetlink()
        source: NetlinkSource = live
        thin = {i: w for i, w in self.thin.items() if any(h.inode == i for h in handles)}
        if thin and light:
            source = _ThinSource(live, thin, self.q, {h.inode: _paths(h) for h in handles})
        try:
            source.open(handles)
            snap = build_snapshot(
                handles,
                source,
                LiveProc(),
                containers=identify(handles),
                root=os.geteuid() == 0,
                light=light,
            )
        finally:
            source.close()
        return snap

    def with_nat(self, ns: Netns) -> Netns:
        """``ns`` with its NAT rules, read the first time the packet enters it
        (discovery's NAT reader for that one namespace: a cheap chain probe, and
        the tools only where NAT chains exist)."""
        if not self.with_nat_rules or ns.nat:
            return ns
        if ns.inode not in self._nat:
            from netlens.discovery.nat_tools import read_nat

            h = self.by_inode.get(ns.inode)
            self._nat[ns.inode] = read_nat([h]).get(ns.inode, ()) if h is not None else ()
        rules = self._nat[ns.inode]
        return dataclasses.replace(ns, nat=rules) if rules else ns

    def with_routes(self, ns: Netns) -> Netns:
        """``ns`` with its routing tables: namespaces are read without them (the
        kernel answers each route question itself); only the evidence for a
        refused lookup (which blackhole or prohibit route) reads them, once."""
        if ns.routes:
            return ns
        if ns.inode not in self._routes:
            h = self.by_inode.get(ns.inode)
            full = self._read([h], light=False).netns(ns.id) if h is not None else None
            self._routes[ns.inode] = full.routes if full is not None else ()
        routes = self._routes[ns.inode]
        return dataclasses.replace(ns, routes=routes) if routes else ns

    def netns(self, ns_id: str) -> Netns | None:
        return self.snap.netns(ns_id)

    # --- finding the next namespace -------------------------------------------------
    def far_end(
        self, ns: Netns, itf: Interface, *, load: bool = True
    ) -> tuple[Netns, Interface] | None:
        """The veth peer of ``itf`` (in ``ns``), reading its namespace if needed."""
        found = _far_end_in(self.snap, ns, itf)
        if found is not None or not load or itf.kind != "veth":
            return found
        h = self.by_inode.get(ns.inode)
        if h is None:
            return None
        sock = self.q.sock(ns.inode, _paths(h))
        _link, nsid = link_peer(sock, itf.ifindex)  # peer ifindex, its namespace's nsid
        if nsid is None:
            return None
        # The namespaces read thin first (most cables lead to the host), then
        # every one not read yet: one RTM_GETNSID batch each.
        thin = [c for c in self.handles if c.inode in self.thin]
        rest = [c for c in self.handles if c.inode not in self.loaded]
        peer_ns: NsHandle | None = None
        for cands in (thin, rest):
            peer_ns = _which(sock, nsid, cands) if cands else None
            if peer_ns is not None:
                break
        if peer_ns is None:
            return None
        if peer_ns.inode in self.thin:
            far_ns = self.snap.netns(peer_ns.id)
            if far_ns is not None and _link is not None:
                self.interface(far_ns, _link)
        else:
            self.load([peer_ns.inode])
        return _far_end_in(self.snap, ns, itf)

    def owners(self, ip: str) -> list[int]:
        """Inodes of the namespaces that have ``ip`` on a non-loopback interface."""
        if self._owners is None:
            self._owners = {}
            targets = [h.path for h in self.handles]
            for h, res in zip(
                self.handles, nsenter.run_in_netns(targets, addresses_here), strict=True
            ):
                if isinstance(res, OSError):
                    continue
                for ifindex, raw in res:
                    if (
                        ifindex != 1
                        and not (len(raw) == 4 and raw[0] == 127)
                        and raw != _V6_LOOPBACK
                    ):
                        self._owners.setdefault(raw, []).append(h.inode)
        return list(dict.fromkeys(self._owners.get(ipaddress.ip_address(ip).packed, [])))

    def load_owner(self, ip: str) -> bool:
        """Read the namespaces owning ``ip``; True when that added any."""
        inodes = [i for i in self.owners(ip) if i not in self.loaded]
        self.load(inodes)
        return bool(inodes)

    def containers(self) -> list[Container]:
        """Every container on the host (identity of all handles; only when a
        name is neither a namespace name nor an address)."""
        if self._containers is None:
            from netlens.discovery.identity import identify

            self._containers = identify(self.handles)
        return self._containers

    # --- SRC and DST ------------------------------------------------------------------
    def locate(self, spec: str) -> list[int]:
        """Inodes to read so that ``spec`` resolves in :attr:`snap` (best effort:
        an empty list means the caller falls back to a whole discovery)."""
        sel = spec
        try:
            ipaddress.ip_address(sel)
        except ValueError:
            pass
        else:
            return self.owners(sel)
        hits = self._named(sel)
        if not hits and ":" in sel:
            hits = self._named(sel.rpartition(":")[0])
        return hits

    def _named(self, sel: str) -> list[int]:
        if sel == "host":
            return [self.host] if self.host is not None else []
        for h in self.handles:
            if sel in h.names or sel in (h.id, str(h.inode)):
                return [h.inode]
        inode_of = {h.id: h.inode for h in self.handles}
        exact = [c for c in self.containers() if sel in (c.id, c.name, c.engine_id)]
        if not exact and len(sel) >= 4:
            pre = [c for c in self.containers() if c.engine_id and c.engine_id.startswith(sel)]
            exact = pre if len(pre) == 1 else []
        return [inode_of[c.netns] for c in exact if c.netns in inode_of][:1]


def _which(sock: socket.socket, nsid: int, cands: list[NsHandle]) -> NsHandle | None:
    """The candidate that ``sock``'s namespace numbers ``nsid``."""
    fds: list[int] = []
    kept: list[NsHandle] = []
    try:
        for c in cands:
            fd = nsenter.open_netns(c.path)
            if fd is not None:
                fds.append(fd)
                kept.append(c)
        pos = which_nsid(sock, nsid, fds)
    finally:
        for fd in fds:
            os.close(fd)
    return kept[pos] if pos is not None else None


def _carry(old: Netns, new: Netns) -> Netns:
    """``new`` (read again) with what was added to ``old`` lazily (NAT, routes)."""
    if not old.nat and not old.routes:
        return new
    return dataclasses.replace(new, nat=old.nat or new.nat, routes=old.routes or new.routes)


THIN_ABOVE = 200  # interfaces: above this the host is read one interface at a time
# (NETLENS_TRACE_THIN_ABOVE overrides it: the tests read a small host thin)


def _many_links() -> bool:
    """Whether this process's namespace (the host's, for the CLI) has more than
    :data:`THIN_ABOVE` interfaces: /sys/class/net lists them without netlink."""
    try:
        above = int(os.environ.get("NETLENS_TRACE_THIN_ABOVE", THIN_ABOVE))
        return len(os.listdir("/sys/class/net")) > above
    except (OSError, ValueError):
        return False


class _ThinSource:
    """Discovery's netlink source, except that a thin namespace's link and address
    "dumps" hold only the wanted interfaces (and their masters, so a bridge port
    still shows its bridge): same bytes, same decoding, far fewer of them."""

    def __init__(
        self,
        inner: NetlinkSource,
        thin: dict[int, set[int]],
        q: NsQuery,
        paths: dict[int, list[str]],
    ) -> None:
        self.inner = inner
        self.thin = thin
        self.q = q
        self.paths = paths

    def open(self, handles: Sequence[NsHandle]) -> dict[int, OSError]:
        return self.inner.open(handles)

    def prefetch(self, inodes: Sequence[int], requests: Sequence[str]) -> None:
        self.inner.prefetch([i for i in inodes if i not in self.thin], requests)

    def dumps(self, inode: int, requests: Sequence[str]) -> dict[str, Reply]:
        if inode not in self.thin:
            return self.inner.dumps(inode, requests)
        sock = self.q.sock(inode, self.paths.get(inode, []))
        wanted = set(self.thin[inode])
        raw, todo = b"", set(wanted)
        while todo:
            got, masters = links_raw(sock, sorted(todo))
            raw += got
            todo = masters - wanted
            wanted |= todo
        out: dict[str, Reply] = {}
        for r in requests:
            out[r] = raw if r == "link" else addrs_raw(sock, wanted) if r == "addr" else b""
        return out

    def sysctls(self, inodes: Sequence[int]) -> dict[int, dict[str, str]]:
        return self.inner.sysctls(inodes)

    def host_nsids(self) -> dict[int, int]:
        return self.inner.host_nsids()

    def ask_nsids(self, asker: int, targets: Sequence[int]) -> list[int | None]:
        return self.inner.ask_nsids(asker, targets)

    def close(self) -> None:
        self.inner.close()


def _paths(h: NsHandle) -> list[str]:
    return [h.path, *(f"/run/netns/{n}" for n in h.names), *h.mounts]
