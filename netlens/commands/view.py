"""`netlens view` (placeholder until its issue lands)."""

from __future__ import annotations

import argparse
from typing import Any

from netlens.errors import UsageError


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("view", help="view (not built yet)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise UsageError("'netlens view' is not built yet")
