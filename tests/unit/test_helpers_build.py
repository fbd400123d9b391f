"""setup.py's build step for the C helpers: compiled when the package is built.

``compile_helper`` runs on tiny programs of this test, in this test's directories;
the ``build_helpers --inplace`` command (what ``make setup`` runs) runs on a copy
of the project. Nothing here needs root; without a C compiler the compiling tests
skip (the no-compiler path itself is tested without one).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import REPO, setup_py

pytestmark = pytest.mark.unit

TINY = "int main(int argc, char **argv) { (void)argv; return argc == 1 ? 2 : 0; }\n"


@pytest.fixture
def setup() -> ModuleType:
    return setup_py()


@pytest.fixture
def tiny(tmp_path: Path, setup: ModuleType) -> ModuleType:
    """A one-file program (exits 2 without arguments) and the Helper describing it."""
    if setup.compiler() is None:
        pytest.skip("no C compiler")
    (tmp_path / "tiny.c").write_text(TINY)
    return setup.Helper("nl-tiny", "pkg", ("tiny.c",))  # type: ignore[no-any-return]


def test_a_program_that_starts_is_kept_executable_and_private(
    setup: ModuleType, tiny: object, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "_bin"
    path, why = setup.compile_helper(tiny, str(out), root=str(tmp_path))
    assert (path, why) == (str(out / "nl-tiny"), "")
    assert os.stat(path).st_mode & 0o777 == 0o755
    assert os.listdir(out) == ["nl-tiny"]  # no temporary file left
    assert subprocess.run([path], timeout=10).returncode == 2


def test_a_program_that_does_not_start_is_not_kept(
    setup: ModuleType, tiny: object, tmp_path: Path
) -> None:
    wrong = setup.Helper("nl-tiny", "pkg", ("tiny.c",), usage_exit=7)
    path, why = setup.compile_helper(wrong, str(tmp_path / "out"), root=str(tmp_path))
    assert path is None and "does not start" in why
    assert os.listdir(tmp_path / "out") == []


def test_a_compile_error_is_reported_not_raised(setup: ModuleType, tmp_path: Path) -> None:
    if setup.compiler() is None:
        pytest.skip("no C compiler")
    (tmp_path / "bad.c").write_text("int main(void) { return nope; }\n")
    bad = setup.Helper("nl-bad", "pkg", ("bad.c",))
    path, why = setup.compile_helper(bad, str(tmp_path / "out"), root=str(tmp_path))
    assert path is None and why.startswith("dynamic build failed: ")  # static tried first
    assert os.listdir(tmp_path / "out") == []


def test_no_compiler_means_no_program_and_no_error(
    setup: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no cc, no gcc
    assert setup.compiler() is None
    helper = setup.Helper("nl-none", "pkg", ("none.c",))
    assert setup.compile_helper(helper, str(tmp_path / "out"), root=str(tmp_path)) == (
        None,
        "no C compiler (set CC, or install cc/gcc)",
    )
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    path, why = setup.compile_helper(helper, str(tmp_path / "out"), root=str(tmp_path))
    assert path is None and "No such file" in why


def test_cc_is_split_like_a_shell_would(
    setup: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``$CC`` with a quoted path and arguments; its "program" must still start."""
    fake = tmp_path / "fake cc.sh"
    fake.write_text('while [ "$1" != -o ]; do shift; done; printf "#!/bin/sh\\nexit 2\\n" > "$2"\n')
    monkeypatch.setenv("CC", f"sh '{fake}'")
    helper = setup.Helper("nl-fake", "pkg", ("fake.c",))
    path, why = setup.compile_helper(helper, str(tmp_path / "out"), root=str(tmp_path))
    assert (path, why) == (str(tmp_path / "out" / "nl-fake"), "")
    fake.write_text('while [ "$1" != -o ]; do shift; done; printf "\\177ELFjunk" > "$2"\n')
    path, why = setup.compile_helper(helper, str(tmp_path / "out"), root=str(tmp_path))
    assert path is None and "does not start" in why


def test_stale_when_missing_or_older_than_a_source(
    setup: ModuleType, tiny: object, tmp_path: Path
) -> None:
    target = tmp_path / "out" / "nl-tiny"
    assert setup.stale(tiny, str(target), root=str(tmp_path))
    setup.compile_helper(tiny, str(target.parent), root=str(tmp_path))
    assert not setup.stale(tiny, str(target), root=str(tmp_path))
    later = target.stat().st_mtime + 5
    os.utime(tmp_path / "tiny.c", (later, later))
    assert setup.stale(tiny, str(target), root=str(tmp_path))


def test_helpers_and_theme_files_are_the_real_ones(setup: ModuleType) -> None:
    for helper in setup.HELPERS:
        for rel in (*helper.sources, *helper.headers):
            assert (REPO / rel).is_file(), rel
    assert setup.theme_files() == sorted(
        str(p.relative_to(REPO)) for p in (REPO / "themes").glob("*.toml")
    )
    assert setup.theme_files()


def _copy_project(dest: Path) -> Path:
    """What setup.py needs of the checkout, without the builds."""
    dest.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    ignore = shutil.ignore_patterns("_bin", "__pycache__", "*.egg-info")
    for name in ("netlens", "runtime", "themes"):
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    return dest


def _inplace(root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "ignore", "setup.py", "-q", "build_helpers", "--inplace"],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=600,
    )


def test_inplace_build_makes_both_and_rebuilds_only_what_changed(
    setup: ModuleType, tmp_path: Path
) -> None:
    if setup.compiler() is None:
        pytest.skip("no C compiler")
    root = _copy_project(tmp_path / "project")
    walk = root / "netlens" / "kernel" / "_bin" / "netlens-walk"
    spawn = root / "runtime" / "netlens_runtime" / "_bin" / "netlens-spawn"
    res = _inplace(root)
    assert res.returncode == 0 and "not built" not in res.stderr, res.stderr
    assert walk.is_file() and spawn.is_file()
    first = {p: p.stat().st_ino for p in (walk, spawn)}
    assert _inplace(root).returncode == 0
    assert {p: p.stat().st_ino for p in (walk, spawn)} == first  # fresh: not rebuilt
    later = walk.stat().st_mtime + 5
    os.utime(root / "netlens" / "kernel" / "walk_decode.h", (later, later))
    assert _inplace(root).returncode == 0
    assert walk.stat().st_ino != first[walk] and spawn.stat().st_ino == first[spawn]


def test_inplace_build_without_a_compiler_succeeds_and_removes_the_stale_build(
    setup: ModuleType, tmp_path: Path
) -> None:
    """A failed build never leaves an older program to run: the fallback runs instead."""
    root = _copy_project(tmp_path / "project")
    walk = root / "netlens" / "kernel" / "_bin" / "netlens-walk"
    walk.parent.mkdir()
    walk.write_text("#!/bin/sh\nexit 2\n")  # an older build
    os.utime(walk, (1, 1))
    res = _inplace(root, CC="false")
    assert res.returncode == 0, res.stderr
    assert not walk.exists()
    lines = [line for line in res.stderr.splitlines() if line.startswith("netlens:")]
    assert [line.split()[1] for line in lines] == ["netlens-walk", "netlens-spawn"]
    assert all(line.endswith("; the Python fallback runs") for line in lines)
