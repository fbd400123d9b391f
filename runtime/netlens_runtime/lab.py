"""``netlens lab up|down|ls|check``: the lab verbs of the runtime.

This module only registers the verbs; the work is in :mod:`netlens_runtime.lab_ops` and
:mod:`netlens_runtime.lab_spec`, imported inside each handler so that building the
``netlens`` parser stays cheap (PyYAML alone costs ~25 ms to import).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any


def add_commands(sub: Any) -> None:
    """Register ``lab up|down|ls|check`` on the ``netlens`` sub-parser set."""
    p: argparse.ArgumentParser = sub.add_parser(
        "lab", help="build a lab (networks, nodes, links) from a YAML file"
    )
    lab_sub = p.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    up = lab_sub.add_parser("up", help="validate a lab file and build it")
    up.add_argument("file", help="lab YAML file, or the name of a bundled lab (demo)")
    up.add_argument("--name", help="build it under another name")
    up.add_argument(
        "--nodes",
        metavar="N|A,B",
        help="N: grow the lab's 'count' groups to N nodes in all; A,B: build only these nodes",
    )
    up.set_defaults(func=_cmd_up)
    down = lab_sub.add_parser("down", help="remove a lab (by name or by its file)")
    down.add_argument("lab", help="lab name or lab file")
    down.set_defaults(func=_cmd_down)
    ls = lab_sub.add_parser("ls", help="list labs")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=_cmd_ls)
    check = lab_sub.add_parser("check", help="validate a lab file; build nothing")
    check.add_argument("file", help="lab YAML file, or the name of a bundled lab")
    check.add_argument(
        "--nodes", metavar="N|A,B", help="validate it grown to N nodes, or only these nodes"
    )
    check.set_defaults(func=_cmd_check)


def _load(args: argparse.Namespace, name: str | None = None) -> Any:
    """The lab file, grown (``--nodes N``) or cut down (``--nodes a,b``); notes on the way."""
    from netlens_runtime.lab_ops import resolve_lab_file
    from netlens_runtime.lab_spec import load_lab
    from netlens_runtime.lab_subset import parse_nodes_arg, subset

    nodes = parse_nodes_arg(args.nodes)
    scale = nodes if isinstance(nodes, int) else None
    spec = load_lab(resolve_lab_file(args.file), scale=scale, name=name)
    if isinstance(nodes, list):
        spec, notes = subset(spec, nodes)
        for note in notes:
            print(f"netlens: --nodes leaves out {note}", file=sys.stderr)
    return spec


def _cmd_check(args: argparse.Namespace) -> int:
    from netlens_runtime.errors import Conflict
    from netlens_runtime.lab_ops import check_host

    spec = _load(args)
    try:
        check_host(spec)
    except Conflict as err:  # the file is valid; this host is not ready for it
        print(f"netlens: warning: {err} (lab up would fail on this host)", file=sys.stderr)
    print(
        f"{args.file}: ok: lab {spec.name!r}, {len(spec.nodes)} nodes,"
        f" {len(spec.networks)} networks, {len(spec.links)} links"
    )
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    from netlens_runtime.lab_ops import lab_up, summary_lines

    spec = _load(args, args.name)
    t0 = time.monotonic()
    rec = lab_up(spec, log=lambda m: print(f"netlens: {m}", file=sys.stderr))
    took = time.monotonic() - t0
    print(
        f"lab {rec.name} up: {len(rec.nodes)} nodes, {len(rec.networks)} networks in {took:.2f} s"
    )
    for line in summary_lines(spec, rec):
        print(line)
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    from netlens_runtime.lab_ops import lab_down, lab_name_of

    name = lab_name_of(args.lab)
    errors = lab_down(name)
    for err in errors:
        print(f"netlens: {err}", file=sys.stderr)
    print(f"lab {name} down")
    return 1 if errors else 0


def _cmd_ls(args: argparse.Namespace) -> int:
    import json

    from netlens_runtime.lab_record import list_labs

    labs = list_labs()
    if args.json:
        print(json.dumps([r.to_json() for r in labs], indent=1))
        return 0
    if not labs:
        print("no labs")
        return 0
    from netlens_runtime import api
    from netlens_runtime.lab_record import LAB_LABEL

    running: dict[str, int] = {}
    for c in api.list_containers():
        lab_name = (c.get("labels") or {}).get(LAB_LABEL)
        if lab_name and c.get("state") == "running":
            running[lab_name] = running.get(lab_name, 0) + 1
    print(f"{'NAME':<24} {'STATUS':<9} {'NODES':>5} {'RUNNING':>7} {'NETS':>4}  FILE")
    for r in labs:
        print(
            f"{r.name:<24} {r.status:<9} {len(r.nodes):>5} {running.get(r.name, 0):>7}"
            f" {len(r.networks):>4}  {r.file}"
        )
    return 0
