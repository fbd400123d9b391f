"""``trace``: the path one packet takes from SRC to DST, hop by hop, as the kernels decide.

Each namespace on the way is asked, in that namespace, for its route
(RTM_GETROUTE with the packet's source, input interface, protocol and ports,
so policy rules, l3mdev VRFs, rp_filter and ip_forward are applied by the
kernel itself) and for the next hop's neighbour entry; the frame then follows
the veth cable and, on a bridge, the port the bridge's FDB names. NAT rules
that rewrite the packet (discovery's parsed rules), the filter verdict read
from the namespace's nftables rules, the MTU of every egress and the return
route at every forwarding hop are collected on the way. It ends with one
verdict. Nothing is sent: the static trace only asks.
"""

from __future__ import annotations

import errno
from dataclasses import replace
from typing import Any

from netlens.analysis import filters, refusal, rewrite
from netlens.analysis.endpoints import Endpoint
from netlens.analysis.l2 import follow, iface, ns_paths
from netlens.analysis.scope import Whole, World
from netlens.analysis.tracetypes import (
    DELIVERED,
    DROPPED,
    LEAVES,
    UNKNOWN,
    Finding,
    Hop,
    Packet,
    TraceResult,
    Verdict,
)
from netlens.discovery.nat import NftChain, dump_chains
from netlens.kernel.consts import NETLINK_NETFILTER
from netlens.kernel.nftread import ruleset_here
from netlens.kernel.nsenter import netlink_socket
from netlens.kernel.nsquery import NamespaceGone, NsQuery, read_text
from netlens.kernel.routeget import RouteAnswer, neigh_get, netconf_get, route_get
from netlens.kernel.sockets import comm, listeners_here, owners
from netlens.model.types import Interface, Netns, Snapshot

MAX_HOPS = 32


class _Walk:
    """State of one trace: the kernel sessions, caches, the hops so far."""

    def __init__(self, world: World, q: NsQuery, with_filters: bool) -> None:
        self.world = world
        self.q = q
        self.with_filters = with_filters
        self.rulesets: dict[int, list[dict[str, Any]] | None] = {}
        self.chains: dict[int, list[NftChain] | None] = {}
        self.findings: list[Finding] = []
        self.min_mtu: int | None = None
        self.min_mtu_at: str | None = None

    def sock(self, ns: Netns) -> Any:
        return self.q.sock(ns.inode, ns_paths(ns))

    def ruleset(self, ns: Netns) -> list[dict[str, Any]] | None:
        if ns.inode not in self.rulesets:
            try:
                self.rulesets[ns.inode] = self.q.run(ns.inode, ns_paths(ns), ruleset_here)
            except OSError:
                self.rulesets[ns.inode] = None
        return self.rulesets[ns.inode]

    def hooked(self, ns: Netns, hook: str, fams: tuple[str, ...]) -> bool:
        """Whether ``ns`` has any filter base chain on ``hook`` in ``fams``: one
        NFT_MSG_GETCHAIN dump answers it, so ``nft`` (tens of ms, more on a host
        with big rulesets) runs only where a chain can judge the packet."""
        if ns.inode not in self.chains:
            try:
                self.chains[ns.inode] = self.q.run(ns.inode, ns_paths(ns), _chains_here)
            except OSError:
                self.chains[ns.inode] = None
        chains = self.chains[ns.inode]
        if chains is None:
            return True
        return any(
            c.family in fams and c.hook == hook and (c.type or "filter") == "filter" for c in chains
        )

    def filter(
        self,
        ns: Netns,
        hook: str,
        pkt: Packet,
        iif: str | None,
        oif: str | None,
        fams: tuple[str, ...],
    ) -> filters.FilterVerdict | None:
        if not self.with_filters:
            return None
        if not self.hooked(ns, hook, fams):
            return filters.evaluate([], hook, pkt, iif, oif, fams)
        return filters.evaluate(self.ruleset(ns), hook, pkt, iif, oif, fams)

    def mtu(self, where: str, value: int | None) -> None:
        if value and (self.min_mtu is None or value < self.min_mtu):
            self.min_mtu, self.min_mtu_at = value, where


def _chains_here() -> list[NftChain]:
    """Every nftables chain of the calling thread's namespace (no rules)."""
    with netlink_socket(NETLINK_NETFILTER, rcvbuf=1 << 17) as sock:
        return dump_chains(sock)


def _fams(pkt: Packet) -> tuple[str, ...]:
    return ("ip6", "inet") if ":" in pkt.dst else ("ip", "inet")


def _route_dict(ans: RouteAnswer) -> dict[str, Any]:
    return {
        "type": ans.type,
        "table": ans.table,
        "gateway": ans.gateway,
        "prefsrc": ans.prefsrc,
        "oif": ans.oif,
        "metric": ans.metric,
        "mtu": ans.mtu,
        "error": errno.errorcode.get(ans.error) if ans.error else None,
    }


def trace(
    snap: Snapshot | World,
    src: Endpoint,
    dst: Endpoint,
    q: NsQuery,
    *,
    proto: str = "icmp",
    sport: int | None = None,
    dport: int | None = None,
    with_filters: bool = True,
) -> TraceResult:
    """Walk from ``src`` to ``dst`` (see the module doc); ``q`` holds the kernel sessions."""
    assert src.ns is not None and dst.address is not None
    w = _Walk(Whole(snap) if isinstance(snap, Snapshot) else snap, q, with_filters)
    query = {
        "src": src.spec,
        "dst": dst.spec,
        "src_netns": src.ns.id,
        "dst_netns": dst.ns.id if dst.ns else None,
        "proto": proto,
        "sport": sport,
        "dport": dport,
    }
    pkt = Packet(src.address or "", dst.address, proto, sport, dport)
    hops: list[Hop] = []
    ns: Netns = src.ns
    in_itf: Interface | None = None
    seen: set[tuple[int, int | None]] = set()
    verdict: Verdict | None = None
    try:
        for index in range(1, MAX_HOPS + 1):
            hop, verdict, nxt = _hop(w, index, ns, in_itf, pkt, src, dst)
            hops.append(hop)
            if verdict is not None or nxt is None:
                break
            ns, in_itf, pkt = nxt
            key = (ns.inode, in_itf.ifindex if in_itf else None)
            if key in seen:
                verdict = Verdict(
                    DROPPED,
                    index,
                    "routing loop",
                    (f"back in {ns.name} via {in_itf.name if in_itf else '?'}",),
                )
                break
            seen.add(key)
        else:
            verdict = Verdict(DROPPED, len(hops), f"more than {MAX_HOPS} hops (routing loop?)")
    except NamespaceGone as err:
        verdict = Verdict(
            UNKNOWN, len(hops) or None, f"a namespace vanished during the trace: {err.strerror}"
        )
    if verdict is None:
        verdict = Verdict(UNKNOWN, len(hops), "the trace stopped without an answer")
    query["src_address"] = hops[0].packet.src if hops else None
    return TraceResult(query, tuple(hops), verdict, w.min_mtu, w.min_mtu_at, tuple(w.findings))


def _hop(
    w: _Walk,
    index: int,
    ns: Netns,
    in_itf: Interface | None,
    pkt: Packet,
    src: Endpoint,
    dst: Endpoint,
) -> tuple[Hop, Verdict | None, tuple[Netns, Interface, Packet] | None]:
    ns = w.world.with_nat(ns)
    sock = w.sock(ns)
    iif_name = in_itf.name if in_itf else None
    nat_notes: list[str] = []
    notes: list[str] = []
    role = "source" if in_itf is None else "router"
    if in_itf is not None:
        pkt, nat_notes = rewrite.apply(ns, ("prerouting",), pkt, iif_name, None)
    else:
        pkt, nat_notes = rewrite.apply(ns, ("output",), pkt, None, None)
    ans = route_get(
        sock,
        pkt.dst,
        src=pkt.src or None,
        iif=in_itf.ifindex if in_itf else None,
        oif=src.iface.ifindex if in_itf is None and src.iface is not None else None,
        proto=pkt.proto,
        sport=pkt.sport,
        dport=pkt.dport,
    )
    if not pkt.src and ans.prefsrc:
        pkt = replace(pkt, src=ans.prefsrc)
    sysctls: dict[str, int] = {}
    if in_itf is not None:
        fwd = netconf_get(sock, -1)
        own = netconf_get(sock, in_itf.ifindex)
        if "forwarding" in fwd:
            sysctls["ip_forward"] = fwd["forwarding"]
        if "rp_filter" in own or "rp_filter" in fwd:
            sysctls["rp_filter"] = max(own.get("rp_filter", 0), fwd.get("rp_filter", 0))
    base = Hop(
        index,
        ns.id,
        ns.name,
        role,
        pkt,
        iface(ns, in_itf) if in_itf else None,
        _route_dict(ans),
        nat=tuple(nat_notes),
        sysctls=sysctls,
    )
    if ans.error:
        reason, evidence = refusal.explain(sock, w.world.with_routes(ns), in_itf, pkt, ans, sysctls)
        return base, Verdict(DROPPED, index, reason, tuple(evidence)), None
    if ans.type == "local":
        return _deliver(w, base, ns, in_itf, pkt, src, dst)
    if ans.type not in ("unicast",):
        return (
            base,
            Verdict(DROPPED, index, f"{ans.type} route in {ns.name}", (f"route type {ans.type}",)),
            None,
        )
    out = None
    if ans.oif is not None:
        ns, out = w.world.interface(ns, ans.oif)
    if out is None:
        return (
            base,
            Verdict(
                UNKNOWN, index, f"egress interface {ans.oif} of {ns.name} is not in the snapshot"
            ),
            None,
        )
    hop = replace(base, oif=iface(ns, out), gateway=ans.gateway)
    w.mtu(f"{ns.name}:{out.name}", out.mtu)
    w.mtu(f"{ns.name} route to {pkt.dst}", ans.mtu)
    if in_itf is not None:
        fv = w.filter(ns, "forward", pkt, iif_name, out.name, _fams(pkt))
        if fv is not None:
            hop = replace(hop, filter=fv.as_dict())
            if fv.verdict == "drop":
                return (
                    hop,
                    Verdict(
                        DROPPED, index, f"FORWARD filter in {ns.name} drops it", (fv.rule or "",)
                    ),
                    None,
                )
            for m in fv.maybe:
                w.findings.append(Finding("warning", index, f"{ns.name}: {m}"))
        _return_check(w, index, ns, in_itf, pkt)
    else:
        fv = w.filter(ns, "output", pkt, None, out.name, _fams(pkt))
        if fv is not None:
            hop = replace(hop, filter=fv.as_dict())
            if fv.verdict == "drop":
                return (
                    hop,
                    Verdict(
                        DROPPED, index, f"OUTPUT filter in {ns.name} drops it", (fv.rule or "",)
                    ),
                    None,
                )
    post, snat = rewrite.apply(ns, ("postrouting",), pkt, iif_name, out.name)
    if snat:
        if post is pkt:  # masquerade: the egress interface's address
            addr = next(
                (
                    a.address
                    for a in out.addresses
                    if a.scope == "global" and (":" in a.address) == (":" in pkt.dst)
                ),
                pkt.src,
            )
            post = replace(pkt, src=addr)
        hop = replace(hop, nat=hop.nat + tuple(snat))
        pkt = post
    nexthop = ans.gateway or pkt.dst
    neigh = neigh_get(sock, nexthop, out.ifindex) if out.kind != "loopback" else None
    if neigh is not None:
        hop = replace(hop, neighbour={"ip": neigh.ip, "mac": neigh.mac, "state": neigh.state})
        if neigh.state == "incomplete":
            w.findings.append(
                Finding(
                    "warning",
                    index,
                    f"{ns.name}: {nexthop} on {out.name} is being resolved (INCOMPLETE), "
                    "no answer yet",
                )
            )
        if neigh.state == "failed":
            return (
                hop,
                Verdict(
                    DROPPED,
                    index,
                    f"neighbour {nexthop} on {out.name} is {neigh.state.upper()} in {ns.name}",
                    (f"{nexthop} dev {out.name} {neigh.state.upper()}",),
                ),
                None,
            )
    else:
        hop = replace(hop, neighbour={"ip": nexthop, "mac": None, "state": "none"})
        notes.append(f"no neighbour entry for {nexthop} yet (the first packet would ARP for it)")
    if out.uplink:
        hop = replace(hop, notes=tuple(notes))
        return (
            hop,
            Verdict(
                LEAVES,
                index,
                f"leaves the host through uplink {out.name}",
                (f"route get {pkt.dst} dev {out.name}",),
                uplink=iface(ns, out),
            ),
            None,
        )
    arrival = follow(w.world, w.q, ns, out, neigh.mac if neigh else None, nexthop)
    step = arrival.step
    if arrival.ns is not None and step.bridge is not None:
        bridge_ns = w.world.netns(step.bridge.netns)
        if bridge_ns is not None:
            step, drop = _br_netfilter(w, bridge_ns, step, pkt)
            if drop:
                hop = replace(hop, l2=step, notes=tuple(notes))
                return (
                    hop,
                    Verdict(
                        DROPPED,
                        index,
                        f"bridge {step.bridge.name if step.bridge else ''}: FORWARD filter in "
                        f"{bridge_ns.name} drops bridged frames (br_netfilter)",
                        (drop,),
                    ),
                    None,
                )
    hop = replace(hop, l2=step, notes=tuple(notes))
    if arrival.drop:
        return hop, Verdict(DROPPED, index, arrival.drop, ()), None
    if arrival.leaves is not None:
        return (
            hop,
            Verdict(
                LEAVES,
                index,
                f"leaves through {arrival.leaves.netns_name}:{arrival.leaves.name} "
                f"({'uplink' if _is_uplink(w, arrival.leaves) else 'not followed'})",
                (),
                uplink=arrival.leaves,
            ),
            None,
        )
    assert arrival.ns is not None and arrival.ingress is not None
    if not arrival.ingress.up:
        return (
            hop,
            Verdict(DROPPED, index, f"{arrival.ns.name}:{arrival.ingress.name} is down"),
            None,
        )
    w.mtu(f"{arrival.ns.name}:{arrival.ingress.name}", arrival.ingress.mtu)
    return hop, None, (arrival.ns, arrival.ingress, pkt)


def _is_uplink(w: _Walk, ref: Any) -> bool:
    ns = w.world.netns(ref.netns)
    itf = w.world.interface(ns, ref.ifindex)[1] if ns else None
    return bool(itf and itf.uplink)


def _br_netfilter(w: _Walk, ns: Netns, step: Any, pkt: Packet) -> tuple[Any, str | None]:
    """br_netfilter: bridged IPv4 frames go through the bridge namespace's FORWARD chain."""
    key = "bridge-nf-call-ip6tables" if ":" in pkt.dst else "bridge-nf-call-iptables"
    try:
        text = w.q.run(ns.inode, ns_paths(ns), lambda: read_text(f"/proc/sys/net/bridge/{key}"))
    except OSError:
        text = None
    on = (text or "").strip() == "1"
    step = replace(step, br_netfilter=on)
    bridge = step.bridge.name if step.bridge else None
    fams = _fams(pkt) if on else ()
    fv = w.filter(ns, "forward", pkt, bridge, bridge, ("bridge", *fams))
    if fv is not None and fv.verdict == "drop":
        return step, fv.rule
    return step, None


def _return_check(w: _Walk, index: int, ns: Netns, in_itf: Interface, pkt: Packet) -> None:
    """The reply's route here must lead back out of the interface the request came in by."""
    back = route_get(w.sock(ns), pkt.src, proto=pkt.proto)
    if back.error:
        w.findings.append(
            Finding(
                "error",
                index,
                f"{ns.name}: no return route to {pkt.src} "
                f"({errno.errorcode.get(back.error, back.error)}): replies are dropped",
            )
        )
    elif back.type == "unicast" and back.oif != in_itf.ifindex:
        out = w.world.interface(ns, back.oif)[1] if back.oif is not None else None
        w.findings.append(
            Finding(
                "warning",
                index,
                f"{ns.name}: asymmetric return path: request in by {in_itf.name}, "
                f"replies to {pkt.src} leave by {out.name if out else back.oif}",
            )
        )


def _deliver(
    w: _Walk,
    hop: Hop,
    ns: Netns,
    in_itf: Interface | None,
    pkt: Packet,
    src: Endpoint,
    dst: Endpoint,
) -> tuple[Hop, Verdict | None, None]:
    index = hop.index
    hop = replace(hop, role="destination")
    if in_itf is not None:
        fv = w.filter(ns, "input", pkt, in_itf.name, None, _fams(pkt))
        if fv is not None:
            hop = replace(hop, filter=fv.as_dict())
            if fv.verdict == "drop":
                return (
                    hop,
                    Verdict(
                        DROPPED, index, f"INPUT filter in {ns.name} drops it", (fv.rule or "",)
                    ),
                    None,
                )
            for m in fv.maybe:
                w.findings.append(Finding("warning", index, f"{ns.name}: {m}"))
        _return_check(w, index, ns, in_itf, pkt)
    if dst.ns is not None and dst.ns.inode != ns.inode:
        w.findings.append(
            Finding(
                "warning",
                index,
                f"{pkt.dst} is delivered to {ns.name}, not to {dst.ns.name} "
                "(NAT or a duplicate address)",
            )
        )
    listener: dict[str, Any] | None = None
    reason = f"delivered to {ns.name} ({pkt.dst})"
    if pkt.dport is not None and pkt.proto in ("tcp", "udp"):
        socks = w.q.run(ns.inode, ns_paths(ns), lambda: listeners_here(pkt.proto, pkt.dport or 0))
        if not socks:
            return (
                hop,
                Verdict(
                    DROPPED,
                    index,
                    f"nothing listens on {pkt.proto}/{pkt.dport} in {ns.name}",
                    (f"no {pkt.proto} socket bound to port {pkt.dport}",),
                ),
                None,
            )
        held = owners({s.inode for s in socks}, ns.pids)
        procs = [{"pid": p, "comm": comm(p)} for s in socks for p in held.get(s.inode, [])]
        listener = {
            "proto": pkt.proto,
            "port": pkt.dport,
            "addresses": sorted({s.address for s in socks}),
            "processes": procs,
        }
        who = ", ".join(f"{p['comm']}[{p['pid']}]" for p in procs) or "a socket"
        reason += f"; {who} listens on {pkt.proto}/{pkt.dport}"
    return hop, Verdict(DELIVERED, index, reason, (), listener=listener), None
