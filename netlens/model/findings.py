"""Findings: what is wrong on a host, as plain model data (dump schema 1.3).

``netlens doctor`` produces them (:mod:`netlens.analysis.doctor`), ``netlens dump
--json`` writes them under the top-level ``findings`` key, and ``netlens view``
and the dashboard show them. They are declared here, once, because the dump's
shape belongs to the model: msgspec writes and reads these classes from their
fields like every other part of a :class:`~netlens.model.types.Snapshot`, and the
schema test ties ``schema.json`` to these declarations. The model knows nothing
of the checks that produce findings (it must not import the analysis layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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
    ``netns:4026532001/7`` for an interface, the namespace id for the rest), so a
    finding joins the objects of the same dump; ``name`` is how a view shows it
    (``web:eth0``, a route's destination).
    """

    kind: str
    id: str
    name: str

    @property
    def netns(self) -> str:
        """The namespace id the object lives in (``id`` up to the ``/``)."""
        return self.id.split("/", 1)[0]


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
    """A check that did not run, and why (a saved dump lacks a live fact)."""

    check: str
    reason: str
