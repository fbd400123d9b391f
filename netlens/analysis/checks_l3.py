"""Doctor checks of layer 3: forwarding, gateways, routes and rules that hide
others, reverse-path filtering, overlapping subnets.

Each check reads the snapshot (the rp_filter check also per-interface values
read live when there are any). Routes are read statically, as
:mod:`netlens.analysis.topo` explains.
"""

from __future__ import annotations

from collections import defaultdict

from netlens.analysis.findings import if_ref, ip_cmd, ns_exec, ns_ref
from netlens.analysis.topo import (
    IPNetwork,
    address,
    connected,
    lookup,
    network,
    overlaps,
    route_devices,
    route_gateways,
    route_net,
    segments,
    within,
)
from netlens.model.findings import Finding, ObjectRef, Severity
from netlens.model.types import Interface, Netns, Route, Rule, Snapshot

REJECT = ("blackhole", "unreachable", "prohibit")
_FORWARD_SYSCTL = {4: "net.ipv4.ip_forward", 6: "net.ipv6.conf.all.forwarding"}
_MAIN, _LOCAL = 254, 255


def route_text(r: Route) -> str:
    """A route as ``ip route`` prints it (the parts the checks talk about)."""
    words = [r.type] if r.type != "unicast" else []
    words.append(r.dst)
    for gw, _idx in route_gateways(r):
        words.append(f"via {gw}")
    if r.dev:
        words.append(f"dev {r.dev}")
    if r.table not in (_MAIN,):
        words.append(f"table {r.table}")
    if r.metric:
        words.append(f"metric {r.metric}")
    return " ".join(words)


def route_ref(ns: Netns, r: Route) -> ObjectRef:
    return ObjectRef("route", ns.id, f"{ns.name}: {route_text(r)}")


def rule_text(rule: Rule) -> str:
    words = [f"{rule.priority}:"]
    if rule.invert:
        words.append("not")
    words.append(f"from {rule.src or 'all'}")
    for key, val in (("to", rule.dst), ("iif", rule.iif), ("oif", rule.oif)):
        if val:
            words.append(f"{key} {val}")
    if rule.fwmark is not None:
        words.append(f"fwmark {rule.fwmark:#x}")
    words.append(f"lookup {rule.table}" if rule.action == "lookup" else rule.action)
    return " ".join(words)


def _v4_links(ns: Netns) -> list[Interface]:
    return [
        i
        for i in ns.interfaces
        if i.kind != "loopback"
        and i.name != "lo"
        and i.up
        and any(a.family == 4 and a.scope == "global" for a in i.addresses)
    ]


# --- forwarding ---------------------------------------------------------------------------
def ip_forward_off(snapshot: Snapshot) -> list[Finding]:
    """A namespace other namespaces route through (their gateway is its address,
    for a destination beyond it) while it does not forward: the packets reach it
    and die there."""
    seg = segments(snapshot)
    owners: dict[tuple[str, str], tuple[Netns, Interface]] = {}
    for ns in snapshot.namespaces:
        for itf in ns.interfaces:
            for a in itf.addresses:
                owners[(seg.of(itf.ref.key), a.address)] = (ns, itf)
    out: dict[tuple[str, int], Finding] = {}
    for ns in snapshot.namespaces:
        for r in ns.routes:
            if r.type != "unicast" or r.table == _LOCAL:
                continue
            for gw, idx in route_gateways(r):
                if idx is None:
                    continue
                hit = owners.get((seg.of(f"{ns.id}/{idx}"), gw))
                if hit is None:
                    continue
                router, gw_itf = hit
                if router.id == ns.id or router.sysctls.get(_FORWARD_SYSCTL[r.family]) != "0":
                    continue
                links = [i for i in router.interfaces if i.kind != "loopback" and i.addresses]
                if len(links) < 2 or _owns(router, r):
                    continue
                key = (router.id, r.family)
                if key in out:
                    continue
                sysctl = _FORWARD_SYSCTL[r.family]
                out[key] = Finding(
                    "ip-forward-off",
                    Severity.ERROR,
                    f"{router.name} is used as a router but does not forward IPv{r.family}",
                    (ns_ref(router), if_ref(router, gw_itf), route_ref(ns, r)),
                    (
                        f"{router.name}: {sysctl} = 0",
                        f"{ns.name} routes {r.dst} via {gw} ({router.name}:{gw_itf.name})",
                        f"{router.name} has {len(links)} interfaces with addresses: "
                        + ", ".join(i.name for i in links),
                    ),
                    f"{ns_exec(router)}sysctl -w {sysctl}=1",
                )
    return list(out.values())


def _owns(ns: Netns, r: Route) -> bool:
    """The route's whole destination is one of ``ns``'s own addresses."""
    net = route_net(r)
    if net is None:
        return False
    return any(
        net.num_addresses == 1 and address(a.address) == net.network_address
        for i in ns.interfaces
        for a in i.addresses
    )


# --- gateways -------------------------------------------------------------------------------
_ALIVE = ("reachable", "stale", "delay", "probe", "permanent", "noarp")


def gateway_not_connected(snapshot: Snapshot) -> list[Finding]:
    """A gateway outside every subnet of its interface: the kernel accepts such a
    route only with ``onlink``, and then something on the link must answer ARP for
    that address (proxy ARP does in some CNIs). Info when a neighbour entry shows
    someone answers, warning otherwise."""
    out: list[Finding] = []
    for ns in snapshot.namespaces:
        for r in ns.routes:
            if r.type != "unicast" or r.table == _LOCAL:
                continue
            for gw, idx in route_gateways(r):
                gaddr = address(gw)
                if gaddr is None or gaddr.is_link_local:
                    continue
                itfs = [ns.interface(idx)] if idx is not None else list(ns.interfaces)
                nets = [
                    n for i in itfs if i is not None for n in connected(i) if n.version == r.family
                ]
                if any(gaddr in n for n in nets):
                    continue
                neigh = next(
                    (n for n in ns.neighbours if n.ip == gw and (idx is None or n.ifindex == idx)),
                    None,
                )
                alive = neigh is not None and neigh.state in _ALIVE
                itf = itfs[0] if len(itfs) == 1 else None
                dev = itf.name if itf is not None else (r.dev or "its interface")
                objs = [route_ref(ns, r)] + ([if_ref(ns, itf)] if itf is not None else [])
                out.append(
                    Finding(
                        "gateway-not-connected",
                        Severity.INFO if alive else Severity.WARNING,
                        f"{ns.name}: gateway {gw} of {r.dst} is on no subnet of {dev}",
                        tuple(objs),
                        (
                            f"route: {route_text(r)}",
                            f"subnets of {dev}: " + (", ".join(str(n) for n in nets) or "none"),
                            f"neighbour {gw}: {neigh.state if neigh else 'no entry'}",
                        ),
                        None
                        if alive
                        else f"{ip_cmd(ns)} route replace {r.dst} via <a gateway on a subnet "
                        f"of {dev}> dev {dev}",
                    )
                )
    return out


def default_gateway_failed(snapshot: Snapshot) -> list[Finding]:
    """A default route whose gateway's neighbour entry is FAILED (or stuck
    INCOMPLETE): nobody answers ARP/ND for it, so everything off-link is lost."""
    out: list[Finding] = []
    for ns in snapshot.namespaces:
        for r in ns.routes:
            if r.dst != "default" or r.type != "unicast":
                continue
            for gw, idx in route_gateways(r):
                for n in ns.neighbours:
                    if n.ip != gw or (idx is not None and n.ifindex != idx):
                        continue
                    if n.state not in ("failed", "incomplete"):
                        continue
                    itf = ns.interface(n.ifindex)
                    objs: list[ObjectRef] = [route_ref(ns, r)]
                    if itf is not None:
                        objs.append(if_ref(ns, itf))
                    objs.append(ObjectRef("neighbour", ns.id, f"{ns.name}: {gw} dev {n.dev}"))
                    out.append(
                        Finding(
                            "default-gateway-failed",
                            Severity.ERROR,
                            f"{ns.name}: default gateway {gw} does not answer "
                            f"(neighbour {n.state.upper()})",
                            tuple(objs),
                            (f"route: {route_text(r)}", f"neighbour {gw} dev {n.dev}: {n.state}"),
                            f"{ip_cmd(ns)} route replace default via <a live gateway> "
                            f"dev {n.dev or r.dev}",
                        )
                    )
    return out


# --- routes and rules that hide a route -------------------------------------------------------
def _lookup_order(ns: Netns, family: int) -> dict[int, int]:
    """table -> priority of the first rule that looks it up (main 32766 without rules)."""
    order: dict[int, int] = {}
    for rule in sorted(ns.rules, key=lambda r: r.priority):
        if rule.family == family and rule.action == "lookup" and rule.table:
            order.setdefault(rule.table, rule.priority)
    if not order:
        order = {_LOCAL: 0, _MAIN: 32766, 253: 32767}
    return order


def hidden_routes(snapshot: Snapshot) -> list[Finding]:
    """Blackhole, unreachable and prohibit routes that take traffic a unicast route
    was meant to carry: in the same table when more specific (or as specific with
    a better metric), or in a table looked up earlier by the rules."""
    out: list[Finding] = []
    for ns in snapshot.namespaces:
        for family in (4, 6):
            order = _lookup_order(ns, family)
            routes = [r for r in ns.routes if r.family == family and r.table != _LOCAL]
            rejects = [r for r in routes if r.type in REJECT]
            uni = [r for r in routes if r.type == "unicast"]
            for rj in rejects:
                rnet = route_net(rj)
                if rnet is None:
                    continue
                for u in uni:
                    unet = route_net(u)
                    if unet is None:
                        continue
                    sev = _hides(rj, rnet, u, unet, order)
                    if sev is None:
                        continue
                    out.append(
                        Finding(
                            "route-hidden",
                            sev,
                            f"{ns.name}: {rj.type} {rj.dst} (table {rj.table}) hides "
                            f"{u.dst}{' via ' + u.gateway if u.gateway else ''} "
                            f"(table {u.table})",
                            (route_ref(ns, rj), route_ref(ns, u)),
                            (
                                f"rejecting route: {route_text(rj)}",
                                f"hidden route: {route_text(u)}",
                                _why_hidden(rj, rnet, u, unet, order),
                            ),
                            f"{ip_cmd(ns)} route del {rj.type} {rj.dst} table {rj.table}",
                        )
                    )
            out.extend(_hiding_rules(ns, family, uni))
    return out


def _hides(
    rj: Route, rnet: IPNetwork, u: Route, unet: IPNetwork, order: dict[int, int]
) -> Severity | None:
    if rj.table == u.table:
        if rnet == unet:
            return Severity.ERROR if (rj.metric or 0) <= (u.metric or 0) else None
        if within(rnet, unet):
            return Severity.INFO if unet.prefixlen == 0 else Severity.WARNING
        return None
    first, second = order.get(rj.table), order.get(u.table)
    if first is None or second is None or first >= second:
        return None
    if within(unet, rnet):
        return Severity.ERROR
    if within(rnet, unet):
        return Severity.INFO if unet.prefixlen == 0 else Severity.WARNING
    return None


def _why_hidden(
    rj: Route, rnet: IPNetwork, u: Route, unet: IPNetwork, order: dict[int, int]
) -> str:
    if rj.table != u.table:
        return (
            f"table {rj.table} is looked up at priority {order[rj.table]}, before table "
            f"{u.table} at {order[u.table]}"
        )
    if rnet == unet:
        return f"same prefix, metric {rj.metric or 0} <= {u.metric or 0}"
    return f"{rj.dst} is more specific than {u.dst}: the longest prefix wins"


def _hiding_rules(ns: Netns, family: int, uni: list[Route]) -> list[Finding]:
    """A blackhole/unreachable/prohibit rule before the rule that looks up a table
    with a unicast route for the traffic it matches."""
    out: list[Finding] = []
    order = _lookup_order(ns, family)
    for rule in ns.rules:
        if rule.family != family or rule.action not in REJECT or rule.invert:
            continue
        rdst = network(rule.dst) if rule.dst else None
        hidden = [
            u
            for u in uni
            if order.get(u.table, -1) > rule.priority
            and (rdst is None or (route_net(u) is not None and overlaps(rdst, route_net(u))))  # type: ignore[arg-type]
        ]
        if not hidden:
            continue
        everything = not (rule.src or rule.dst or rule.iif or rule.oif or rule.fwmark)
        shown = hidden[:5]
        out.append(
            Finding(
                "rule-hides-routes",
                Severity.ERROR if everything else Severity.WARNING,
                f"{ns.name}: rule {rule.priority} ({rule.action}) drops traffic that "
                f"{len(hidden)} route(s) would carry",
                (
                    ObjectRef("rule", ns.id, f"{ns.name}: {rule_text(rule)}"),
                    *(route_ref(ns, u) for u in shown),
                ),
                (f"rule: {rule_text(rule)}", *(f"hidden route: {route_text(u)}" for u in shown)),
                f"{ip_cmd(ns)} -{family} rule del priority {rule.priority}",
            )
        )
    return out


# --- rp_filter ------------------------------------------------------------------------------
def rp_filter_asymmetric(
    snapshot: Snapshot, live: dict[str, dict[str, int]] | None
) -> list[Finding]:
    """Strict reverse-path filtering (1) on an interface of a multi-homed namespace
    drops packets whose source this namespace routes back through another
    interface. Proven per sender: another namespace routes through an address of
    this interface, and the route back to that sender's address leaves elsewhere.
    ``live`` holds per-interface values; without them only ``all`` is known (the
    kernel uses max(all, interface))."""
    seg = segments(snapshot)
    by_addr: dict[tuple[str, str], tuple[Netns, Interface]] = {}
    for ns in snapshot.namespaces:
        for itf in _v4_links(ns):
            for a in itf.addresses:
                by_addr[(seg.of(itf.ref.key), a.address)] = (ns, itf)
    senders: dict[tuple[str, int], list[tuple[Netns, Route, str]]] = defaultdict(list)
    for ns in snapshot.namespaces:
        for r in ns.routes:
            if r.family != 4 or r.type != "unicast" or r.table == _LOCAL:
                continue
            for gw, idx in route_gateways(r):
                if idx is None:
                    continue
                hit = by_addr.get((seg.of(f"{ns.id}/{idx}"), gw))
                if hit is None or hit[0].id == ns.id:
                    continue
                src = _source_address(ns, idx, r)
                if src is not None:
                    senders[(hit[0].id, hit[1].ifindex)].append((ns, r, src))
    out: list[Finding] = []
    for ns in snapshot.namespaces:
        links = _v4_links(ns)
        if len(links) < 2:
            continue
        values = (live or {}).get(ns.id, {})
        all_val = values.get("all", _int(ns.sysctls.get("net.ipv4.conf.all.rp_filter")))
        for itf in links:
            eff = max(all_val, values.get(itf.name, 0))
            if eff != 1:
                continue
            for sender, r, src in senders.get((ns.id, itf.ifindex), ()):
                back = lookup(ns, src, 4)
                if back is None or itf.ifindex in route_devices(back):
                    continue
                out_itf = ns.interface(next(iter(route_devices(back)), -1))
                out.append(
                    Finding(
                        "rp-filter-asymmetric",
                        Severity.WARNING,
                        f"{ns.name}: strict rp_filter on {itf.name} drops what {sender.name} "
                        f"sends through it (the way back leaves via "
                        f"{out_itf.name if out_itf else back.dev})",
                        (if_ref(ns, itf), ns_ref(sender)),
                        (
                            f"{ns.name}: rp_filter all={all_val} {itf.name}="
                            f"{values.get(itf.name, '?')} (effective {eff}, strict)",
                            f"{sender.name} routes {r.dst} via {r.gateway or '?'} "
                            f"({ns.name}:{itf.name}), from {src}",
                            f"{ns.name} routes back to {src} by: {route_text(back)}",
                        ),
                        f"{ns_exec(ns)}sysctl -w net.ipv4.conf.all.rp_filter=2 "
                        f"net.ipv4.conf.{itf.name}.rp_filter=2",
                    )
                )
                break
    return out


def _int(text: str | None) -> int:
    try:
        return int(text) if text is not None else 0
    except ValueError:
        return 0


def _source_address(ns: Netns, idx: int, r: Route) -> str | None:
    """The source a namespace uses on a route: prefsrc, else the first global
    IPv4 address of the egress interface."""
    if r.prefsrc:
        return r.prefsrc
    itf = ns.interface(idx)
    if itf is None:
        return None
    return next((a.address for a in itf.addresses if a.family == 4 and a.scope == "global"), None)


# --- subnets ---------------------------------------------------------------------------------
def overlapping_subnets(snapshot: Snapshot) -> list[Finding]:
    """Two links of one VRF (two bridges, typically) on overlapping subnets but
    different L2 segments: the route to the smaller one wins and hosts in the
    overlap on the other link become unreachable from here."""
    seg = segments(snapshot)
    out: list[Finding] = []
    for ns in snapshot.namespaces:
        nets: list[tuple[Interface, IPNetwork]] = []
        for itf in ns.interfaces:
            if itf.kind == "loopback" or itf.name == "lo":
                continue
            for a in itf.addresses:
                net = network(a.cidr)
                if a.scope != "global" or net is None or net.prefixlen == net.max_prefixlen:
                    continue
                nets.append((itf, net))
        seen: set[tuple[int, int]] = set()
        for i, (a_itf, a_net) in enumerate(nets):
            for b_itf, b_net in nets[i + 1 :]:
                if a_itf.ifindex == b_itf.ifindex or not overlaps(a_net, b_net):
                    continue
                if seg.of(a_itf.ref.key) == seg.of(b_itf.ref.key):
                    continue
                pair = (min(a_itf.ifindex, b_itf.ifindex), max(a_itf.ifindex, b_itf.ifindex))
                if pair in seen:
                    continue
                seen.add(pair)
                both_bridges = a_itf.kind == b_itf.kind == "bridge"
                out.append(
                    Finding(
                        "overlapping-subnets",
                        Severity.WARNING if both_bridges else Severity.INFO,
                        f"{ns.name}: {a_itf.name} ({a_net}) and {b_itf.name} ({b_net}) "
                        "overlap on different segments",
                        (if_ref(ns, a_itf), if_ref(ns, b_itf)),
                        (
                            f"{a_itf.name} ({a_itf.kind}) {a_net}",
                            f"{b_itf.name} ({b_itf.kind}) {b_net}",
                        ),
                        None,
                    )
                )
    return out
