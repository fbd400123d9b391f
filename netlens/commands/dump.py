"""`netlens dump`: the whole snapshot as JSON, or as a drawing (dot, graphml, mermaid).

The JSON path is the fast path: ``netlens dump --json`` of 1000 namespaces has
0.5 s of wall time *including* interpreter start, so it imports neither
networkx nor pyroute2 (a test proves it) and serializes with
:mod:`netlens.model.serialize`. Only the drawing formats load
networkx. Like every command module, this one imports only argparse at module
level so ``netlens --help`` stays instant.

Filtering (``--netns``, ``--container``) keeps the selected namespaces, the
containers in them, and the veth pairs with at least one end in them. The host
namespace is left out unless it is selected itself (``--netns host``): a
filtered dump is about *those* VRFs, and the host is usually the biggest part of
a dump. A kept veth pair (and an interface's ``peer``) may therefore point at a
namespace that is not in the filtered dump; its id still tells where the cable
goes.

Findings (schema 1.3): a JSON dump carries what ``netlens doctor`` concludes from
the snapshot itself (:func:`with_findings`): the checks that need no live read, so
the findings of a dump are exactly what ``netlens doctor --from`` that file says,
and the dump enters no namespace twice. The live-only checks are listed under
``skipped``. They add about 60 ms at 1000 namespaces (figures in SCHEMA.md);
``--no-findings`` leaves them out (``skipped`` then says that no check ran).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from netlens.errors import DiscoveryError, NeedsRootError, NetlensError, UsageError
from netlens.kernel.inert import terminal

if TYPE_CHECKING:
    from netlens.model.types import Snapshot

FORMATS = ("json", "dot", "graphml", "mermaid")
NOT_ROOT_LINE = (
    "not root: dumped only this process's own network namespace; "
    "reading every namespace (setns, /proc/PID/ns of other users) needs root"
)


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "dump",
        help="print the whole snapshot as JSON (or dot, graphml, mermaid)",
        description=(
            "Discover every network namespace (VRF) and print it. JSON follows the "
            "schema shipped in netlens/model/schema.json (schema_version); output is "
            "deterministic so two dumps diff cleanly."
        ),
    )
    p.add_argument(
        "--json",
        dest="json_flag",
        action="store_true",
        help="JSON output (the default; same as --format json)",
    )
    p.add_argument("--format", dest="format", choices=FORMATS, help="output format")
    p.add_argument("--pretty", action="store_true", help="indent the JSON")
    p.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE (atomically) instead of stdout"
    )
    p.add_argument(
        "--netns",
        action="append",
        default=[],
        metavar="NAME_OR_ID",
        help="only this namespace: name, /run/netns name, netns:<inode>, inode, or 'host' "
        "(repeatable; the host namespace is left out unless selected)",
    )
    p.add_argument(
        "--container",
        action="append",
        default=[],
        metavar="NAME_OR_ID",
        help="only this container's namespace: name, id (engine:id), or engine id / a "
        "unique prefix of at least 4 characters (repeatable)",
    )
    p.add_argument("--deep", action="store_true", help="also namespaces held by fds, other mounts")
    p.add_argument(
        "--sample",
        type=float,
        metavar="SECONDS",
        help="also measure live rates over SECONDS and add them under 'rates' (JSON only)",
    )
    p.add_argument(
        "--no-findings",
        dest="findings",
        action="store_false",
        help="do not run the snapshot checks of 'netlens doctor' (JSON 'findings' stays empty)",
    )
    p.add_argument(
        "--input",
        metavar="FILE",
        help="read a saved 'netlens dump --json' file instead of the live host",
    )
    p.set_defaults(func=run)


# --------------------------------------------------------------------------------------
# filtering
# --------------------------------------------------------------------------------------


def _match_netns(snapshot: Snapshot, sel: str) -> list[str]:
    out = []
    for ns in snapshot.namespaces:
        if (
            sel in (ns.id, str(ns.inode), ns.name)
            or sel in ns.names
            or (sel == "host" and ns.is_host)
        ):
            out.append(ns.id)
    return out


def _match_container(snapshot: Snapshot, sel: str) -> list[str]:
    exact = [c.id for c in snapshot.containers if sel in (c.id, c.name, c.engine_id)]
    if exact or len(sel) < 4:
        return exact
    pre = [c.id for c in snapshot.containers if c.engine_id and c.engine_id.startswith(sel)]
    return pre if len(pre) == 1 else []


def filter_snapshot(
    snapshot: Snapshot, netns: list[str] | tuple[str, ...], containers: list[str] | tuple[str, ...]
) -> Snapshot:
    """Keep only the selected namespaces (see the module doc); unknown names raise
    :class:`UsageError` (exit 2) naming the first one that matched nothing."""
    import dataclasses

    keep_ns: set[str] = set()
    keep_c: set[str] = set()
    for sel in netns:
        ids = _match_netns(snapshot, sel)
        if not ids:
            raise UsageError(
                f"no namespace matches {sel!r} (give a name, /run/netns name, "
                "netns:<inode>, inode or 'host')"
            )
        keep_ns.update(ids)
    by_id = {c.id: c for c in snapshot.containers}
    for sel in containers:
        ids = _match_container(snapshot, sel)
        if not ids:
            raise UsageError(
                f"no container matches {sel!r} (give its name, engine:id, or a unique "
                "engine id prefix of at least 4 characters)"
            )
        for cid in ids:
            keep_c.add(cid)
            ns_id = by_id[cid].netns
            if ns_id is not None:
                keep_ns.add(ns_id)
    namespaces = tuple(ns for ns in snapshot.namespaces if ns.id in keep_ns)
    kept_c = tuple(
        c
        for c in snapshot.containers
        if c.id in keep_c or (c.netns is not None and c.netns in keep_ns)
    )
    pairs = tuple(
        p
        for p in snapshot.veth_pairs
        if p.a.netns in keep_ns or (p.b is not None and p.b.netns in keep_ns)
    )
    return dataclasses.replace(snapshot, namespaces=namespaces, containers=kept_c, veth_pairs=pairs)


def with_findings(snapshot: Snapshot, full: Snapshot | None = None) -> Snapshot:
    """``snapshot`` with the doctor's snapshot-only findings.

    The checks run on ``full`` (the unfiltered snapshot) when given: a filtered
    dump lacks the peers and the host that some checks look across to, and would
    report false problems. Only findings naming an object of a kept namespace are
    kept."""
    import dataclasses

    from netlens.analysis.doctor import diagnose

    report = diagnose(full or snapshot, None, source="dump")
    findings = report.findings
    if full is not None:
        kept = {ns.id for ns in snapshot.namespaces}
        findings = tuple(f for f in findings if any(o.netns in kept for o in f.objects))
    return dataclasses.replace(snapshot, findings=findings, skipped=report.skipped)


def without_findings(snapshot: Snapshot) -> Snapshot:
    """``--no-findings``: nothing checked, and ``skipped`` says so (an empty
    ``findings`` alone would read as a clean bill of health)."""
    import dataclasses

    from netlens.analysis.doctor import NOT_CHECKED
    from netlens.model.findings import Skipped

    return dataclasses.replace(
        snapshot, findings=(), skipped=(Skipped(NOT_CHECKED, "dump --no-findings: no check ran"),)
    )


# --------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the whole new one.

    A temporary file in the same directory is fsynced and renamed over the
    target. A target that exists but is not a regular file (``/dev/null``, a
    FIFO) is written in place: renaming over a device node would replace it.
    A symlink is followed only when our own user owns it, and another user's
    file there is refused (:mod:`netlens.outfile`): root must not let a link
    planted in /tmp choose which file it replaces.
    """
    import contextlib
    import os
    import stat
    import tempfile

    from netlens.outfile import check_path, open_output

    lst = check_path(path)
    own_link = lst is not None and stat.S_ISLNK(lst.st_mode)
    try:
        st = os.stat(path) if own_link else lst
    except FileNotFoundError:
        st = None
    except OSError as err:
        raise NetlensError(f"cannot write {path}: {err.strerror or err}") from None
    try:
        if st is not None and not stat.S_ISREG(st.st_mode):
            with open_output(path) as out:
                out.write(text.encode("utf-8"))
            return
        # Our own link: replace its target, not the link. Anything else: the name
        # itself (a link planted after the check is then replaced, not followed).
        target = os.path.realpath(path) if own_link else path
        fd, tmp = tempfile.mkstemp(
            dir=os.path.dirname(target) or ".",
            prefix=f".{os.path.basename(target)}.",
            suffix=".tmp",
        )
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, (st.st_mode & 0o7777) if st is not None else (0o666 & ~umask))
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as err:
        raise NetlensError(f"cannot write {path}: {err.strerror or err}") from None


def _json_default(obj: Any) -> Any:
    """Make the ``--sample`` result JSON-able: dataclasses (Rate, ...) become objects."""
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"cannot put {type(obj).__name__} in JSON")


def _sample(snapshot: Snapshot, seconds: float) -> dict[str, Any]:
    """Rates from the stats layer, looked up by name so that a build without
    ``netlens.stats.live`` fails with one line instead of an ImportError."""
    import importlib

    try:
        func = importlib.import_module("netlens.stats.live").sample_snapshot_rates
    except (ImportError, AttributeError):
        raise UsageError(
            "--sample needs netlens.stats.live.sample_snapshot_rates, which this build "
            "does not have yet"
        ) from None
    return dict(func(snapshot, seconds))


def _discover(deep: bool = False) -> Snapshot:
    import importlib

    try:
        discover = importlib.import_module("netlens.discovery").discover
    except (ImportError, AttributeError):
        raise DiscoveryError("live discovery is not available in this build") from None
    snap: Snapshot = discover(deep=deep or None)
    return snap


def render(snapshot: Snapshot, fmt: str, pretty: bool, rates: dict[str, Any] | None) -> str:
    """The output text (without a trailing newline for JSON) for one format."""
    if fmt == "json":
        if rates is None:
            from netlens.model.serialize import dumps

            return dumps(snapshot, pretty=pretty)
        import json

        from netlens.model.serialize import snapshot_to_dict

        doc = snapshot_to_dict(snapshot)
        doc["rates"] = rates
        kw: dict[str, Any] = {"indent": 2} if pretty else {"separators": (",", ":")}
        return json.dumps(doc, allow_nan=False, default=_json_default, **kw)
    from netlens.export import render as export

    return export(snapshot, fmt).rstrip("\n")


def run(args: argparse.Namespace) -> int:
    """Discover (or load), filter, optionally sample, render, write.

    The cyclic garbage collector is off meanwhile: a dump builds a few hundred
    thousand acyclic objects that all live until the end, and each collection
    their allocation triggers would only scan them again (two scans of 20-30 ms
    each at 1000 namespaces). Before it is turned back on, the survivors move
    to the oldest generation (freeze + unfreeze, a list splice), so the next
    young collection, typically the console script's last allocations before
    it exits, does not scan them either; a full collection still does.
    """
    import gc

    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _run(args)
    finally:
        if gc_was_enabled:
            if gc.get_freeze_count() == 0:  # never unfreeze what someone else froze
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def _run(args: argparse.Namespace) -> int:
    import math
    import sys

    if args.json_flag and args.format not in (None, "json"):
        raise UsageError(f"--json and --format {args.format} contradict each other; pick one")
    fmt = args.format or "json"
    if args.sample is not None:
        if not math.isfinite(args.sample) or args.sample <= 0:
            raise UsageError(f"--sample wants a positive number of seconds, got {args.sample}")
        if fmt != "json":
            raise UsageError("--sample adds rates to JSON output only; drop --format")
        if args.input:
            raise UsageError("--sample measures the live host; it cannot go with --input")
    if args.pretty and fmt != "json":
        raise UsageError("--pretty applies to JSON output only")

    if args.input:
        from netlens.model.serialize import load_file

        snapshot = load_file(args.input)
    else:
        snapshot = _discover(args.deep)
        if not snapshot.root:
            # discovery words the warning (it knows what it skipped); one line either way
            line = next((w for w in snapshot.warnings if w.startswith("not root")), NOT_ROOT_LINE)
            print(f"netlens: {terminal(line)}", file=sys.stderr)
        if not snapshot.namespaces:
            if not snapshot.root:
                raise NeedsRootError("could not read any network namespace; run as root")
            raise DiscoveryError("could not read any network namespace")
    full = None
    if args.netns or args.container:
        full, snapshot = snapshot, filter_snapshot(snapshot, args.netns, args.container)
    if fmt == "json":
        snapshot = (
            with_findings(snapshot, full)
            if getattr(args, "findings", True)
            else without_findings(snapshot)
        )
    rates = _sample(snapshot, args.sample) if args.sample is not None else None
    text = render(snapshot, fmt, args.pretty, rates)
    # Freed with ``args``: the console script ends the process (cli._exit_now)
    # while ``args`` is still alive, so the few hundred thousand objects of a
    # large snapshot are never freed one by one (20 ms at 1000 namespaces).
    args.keep_alive = (snapshot, text)
    if args.output and args.output != "-":
        write_atomic(args.output, text + "\n")
    else:
        sys.stdout.write(text)
        sys.stdout.write("\n")
        sys.stdout.flush()
    return 0
