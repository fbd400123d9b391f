"""The runtime's verbs as ``netlens`` subcommands.

Only argparse is imported at module level: ``netlens run -d`` must finish the
whole process in well under 150 ms, so every handler imports the runtime
modules it needs itself. ``netlens run`` without ``-d`` attaches (the
container's output on ours, Ctrl-C forwarded by tini) and removes the container
when its command exits, like ``docker run --rm``: an attached run is a
one-off. Detached containers keep running and log to the state directory.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from typing import Any


def _one_line_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Bad flags: one line on stderr and exit 2 (argparse prints the usage too)."""

    def error(message: str) -> Any:
        print(f"{parser.prog}: {message}", file=sys.stderr)
        sys.exit(2)

    setattr(parser, "error", error)  # noqa: B010 - instance override
    return parser


def _guard(func: Any) -> Any:
    """A system call failing where we did not expect it: one line, not a traceback."""

    def run(args: argparse.Namespace) -> int:
        from netlens_runtime.errors import RuntimeFailure

        try:
            return int(func(args) or 0)
        except (BrokenPipeError, KeyboardInterrupt):
            raise
        except OSError as err:
            raise RuntimeFailure(f"{args.command}: {err}") from err

    return run


def _add(sub: Any, name: str, help_: str, func: Any) -> argparse.ArgumentParser:
    parser = _one_line_errors(sub.add_parser(name, help=help_, description=help_))
    parser.set_defaults(func=_guard(func))
    return parser


def add_commands(sub: Any) -> None:
    """Register run, ps, stop, rm, exec, logs, inspect, network, gc (and lab).

    argparse looks up a translation (gettext.find: environment and locale
    paths) for every parser and argument it builds: ~10 ms for these verbs,
    paid by every ``netlens`` start. CPython ships no argparse catalogue, so
    while registering we use the untranslated strings directly.
    """
    saved = argparse._  # type: ignore[attr-defined]
    argparse._ = str  # type: ignore[attr-defined]
    try:
        _add_commands(sub)
    finally:
        argparse._ = saved  # type: ignore[attr-defined]


def _add_commands(sub: Any) -> None:
    p = _add(
        sub,
        "run",
        "create and start a container (without -d: attached, removed when it exits)",
        cmd_run,
    )
    p.add_argument("--name", help="container name (default: random)")
    p.add_argument("--network", default="default", help="network name, or 'none'")
    p.add_argument("--ip", help="address on the network (default: next free)")
    p.add_argument("--memory", "-m", help="memory limit, e.g. 64m")
    p.add_argument("--cpus", type=float, help="CPU quota in cores, e.g. 0.5")
    p.add_argument("--publish", "-p", action="append", default=[], metavar="HOSTPORT:PORT")
    p.add_argument("--env", "-e", action="append", default=[], metavar="K=V")
    p.add_argument("--label", "-l", action="append", default=[], metavar="K=V")
    p.add_argument("--cap-add", action="append", default=[], metavar="CAP")
    p.add_argument("--sysctl", action="append", default=[], metavar="K=V")
    p.add_argument("--hostname", help="hostname (default: the name)")
    p.add_argument("--rootfs", help="root directory (default: read-only view of /)")
    p.add_argument(
        "--privileged",
        action="store_true",
        help="every capability and no seccomp filter (only for what really needs it)",
    )
    p.add_argument(
        "--security-opt",
        action="append",
        default=[],
        metavar="seccomp=unconfined|FILE",
        help="the system call filter: a profile in Docker's JSON format, or none"
        " (default: the runtime's own, like Docker's)",
    )
    p.add_argument("-d", "--detach", action="store_true", help="run in the background")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND [ARG...]")

    p = _add(sub, "ps", "list containers", cmd_ps)
    p.add_argument("--json", action="store_true")
    p = _add(sub, "stop", "stop containers (SIGTERM, then SIGKILL)", cmd_stop)
    p.add_argument("-t", "--time", type=float, default=10.0, help="seconds before SIGKILL")
    p.add_argument("names", nargs="+")
    p = _add(sub, "rm", "remove containers", cmd_rm)
    p.add_argument("-f", "--force", action="store_true", help="kill running ones first")
    p.add_argument("names", nargs="+")
    p = _add(sub, "exec", "run a command in a running container", cmd_exec)
    p.add_argument("-e", "--env", action="append", default=[], metavar="K=V")
    p.add_argument("name")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND [ARG...]")
    p = _add(sub, "logs", "print a detached container's output", cmd_logs)
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("name")
    p = _add(sub, "inspect", "print a container's (or network's) record as JSON", cmd_inspect)
    p.add_argument("name")
    _add(sub, "gc", "remove leftovers of killed or failed runtime commands", cmd_gc)

    net = _add(sub, "network", "manage bridge networks", _need_sub)
    nsub = net.add_subparsers(dest="network_command", metavar="SUBCOMMAND")
    p = _add(nsub, "create", "create a bridge network", cmd_network_create)
    p.add_argument("name")
    p.add_argument("--subnet", help="CIDR (default: a free private /24)")
    p.add_argument("--gateway", help="gateway address (default: first host)")
    p.add_argument(
        "--nat",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="masquerade the subnet; turns net.ipv4.ip_forward on if off, and the last NAT "
        "network puts the old value back unless other source NAT shows on the host",
    )
    p.add_argument("--mtu", type=int, default=1500)
    p.add_argument("--bridge", help="bridge name (default: derived)")
    p = _add(nsub, "ls", "list networks", cmd_network_ls)
    p.add_argument("--json", action="store_true")
    p = _add(nsub, "rm", "remove networks", cmd_network_rm)
    p.add_argument("names", nargs="+")

    try:
        from netlens_runtime import lab
    except ModuleNotFoundError as err:
        if err.name != "netlens_runtime.lab":
            raise
    else:
        hook = getattr(lab, "add_commands", None)
        if hook is not None:
            hook(sub)


def _need_sub(args: argparse.Namespace) -> int:
    print("netlens network: give a subcommand: create, ls or rm", file=sys.stderr)
    return 2


def _kv(items: list[str], what: str) -> dict[str, str]:
    from netlens_runtime.names import parse_kv

    return dict(parse_kv(i, what) for i in items)


def _command(cmd: list[str]) -> list[str]:
    return cmd[1:] if cmd and cmd[0] == "--" else cmd


def cmd_run(args: argparse.Namespace) -> int:
    import os

    from netlens_runtime import core as api
    from netlens_runtime.errors import BadInput

    api.require_root("netlens run")
    command = _command(args.cmd)
    if not command:
        raise BadInput("netlens run: give the command after --, e.g. -- sleep infinity")
    spec = api.ContainerArgs(
        name=args.name or f"nl-{os.urandom(3).hex()}",
        command=command,
        network=None if args.network == "none" else args.network,
        ip=args.ip,
        memory=args.memory,
        cpus=args.cpus,
        publish=args.publish,
        env=_kv(args.env, "--env"),
        labels=_kv(args.label, "--label"),
        cap_add=args.cap_add,
        rootfs=args.rootfs,
        sysctls=_kv(args.sysctl, "--sysctl"),
        hostname=args.hostname,
        privileged=args.privileged,
        security_opt=args.security_opt,
    )
    if args.detach:
        rec = api.create_container(spec)
        print(rec["id"])
        return 0
    import signal

    # The container has a session of its own (no controlling terminal), so Ctrl-C
    # and the like reach only us: we pass them on to its PID 1, tini, which passes
    # them on to the command. Held back until we know that PID (the child clears
    # its mask before exec).
    sigs = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        rec = api.create_container(spec, attach=True)
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        raise
    pid = int(rec["pid"])

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    old = {sig: signal.signal(sig, forward) for sig in sigs}
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    try:
        _, status = os.waitpid(pid, 0)  # retried after each forwarded signal (PEP 475)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        with contextlib.suppress(Exception):
            api.remove_container(spec.name, force=True)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def cmd_ps(args: argparse.Namespace) -> int:
    import json

    from netlens_runtime import core as api

    api.require_root("netlens ps")
    recs = api.list_containers()
    if args.json:
        print(json.dumps(recs, indent=1, sort_keys=True))
        return 0
    rows: list[tuple[str, ...]] = [
        ("NAME", "ID", "STATE", "SECURITY", "PID", "NETWORK", "IP", "CREATED", "COMMAND")
    ]
    for r in recs:
        rows.append(
            (
                r["name"],
                str(r["id"])[:12],
                r["state"],
                _security(r),
                str(r["pid"]),
                str(r.get("network") or "none"),
                str(r.get("ip") or "-"),
                str(r["created"])[:19],
                " ".join(r["command"])[:40],
            )
        )
    _table(rows)
    return 0


def _security(rec: dict[str, Any]) -> str:
    """``privileged``, ``unconfined`` (no seccomp filter), ``profile`` (a file) or ``default``.

    Records written before confinement existed had no filter: ``unconfined``.
    """
    if rec.get("privileged"):
        return "privileged"
    profile = rec.get("seccomp")
    if profile is None or profile == "unconfined":
        return "unconfined"
    return "default" if profile == "default" else "profile"


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def cmd_stop(args: argparse.Namespace) -> int:
    from netlens_runtime import core as api

    for name in args.names:
        api.stop_container(name, args.time)
        print(name)
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    from netlens_runtime import core as api

    api.remove_containers(args.names, force=args.force)
    for name in args.names:
        print(name)
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    from netlens_runtime import core as api
    from netlens_runtime.errors import BadInput
    from netlens_runtime.execin import exec_in

    api.require_root("netlens exec")
    command = _command(args.cmd)
    if not command:
        raise BadInput("netlens exec: give the command after --, e.g. -- ip addr")
    rec = api.get_container(args.name)
    return exec_in(rec, command, _kv(args.env, "--env"))


def cmd_logs(args: argparse.Namespace) -> int:
    import os
    import time

    from netlens_runtime import core as api
    from netlens_runtime import state
    from netlens_runtime.errors import NotFound

    api.require_root("netlens logs")
    rec = api.get_container(args.name)
    path = rec.get("log") or state.log_path(args.name)
    try:
        fh = open(path, "rb")  # noqa: SIM115 - followed below
    except FileNotFoundError:
        raise NotFound(f"container {args.name} has no log (it was attached)") from None
    with fh:
        out = sys.stdout.buffer
        while True:
            data = fh.read(65536)
            if data:
                out.write(data)
                continue
            out.flush()
            if not args.follow or not api.is_running(rec):
                break
            time.sleep(0.2)
            os.stat(path)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    import json

    from netlens_runtime import core as api
    from netlens_runtime import state
    from netlens_runtime.errors import NotFound

    api.require_root("netlens inspect")
    try:
        rec = api.get_container(args.name)
    except NotFound:
        net = state.load_network(args.name)
        if net is None:
            raise NotFound(f"no container or network {args.name}") from None
        rec = net
    print(json.dumps(rec, indent=1, sort_keys=True))
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from netlens_runtime import core as api

    api.require_root("netlens gc")
    for item in api.gc():
        print(f"removed {item}")
    return 0


def cmd_network_create(args: argparse.Namespace) -> int:
    from netlens_runtime import core as api

    rec = api.create_network(
        api.NetworkArgs(
            name=args.name,
            subnet=args.subnet,
            gateway=args.gateway,
            nat=args.nat,
            mtu=args.mtu,
            bridge=args.bridge,
        )
    )
    print(f"{rec['name']} {rec['bridge']} {rec['subnet']} gw {rec['gateway']}")
    return 0


def cmd_network_ls(args: argparse.Namespace) -> int:
    import json

    from netlens_runtime import core as api

    api.require_root("netlens network ls")
    nets = api.list_networks()
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
                "yes" if n.get("nat") else "no",
                str(n.get("mtu")),
                str(n["containers"]),
            )
        )
    _table(rows)
    return 0


def cmd_network_rm(args: argparse.Namespace) -> int:
    from netlens_runtime import core as api

    for name in args.names:
        api.remove_network(name)
        print(name)
    return 0
