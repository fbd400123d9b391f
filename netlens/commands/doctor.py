"""`netlens doctor`: check the whole host and say what is wrong, where, and the fix.

Exit status: 0 when no finding of severity ``error`` is shown, 1 when at least
one is (so scripts and CI can gate on it), 2 for bad input, 77 when live checks
need root. Output: findings grouped by severity, worst first; every name in
them comes from the kernel or an engine and is printed inert
(:func:`netlens.kernel.inert.terminal`). ``--json`` prints the document of
:func:`netlens.analysis.findings.report_to_dict` (its own ``doctor_version``).
Only argparse at module level, as for every command.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from netlens.errors import DiscoveryError, NeedsRootError, UsageError

if TYPE_CHECKING:
    from netlens.analysis.findings import Report

SEVERITIES = ("error", "warning", "info")


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "doctor",
        help="check the host for broken or risky network settings, with fixes",
        description=(
            "Check every namespace (VRF), link, bridge, route and table limit for known "
            "problems. Each finding names its objects (ids as in 'dump --json'), the "
            "evidence and a command that would fix it. Exit status 1 when an error is "
            "found, 0 otherwise."
        ),
    )
    p.add_argument("--json", action="store_true", help="JSON output (doctor_version 1.x)")
    p.add_argument(
        "--severity",
        choices=SEVERITIES,
        default="info",
        help="show findings this bad or worse (default: info, i.e. all)",
    )
    p.add_argument(
        "--from",
        dest="from_file",
        metavar="FILE",
        help="check a saved 'netlens dump --json' instead of the live host "
        "(checks that need live reads are listed as skipped)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import os
    import sys

    from netlens.analysis.doctor import at_least, diagnose, gather
    from netlens.analysis.findings import Severity, report_to_dict

    if args.from_file:
        from netlens.model.serialize import load_file

        snapshot = load_file(args.from_file)
        report = diagnose(snapshot, None, source=args.from_file)
    else:
        if os.geteuid() != 0:
            raise NeedsRootError(
                "doctor reads every namespace: run as root, or check a saved dump with --from FILE"
            )
        from netlens.discovery import discover

        snapshot = discover()
        if not snapshot.namespaces:
            raise DiscoveryError("could not read any network namespace")
        report = diagnose(snapshot, gather(snapshot))
    try:
        shown = at_least(report, Severity(args.severity))
    except ValueError:  # pragma: no cover - argparse's choices stop it first
        raise UsageError(f"unknown severity {args.severity!r}") from None
    if args.json:
        sys.stdout.write(json.dumps(report_to_dict(shown), indent=2) + "\n")
    else:
        sys.stdout.write(render_text(shown, len(snapshot.namespaces)))
    sys.stdout.flush()
    return 1 if any(f.severity is Severity.ERROR for f in shown.findings) else 0


def render_text(report: Report, namespaces: int) -> str:
    """The human report: a summary line, then one block per finding, by severity."""
    from netlens.analysis.findings import Severity
    from netlens.kernel.inert import terminal as t

    counts = report.counts()
    lines = [
        f"netlens doctor: {counts['error']} error(s), {counts['warning']} warning(s), "
        f"{counts['info']} info over {namespaces} namespaces ({t(report.source)})"
    ]
    for sev in Severity:
        group = [f for f in report.findings if f.severity is sev]
        if not group:
            continue
        lines += ["", f"{sev.value.upper()} ({len(group)})"]
        for f in group:
            lines.append(f"  [{f.check}] {t(f.title)}")
            objs = ", ".join(f"{o.kind} {o.id} {t(o.name)}" for o in f.objects)
            lines.append(f"      objects:  {objs}")
            for i, ev in enumerate(f.evidence):
                lines.append(f"      {'evidence:' if i == 0 else '         '} {t(ev)}")
            if f.fix:
                lines.append(f"      fix:      {t(f.fix)}")
    if report.skipped:
        lines += ["", "not checked:"]
        lines += [f"  {s.check}: {t(s.reason)}" for s in report.skipped]
    if not report.findings:
        lines += ["", "no findings"]
    return "\n".join(lines) + "\n"
