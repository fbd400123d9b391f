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
import os
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


def _guard(func: Any, label: Any = None) -> Any:
    """A system call failing where we did not expect it: one line, not a traceback.

    ``label(args)`` names the command in that line (default: ``args.command``).
    """

    def run(args: argparse.Namespace) -> int:
        from netlens_runtime.errors import RuntimeFailure

        try:
            return int(func(args) or 0)
        except (BrokenPipeError, KeyboardInterrupt):
            raise
        except OSError as err:
            what = label(args) if label is not None else args.command
            raise RuntimeFailure(f"{what}: {err}") from err

    return run


def _rule(name: str, number: bool = False) -> Any:
    """An argparse ``type`` that is one of the input rules (:mod:`netlens_runtime.names`):
    a bad value is refused in the rule's own words, as ``lab check`` refuses it.
    ``number``: digits are passed as an int (as YAML reads them)."""

    def check(text: str) -> Any:
        from netlens_runtime import names
        from netlens_runtime.errors import BadInput

        try:
            return getattr(names, name)(int(text) if number and text.isdigit() else text)
        except BadInput as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    check.__name__ = name  # argparse names the type in some messages
    return check


def _names_required(parser: argparse.ArgumentParser) -> None:
    """NAME... positionals; none at all (``netlens rm -f $(netlens ps -q)`` when nothing
    is listed) is one line naming what is missing, exit 2, as Docker's "requires at
    least 1 argument"."""
    parser.add_argument("names", nargs="+", metavar="NAME", help="container names")
    error = parser.error

    def missing(message: str) -> Any:
        if "arguments are required" in message:
            message = "requires at least 1 container name (none given)"
        return error(message)

    setattr(parser, "error", missing)  # noqa: B010 - instance override


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
    p.add_argument("--cpus", type=_rule("parse_cpus"), help="CPU quota in cores, e.g. 0.5")
    p.add_argument(
        "--pids-limit", metavar="N", help="most processes and threads (default 2048; 0: none)"
    )
    p.add_argument(
        "--log-size", metavar="SIZE", help="most its log takes on disk, rotated (default 10m)"
    )
    p.add_argument(
        "--publish",
        "-p",
        action="append",
        default=[],
        metavar="[HOSTIP:]HOSTPORT:PORT[/udp]",
        help="publish a container port on the host (repeatable)",
    )
    p.add_argument(
        "--env", "-e", action="append", default=[], metavar="K=V", help="environment variable"
    )
    p.add_argument(
        "--label", "-l", action="append", default=[], metavar="K=V", help="label (not netlens.*)"
    )
    p.add_argument(
        "--cap-add",
        action="append",
        default=[],
        metavar="CAP",
        help="capability beyond the defaults, e.g. NET_ADMIN, or ALL (repeatable)",
    )
    p.add_argument(
        "--sysctl",
        action="append",
        default=[],
        metavar="K=V",
        help="namespaced sysctl: net.*, fs.mqueue.*, kernel.msg*/sem/shm* (repeatable)",
    )
    p.add_argument("--hostname", help="hostname (default: the name)")
    p.add_argument(
        "--volume",
        "-v",
        action="append",
        default=[],
        metavar="HOST:CONTAINER[:ro]",
        help="bind-mount a host path (absolute paths; repeatable)",
    )
    p.add_argument(
        "--host-view",
        choices=("tools", "full"),
        default="tools",
        help="tools (default): the host's /usr, /etc (secrets masked), /opt read-only, empty "
        "/root, /home, /var; full: the host's whole root read-only",
    )
    p.add_argument("--rootfs", help="root directory instead of a view of the host's")
    p.add_argument(
        "--image",
        metavar="REF",
        help="root: an image the local Docker or Podman store holds, read-only (never pulled)",
    )
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

    p = _add(sub, "ps", "list containers (running ones; -a: all)", cmd_ps)
    p.add_argument("-a", "--all", action="store_true", help="stopped containers too")
    p.add_argument("-q", "--quiet", action="store_true", help="names only, one per line")
    p.add_argument(
        "--format", choices=("table", "json"), default="table", help="table (default) or json"
    )
    p.add_argument(
        "--filter",
        "-f",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="label=K[=V], name=NAME, network=NAME or status=STATE (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="the raw state records, as inspect")
    p = _add(sub, "stop", "stop containers (SIGTERM, then SIGKILL)", cmd_stop)
    p.add_argument("-t", "--time", type=float, default=10.0, help="seconds before SIGKILL")
    _names_required(p)
    p = _add(sub, "rm", "remove containers", cmd_rm)
    p.add_argument("-f", "--force", action="store_true", help="kill running ones first")
    _names_required(p)
    p = _add(sub, "exec", "run a command in a running container", cmd_exec)
    p.add_argument(
        "-e", "--env", action="append", default=[], metavar="K=V", help="environment variable"
    )
    p.add_argument("name", help="the container")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND [ARG...]")
    p = _add(sub, "logs", "print a detached container's output", cmd_logs)
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    p.add_argument("name", help="the container")
    p = _add(sub, "inspect", "print a container's (or network's) record as JSON", cmd_inspect)
    p.add_argument("name", help="a container or network")
    _add(sub, "gc", "remove leftovers of killed or failed runtime commands", cmd_gc)

    from netlens_runtime import network_cli

    network_cli.add_commands(sub)

    try:
        from netlens_runtime import lab
    except ModuleNotFoundError as err:
        if err.name != "netlens_runtime.lab":
            raise
    else:
        hook = getattr(lab, "add_commands", None)
        if hook is not None:
            hook(sub)
    from netlens_runtime import link_cli

    link_cli.add_commands(sub)


def _kv(items: list[str], what: str) -> dict[str, str]:
    from netlens_runtime.names import parse_kv

    return dict(parse_kv(i, what) for i in items)


def _command(cmd: list[str]) -> list[str]:
    return cmd[1:] if cmd and cmd[0] == "--" else cmd


def _image_root(ref: str, rootfs: str | None) -> tuple[str | None, list[str]]:
    """``--image REF``: (rootfs, []) for a one-layer image, (None, layers) for more.

    Unlike a lab file's ``image`` (the node falls back to the host's root), an
    image the stores do not hold is refused: the user asked for that root.
    """
    from netlens_runtime import lab_image
    from netlens_runtime.errors import BadInput

    if rootfs is not None:
        raise BadInput("--image and --rootfs exclude each other")
    try:
        found, why = lab_image.resolve(ref)
    except lab_image.Damaged as err:
        raise BadInput(f"image {ref}: {err}") from None
    if found is None:
        raise BadInput(f"image {ref} {why}")
    return (found[0], []) if len(found) == 1 else (None, found)


def cmd_run(args: argparse.Namespace) -> int:
    import os

    from netlens_runtime.args import ContainerArgs
    from netlens_runtime.containers import remove_container
    from netlens_runtime.create import create_container
    from netlens_runtime.errors import BadInput, require_root
    from netlens_runtime.names import validate_label

    require_root("netlens run")
    command = _command(args.cmd)
    if not command:
        raise BadInput("run needs the command after --, e.g. -- sleep infinity")
    rootfs: str | None = args.rootfs
    layers: list[str] = []
    if args.image is not None:
        rootfs, layers = _image_root(args.image, args.rootfs)
    spec = ContainerArgs(
        name=args.name or f"nl-{os.urandom(3).hex()}",
        command=command,
        network=None if args.network == "none" else args.network,
        ip=args.ip,
        memory=args.memory,
        cpus=args.cpus,
        pids_limit=args.pids_limit,
        log_size=args.log_size,
        publish=args.publish,
        env=_kv(args.env, "--env"),
        labels={validate_label(k): v for k, v in _kv(args.label, "--label").items()},
        cap_add=args.cap_add,
        rootfs=rootfs,
        layers=layers,
        sysctls=_kv(args.sysctl, "--sysctl"),
        hostname=args.hostname,
        volumes=args.volume,
        host_view=args.host_view,
        privileged=args.privileged,
        security_opt=args.security_opt,
    )
    if args.detach:
        rec = create_container(spec)
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
        rec = create_container(spec, attach=True)
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
            remove_container(spec.name, force=True)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def cmd_ps(args: argparse.Namespace) -> int:
    import json

    from netlens_runtime import ps, state
    from netlens_runtime.containers import list_containers

    filters = ps.Filters(args.filter)  # bad filters: one line, before the root check
    _require_root_to_read("netlens ps")
    recs = list_containers()
    networks = state.load_networks()
    pairs = ps.select_records(recs, networks, args.all, filters)
    if args.json:
        print(json.dumps([rec for rec, _ in pairs], indent=1, sort_keys=True))
    elif args.quiet:
        for _, obj in pairs:
            print(ps.cell(obj["name"]))
    elif args.format == "json":
        print(json.dumps([obj for _, obj in pairs], indent=1))
    else:
        _table(ps.table_rows([obj for _, obj in pairs]))
    return 0


def _require_root_to_read(what: str, processes: bool = True) -> None:
    """Read-only verbs need root too, but not because they create anything: say why."""
    from netlens_runtime import state
    from netlens_runtime.errors import require_root

    why = f"it reads the runtime's state in {state.state_dir()}"
    if processes:
        why += (
            " and checks each container's process through /proc/PID/ns/net,"
            " which only root may read"
        )
    require_root(what, why)


def _table(rows: Sequence[Sequence[str]]) -> None:
    """Print aligned columns; every cell is inert text (names and commands are the
    user's: an escape sequence in them must not reach the terminal)."""
    from netlens.kernel.inert import terminal

    cells = [[terminal(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def cmd_stop(args: argparse.Namespace) -> int:
    from netlens_runtime.containers import stop_container

    for name in args.names:
        stop_container(name, args.time)
        print(name)
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    from netlens_runtime.containers import remove_containers

    remove_containers(args.names, force=args.force)
    for name in args.names:
        print(name)
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    from netlens_runtime.containers import get_container
    from netlens_runtime.errors import BadInput, require_root
    from netlens_runtime.execin import exec_in

    require_root("netlens exec")
    command = _command(args.cmd)
    if not command:
        raise BadInput("exec needs the command after --, e.g. -- ip addr")
    rec = get_container(args.name)
    return exec_in(rec, command, _kv(args.env, "--env"))


def cmd_logs(args: argparse.Namespace) -> int:
    from netlens_runtime import logger, state
    from netlens_runtime.containers import get_container
    from netlens_runtime.errors import NotFound
    from netlens_runtime.liveness import is_running

    _require_root_to_read("netlens logs")
    rec = get_container(args.name)
    # The path is the name's, never the record's: a record is a file, not an authority.
    path = state.log_path(args.name)
    # A rotation renames the file before it makes the next one: the rotated file
    # counts too, or a busy container's log would flicker out of existence.
    rotated = state.rotated_log_path(args.name)
    if rec.get("log") is None or not (os.path.lexists(path) or os.path.lexists(rotated)):
        raise NotFound(f"container {args.name} has no log (it was attached)")
    out = sys.stdout.buffer
    for data in logger.read_chunks(path, args.follow, lambda: is_running(rec)):
        out.write(data)
        out.flush()
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    import json

    from netlens_runtime import state, suggest
    from netlens_runtime.containers import get_container
    from netlens_runtime.errors import NotFound

    _require_root_to_read("netlens inspect")
    try:
        rec = get_container(args.name)
    except NotFound as err:
        net = state.load_network(args.name)
        if net is None:
            if os.path.lexists(state.container_path(args.name)):
                raise  # a record that cannot be used: its own message says why
            hint = suggest.hint(args.name, "containers", "networks")
            raise NotFound(f"no container or network {args.name!r}{hint}") from err
        rec = net
    print(json.dumps(rec, indent=1, sort_keys=True))
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from netlens_runtime.errors import require_root
    from netlens_runtime.leftovers import gc

    require_root("netlens gc")
    for item in gc():
        print(f"removed {item}")
    return 0


def cmd_network_rm(args: argparse.Namespace) -> int:
    from netlens_runtime.networks import remove_network

    for name in args.names:
        remove_network(name)
        print(name)
    return 0
