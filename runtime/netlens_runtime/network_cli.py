"""``netlens network create|allow|disallow|ls|rm``: the network verbs of the runtime.

Only argparse here, as in :mod:`netlens_runtime.cli` (whose one-line errors,
guard and table these verbs share): each handler imports the runtime modules it
needs itself. Flag values go through the input rules
(:mod:`netlens_runtime.names`), as the same values in a lab file do.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from netlens_runtime.cli import _add, _require_root_to_read, _rule, _table


def add_commands(sub: Any) -> None:
    """Register ``network create|allow|disallow|ls|rm`` on the ``netlens`` sub-parser set."""
    net = _add(sub, "network", "manage bridge networks", _need_sub)
    nsub = net.add_subparsers(dest="network_command", metavar="SUBCOMMAND")
    p = _add(nsub, "create", "create a bridge network", cmd_network_create)
    p.add_argument("name")
    p.add_argument("--subnet", help="CIDR (default: a free private /24)")
    p.add_argument("--gateway", help="gateway address (default: first host)")
    p.add_argument(
        "--nat",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="masquerade the subnet (default, except --internal); turns net.ipv4.ip_forward on "
        "if off, and the last NAT network puts the old value back unless other source NAT "
        "shows on the host",
    )
    p.add_argument("--mtu", type=_rule("validate_mtu", number=True), default=1500)
    p.add_argument("--bridge", help="bridge name (default: derived)")
    p.add_argument(
        "--internal",
        action="store_true",
        help="no way out: nothing forwarded out of the network, no NAT, no default route in "
        "its containers, no published ports",
    )
    p.add_argument(
        "--allow-from",
        action="append",
        default=[],
        metavar="NET|CIDR",
        help="let containers of network NET (or sources in CIDR outside the host) open "
        "connections to this network's containers; networks are isolated otherwise "
        "(repeatable)",
    )
    for verb, allow, what in (
        ("allow", cmd_network_allow, "let another network (or CIDR) open connections into NAME"),
        ("disallow", cmd_network_disallow, "take back what 'network allow' gave"),
    ):
        p = _add(nsub, verb, what, allow)
        p.add_argument("name", help="the network whose containers are reached")
        p.add_argument("--from", dest="sources", action="append", required=True, metavar="NET|CIDR")
    p = _add(nsub, "ls", "list networks", cmd_network_ls)
    p.add_argument("--json", action="store_true")
    p = _add(nsub, "rm", "remove networks", cmd_network_rm)
    p.add_argument("names", nargs="+")


def _need_sub(args: argparse.Namespace) -> int:
    print("netlens network: give a subcommand: create, ls, rm, allow or disallow", file=sys.stderr)
    return 2


def cmd_network_create(args: argparse.Namespace) -> int:
    from netlens_runtime.args import NetworkArgs
    from netlens_runtime.names import check_internal_nat
    from netlens_runtime.networks import create_network

    check_internal_nat(args.internal, bool(args.nat))
    rec = create_network(
        NetworkArgs(
            name=args.name,
            subnet=args.subnet,
            gateway=args.gateway,
            nat=not args.internal if args.nat is None else args.nat,
            mtu=args.mtu,
            bridge=args.bridge,
            internal=args.internal,
            allow_from=args.allow_from,
        )
    )
    print(f"{rec['name']} {rec['bridge']} {rec['subnet']} gw {rec['gateway']}")
    return 0


def cmd_network_allow(args: argparse.Namespace, allow: bool = True) -> int:
    from netlens_runtime import netpolicy

    rec = netpolicy.set_allow_from(args.name, args.sources, allow)
    print(f"{rec['name']} allows from: {', '.join(rec['allow_from']) or 'nothing'}")
    return 0


def cmd_network_disallow(args: argparse.Namespace) -> int:
    return cmd_network_allow(args, allow=False)


def cmd_network_ls(args: argparse.Namespace) -> int:
    import json

    from netlens_runtime.networks import list_networks

    _require_root_to_read("netlens network ls", processes=False)
    nets = list_networks()
    if args.json:
        print(json.dumps(nets, indent=1, sort_keys=True))
        return 0
    rows: list[tuple[str, ...]] = [
        ("NAME", "BRIDGE", "SUBNET", "GATEWAY", "NAT", "MTU", "CONTAINERS")
    ]
    for n in nets:
        rows.append(
            (
                n["name"],
                n["bridge"],
                n["subnet"],
                n["gateway"],
                "internal" if n.get("internal") else "yes" if n.get("nat") else "no",
                str(n.get("mtu")),
                str(n["containers"]),
            )
        )
    _table(rows)
    return 0


def cmd_network_rm(args: argparse.Namespace) -> int:
    from netlens_runtime.networks import remove_network

    for name in args.names:
        remove_network(name)
        print(name)
    return 0
