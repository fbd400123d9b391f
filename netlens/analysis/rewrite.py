"""NAT as it rewrites a traced packet: discovery's parsed rules, applied in hook order.

A rule applies only when every field it matches on certainly matches the packet
(interfaces, protocol, port, address ranges); the first such rule of the hook
wins, as in the kernel's NAT chains (the first matching rule sets up the
conntrack mapping). ``masquerade`` leaves the address to the caller, which knows
the egress interface.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from netlens.analysis.tracetypes import Packet
from netlens.model.types import Netns


def apply(
    ns: Netns, hooks: tuple[str, ...], pkt: Packet, iif: str | None, oif: str | None
) -> tuple[Packet, list[str]]:
    """Apply the first NAT rule of ``hooks`` that certainly matches (discovery's rules)."""
    notes: list[str] = []
    for rule in ns.nat:
        if rule.hook not in hooks:
            continue
        if (rule.in_iface and rule.in_iface != iif) or (rule.out_iface and rule.out_iface != oif):
            continue
        if rule.proto and rule.proto != pkt.proto:
            continue
        if rule.dport and str(pkt.dport) != rule.dport:
            continue
        if not _in(pkt.src, rule.src) or not _in(pkt.dst, rule.dst):
            continue
        if rule.action in ("dnat", "redirect") and rule.to_addr:
            port = int(rule.to_port) if rule.to_port and rule.to_port.isdigit() else pkt.dport
            new = replace(pkt, dst=rule.to_addr.split("/")[0], dport=port)
        elif rule.action == "snat" and rule.to_addr:
            new = replace(pkt, src=rule.to_addr.split("/")[0])
        elif rule.action == "masquerade":
            new = pkt  # source becomes the egress address: filled in by the caller
        else:
            continue
        notes.append(
            f"{rule.action} by {rule.source} {rule.table}/{rule.chain}: {rule.text or rule.action}"
        )
        return new, notes
    return pkt, notes


def _in(addr: str, sel: str | None) -> bool:
    if not sel:
        return True
    neg = sel.startswith("!")
    try:
        hit = ipaddress.ip_address(addr) in ipaddress.ip_network(sel.lstrip("! "), strict=False)
    except ValueError:
        return False
    return hit != neg
