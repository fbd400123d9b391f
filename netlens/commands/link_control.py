"""The runtime's ``link down|up`` for the dashboard's link key.

The dashboard may not import the runtime (import-linter: the inspector reaches it
only through the CLI), so the CLI hands it this object: the same functions
``netlens link down|up`` calls (:mod:`netlens_runtime.linkstate`), with the
runtime's errors turned into the inspector's one-line :class:`NetlensError`.
The runtime is imported inside the call, as every command does, so opening the
dashboard costs nothing until a cable is pulled.
"""

from __future__ import annotations

from netlens.errors import NetlensError


class LinkRefused(NetlensError):
    """The runtime refused or failed a ``link down|up`` (its own one line)."""

    title = "Link"


class RuntimeLinks:
    """:class:`netlens.tui.link_toggle.LinkControl` on the bundled runtime."""

    def set_link(self, target: str, up: bool) -> str:
        """Both ends of ``target``'s cable up or down, as ``netlens link up|down``;
        the line it prints. Routes the kernel would not take back are part of the
        line (the command prints them on stderr and exits 1)."""
        from netlens_runtime import linkstate
        from netlens_runtime.errors import RuntimeFailure

        try:
            if not up:
                return linkstate.link_down(target)
            line, failed = linkstate.link_up(target)
        except RuntimeFailure as err:
            raise LinkRefused(" ".join(str(err).split("\n"))) from None
        if failed:
            line += f"; routes not restored: {', '.join(failed)}"
        return line
