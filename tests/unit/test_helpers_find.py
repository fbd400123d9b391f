"""How the installed C helpers are found and trusted, and what ``--version`` says of them.

netlens.kernel.walker finds ``netlens-walk`` and netlens_runtime.helper finds
``netlens-spawn``; both judge with the one rule of netlens.kernel.native, each
against its own file: every test here runs against both. Files are made in this
test's own directories (the real ``_bin`` builds are left alone); the ownership
cases chown, so they need root.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import REPO, built_helper, is_root

from netlens import cli
from netlens.kernel import native, walker
from netlens_runtime import helper

pytestmark = pytest.mark.unit

NOBODY = 65534


@pytest.fixture(params=[walker, helper], ids=["walk", "spawn"])
def finder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """One of the two finders, with a forgotten program remembered only in this test."""
    mod: ModuleType = request.param
    monkeypatch.setattr(mod, "_forgotten", False)
    monkeypatch.delenv(mod.ENV, raising=False)
    return mod


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """A package directory with a module (the reference) and a ``_bin/prog`` beside it."""
    pkg = tmp_path / "pkg"
    (pkg / "_bin").mkdir(parents=True)
    os.chmod(tmp_path, 0o755)
    os.chmod(pkg, 0o755)
    os.chmod(pkg / "_bin", 0o755)
    ref = pkg / "mod.py"
    ref.write_text("")
    os.chmod(ref, 0o644)
    prog = pkg / "_bin" / "prog"
    prog.write_text("#!/bin/sh\n")
    os.chmod(prog, 0o755)
    return prog, ref


def test_both_finders_judge_with_the_one_rule(
    finder: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The verdict on each finder's own program comes from netlens.kernel.native,
    judged against that finder's file (not a copy of the rule, not another file)."""
    asked: list[tuple[str, str]] = []

    def rule(path: str, ref: str) -> str:
        asked.append((path, ref))
        return "judged here"

    monkeypatch.setattr(native, "why_untrusted", rule)
    monkeypatch.setattr(os.path, "lexists", lambda _p: True)
    assert finder.status() == (None, f"{finder.PATH} not trusted: judged here")
    assert finder.why_untrusted("/x") == "judged here"
    assert asked == [(finder.PATH, finder.__file__), ("/x", finder.__file__)]


def test_a_program_like_the_installed_one_is_trusted(
    finder: ModuleType, layout: tuple[Path, Path]
) -> None:
    prog, ref = layout
    assert finder.why_untrusted(str(prog), str(ref)) == ""


@pytest.mark.parametrize("mode", [0o775, 0o757, 0o777])
def test_writable_by_others_than_the_code_is_refused(
    finder: ModuleType, layout: tuple[Path, Path], mode: int
) -> None:
    prog, ref = layout
    os.chmod(prog, mode)
    assert "writable" in finder.why_untrusted(str(prog), str(ref))
    os.chmod(prog, 0o755)
    os.chmod(prog.parent, mode)  # the directory: anyone could swap the file
    assert "writable" in finder.why_untrusted(str(prog), str(ref))


def test_as_writable_as_the_code_itself_is_trusted(
    finder: ModuleType, layout: tuple[Path, Path]
) -> None:
    """A user's install with umask 002: the Python files are group-writable too,
    so a group-writable program gives nobody more than they already have."""
    prog, ref = layout
    os.chmod(prog, 0o775)
    os.chmod(ref, 0o664)
    assert finder.why_untrusted(str(prog), str(ref)) == ""


def test_symlink_and_non_executable_are_refused(
    finder: ModuleType, layout: tuple[Path, Path]
) -> None:
    prog, ref = layout
    link = prog.parent / "link"
    link.symlink_to(prog)
    assert finder.why_untrusted(str(link), str(ref)) == "not an executable regular file"
    os.chmod(prog, 0o644)
    assert finder.why_untrusted(str(prog), str(ref)) == "not an executable regular file"
    assert "cannot stat" in finder.why_untrusted(str(prog) + ".gone", str(ref))


@pytest.mark.skipif(not is_root(), reason="chown needs root")
def test_owned_by_someone_else_is_refused(finder: ModuleType, layout: tuple[Path, Path]) -> None:
    prog, ref = layout
    os.chown(prog, NOBODY, -1)
    assert finder.why_untrusted(str(prog), str(ref)) == f"owned by uid {NOBODY}"
    os.chown(ref, NOBODY, -1)  # a user's own install run by root: the code is theirs too
    os.chown(ref.parent, NOBODY, -1)
    assert finder.why_untrusted(str(prog), str(ref)) == ""
    os.chown(prog, 0, -1)  # root's file: never less trusted than the code
    assert finder.why_untrusted(str(prog), str(ref)) == ""


def test_status_says_why_and_find_follows_it(
    finder: ModuleType, layout: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    built = built_helper(finder.NAME, finder.find())
    assert finder.status() == (built, "") and built == finder.PATH
    prog, _ = layout
    monkeypatch.setattr(finder, "PATH", str(prog.parent / "missing"))
    path, why = finder.status()
    assert path is None and finder.find() is None
    assert why == f"not built: no {prog.parent / 'missing'} (the build had no working C compiler)"
    os.chmod(prog, 0o757)
    monkeypatch.setattr(finder, "PATH", str(prog))
    path, why = finder.status()
    assert path is None and finder.find() is None and why.startswith(f"{prog} not trusted: ")
    monkeypatch.setattr(finder, "PATH", built)
    monkeypatch.setenv(finder.ENV, "0")
    assert finder.status() == (None, f"{finder.ENV}=0") and finder.find() is None
    monkeypatch.delenv(finder.ENV)
    assert finder.find() == built
    finder.forget()
    assert finder.status() == (None, "it failed at run time in this process")


def test_version_lists_each_helper_native_or_fallback_with_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(walker, "_forgotten", False)
    monkeypatch.setattr(helper, "_forgotten", False)
    monkeypatch.setattr(walker, "status", lambda: ("/x/netlens-walk", ""))
    monkeypatch.setattr(helper, "status", lambda: (None, "NETLENS_SPAWN_HELPER=0"))
    lines = cli.version_report().splitlines()
    assert lines[0].startswith("netlens ") and os.path.dirname(cli.__file__) in lines[0]
    assert lines[1].split() == ["netlens-walk", "native", "/x/netlens-walk"]
    assert lines[2].split(None, 2) == [
        "netlens-spawn",
        "fallback",
        "NETLENS_SPAWN_HELPER=0: the Python spawner runs",
    ]


def test_version_option_runs_in_a_process(tmp_path: Path) -> None:
    """``netlens --version`` exits 0 and reports the environment switch it is given."""
    env = {**os.environ, "NETLENS_WALK_HELPER": "0", "PYTHONPATH": f"{REPO}:{REPO / 'runtime'}"}
    res = subprocess.run(
        [sys.executable, "-m", "netlens", "--version"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert res.returncode == 0 and res.stderr == ""
    walk = next(line for line in res.stdout.splitlines() if line.startswith("netlens-walk"))
    assert walk.split(None, 2)[1:] == [
        "fallback",
        "NETLENS_WALK_HELPER=0: the Python discovery helper runs",
    ]
