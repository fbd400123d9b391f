"""Errors of the bundled runtime.

The runtime does not import the inspector, so it has its own small hierarchy. The
``netlens`` CLI maps every :class:`RuntimeFailure` to one line on stderr and
``exit_code``, never a traceback.
"""

from __future__ import annotations


class RuntimeFailure(Exception):
    """Base of every user-facing runtime error."""

    exit_code = 1


class BadInput(RuntimeFailure):
    """Bad flags, names, addresses or lab files."""

    exit_code = 2


class NeedsRoot(RuntimeFailure):
    """The runtime creates namespaces, links and rules: all of it needs root."""

    exit_code = 77


class NotFound(RuntimeFailure):
    """A container, network or lab that does not exist."""

    exit_code = 1


class Conflict(RuntimeFailure):
    """A name, subnet or address already in use."""

    exit_code = 1
