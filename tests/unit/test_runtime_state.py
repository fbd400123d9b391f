"""State files: removed files go to the ``spare/`` pool and new ones come out of it.

Reusing inodes spares ext4 (without a journal) the slow allocation after many
deletions; these tests check the pool keeps the visible state exactly as
plain create/unlink would.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netlens_runtime import state

pytestmark = pytest.mark.unit


def _rec(name: str, **extra: object) -> dict[str, object]:
    """The smallest container record the runtime uses (see netlens_runtime.records)."""
    return {"name": name, "id": "0" * 64, "pid": 0, "netns_inode": 0, "state": "exited",
            "created": "2024-01-01T00:00:00.000Z", "command": ["true"], **extra}  # fmt: skip


@pytest.fixture
def sdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NETLENS_STATE_DIR", str(tmp_path))
    state.ensure_dirs()
    return tmp_path


def test_retired_record_is_reused_by_the_next_write(sdir: Path) -> None:
    with state.locked():
        state.write_json(state.container_path("a"), _rec("a", pad="x" * 5000))
        ino = os.stat(state.container_path("a")).st_ino
        state.retire(state.container_path("a"))
        assert not os.path.exists(state.container_path("a"))
        spare = sdir / "spare" / f"i{ino}"
        assert spare.exists() and spare.stat().st_size == 0
        state.write_json(state.container_path("b"), _rec("b"))
    assert os.stat(state.container_path("b")).st_ino == ino
    assert state.load_container("b") == _rec("b")
    assert state.load_containers().keys() == {"b"}
    assert os.listdir(sdir / "spare") == []
    assert os.stat(state.container_path("b")).st_mode & 0o777 == 0o644


def test_staged_file_and_log_come_from_the_pool_empty_with_their_mode(sdir: Path) -> None:
    log = state.log_path("c")
    with state.locked():
        Path(log).write_text("old output\n")
        os.chmod(log, 0o640)
        state.retire(log)
        tmp = state.stage_json(state.container_path("c"), {"name": "c"})
        assert os.stat(tmp).st_mode & 0o777 == 0o644
        os.rename(tmp, state.container_path("c"))
        state.retire(state.container_path("c"))
        assert state.reuse(log, 0o640)
    assert Path(log).read_text() == "" and os.stat(log).st_mode & 0o777 == 0o640
    with state.locked():
        assert not state.reuse(state.log_path("d"))  # pool empty: the caller creates
    assert not os.path.exists(state.log_path("d"))


def test_pool_is_bounded_and_takes_only_plain_files(
    sdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state, "SPARE_MAX", 2)
    with state.locked():
        for i in range(4):
            state.write_json(state.container_path(f"n{i}"), {})
        for i in range(4):
            state.retire(state.container_path(f"n{i}"))
        os.symlink("/etc/passwd", state.log_path("link"))
        state.retire(state.log_path("link"))
        state.retire(state.log_path("missing"))  # nothing there: no error
    assert len(os.listdir(sdir / "spare")) == 2
    assert os.listdir(sdir / "containers") == []
    assert not os.path.lexists(state.log_path("link"))
    assert Path("/etc/passwd").exists()


def test_retire_moves_the_record_out_of_view_before_emptying_it(
    sdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between the two steps must not leave an empty record under the name."""
    path = state.container_path("r")
    seen: list[tuple[str, bool]] = []
    truncate = os.truncate

    def spy(target: str, length: int) -> None:
        seen.append((str(target), os.path.exists(path)))
        truncate(target, length)

    with state.locked():
        state.write_json(path, {"name": "r", "pad": "x" * 100})
        monkeypatch.setattr(os, "truncate", spy)
        state.retire(path)
    assert seen and all(not visible for _, visible in seen)
    assert seen[0][0].startswith(str(sdir / "spare"))
    assert [f.stat().st_size for f in (sdir / "spare").iterdir()] == [0]


def test_reused_file_is_emptied_even_if_retire_was_cut_short(sdir: Path) -> None:
    (sdir / "spare" / "i1").write_text("left over by a killed retire\n")
    log = state.log_path("l")
    with state.locked():
        assert state.reuse(log, 0o640)
    assert Path(log).read_text() == ""


def test_record_must_name_its_own_file(sdir: Path) -> None:
    with state.locked():
        state.write_json(state.container_path("a"), {"name": "b"})
        state.write_json(state.container_path("c"), ["not", "a", "record"])
        state.write_json(state.container_path("d"), _rec("d"))
    for bad in ("a", "c"):
        with pytest.raises(state.UnusableRecord):
            state.load_container(bad)
    assert state.load_container("d") == _rec("d")
    assert state.load_containers().keys() == {"d"}
