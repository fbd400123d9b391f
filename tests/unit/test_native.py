"""netlens.native: how the optional C helpers are named, built and trusted.

Builds a tiny program of this test into a directory of this test (the real
``_bin`` directories are left alone); nothing here needs root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from netlens import native
from netlens.discovery import walker

pytestmark = pytest.mark.unit

TINY = "int main(int argc, char **argv) { (void)argv; return argc == 1 ? 2 : 0; }\n"


@pytest.fixture
def tiny(tmp_path: Path) -> native.Program:
    if native.compiler() is None:
        pytest.skip("no C compiler")
    src = tmp_path / "tiny.c"
    src.write_text(TINY)
    bin_dir = tmp_path / "bin"
    return native.Program("nl-tiny", (str(src),), str(bin_dir))


@pytest.fixture
def built(tiny: native.Program) -> str:
    path = tiny.build()
    if path is None:
        pytest.skip("the C compiler does not build here")
    return path


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The argv of every subprocess.run from here on (a compile, or a start check)."""
    real_run = subprocess.run
    seen: list[object] = []

    def counting_run(*args: object, **kwargs: object) -> object:
        seen.append(args)
        return real_run(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(subprocess, "run", counting_run)
    return seen


def test_build_is_named_after_sources_flags_machine_and_link(
    tiny: native.Program, built: str
) -> None:
    assert built in (tiny.binary_path("static"), tiny.binary_path("dynamic"))
    assert os.path.basename(built).startswith("nl-tiny-")
    assert tiny.build() == built and tiny.trusted(built)  # reused, not rebuilt
    other = native.Program(tiny.name, tiny.sources, tiny.bin_dir, machine="riscv64")
    assert other.binary_path("static") != tiny.binary_path("static")
    more = native.Program(tiny.name, tiny.sources, tiny.bin_dir, flags=("-O1",))
    assert more.binary_path("static") != tiny.binary_path("static")
    assert not os.stat(built).st_mode & 0o022
    assert sorted(os.listdir(tiny.bin_dir)) == sorted(
        [".gitignore", ".lock", os.path.basename(built)]
    )


def test_changed_source_means_a_new_build_and_the_old_one_goes(
    tiny: native.Program, built: str
) -> None:
    Path(tiny.sources[0]).write_text(TINY + "/* changed */\n")
    assert tiny.existing() is None
    fresh = tiny.build()
    assert fresh is not None and fresh != built and not os.path.exists(built)


def test_symlink_is_refused(tiny: native.Program, built: str) -> None:
    link = Path(tiny.bin_dir) / "nl-tiny-link"
    link.symlink_to(built)
    assert tiny.trusted(built) and not tiny.trusted(str(link))
    # a symlink in place of the build itself: not run, a real build replaces it
    os.rename(built, built + ".real")
    os.symlink(built + ".real", built)
    assert tiny.existing() is None


def test_group_or_world_writable_file_is_refused(tiny: native.Program, built: str) -> None:
    os.chmod(built, 0o775)
    assert not tiny.trusted(built)
    os.chmod(built, 0o757)
    assert not tiny.trusted(built)
    os.chmod(built, 0o755)
    assert tiny.trusted(built)


def test_file_in_a_foreign_directory_is_refused(
    tiny: native.Program, built: str, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    copy = elsewhere / os.path.basename(built)
    shutil.copy2(built, copy)
    assert tiny.trusted(built) and not tiny.trusted(str(copy))


def test_directory_writable_by_others_is_refused(
    tiny: native.Program, built: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.chmod(tiny.bin_dir, 0o777)
    assert not tiny.trusted(built) and tiny.existing() is None
    called: list[object] = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **kw: called.append(a))
    assert tiny.build() is None and called == []  # nothing compiled, nothing run


def test_build_that_does_not_start_is_not_kept(tiny: native.Program) -> None:
    wrong = native.Program(tiny.name, tiny.sources, tiny.bin_dir, usage_exit=7)
    assert wrong.build() is None
    marker = os.path.basename(wrong.failed_marker())
    assert sorted(os.listdir(tiny.bin_dir)) == sorted([".gitignore", ".lock", marker])


def test_failed_marker_is_per_compiler_and_expires(
    tiny: native.Program, calls: list[object]
) -> None:
    wrong = native.Program(tiny.name, tiny.sources, tiny.bin_dir, usage_exit=7)
    assert wrong.build() is None
    marker = Path(wrong.failed_marker())
    calls.clear()
    assert wrong.build() is None and calls == []  # same compiler, today: not again
    marker.write_text("some-other-cc")  # the compiler changed since: try again
    assert wrong.build() is None and calls
    calls.clear()
    assert wrong.build() is None and calls == []  # the new failure is recorded
    old = marker.stat().st_mtime - native.FAILED_RETRY_S - 60
    os.utime(marker, (old, old))  # a day later: try again
    assert wrong.build() is None and calls
    calls.clear()
    # An explicit build (setup) always tries, and a success removes the marker.
    assert wrong.build(quiet=False) is None and calls
    assert tiny.build(quiet=False) is not None
    assert marker.name not in os.listdir(tiny.bin_dir)


def test_a_timeout_or_a_killed_compiler_is_not_recorded(
    tiny: native.Program, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = native.Program(tiny.name, tiny.sources, tiny.bin_dir, compile_timeout=0.2)
    monkeypatch.setenv("CC", "sh -c 'sleep 5' --")
    assert slow.build() is None
    monkeypatch.setenv("CC", "sh -c 'kill -9 $$' --")
    assert slow.build() is None
    assert not os.path.exists(slow.failed_marker())


def test_missing_header_builds_nothing_and_raises_nothing(tiny: native.Program) -> None:
    gone = native.Program(
        tiny.name, tiny.sources, tiny.bin_dir, headers=(tiny.sources[0] + ".missing.h",)
    )
    assert gone.existing() is None and gone.build() is None


def test_missing_sources_build_nothing(tmp_path: Path) -> None:
    gone = native.Program("nl-gone", (str(tmp_path / "nope.c"),), str(tmp_path / "bin"))
    assert gone.existing() is None and gone.build() is None


def test_finder_switch_cache_and_forget(
    tiny: native.Program, built: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    finder = native.Finder("NL_TEST_TINY")
    monkeypatch.setenv("NL_TEST_TINY", "0")
    assert finder.find(tiny) is None
    monkeypatch.delenv("NL_TEST_TINY")
    assert finder.find(tiny) == built
    os.chmod(built, 0o777)  # no longer trusted: looked for again (and rebuilt)
    again = finder.find(tiny)
    assert again is not None and tiny.trusted(again)
    finder.forget(tiny)
    assert finder.find(tiny) is None


def test_walker_builds_with_its_decoder_or_says_it_has_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    prog = walker.program()
    assert prog.sources[0] == walker.SOURCE and prog.name == "netlens-walk"
    if os.path.exists(walker.DECODER):
        assert prog.sources == (walker.SOURCE, walker.DECODER)
        assert "-DNLW_NO_DECODE" not in prog.flags
    monkeypatch.setattr(walker, "DECODER", str(tmp_path / "missing.c"))
    bare = walker.program()
    assert bare.sources == (walker.SOURCE,) and "-DNLW_NO_DECODE" in bare.flags
    monkeypatch.setenv(walker.ENV, "0")
    assert walker.find() is None
