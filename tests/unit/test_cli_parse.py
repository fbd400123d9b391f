"""The command line built for one verb answers exactly as the whole tree.

``netlens trace`` builds only the trace verb's parser (start-up time); every
result and every error must be the one the whole tree gives."""

from __future__ import annotations

import subprocess
import sys

import pytest

from netlens.cli import INSPECTOR_VERBS, build_parser, parse

pytestmark = pytest.mark.unit

GOOD = [
    ["trace", "a", "b"],
    ["trace", "a", "b", "--proto", "tcp", "--port", "80", "--json"],
    ["-v", "trace", "a", "b", "--probe"],
    ["dump", "--json"],
    ["doctor", "--severity", "error"],
    ["--theme", "netlens-light", "stats"],
]
BAD = [
    ["trace", "a"],
    ["trace", "a", "b", "--port", "0"],
    ["trace", "a", "b", "--bogus"],
    ["doctor", "--severity", "worst"],
    ["nonsense"],
]


@pytest.mark.parametrize("argv", GOOD, ids=" ".join)
def test_one_verb_parses_as_the_whole_tree(argv: list[str]) -> None:
    assert vars(parse(argv)) == vars(build_parser().parse_args(argv))


@pytest.mark.parametrize("argv", BAD, ids=" ".join)
def test_errors_are_the_whole_trees_word_for_word(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as fast:
        parse(argv)
    fast_err = capsys.readouterr().err
    with pytest.raises(SystemExit) as whole:
        build_parser().parse_args(argv)
    assert fast.value.code == whole.value.code == 2
    assert fast_err == capsys.readouterr().err and fast_err.count("\n") == 1


def test_a_verb_builds_its_parser_alone() -> None:
    sub = build_parser(only="trace")._subparsers
    assert sub is not None
    (action,) = sub._group_actions
    assert list(action.choices) == ["trace"]  # type: ignore[attr-defined]
    whole = build_parser()._subparsers
    assert whole is not None
    assert set(INSPECTOR_VERBS) <= set(whole._group_actions[0].choices)  # type: ignore[attr-defined]
    code = (
        "import sys; from netlens.cli import parse; parse(['trace', 'a', 'b']); "
        "print(sorted(m for m in sys.modules if m.startswith(('netlens_runtime.cli', "
        "'netlens.commands.'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['netlens.commands.dashboard', 'netlens.commands.trace']"
