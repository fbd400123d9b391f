"""`netlens dump` (placeholder until its issue lands)."""

from __future__ import annotations

import argparse
from typing import Any

from netlens.errors import UsageError


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("dump", help="dump (not built yet)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise UsageError("'netlens dump' is not built yet")
