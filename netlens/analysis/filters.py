"""The filter verdict of one namespace for one packet, read from its nftables rules.

The kernel has no "would you drop this?" question, so the verdict is read from
the rules: base chains of the hook in priority order, rules in order, jumps
followed. Only matches whose meaning is certain are evaluated (interface names,
addresses and prefixes, protocol, ports, sets of those); a rule with any other
match (conntrack state, marks, opaque iptables-nft ``xt`` matches) is *not*
assumed to match, and when its verdict is drop the answer says "may drop" with
the rule, instead of guessing. An accept ends a base chain (the next base chain
of the hook still runs, as in the kernel); a drop or reject ends the packet.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from netlens.analysis.tracetypes import Packet

_MAX_JUMPS = 16


@dataclass
class FilterVerdict:
    """``verdict``: accept, drop or unknown (no ruleset readable)."""

    hook: str
    verdict: str
    chain: str | None = None
    rule: str | None = None
    maybe: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "verdict": self.verdict,
            "chain": self.chain,
            "rule": self.rule,
            "may_drop": list(self.maybe),
        }


def _value_in(value: object, right: Any) -> bool | None:
    """Whether ``value`` equals/falls in the nft JSON ``right`` side; None: cannot tell."""
    if isinstance(right, dict):
        if "set" in right:
            hits = [_value_in(value, r) for r in right["set"]]
            if any(h is True for h in hits):
                return True
            return None if any(h is None for h in hits) else False
        if "prefix" in right and isinstance(value, str):
            p = right["prefix"]
            try:
                net = ipaddress.ip_network(f"{p['addr']}/{p['len']}", strict=False)
                return ipaddress.ip_address(value) in net
            except (KeyError, ValueError):
                return None
        if "range" in right and isinstance(value, int):
            lo, hi = right["range"]
            return isinstance(lo, int) and isinstance(hi, int) and lo <= value <= hi
        return None
    if isinstance(value, str) and isinstance(right, str):
        if right.endswith("*"):
            return value.startswith(right[:-1])
        try:
            return ipaddress.ip_address(value) == ipaddress.ip_address(right)
        except ValueError:
            return value == right
    if isinstance(value, int) and isinstance(right, int):
        return value == right
    return None


def _left_value(left: Any, pkt: Packet, iif: str | None, oif: str | None) -> tuple[bool, object]:
    """(known, value) of a match's left side for this packet."""
    if not isinstance(left, dict):
        return False, None
    meta = left.get("meta")
    if isinstance(meta, dict):
        key = meta.get("key")
        if key == "iifname":
            return iif is not None, iif
        if key == "oifname":
            return oif is not None, oif
        if key == "l4proto":
            return True, pkt.proto
        if key == "nfproto":
            return True, "ipv6" if ":" in pkt.dst else "ipv4"
        return False, None
    payload = left.get("payload")
    if isinstance(payload, dict):
        proto, fld = payload.get("protocol"), payload.get("field")
        if proto in ("ip", "ip6") and fld == "saddr":
            return True, pkt.src
        if proto in ("ip", "ip6") and fld == "daddr":
            return True, pkt.dst
        if (proto, fld) in (("ip", "protocol"), ("ip6", "nexthdr")):
            return True, pkt.proto
        if fld in ("sport", "dport") and proto in ("tcp", "udp", "th"):
            if proto != "th" and proto != pkt.proto:
                return True, None  # a tcp port match never matches a udp packet
            port = pkt.sport if fld == "sport" else pkt.dport
            return port is not None, port
    return False, None


def _match(expr: dict[str, Any], pkt: Packet, iif: str | None, oif: str | None) -> bool | None:
    m = expr["match"]
    known, value = _left_value(m.get("left"), pkt, iif, oif)
    if not known:
        return None
    if value is None:
        hit: bool | None = False
    else:
        hit = _value_in(value, m.get("right"))
    if hit is None:
        return None
    op = m.get("op", "==")
    if op in ("==", "in"):
        return hit
    if op == "!=":
        return not hit
    return None


_IGNORED = {"counter", "log", "limit", "comment", "notrack", "meta-set", "quota"}
_END = {"accept", "drop", "reject", "jump", "goto", "return", "queue"}


def _rule_text(rule: dict[str, Any]) -> str:
    return (
        f"{rule.get('family')} {rule.get('table')} {rule.get('chain')} handle {rule.get('handle')}"
    )


def evaluate(
    ruleset: list[dict[str, Any]] | None,
    hook: str,
    pkt: Packet,
    iif: str | None,
    oif: str | None,
    families: tuple[str, ...],
) -> FilterVerdict:
    """The verdict of ``hook`` (input, forward, output) for ``pkt``."""
    if ruleset is None:
        return FilterVerdict(hook, "unknown")
    chains: dict[tuple[str, str, str], dict[str, Any]] = {}
    rules: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for obj in ruleset:
        if "chain" in obj:
            c = obj["chain"]
            chains[(c.get("family"), c.get("table"), c.get("name"))] = c
        elif "rule" in obj:
            r = obj["rule"]
            rules.setdefault((r.get("family"), r.get("table"), r.get("chain")), []).append(r)
    bases = [
        (c.get("prio", 0), key)
        for key, c in chains.items()
        if key[0] in families and c.get("hook") == hook and c.get("type", "filter") == "filter"
    ]
    result = FilterVerdict(hook, "accept")
    for _prio, key in sorted(bases, key=lambda b: (b[0], b[1])):
        verdict = _run_chain(key, chains, rules, pkt, iif, oif, result, 0)
        if verdict == "drop":
            return result
        if verdict is None:  # fell off the end of the base chain: its policy
            policy = chains[key].get("policy", "accept")
            if policy == "drop":
                result.verdict = "drop"
                result.chain = f"{key[0]} {key[1]} {key[2]}"
                result.rule = f"policy drop of chain {key[2]} (table {key[0]} {key[1]})"
                return result
    return result


def _run_chain(
    key: tuple[str, str, str],
    chains: dict[tuple[str, str, str], dict[str, Any]],
    rules: dict[tuple[str, str, str], list[dict[str, Any]]],
    pkt: Packet,
    iif: str | None,
    oif: str | None,
    result: FilterVerdict,
    depth: int,
) -> str | None:
    """``accept``, ``drop``, or None (end of chain / return)."""
    if depth > _MAX_JUMPS:
        return None
    for rule in rules.get(key, []):
        certain = True
        matched = True
        verdict: tuple[str, Any] | None = None
        for expr in rule.get("expr", []):
            if not isinstance(expr, dict) or not expr:
                continue
            name = next(iter(expr))
            if name == "match":
                hit = _match(expr, pkt, iif, oif)
                if hit is False:
                    matched = False
                    break
                if hit is None:
                    certain = False
            elif name in _END:
                verdict = (name, expr[name])
                break
            elif name not in _IGNORED:
                certain = False
        if not matched or verdict is None:
            continue
        kind, arg = verdict
        if not certain:
            if kind in ("drop", "reject"):
                result.maybe.append(_rule_text(rule) + f": {kind} under conditions not evaluated")
            continue
        if kind == "accept":
            return "accept"
        if kind in ("drop", "reject"):
            result.verdict = "drop"
            result.chain = f"{key[0]} {key[1]} {key[2]}"
            result.rule = _rule_text(rule) + f": {kind}"
            return "drop"
        if kind == "return":
            return None
        if kind in ("jump", "goto") and isinstance(arg, dict):
            sub = (key[0], key[1], arg.get("target", ""))
            got = _run_chain(sub, chains, rules, pkt, iif, oif, result, depth + 1)
            if got is not None or kind == "goto":
                return got
    return None
