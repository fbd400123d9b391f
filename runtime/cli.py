"""The runtime's verbs as ``netlens`` subcommands (placeholder until its issue lands)."""

from __future__ import annotations

from typing import Any


def add_commands(sub: Any) -> None:
    """Register run, ps, stop, rm, exec, logs, inspect, network, lab, demo, gc."""
