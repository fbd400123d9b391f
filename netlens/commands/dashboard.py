"""`netlens` with no command: the dashboard (placeholder until its issue lands)."""

from __future__ import annotations

import argparse

from netlens.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--theme", help="dashboard theme name or file")


def run(args: argparse.Namespace) -> int:
    raise UsageError("the dashboard is not built yet; try 'netlens dump --json'")
