"""NAT rules from the tools' text: ``nft -j list ruleset`` and ``iptables-save``.

Pure parsing, no namespace, no process: :mod:`netlens.discovery.nat_tools` runs
the tools inside the namespaces the probe (:mod:`netlens.discovery.nat`) found
NAT in, and hands their stdout here. Each parser turns one tool's view into the
model's :class:`~netlens.model.NatRule` rows with the hook(s) that reach the
rule's chain, so masquerade, snat, dnat and redirect read alike whichever of
nftables, iptables-nft or iptables-legacy holds them. Unknown expressions and
torn input cost only the rule they are in, never the parse.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from netlens.model import NatRule

_IPT_HOOKS = {
    "PREROUTING": "prerouting",
    "INPUT": "input",
    "FORWARD": "forward",
    "OUTPUT": "output",
    "POSTROUTING": "postrouting",
}
_NAT_ACTIONS = ("masquerade", "snat", "dnat", "redirect")
_IPT_TARGETS = {"MASQUERADE": "masquerade", "SNAT": "snat", "DNAT": "dnat", "REDIRECT": "redirect"}


# --- formatting helpers ------------------------------------------------------------
def _fmt_value(v: Any) -> str:
    """An nft JSON right-hand side as nft prints it."""
    if isinstance(v, dict):
        if "prefix" in v and isinstance(v["prefix"], dict):
            return f"{v['prefix'].get('addr')}/{v['prefix'].get('len')}"
        if "range" in v and isinstance(v["range"], list):
            return "-".join(_fmt_value(x) for x in v["range"])
        if "set" in v:
            items = v["set"] if isinstance(v["set"], list) else [v["set"]]
            return "{ " + ", ".join(_fmt_value(x) for x in items) + " }"
        if not v:
            return "{}"  # nothing to show; never a KeyError that would end the parse
        key = next(iter(v))
        return f"{key} {_fmt_value(v[key])}" if v[key] is not None else str(key)
    if isinstance(v, list):
        return "{ " + ", ".join(_fmt_value(x) for x in v) + " }"
    return str(v)


def _fmt_left(left: Any) -> tuple[str, str | None, str | None]:
    """(text, kind, field) of a match's left side; kind is payload protocol or 'meta'."""
    if isinstance(left, dict) and left:
        key, val = next(iter(left.items()))
        if key == "payload" and isinstance(val, dict):
            proto, fld = str(val.get("protocol", "")), str(val.get("field", ""))
            return f"{proto} {fld}", proto, fld
        if key == "meta" and isinstance(val, dict):
            mk = str(val.get("key", ""))
            text = mk if mk in ("iifname", "oifname", "iif", "oif") else f"meta {mk}"
            return text, "meta", mk
        if isinstance(val, dict):
            extra = " ".join(str(x) for k, x in val.items() if k in ("key", "field") and x)
            return f"{key} {extra}".strip(), key, None
        return str(key), key, None
    return str(left), None, None


def _split_addr_port(spec: str) -> tuple[str | None, str | None]:
    """``1.2.3.4:80``, ``[fd00::1]:80``, ``1.2.3.4-1.2.3.9:1000-2000``, ``fd00::1``, ``::1``."""
    if not spec:
        return None, None
    if spec.startswith("["):
        addr, _, rest = spec[1:].partition("]")
        return addr or None, rest.lstrip(":") or None
    if spec.count(":") == 1:  # ":8080" too; "::1" and "fd00::1" are bare addresses
        addr, _, port = spec.partition(":")
        return addr or None, port or None
    return spec, None


def _neg(op: str, text: str) -> str:
    return f"!{text}" if op == "!=" else text


# --- nftables JSON -----------------------------------------------------------------
@dataclass(slots=True)
class _Draft:
    """Fields gathered while walking one rule's expressions."""

    proto: str | None = None
    src: str | None = None
    dst: str | None = None
    in_iface: str | None = None
    out_iface: str | None = None
    dport: str | None = None
    action: str | None = None
    to_addr: str | None = None
    to_port: str | None = None
    parts: list[str] = field(default_factory=list)


def _nft_expr(d: _Draft, expr: dict[str, Any], jumps: list[str]) -> bool:
    """Fold one expression into ``d``; True when it is an iptables-nft xt NAT target."""
    key, val = next(iter(expr.items())) if expr else ("", None)
    if key == "match" and isinstance(val, dict):
        op = str(val.get("op", "=="))
        ltext, kind, fld = _fmt_left(val.get("left"))
        right = _fmt_value(val.get("right"))
        named = kind == "meta" and fld in ("iifname", "oifname") and not right.startswith("@")
        shown = f'"{right}"' if named else right  # a set reference (@name) is not quoted
        d.parts.append(f"{ltext} {'' if op in ('==', 'in') else op + ' '}{shown}")
        if kind in ("ip", "ip6") and fld in ("saddr", "daddr"):
            if fld == "saddr":
                d.src = _neg(op, right)
            else:
                d.dst = _neg(op, right)
        elif (kind in ("ip", "ip6") and fld in ("protocol", "nexthdr")) or (
            kind == "meta" and fld == "l4proto"
        ):
            d.proto = _neg(op, right)
        elif kind == "meta" and fld in ("iifname", "iif"):
            d.in_iface = _neg(op, right)
        elif kind == "meta" and fld in ("oifname", "oif"):
            d.out_iface = _neg(op, right)
        elif kind in ("tcp", "udp", "sctp", "dccp", "th") and fld == "dport":
            d.dport = _neg(op, right)
            if kind != "th" and d.proto is None:
                d.proto = kind
        elif kind in ("tcp", "udp", "sctp", "dccp") and d.proto is None:
            d.proto = kind
        return False
    if key in _NAT_ACTIONS:
        d.action = key
        args = val if isinstance(val, dict) else {}
        addr = args.get("addr")
        port = args.get("port")
        d.to_addr = _fmt_value(addr) if addr is not None else None
        d.to_port = _fmt_value(port) if port is not None else None
        text = key
        if d.to_addr or d.to_port:
            a = d.to_addr or ""
            if d.to_port and a and ":" in a:
                a = f"[{a}]"
            text += " to " + a + (f":{d.to_port}" if d.to_port else "")
        d.parts.append(text)
        return False
    if key == "xt" and isinstance(val, dict):
        name = str(val.get("name", ""))
        d.parts.append(" ".join(p for p in ("xt", str(val.get("type") or ""), name) if p))
        return val.get("type") == "target" and name in _IPT_TARGETS
    if key in ("jump", "goto") and isinstance(val, dict):
        jumps.append(str(val.get("target")))
        d.parts.append(f"{key} {val.get('target')}")
        return False
    d.parts.append(key if val is None else f"{key}")
    return False


def _hooks_of(base: dict[str, str | None], edges: dict[str, set[str]]) -> dict[str, str | None]:
    """Hook(s) that reach each chain of one table, following jump/goto edges."""
    reach: dict[str, set[str]] = {c: {h} for c, h in base.items() if h}
    stack = list(reach)
    while stack:
        src = stack.pop()
        for dst in edges.get(src, ()):
            before = len(reach.setdefault(dst, set()))
            reach[dst] |= reach[src]
            if len(reach[dst]) != before:
                stack.append(dst)
    return {c: ",".join(sorted(hs)) for c, hs in reach.items()}


def parse_nft_json(doc: dict[str, Any]) -> tuple[list[NatRule], set[tuple[str, str]]]:
    """NAT rules from ``nft -j list ruleset`` output.

    Also returns the (family, table) pairs whose NAT targets are iptables-nft
    ``xt`` blobs: nft -j shows no addresses for those, so the caller reads them
    again with iptables-nft-save and drops this parse's rules of those tables.
    """
    items = doc.get("nftables", []) if isinstance(doc, dict) else []
    base: dict[tuple[str, str], dict[str, str | None]] = {}
    edges: dict[tuple[str, str], dict[str, set[str]]] = {}
    drafts: list[tuple[str, str, str, _Draft, str | None]] = []
    xt_tables: set[tuple[str, str]] = set()
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        if "chain" in item and isinstance(item["chain"], dict):
            ch = item["chain"]
            tkey = (str(ch.get("family")), str(ch.get("table")))
            base.setdefault(tkey, {})[str(ch.get("name"))] = (
                str(ch["hook"]) if ch.get("hook") else None
            )
        elif "rule" in item and isinstance(item["rule"], dict):
            rule = item["rule"]
            tkey = (str(rule.get("family")), str(rule.get("table")))
            chain = str(rule.get("chain"))
            d = _Draft()
            jumps: list[str] = []
            exprs = rule.get("expr")
            for expr in exprs if isinstance(exprs, list) else []:
                if isinstance(expr, dict) and _nft_expr(d, expr, jumps):
                    xt_tables.add(tkey)
            for j in jumps:
                edges.setdefault(tkey, {}).setdefault(chain, set()).add(j)
            if d.action:
                comment = rule.get("comment")
                drafts.append((tkey[0], tkey[1], chain, d, str(comment) if comment else None))
    hooks = {t: _hooks_of(base.get(t, {}), edges.get(t, {})) for t in base}
    rules: list[NatRule] = []
    for family, table, chain, d, comment in drafts:
        text = " ".join(d.parts) + (f' comment "{comment}"' if comment else "")
        rules.append(
            NatRule(
                source="nftables",
                family=family,
                table=table,
                chain=chain,
                hook=hooks.get((family, table), {}).get(chain),
                action=d.action or "",
                proto=d.proto,
                src=d.src,
                dst=d.dst,
                in_iface=d.in_iface,
                out_iface=d.out_iface,
                dport=d.dport,
                to_addr=d.to_addr,
                to_port=d.to_port,
                comment=comment,
                text=text,
            )
        )
    return rules, xt_tables


# --- iptables-save text ------------------------------------------------------------
_IPT_VALUE_OPTS = {
    "-s": "src",
    "--source": "src",
    "-d": "dst",
    "--destination": "dst",
    "-i": "in_iface",
    "--in-interface": "in_iface",
    "-o": "out_iface",
    "--out-interface": "out_iface",
    "-p": "proto",
    "--protocol": "proto",
    "--dport": "dport",
    "--destination-port": "dport",
    "--dports": "dport",
    "--destination-ports": "dport",
}


def parse_iptables_save(text: str, *, source: str, family: str = "ip") -> list[NatRule]:
    """NAT rules from ``iptables-save -t nat`` (legacy or nft flavour) output.

    ``source`` is "iptables-legacy" or "iptables-nft"; ``family`` "ip" or "ip6".
    Chains other than the built-in ones get the hook(s) that jump to them.
    """
    table = ""
    drafts: list[tuple[str, str, dict[str, str], str, str | None]] = []
    edges: dict[str, set[str]] = {}
    builtin: dict[str, str | None] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            table = line[1:]
            continue
        if line.startswith(":"):
            name = line[1:].split()[0] if line[1:].split() else ""
            builtin[name] = _IPT_HOOKS.get(name)
            continue
        if not line.startswith("-A "):
            continue
        try:
            tokens = shlex.split(line)
        except ValueError:
            tokens = line.split()
        chain = tokens[1] if len(tokens) > 1 else ""
        fields: dict[str, str] = {}
        target = ""
        comment: str | None = None
        neg = False
        i = 2
        while i < len(tokens):
            tok = tokens[i]
            nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
            if tok == "!":
                neg = True
                i += 1
                continue
            if tok in _IPT_VALUE_OPTS:
                fields[_IPT_VALUE_OPTS[tok]] = ("!" if neg else "") + nxt
                i += 2
            elif tok in ("-j", "--jump", "-g", "--goto"):
                target = nxt
                i += 2
            elif tok == "--comment":
                comment = nxt
                i += 2
            elif tok in ("--to-destination", "--to-source", "--to-ports", "--to-port"):
                fields[tok] = nxt
                i += 2
            elif tok.startswith("-") and nxt and not nxt.startswith("-") and nxt != "!":
                i += 2  # an option we do not model, with its value (-m tcp, --dst-type X)
            else:
                i += 1
            neg = False
        if target in _IPT_TARGETS:
            drafts.append((chain, _IPT_TARGETS[target], fields, line, comment))
        elif target:
            edges.setdefault(chain, set()).add(target)
    hooks = _hooks_of(builtin, edges)
    rules: list[NatRule] = []
    for chain, action, f, line, comment in drafts:
        spec = f.get("--to-destination") or f.get("--to-source") or ""
        to_addr, to_port = _split_addr_port(spec)
        if "--to-ports" in f or "--to-port" in f:
            to_port = f.get("--to-ports") or f.get("--to-port")
        rules.append(
            NatRule(
                source=source,
                family=family,
                table=table,
                chain=chain,
                hook=hooks.get(chain),
                action=action,
                proto=f.get("proto"),
                src=f.get("src"),
                dst=f.get("dst"),
                in_iface=f.get("in_iface"),
                out_iface=f.get("out_iface"),
                dport=f.get("dport"),
                to_addr=to_addr,
                to_port=to_port,
                comment=comment,
                text=line,
            )
        )
    return rules
