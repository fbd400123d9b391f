"""Why a kernel refused a route lookup, in words, with the evidence.

The kernel's answer is an errno; the same errno has several causes, so the
explanation asks the kernel once more (as a locally sent packet) to tell a
refusing route from a refusing input check, and names the route a person would
see in ``ip route`` as evidence.
"""

from __future__ import annotations

import errno
import ipaddress
from typing import Any

from netlens.analysis.tracetypes import Packet
from netlens.kernel.routeget import RouteAnswer, route_get
from netlens.model.types import Interface, Netns

_ERRORS = {
    errno.ENETUNREACH: "no route (or an unreachable route)",
    errno.EHOSTUNREACH: "host unreachable",
    errno.EINVAL: "blackhole route",
    errno.EACCES: "prohibit route",
    errno.EPERM: "prohibited by a policy rule",
    errno.EXDEV: "reverse-path filter (rp_filter) rejects the source on this interface",
}


def _blocking_route(ns: Netns, dst: str, kind: str | None) -> str | None:
    """Evidence for a refused lookup: a route of the refusing type whose prefix holds
    ``dst`` (the kernel said *that* it refused; this names the route a person sees)."""
    want = ipaddress.ip_address(dst)
    best: tuple[int, str] | None = None
    for r in ns.routes:
        if (kind and r.type != kind) or r.type in ("unicast", "local", "broadcast"):
            continue
        net = ipaddress.ip_network(
            "0.0.0.0/0"
            if r.dst == "default" and want.version == 4
            else "::/0"
            if r.dst == "default"
            else r.dst,
            strict=False,
        )
        if (
            net.version == want.version
            and want in net
            and (best is None or net.prefixlen > best[0])
        ):
            best = (net.prefixlen, f"{r.type} {r.dst} (table {r.table})")
    return best[1] if best else None


def explain(
    sock: Any,
    ns: Netns,
    in_itf: Interface | None,
    pkt: Packet,
    ans: RouteAnswer,
    sysctls: dict[str, int],
) -> tuple[str, list[str]]:
    """Why the kernel refused the lookup, and the evidence.

    With an input interface the kernel answers the same errno for different
    causes (EINVAL: a blackhole route, or the reverse-path check; EHOSTUNREACH:
    any route while forwarding is off), so the same packet is asked once more as
    if sent from this namespace: if that lookup succeeds, the route is fine and
    the input checks (ip_forward, rp_filter) refused it.
    """
    name = errno.errorcode.get(ans.error, str(ans.error))
    evidence = [f"route get {pkt.dst}{' iif ' + in_itf.name if in_itf else ''} answered {name}"]
    refused = ans
    if in_itf is not None:
        refused = route_get(sock, pkt.dst, proto=pkt.proto, sport=pkt.sport, dport=pkt.dport)
        if not refused.error:
            if sysctls.get("ip_forward") == 0:
                evidence.append("net.ipv4.ip_forward = 0")
                return (
                    f"ip_forward is off in {ns.name} (it would have to route this packet)",
                    evidence,
                )
            if sysctls.get("rp_filter"):
                evidence.append(f"rp_filter = {sysctls['rp_filter']} on {in_itf.name}")
                return (
                    f"reverse-path filter (rp_filter={sysctls['rp_filter']}) in {ns.name}: "
                    f"replies to {pkt.src} would not leave by "
                    f"{in_itf.name}",
                    evidence,
                )
            return f"the input checks of {ns.name} refuse the source {pkt.src}", evidence
    kind = {
        errno.EINVAL: "blackhole",
        errno.EACCES: "prohibit",
        errno.ENETUNREACH: "unreachable",
        errno.EHOSTUNREACH: "unreachable",
    }.get(refused.error)
    reason = _ERRORS.get(refused.error, errno.errorcode.get(refused.error, str(refused.error)))
    route = _blocking_route(ns, pkt.dst, kind)
    if route:
        evidence.append(route)
        if refused.error in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            reason = "unreachable route"
    elif refused.error == errno.ENETUNREACH:
        reason = "no route"
    return f"{reason} in {ns.name}", evidence
