"""``netlens completion bash|zsh``: print the shell completion script.

Only argparse at module level; the script is generated from the same parser
that runs the commands (see :mod:`netlens.shellcomp`), so it cannot drift.
"""

from __future__ import annotations

import argparse
from typing import Any

SHELLS = ("bash", "zsh")


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "completion",
        help="print the shell completion script (bash or zsh)",
        description=(
            "Print a completion script for commands, flags, and container, network and lab "
            'names. bash: eval "$(netlens completion bash)" in ~/.bashrc, or '
            "netlens completion bash > /etc/bash_completion.d/netlens. zsh (after compinit): "
            "source <(netlens completion zsh), or save it as _netlens in your $fpath."
        ),
    )
    p.add_argument("shell", choices=SHELLS, help="bash or zsh")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from netlens.cli import build_parser
    from netlens.shellcomp import script

    print(script(args.shell, build_parser()), end="")
    return 0
