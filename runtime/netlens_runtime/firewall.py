"""netlens's nftables table, built from the network records as nft JSON.

What the table enforces, for the networks of one state directory:

- **No 127.0.0.0/8 from a bridge.** A published port must answer on the
  host's 127.0.0.1, which needs ``route_localnet`` on the bridge of the
  container behind it; that same switch would let a container with NET_RAW
  reach any service the host binds to 127.0.0.1 (a frame to the gateway's MAC
  with destination 127.0.0.1: kube-proxy's CVE-2020-8558). So whatever enters
  from a bridge with a 127/8 source or destination is dropped at the raw
  priority, before conntrack and NAT: the host's own 127.0.0.1 connections to
  a published port come back addressed to the bridge's address (masqueraded),
  never to 127/8, so they pass.
- **Networks are isolated from each other.** Traffic the host forwards from one
  netlens bridge to another is dropped unless the target network allows the
  source (``allow_from``: a network name, or a CIDR for sources outside the
  host). Traffic inside one bridge, and replies of allowed connections, pass.
  Lab routers still route: a router's legs are ports on each bridge, so what
  it forwards never crosses the host's forward path between two bridges.
- **Internal networks** (``internal``) forward nothing out, and have no NAT.
- **Nothing unpublished is reachable from outside the host**: a new connection
  into a bridge from any other interface is dropped unless a published port's
  DNAT made it (or an ``allow_from`` CIDR allows it).
- Masquerade for NAT networks on the way out of netlens's bridges (not between
  two of them: an allowed peer network sees the real source), and DNAT for
  published ports (host address given, or every local address).

Everything is one JSON document fed to ``nft -j -f -`` (one transaction): names
and addresses are JSON strings, never spliced into a rule's text, and bridge
names are checked again here (:func:`netlens_runtime.names.ifname_problem`),
because nft reads a trailing ``*`` inside a string as a wildcard.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from netlens_runtime import names
from netlens_runtime.errors import BadInput

FAMILY = "ip"
BRIDGES = "bridges"  # the set of this state directory's bridge names
PRIO_RAW = -300
PRIO_DSTNAT = -100
PRIO_FILTER = 0
PRIO_SRCNAT = 100
LOOPBACK = ("127.0.0.0", 8)

Expr = dict[str, Any]


# --- expressions ------------------------------------------------------------------


def _cmp(left: Expr, right: Any, op: str = "==") -> Expr:
    return {"match": {"op": op, "left": left, "right": right}}


def _meta(key: str, value: str, op: str = "==") -> Expr:
    return _cmp({"meta": {"key": key}}, value, op)


def _addr(field: str, cidr: str, op: str = "==") -> Expr:
    net = ipaddress.IPv4Network(cidr, strict=False)
    right: Any = str(net.network_address)
    if net.prefixlen < 32:
        right = {"prefix": {"addr": right, "len": net.prefixlen}}
    return _cmp({"payload": {"protocol": "ip", "field": field}}, right, op)


def _port(proto: str, port: int) -> Expr:
    return _cmp({"payload": {"protocol": proto, "field": "dport"}}, port)


ACCEPT: Expr = {"accept": None}
DROP: Expr = {"drop": None}
IN_BRIDGES = _meta("iifname", "@" + BRIDGES)
OUT_BRIDGES = _meta("oifname", "@" + BRIDGES)
LOCAL_DADDR = _cmp({"fib": {"result": "type", "flags": ["daddr"]}}, "local")


# --- the table --------------------------------------------------------------------


def _bridge(net: dict[str, Any]) -> str:
    """The record's bridge, refused if it could act as a wildcard (a hand-edited record)."""
    bridge = net.get("bridge")
    problem = names.ifname_problem(bridge)
    if problem:
        raise BadInput(f"network {net.get('name')!r}: bridge {bridge!r}: {problem}")
    return str(bridge)


def _allowed(net: dict[str, Any], bridges: dict[str, str]) -> tuple[list[str], list[str]]:
    """(source bridges, outside CIDRs) that may open connections into ``net``.

    A name of a network that does not exist (any more) allows nothing; the
    entry stays in the record and applies again if that network comes back.
    """
    peers: list[str] = []
    cidrs: list[str] = []
    for item in net.get("allow_from") or []:
        if item in bridges:
            peers.append(bridges[item])
        elif "/" in str(item):
            try:
                cidrs.append(str(ipaddress.IPv4Network(str(item), strict=False)))
            except ValueError:
                raise BadInput(f"network {net.get('name')!r}: bad allow_from {item!r}") from None
    return peers, cidrs


def _rule(table: str, chain: str, *expr: Expr, comment: str | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"family": FAMILY, "table": table, "chain": chain, "expr": list(expr)}
    if comment:
        rule["comment"] = comment
    return {"add": {"rule": rule}}


def _chain(table: str, name: str, kind: str, hook: str, prio: int) -> dict[str, Any]:
    return {
        "add": {
            "chain": {
                "family": FAMILY, "table": table, "name": name,
                "type": kind, "hook": hook, "prio": prio, "policy": "accept",
            }
        }
    }  # fmt: skip


def commands(networks: list[dict[str, Any]], table: str) -> list[dict[str, Any]]:
    """The nft JSON commands that replace ``table`` (or only delete it, with no network).

    ``add table`` then ``delete table`` makes the delete succeed whether or not
    the table exists; the rest builds it again from scratch in the same
    transaction, so the rules always match the records.
    """
    ref = {"family": FAMILY, "name": table}
    cmds: list[dict[str, Any]] = [{"add": {"table": ref}}, {"delete": {"table": ref}}]
    if not networks:
        return cmds
    nets = sorted(networks, key=lambda n: str(n["name"]))
    bridges = {str(n["name"]): _bridge(n) for n in nets}
    cmds.append({"add": {"table": ref}})
    cmds.append(
        {
            "add": {
                "set": {
                    "family": FAMILY, "table": table, "name": BRIDGES, "type": "ifname",
                    "elem": sorted(bridges.values()),
                }
            }
        }
    )  # fmt: skip
    cmds += _guard_chain(table)
    cmds += _forward_chain(table, nets, bridges)
    cmds += _nat_chains(table, nets)
    return cmds


def _guard_chain(table: str) -> list[dict[str, Any]]:
    lo = "{}/{}".format(*LOOPBACK)
    return [
        _chain(table, "guard", "filter", "prerouting", PRIO_RAW),
        _rule(table, "guard", IN_BRIDGES, _addr("daddr", lo), DROP,
              comment="no host loopback from containers"),
        _rule(table, "guard", IN_BRIDGES, _addr("saddr", lo), DROP,
              comment="no loopback source from containers"),
    ]  # fmt: skip


def _forward_chain(
    table: str, nets: list[dict[str, Any]], bridges: dict[str, str]
) -> list[dict[str, Any]]:
    """Order matters: replies, same bridge, opt-ins, internal, published, isolation, out, in."""
    out = [_chain(table, "forward", "filter", "forward", PRIO_FILTER)]
    ct_state = _cmp({"ct": {"key": "state"}}, ["established", "related"], "in")
    out.append(_rule(table, "forward", ct_state, ACCEPT))
    for net in nets:
        br = bridges[str(net["name"])]
        out.append(
            _rule(table, "forward", _meta("iifname", br), _meta("oifname", br), ACCEPT,
                  comment=f"inside {net['name']}")
        )  # fmt: skip
    for net in nets:
        br = bridges[str(net["name"])]
        peers, cidrs = _allowed(net, bridges)
        for peer in peers:
            out.append(
                _rule(table, "forward", _meta("iifname", peer), _meta("oifname", br), ACCEPT,
                      comment=f"{net['name']} allows {peer}")
            )  # fmt: skip
        for cidr in cidrs:
            out.append(
                _rule(table, "forward", _meta("iifname", "@" + BRIDGES, "!="),
                      _addr("saddr", cidr), _meta("oifname", br), ACCEPT,
                      comment=f"{net['name']} allows {cidr}")
            )  # fmt: skip
    for net in nets:
        if net.get("internal"):
            br = bridges[str(net["name"])]
            out.append(
                _rule(table, "forward", _meta("iifname", br), DROP,
                      comment=f"{net['name']} is internal")
            )  # fmt: skip
    ct_dnat = _cmp({"ct": {"key": "status"}}, "dnat", "in")
    out.append(_rule(table, "forward", ct_dnat, OUT_BRIDGES, ACCEPT, comment="published ports"))
    out.append(
        _rule(table, "forward", IN_BRIDGES, OUT_BRIDGES, DROP, comment="networks are isolated")
    )
    for net in nets:
        if not net.get("internal"):
            br = bridges[str(net["name"])]
            out.append(_rule(table, "forward", _meta("iifname", br), ACCEPT))
    out.append(_rule(table, "forward", OUT_BRIDGES, DROP, comment="unpublished from outside"))
    return out


def _nat_chains(table: str, nets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = [_chain(table, "postrouting", "nat", "postrouting", PRIO_SRCNAT)]
    for net in nets:
        if net.get("nat", True) and not net.get("internal"):
            out.append(
                _rule(table, "postrouting", _addr("saddr", str(net["subnet"])),
                      _meta("oifname", "@" + BRIDGES, "!="), {"masquerade": None})
            )  # fmt: skip
    lo = "{}/{}".format(*LOOPBACK)
    for net in nets:
        # The host's own 127.0.0.1 connection to a published port leaves with the
        # bridge's address, so the reply comes back to that address (see above).
        out.append(
            _rule(table, "postrouting", _meta("oifname", _bridge(net)), _addr("saddr", lo),
                  {"masquerade": None})
        )  # fmt: skip
    dnat: list[tuple[list[Expr], str]] = []
    for net in nets:
        for cname, pubs in sorted((net.get("published") or {}).items()):
            for pub in pubs:
                host = pub.get("host_ip")
                # 0.0.0.0 in a record written before it meant "every address"
                every = host in (None, "", names.ANY_ADDRESS)
                match = LOCAL_DADDR if every else _addr("daddr", str(host))
                to = {"dnat": {"addr": str(pub["ip"]), "port": int(pub["port"])}}
                dnat.append(([match, _port(str(pub["proto"]), int(pub["host_port"])), to], cname))
    for chain in ("prerouting", "output"):
        out.append(_chain(table, chain, "nat", chain, PRIO_DSTNAT))
        for expr, cname in dnat:
            out.append(_rule(table, chain, *expr, comment=str(cname)))
    return out


def render(networks: list[dict[str, Any]], table: str) -> str:
    """The JSON document for ``nft -j -f -``."""
    return json.dumps({"nftables": commands(networks, table)}, separators=(",", ":"))
