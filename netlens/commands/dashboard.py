"""`netlens` with no command: the live dashboard (Textual).

Module level imports only argparse (CLI start-up time); Textual and the live layer are
imported inside :func:`run`. ``netlens demo`` calls :func:`run` with its own args, so
every attribute is read with ``getattr`` and a default.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from netlens.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--theme",
        help="dashboard theme: netlens-dark (default), netlens-light, netlens-contrast, "
        "a theme in $XDG_CONFIG_HOME/netlens/themes, or a .toml file",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=None,
        help="dashboard refresh interval in seconds (default 1; +/- change it live)",
    )


def interval_of(args: argparse.Namespace) -> float:
    """The sampling interval from args, validated (UsageError on nonsense)."""
    from netlens.tui.sources import MAX_INTERVAL, MIN_INTERVAL

    value = getattr(args, "interval", None)
    if value is None:
        return 1.0
    try:
        seconds = float(value)
    except (TypeError, ValueError) as err:
        raise UsageError(f"--interval must be a number of seconds, not {value!r}") from err
    if not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
        raise UsageError(f"--interval must be between {MIN_INTERVAL} and {MAX_INTERVAL} s")
    return seconds


def launch(source: Any, args: argparse.Namespace) -> int:
    """Run the app on ``source`` until the user quits; re-raise a fatal source error."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("the dashboard needs a terminal; for scripts use 'netlens dump'")
    from netlens.commands.link_control import RuntimeLinks
    from netlens.tui.app import NetlensApp

    # the link key pulls cables of the runtime's labs: only on the live host
    links = RuntimeLinks() if getattr(source, "live", False) else None
    app = NetlensApp(source, theme=getattr(args, "theme", None), link_control=links)
    app.run()
    if app.fatal is not None:
        raise app.fatal
    if app.return_code not in (None, 0):
        return int(app.return_code or 1)
    return 0


def run(args: argparse.Namespace) -> int:
    """Open the dashboard on the live host (root sees everything; others get a banner)."""
    from netlens.tui.sources import LiveSource

    interval = interval_of(args)
    LiveSource.check_available()
    return launch(LiveSource(interval), args)
