"""Errors of the bundled runtime, and the two places that raise them for everyone.

The runtime does not import the inspector, so it has its own small hierarchy. The
``netlens`` CLI maps every :class:`RuntimeFailure` to one line on stderr and
``exit_code``, never a traceback. :func:`require_root` (the one line every verb
gives without root) and :func:`fault` (the tests' injected failures) live here
because every creating module raises through them.
"""

from __future__ import annotations

import os
import time


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


def require_root(
    what: str = "the netlens runtime", why: str = "it creates namespaces, links and cgroups"
) -> None:
    """NeedsRoot (one line: what needs root and ``why``) unless we are root."""
    if os.geteuid() != 0:
        raise NeedsRoot(f"{what} needs root ({why})")


def fault(point: str) -> None:
    """Test hook: ``NETLENS_FAULT=<point>`` fails (or ``hang_<point>`` hangs) there."""
    spec = os.environ.get("NETLENS_FAULT")
    if not spec:
        return
    if spec == point:
        raise RuntimeFailure(f"injected fault at {point}")
    if spec == f"hang_{point}":
        time.sleep(3600)
