"""`netlens demo` (placeholder until the runtime's lab issue lands)."""

from __future__ import annotations

import argparse
from typing import Any

from netlens.errors import UsageError


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("demo", help="demo lab (not built yet)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise UsageError("'netlens demo' is not built yet")
