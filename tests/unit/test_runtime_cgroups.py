"""cgroup layouts (v2, hybrid, v1) against a fake /sys/fs/cgroup tree.

Real cgroupfs creates the control files when a directory is made; the fake
tree cannot, so these tests check which directories and values the runtime
writes, not the kernel's reaction (the integration tests do that on this host).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netlens_runtime import cgroups
from netlens_runtime.errors import RuntimeFailure

pytestmark = pytest.mark.unit


def test_pure_v2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    monkeypatch.setattr(cgroups, "ROOT", str(tmp_path))
    dirs = cgroups.create("c1", 64 << 20, 0.5)
    assert dirs == [f"{tmp_path}/netlens/c1"]
    assert (tmp_path / "netlens/c1/memory.max").read_text() == str(64 << 20)
    assert (tmp_path / "netlens/c1/cpu.max").read_text() == "50000 100000"
    assert (tmp_path / "netlens/cgroup.subtree_control").read_text() == "+memory +cpu"
    assert cgroups.split_v2(dirs) == (dirs[0], [])
    assert cgroups.all_dirs() == {"c1": dirs}
    assert cgroups.create("c2", None, None) == [f"{tmp_path}/netlens/c2"]


def test_pure_v2_without_controller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cgroup.controllers").write_text("pids\n")
    monkeypatch.setattr(cgroups, "ROOT", str(tmp_path))
    with pytest.raises(RuntimeFailure, match="not available"):
        cgroups.create("c1", 64 << 20, None)
    assert not (tmp_path / "netlens" / "c1").exists()


def test_hybrid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for sub in ("unified", "memory", "cpu"):
        (tmp_path / sub).mkdir()
    (tmp_path / "unified" / "cgroup.procs").write_text("")
    monkeypatch.setattr(cgroups, "ROOT", str(tmp_path))
    dirs = cgroups.create("c1", 32 << 20, 1.5)
    assert dirs == [
        f"{tmp_path}/unified/netlens/c1",
        f"{tmp_path}/memory/netlens/c1",
        f"{tmp_path}/cpu/netlens/c1",
    ]
    assert (tmp_path / "memory/netlens/c1/memory.limit_in_bytes").read_text() == str(32 << 20)
    assert (tmp_path / "cpu/netlens/c1/cpu.cfs_quota_us").read_text() == "150000"
    assert (tmp_path / "cpu/netlens/c1/cpu.cfs_period_us").read_text() == "100000"
    assert not (tmp_path / "unified/netlens/c1/memory.max").exists()
    assert cgroups.split_v2(dirs) == (dirs[0], dirs[1:])
    # Without limits only the (cheap) v2 directory is made.
    assert cgroups.create("c2", None, None) == [f"{tmp_path}/unified/netlens/c2"]
    assert cgroups.cgroup_path("c1") == "/netlens/c1"


def test_v1_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for sub in ("memory", "cpu"):
        (tmp_path / sub).mkdir()
    monkeypatch.setattr(cgroups, "ROOT", str(tmp_path))
    dirs = cgroups.create("c1", 32 << 20, None)
    assert dirs == [f"{tmp_path}/memory/netlens/c1"]
    assert cgroups.split_v2(dirs) == (None, dirs)
    assert cgroups.create("c2", None, None) == []


def test_failure_removes_what_was_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for sub in ("unified", "memory"):
        (tmp_path / sub).mkdir()
    (tmp_path / "unified" / "cgroup.procs").write_text("")
    (tmp_path / "memory" / "netlens" / "c1").mkdir(parents=True)  # collides
    monkeypatch.setattr(cgroups, "ROOT", str(tmp_path))
    with pytest.raises(RuntimeFailure, match="cgroup setup for c1 failed"):
        cgroups.create("c1", 32 << 20, None)
    assert not (tmp_path / "unified" / "netlens" / "c1").exists()


def _layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *dirs: str) -> None:
    for sub in dirs:
        (tmp_path / sub).mkdir()
    if "unified" in dirs:
        (tmp_path / "unified" / "cgroup.procs").write_text("")
    monkeypatch.setattr(cgroups, "ROOT", str(tmp_path))


def test_pids_limit_on_pure_v2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    monkeypatch.setattr(cgroups, "ROOT", str(tmp_path))
    assert cgroups.has_pids() and cgroups.tracks()
    assert cgroups.create("c1", 64 << 20, None, 2048) == [f"{tmp_path}/netlens/c1"]
    assert (tmp_path / "netlens/c1/pids.max").read_text() == "2048"
    assert (tmp_path / "netlens/cgroup.subtree_control").read_text() == "+memory +pids"
    cgroups.create("c2", None, None, None)
    assert not (tmp_path / "netlens/c2/pids.max").exists()


def test_pure_v2_without_pids_controller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    monkeypatch.setattr(cgroups, "ROOT", str(tmp_path))
    assert not cgroups.has_pids()
    with pytest.raises(RuntimeFailure, match=r"\['pids'\] are not available"):
        cgroups.create("c1", None, None, 100)


def test_pids_limit_on_hybrid_goes_to_v1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This project's VM: v2 mounted at unified/ without controllers, pids in v1."""
    _layout(tmp_path, monkeypatch, "unified", "memory", "cpu", "pids")
    assert cgroups.has_pids()
    dirs = cgroups.create("c1", 32 << 20, None, 100)
    assert dirs == [f"{tmp_path}/unified/netlens/c1", f"{tmp_path}/memory/netlens/c1",
                    f"{tmp_path}/pids/netlens/c1"]  # fmt: skip
    assert (tmp_path / "pids/netlens/c1/pids.max").read_text() == "100"
    assert cgroups.split_v2(dirs) == (dirs[0], dirs[1:])
    # No limit: the v2 directory names the container, no v1 pids directory is made.
    assert cgroups.create("c2", None, None, None) == [f"{tmp_path}/unified/netlens/c2"]
    assert cgroups.owns(dirs[2], "c1") and cgroups.owns(dirs[0], "c1")
    for other in (f"{tmp_path}/pids/netlens/c2", f"{tmp_path}/pids", "/etc", f"{dirs[2]}/x",
                  f"{tmp_path}/pids/other/c1"):  # fmt: skip
        assert not cgroups.owns(other, "c1")


def test_v1_only_tracks_every_container_in_pids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _layout(tmp_path, monkeypatch, "memory", "cpu", "pids")
    assert cgroups.tracks()
    assert cgroups.create("c1", None, None, None) == [f"{tmp_path}/pids/netlens/c1"]
    assert (tmp_path / "pids/netlens/c1/pids.max").read_text() == "max"


def test_v1_only_without_pids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _layout(tmp_path, monkeypatch, "memory", "cpu")
    assert not cgroups.has_pids() and not cgroups.tracks()
    with pytest.raises(RuntimeFailure, match="no cgroup controller for the pids limit"):
        cgroups.create("c1", None, None, 64)
    assert not (tmp_path / "memory" / "netlens" / "c1").exists()
