"""One error hierarchy for the whole inspector.

Every error a user can see derives from :class:`NetlensError` and carries a message
that says what went wrong and what to do, in one line. The CLI prints ``str(err)``
and exits with ``err.exit_code``; it never shows a traceback for these.
"""

from __future__ import annotations


class NetlensError(Exception):
    """Base of all user-facing errors. ``title`` is a short heading for the TUI."""

    title = "netlens error"
    exit_code = 1


class UsageError(NetlensError):
    """Bad flags or arguments."""

    title = "Bad input"
    exit_code = 2


class NeedsRootError(NetlensError):
    """The operation needs root (CAP_SYS_ADMIN / CAP_NET_ADMIN) and we are not."""

    title = "Needs root"
    exit_code = 77


class DiscoveryError(NetlensError):
    """Nothing at all could be read from the kernel."""

    title = "Discovery failed"


class SnapshotFileError(NetlensError):
    """A saved dump could not be read or does not match the schema."""

    title = "Bad snapshot file"
