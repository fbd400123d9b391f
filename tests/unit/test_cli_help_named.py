"""A word a verb does not take names that verb's --help, not the top one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("argv", "helped"),
    [
        (["--bogus"], "netlens"),
        (["dump", "--bogus"], "netlens dump"),
        (["lab", "up", "x.yaml", "--bogus"], "netlens lab up"),
        (["network", "ls", "--bogus"], "netlens network ls"),
    ],
)
def test_unrecognized_arguments_name_the_verbs_help(argv: list[str], helped: str) -> None:
    env = {
        "NETLENS_NO_LOG": "1",
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{REPO}:{REPO / 'runtime'}",
    }
    res = subprocess.run(
        [sys.executable, "-m", "netlens", *argv],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert res.returncode == 2
    assert res.stderr.splitlines() == [
        f"netlens: unrecognized arguments: --bogus (see '{helped} --help')"
    ]


def test_every_flag_and_argument_of_every_verb_has_help() -> None:
    import argparse

    from netlens.cli import build_parser

    missing: list[str] = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
            elif action.help is None:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "netlens")
    assert missing == []
