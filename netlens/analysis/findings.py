"""What ``netlens doctor`` reports: findings, the objects they name, and their JSON.

A finding is one problem an engineer can act on: how bad it is, which objects it
is about (with the ids and names a ``netlens dump --json`` uses, so the two can be
joined), the facts that prove it, and the command that would fix it. These are the
doctor's own frozen types, apart from :mod:`netlens.model`: when the dump schema
gains findings (a MINOR bump), :data:`DOCTOR_VERSION`'s shape is what it adopts.

Everything here is plain data and pure functions (no kernel access), so the
checks can be tested on hand-built snapshots as well as on live namespaces.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from netlens.model.types import Interface, Netns

DOCTOR_VERSION = "1.0"
"""Version of the ``netlens doctor --json`` document. MAJOR when a field changes
meaning or disappears, MINOR when one is added (the dump schema's rule)."""


class Severity(StrEnum):
    """How bad a finding is. ``error``: traffic is being dropped or will be;
    ``warning``: likely to bite (or bites some traffic); ``info``: worth knowing."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """0 for the worst: sorting by rank lists errors first."""
        return _RANK[self]


_RANK = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One object a finding is about, named as the dump names it.

    ``kind`` is ``netns``, ``interface``, ``route``, ``rule``, ``neighbour`` or
    ``host``; ``id`` is the dump's id (``netns:4026532001`` for a namespace,
    ``netns:4026532001/7`` for an interface, the namespace id for the rest);
    ``name`` is how a view shows it (``web:eth0``, a route's destination).
    """

    kind: str
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: severity, objects, evidence, the fix.

    ``check`` names the check that found it (stable, for filters and scripts);
    ``title`` says what is wrong in one line; ``evidence`` lists the facts read
    (a sysctl's value, a route, a neighbour state); ``fix`` is a shell command
    (or several joined by ``&&``) an engineer could run, or None when the right
    fix depends on intent.
    """

    check: str
    severity: Severity
    title: str
    objects: tuple[ObjectRef, ...]
    evidence: tuple[str, ...]
    fix: str | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    """A check that did not run, and why (``--from FILE`` lacks a live fact)."""

    check: str
    reason: str


@dataclass(frozen=True, slots=True)
class Report:
    """All findings of one run, worst first, plus the checks that could not run."""

    findings: tuple[Finding, ...]
    skipped: tuple[Skipped, ...] = ()
    source: str = "live"  # live, or the file a saved dump came from
    taken_at: float = 0.0
    schema_version: str = ""  # the snapshot's dump schema

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Severity}
        for f in self.findings:
            out[f.severity.value] += 1
        return out


# --- naming objects as the dump does ------------------------------------------------------
def ns_ref(ns: Netns) -> ObjectRef:
    return ObjectRef("netns", ns.id, ns.name)


def if_ref(ns: Netns, itf: Interface) -> ObjectRef:
    return ObjectRef("interface", itf.ref.key, f"{ns.name}:{itf.name}")


def ip_cmd(ns: Netns) -> str:
    """``ip`` as run in ``ns``: ``ip -n NAME`` when it has an ``ip netns`` name,
    ``nsenter -t PID -n ip`` when a process holds it, plain ``ip`` for the host."""
    if ns.names and not ns.is_host:
        return f"ip -n {_shell_word(ns.names[0])}"
    return f"{ns_exec(ns)}ip"


def ns_exec(ns: Netns) -> str:
    """The prefix that runs a command inside ``ns`` (empty for the host)."""
    if ns.is_host:
        return ""
    if ns.names:
        return f"ip netns exec {_shell_word(ns.names[0])} "
    if ns.pids:
        return f"nsenter -t {ns.pids[0]} -n "
    if ns.mounts:
        return f"nsenter --net={_shell_word(ns.mounts[0])} "
    return f"nsenter --net=<path of {ns.id}> "


def _shell_word(text: str) -> str:
    """A name as one shell word (names are chosen by whoever made them)."""
    import shlex

    return shlex.quote(text)


def shell(text: str) -> str:
    return _shell_word(text)


# --- JSON ------------------------------------------------------------------------------------
def report_to_dict(report: Report) -> dict[str, Any]:
    """The ``netlens doctor --json`` document (see README, "Troubleshooting")."""
    return {
        "doctor_version": DOCTOR_VERSION,
        "schema_version": report.schema_version,
        "source": report.source,
        "taken_at": report.taken_at,
        "counts": report.counts(),
        "findings": [
            {
                "check": f.check,
                "severity": f.severity.value,
                "title": f.title,
                "objects": [{"kind": o.kind, "id": o.id, "name": o.name} for o in f.objects],
                "evidence": list(f.evidence),
                "fix": f.fix,
            }
            for f in report.findings
        ],
        "skipped": [{"check": s.check, "reason": s.reason} for s in report.skipped],
    }
