"""Which namespace is the host's, on fake /proc trees (nsfind.host_namespace).

The live case (netlens run inside ``ip netns exec``) is in
tests/integration/test_dump.py; these pin the order of the fallbacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from netlens.discovery.nsfind import host_namespace

pytestmark = pytest.mark.unit


def _proc(root: Path, pid: str, inode: int | None, ppid: int | None = None) -> None:
    (root / pid / "ns").mkdir(parents=True)
    if inode is not None:
        (root / pid / "ns" / "net").symlink_to(f"net:[{inode}]")
    if ppid is not None:
        (root / pid / "status").write_text(f"Name:\tx\nPPid:\t{ppid}\n")


def test_init_namespace_first(tmp_path: Path) -> None:
    _proc(tmp_path, "1", 10, 0)
    _proc(tmp_path, "2", 20, 0)
    _proc(tmp_path, "self", 30)
    assert host_namespace(str(tmp_path)) == (10, f"{tmp_path}/1/ns/net")


def test_hidden_init_falls_back_to_kthreadd_not_to_ourselves(tmp_path: Path) -> None:
    _proc(tmp_path, "1", None, 0)
    _proc(tmp_path, "2", 20, 0)
    _proc(tmp_path, "self", 30)
    assert host_namespace(str(tmp_path)) == (20, f"{tmp_path}/2/ns/net")


def test_pid_2_with_a_parent_is_no_kernel_thread(tmp_path: Path) -> None:
    """In a container's PID namespace PID 2 is any process: not a witness."""
    _proc(tmp_path, "1", None, 0)
    _proc(tmp_path, "2", 20, 1)
    _proc(tmp_path, "self", 30)
    assert host_namespace(str(tmp_path)) == (30, f"{tmp_path}/self/ns/net")


def test_nothing_readable(tmp_path: Path) -> None:
    tmp_path.joinpath("self").mkdir()
    assert host_namespace(str(tmp_path)) is None
