"""The ``netlens`` command line: one entry point for the inspector and the runtime.

Start-up time matters (``netlens run`` must finish in well under 150 ms), so this
module imports only argparse; every command module imports its heavy libraries
(pyroute2, networkx, textual) inside its handler.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import typing
from collections.abc import Sequence

from netlens import __version__
from netlens.errors import NetlensError
from netlens_runtime.errors import RuntimeFailure


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage before an error; engineers want one line.

    ``add_subparsers`` builds sub-parsers of the parent's class, so every verb
    gets the same behaviour.
    """

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Note the deepest verb that was left words it does not take: argparse reports
        them from the top parser, whose ``--help`` is the wrong one to name."""
        ns, extras = super().parse_known_args(args, namespace)
        if extras:
            ns.__dict__.setdefault(_HELP_PROG, self.prog)
        return ns, extras

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        ns, extras = self.parse_known_args(args, namespace)
        prog = ns.__dict__.pop(_HELP_PROG, self.prog)
        if extras:
            self.exit(
                2,
                f"{self.prog}: unrecognized arguments: {' '.join(extras)} (see '{prog} --help')\n",
            )
        return ns


_HELP_PROG = "_netlens_help_prog"


class VersionAction(argparse.Action):
    """``--version``: the version, which copy runs, and each C helper: ``native`` (its
    path) or ``fallback`` (why). A user can see whether the installed product is as
    fast as a developer's; computed only when asked, so start-up stays cheap."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: typing.Any) -> None:
        kwargs.setdefault("help", None)
        super().__init__(
            option_strings, argparse.SUPPRESS, nargs=0, default=argparse.SUPPRESS, **kwargs
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        print(version_report())
        parser.exit()


def version_report() -> str:
    """What ``netlens --version`` prints (see :class:`VersionAction`)."""
    import platform

    from netlens.kernel import walker
    from netlens_runtime import helper

    here = os.path.dirname(os.path.abspath(__file__))
    lines = [f"netlens {__version__} ({here}, Python {platform.python_version()})"]
    for name, fallback, (path, why) in (
        (walker.NAME, "the Python discovery helper runs", walker.status()),
        (helper.NAME, "the Python spawner runs", helper.status()),
    ):
        state = f"native    {path}" if path else f"fallback  {why}: {fallback}"
        lines.append(f"{name:<15}{state}")
    return "\n".join(lines)


INSPECTOR_VERBS = (
    "dump", "stats", "view", "trace", "capture", "doctor", "exporter", "fleet", "agent",
    "demo", "completion",
)  # fmt: skip
"""The verbs of netlens.commands, each a module of that name with ``add_parser``."""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Build the argparse tree: inspector commands plus the runtime's verbs; with
    ``only`` (one of :data:`INSPECTOR_VERBS`), the top level and that verb alone."""
    import importlib

    from netlens.commands import dashboard

    parser = (OneLineParser if only is None else _OneVerbParser)(
        prog="netlens",
        description="See and measure what containers did to this host's network.",
    )
    parser.add_argument(
        "--version",
        action=VersionAction,
        help="show the version and whether each C helper runs natively, then exit",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging to the log file"
    )
    dashboard.add_arguments(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    if only is not None:
        importlib.import_module(f"netlens.commands.{only}").add_parser(sub)
    else:
        from netlens_runtime import cli as runtime_cli

        for verb in INSPECTOR_VERBS[:-1]:
            importlib.import_module(f"netlens.commands.{verb}").add_parser(sub)
        runtime_cli.add_commands(sub)
        importlib.import_module("netlens.commands.completion").add_parser(sub)
    parser.set_defaults(func=dashboard.run)
    return parser


class _NotThisWay(Exception):
    """The one-verb parser met something it cannot judge alone: ask the whole tree."""


class _OneVerbParser(OneLineParser):
    """A parser of one verb (sub-parsers inherit the class): instead of reporting an
    error it steps aside, so every error is the whole tree's, word for word."""

    def exit(self, status: int = 0, message: str | None = None) -> typing.NoReturn:
        if status:
            raise _NotThisWay
        super().exit(status, message)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line parsed. A command names its verb first, so only that verb's
    parser is built: building all of them (and importing the runtime's) cost a
    ``netlens trace`` 15-20 ms of CPU it does not need. Anything else, and any error,
    goes to the whole tree, so the answer is the same either way."""
    words = list(sys.argv[1:] if argv is None else argv)
    verb = next((w for w in words if not w.startswith("-")), None)
    if verb in INSPECTOR_VERBS:
        try:
            return build_parser(only=verb).parse_args(words)
        except _NotThisWay:
            pass
    return build_parser().parse_args(words)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run one command, map errors to one line and an exit code."""
    args = parse(argv)
    if os.environ.get("NETLENS_NO_LOG") != "1":
        from netlens.logsetup import setup_logging

        setup_logging(verbose=args.verbose)
    try:
        rc = args.func(args)
    except NetlensError as err:
        _error_line(str(err))
        return err.exit_code
    except RuntimeFailure as err:
        for line in getattr(err, "lines", None) or (str(err),):
            _error_line(line)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `netlens dump --json | head` closes the pipe early; that is not an error.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 0
    if argv is None and (rc or 0) in _EXIT_NOW.get(args.command, ()):
        _exit_now(int(rc or 0))
    return int(rc or 0)


_EXIT_NOW: dict[str | None, tuple[int, ...]] = {"dump": (0,), "trace": (0, 1), "doctor": (0, 1)}
"""Commands that end without tearing the interpreter down, and the exit codes for
which they do (a trace's and a doctor's 1 is an answer, not a failure)."""


def _error_line(text: str) -> None:
    """One error line on stderr. Errors quote names (a container's, an interface's),
    which whoever made them chose: escaped, they cannot write to the terminal."""
    from netlens.kernel.inert import terminal

    print(f"netlens: {terminal(text)}", file=sys.stderr)


def _exit_now(rc: int = 0) -> None:
    """End a finished command (:data:`_EXIT_NOW`) without tearing the interpreter down.

    A dump of 1000 namespaces leaves a few hundred thousand objects; freeing them
    one by one at exit cost 30-35 ms of a 0.5 s budget, for nothing (a trace's
    teardown, 10 ms of its 0.3 s). Only when :func:`main` is the process's entry
    point (``argv`` None: the console script, ``python -m netlens``), never when
    called from Python. Output and log files are flushed first; if flushing
    fails, the normal exit reports it.
    """
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        logging = sys.modules.get("logging")
        if logging is not None:
            logging.shutdown()
    except Exception:
        return
    os._exit(rc)
