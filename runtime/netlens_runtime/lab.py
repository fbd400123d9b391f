"""``netlens lab up|down|ls|check|save|export|stop|start|restart``: the lab verbs.

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
    """Register ``lab up|down|ls|check|save|export|stop|start|restart`` on the ``netlens``
    sub-parser set."""
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
    save = lab_sub.add_parser("save", help="write a running lab back as a lab file")
    save.add_argument("lab", help="lab name")
    save.add_argument("out", metavar="FILE", help="file to write ('-': standard output)")
    save.add_argument("--force", action="store_true", help="replace FILE if it exists")
    save.set_defaults(func=_cmd_save)
    export = lab_sub.add_parser("export", help="write a running lab in another format")
    export.add_argument("lab", help="lab name")
    export.add_argument("--format", required=True, choices=["clab"], help="containerlab")
    export.add_argument("-o", "--output", metavar="FILE", help="file (default: standard output)")
    export.add_argument("--force", action="store_true", help="replace FILE if it exists")
    export.set_defaults(func=_cmd_export)
    _lifecycle_verbs(lab_sub)


def _lifecycle_verbs(lab_sub: Any) -> None:
    """``lab stop|start|restart LAB [NODE...]`` (:mod:`netlens_runtime.lab_lifecycle`) and
    ``lab exec LAB NODE -- CMD``."""
    verbs = (
        ("stop", "stop nodes' commands; their namespaces and links stay", _cmd_stop),
        ("start", "run stopped nodes' commands again, in their kept namespaces", _cmd_start),
        ("restart", "stop and start nodes; their namespaces and links stay", _cmd_restart),
    )
    for verb, text, func in verbs:
        p = lab_sub.add_parser(verb, help=text, description=text)
        p.add_argument("lab", help="lab name")
        p.add_argument("nodes", nargs="*", metavar="NODE", help="nodes (default: all of them)")
        if verb != "start":
            p.add_argument("-t", "--time", type=float, default=10.0, help="seconds before SIGKILL")
        p.set_defaults(func=func)
    text = "run a command in a lab node (as 'netlens exec')"
    ex = lab_sub.add_parser("exec", help=text, description=text)
    ex.add_argument(
        "-e", "--env", action="append", default=[], metavar="K=V", help="environment variable"
    )
    ex.add_argument("lab", help="lab name")
    ex.add_argument("node", help="the node")
    ex.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND [ARG...]")
    ex.set_defaults(func=_cmd_exec)


def _load(args: argparse.Namespace, name: str | None = None) -> Any:
    """The lab file, grown (``--nodes N``) or cut down (``--nodes a,b``); notes on the way."""
    from netlens_runtime.lab_ops import resolve_lab_file
    from netlens_runtime.lab_spec import load_lab
    from netlens_runtime.lab_subset import parse_nodes_arg, subset

    nodes = parse_nodes_arg(args.nodes)
    scale = nodes if isinstance(nodes, int) else None
    spec = load_lab(
        resolve_lab_file(args.file),
        scale=scale,
        name=name,
        notify=lambda m: print(f"netlens: {m}", file=sys.stderr),
    )
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


def _note(message: str) -> None:
    print(f"netlens: {message}", file=sys.stderr)


def _cmd_save(args: argparse.Namespace) -> int:
    from netlens_runtime import names
    from netlens_runtime.lab_save import running_spec, to_native, write_yaml

    spec = running_spec(names.validate_name(args.lab, "lab"), _note)
    write_yaml(to_native(spec), args.out, args.force)
    if args.out != "-":
        print(f"lab {spec.name} saved to {args.out}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from netlens_runtime import names
    from netlens_runtime.lab_save import running_spec, to_clab, write_yaml

    spec = running_spec(names.validate_name(args.lab, "lab"), _note)
    write_yaml(to_clab(spec, _note), args.output, args.force)
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    from netlens_runtime.lab_lifecycle import stop_nodes

    print("\n".join(stop_nodes(args.lab, args.nodes, args.time)))
    return 0


def _cmd_start(args: argparse.Namespace) -> int:
    from netlens_runtime.lab_lifecycle import start_nodes

    print("\n".join(start_nodes(args.lab, args.nodes)))
    return 0


def _cmd_restart(args: argparse.Namespace) -> int:
    from netlens_runtime.lab_lifecycle import restart_nodes

    print("\n".join(restart_nodes(args.lab, args.nodes, args.time)))
    return 0


def _cmd_exec(args: argparse.Namespace) -> int:
    from netlens_runtime.containers import get_container
    from netlens_runtime.errors import BadInput, require_root
    from netlens_runtime.execin import exec_in
    from netlens_runtime.lab_lifecycle import node_container
    from netlens_runtime.names import parse_kv

    require_root("lab exec", "it enters the node's namespaces")
    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not command:
        raise BadInput("lab exec needs the command after --, e.g. -- ip addr")
    env = dict(parse_kv(item, "--env") for item in args.env)
    return exec_in(get_container(node_container(args.lab, args.node)), command, env)


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
