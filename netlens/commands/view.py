"""`netlens view FILE.json`: the dashboard on a saved dump (read-only, no root needed).

Only argparse at module level; the dump is loaded before the TUI starts so a bad file is
one line on stderr.
"""

from __future__ import annotations

import argparse
from typing import Any

from netlens.errors import UsageError


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "view",
        help="open the dashboard on a saved dump (read-only, no root needed)",
        description="Browse a dump written by 'netlens dump --json' in the dashboard.",
    )
    p.add_argument("dump_file", metavar="FILE.json", help="a dump from 'netlens dump --json'")
    p.add_argument(
        "--theme",
        default=argparse.SUPPRESS,
        help="dashboard theme name or .toml file (same as 'netlens --theme')",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from netlens.commands.dashboard import launch
    from netlens.tui.sources import FileSource

    path = Path(args.dump_file)
    if not path.is_file():
        raise UsageError(f"{path}: no such file (make one with 'netlens dump --json > FILE')")
    source = FileSource(path)
    source.open()
    return launch(source, args)
