"""netlens-spawn (runtime/netlens_runtime/spawn_helper.c): its build, job format and error reports.

Nothing here clones a container (the integration tests do, through both
spawners): the program is run with jobs that make it stop before any clone.
"""

from __future__ import annotations

import os
import platform
import struct
import subprocess
from pathlib import Path

import pytest

from netlens_runtime import helper, spawn

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def program() -> str:
    path = helper.build()
    if path is None:
        pytest.skip("no working C compiler")
    return path


def _run(program: str, job: bytes) -> tuple[int, str]:
    res_r, res_w = os.pipe()
    try:
        proc = subprocess.run(
            [program, str(res_w)], input=job, pass_fds=[res_w], capture_output=True, timeout=10
        )
        os.close(res_w)
        res_w = -1
        report = os.read(res_r, 4096).decode()
    finally:
        os.close(res_r)
        if res_w >= 0:
            os.close(res_w)
    return proc.returncode, report


def test_build_is_named_after_the_source_and_reused(program: str) -> None:
    builds = (helper.binary_path("static"), helper.binary_path("dynamic"))
    assert program in builds and os.access(program, os.X_OK)
    assert helper.build() == program
    mode = os.stat(program).st_mode
    assert not mode & 0o022


def test_find_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETLENS_SPAWN_HELPER", "0")
    assert helper.find() is None


def test_empty_job_reports_no_pids(program: str) -> None:
    assert _run(program, struct.pack("=Iii", 0, -1, -1)) == (0, "")


@pytest.mark.parametrize("cut", [0, 5, 12, 40, -3])
def test_truncated_job_is_refused_before_any_clone(program: str, cut: int) -> None:
    plan = spawn.Plan("c1", "c1", ["sleep", "1"], {"PATH": "/bin"}, caps=0, log_path="/x.log")
    spawn.prepare_netlink(plan)
    job = spawn.encode_job([(plan, 7, 8, None)], 3, 4)
    code, report = _run(program, job[:cut])
    assert code == 1 and report.startswith("!bad job"), report


def test_job_layout(program: str) -> None:
    """The fields in the order spawn_helper.c reads them (native byte order)."""
    plan = spawn.Plan(
        "c1", "host1", ["sh", "-c", "x"], {"A": "1"}, caps=5, sysctls=[("/proc/sys/a", "1")]
    )
    plan.addr, plan.gateway = "10.0.0.2/24", "10.0.0.1"
    spawn.prepare_netlink(plan)
    plan.nofile = (1024, 4096)
    plan.privileged = True
    plan.seccomp = struct.pack("=HBBI", 0x06, 0, 0, 0x7FFF0000)  # one instruction: ret ALLOW
    job = spawn.encode_job([(plan, 7, 8, "/sys/fs/cgroup/x")], 3, 4)
    assert struct.unpack_from("=IiiiiQqq", job) == (1, 3, 4, 7, 8, 5, 1024, 4096)
    off = struct.calcsize("=IiiiiQqq")
    fields = []
    for _ in range(4):
        (n,) = struct.unpack_from("=I", job, off)
        fields.append(job[off + 4 : off + 4 + n].decode())
        off += 4 + n
    assert fields == ["c1", "host1", "", "/sys/fs/cgroup/x"]
    (pre_len,) = struct.unpack_from("=I", job, off)
    (pre_count,) = struct.unpack_from("=I", job, off + 4 + pre_len)
    assert pre_count == 1  # lo up
    off += 8 + pre_len
    (post_len,) = struct.unpack_from("=I", job, off)
    (post_count,) = struct.unpack_from("=I", job, off + 4 + post_len)
    assert post_count == 4  # addrgenmode, up, address, default route
    env = struct.pack("=I", 1) + struct.pack("=I", 3) + b"A=1"
    # then privileged (u32) and the seccomp program (u32 length + instructions)
    assert job.endswith(env + struct.pack("=II", 1, 8) + plan.seccomp)
    # A complete job ends exactly there: one byte less is refused (not run: it would clone).
    assert _run(program, job[:-1])[1].startswith("!bad job")


def test_seccomp_program_must_be_whole_instructions(program: str) -> None:
    """A program whose length is not a multiple of 8 bytes is refused before any clone."""
    plan = spawn.Plan("c1", "c1", ["sleep", "1"], {"PATH": "/bin"}, caps=0)
    spawn.prepare_netlink(plan)
    plan.seccomp = b"\x06\x00\x00\x00\x00\x00\xff"  # 7 bytes
    code, report = _run(program, spawn.encode_job([(plan, 7, 8, None)], 3, 4))
    assert code == 1 and report.startswith("!bad job"), report


def test_null_bytes_are_refused_not_truncated() -> None:
    from netlens_runtime.errors import RuntimeFailure

    plan = spawn.Plan("c1", "c1", ["echo", "a\0b"], {}, caps=0)
    with pytest.raises(RuntimeFailure, match="null byte"):
        spawn.encode_job([(plan, 7, 8, None)], 3, 4)


def test_build_name_depends_on_machine_and_link_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """A build copied from another machine, or the other link mode, is never picked up."""
    here = helper.binary_path("static")
    assert helper.binary_path("dynamic") != here
    monkeypatch.setattr(platform, "machine", lambda: "riscv64")
    assert helper.binary_path("static") != here


def test_symlink_to_a_good_build_is_not_trusted(program: str, tmp_path: Path) -> None:
    link = tmp_path / "netlens-spawn"
    link.symlink_to(program)
    assert helper._trusted(program)
    assert not helper._trusted(str(link))


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Builds go to a directory of this test (the real _bin is left alone)."""
    path = tmp_path / "bin"
    path.mkdir(mode=0o755)
    monkeypatch.setattr(helper, "BIN_DIR", str(path))
    return path


def test_build_dir_writable_by_others_is_refused(
    bin_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.chmod(bin_dir, 0o777)
    called: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda argv, **kw: called.append(argv))
    assert helper.build() is None
    assert called == []  # nothing compiled, nothing run


def test_build_that_does_not_start_is_not_kept(
    bin_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$CC (split like a shell would) 'compiles' garbage: neither link mode is kept."""
    fake = tmp_path / "fake cc.sh"
    fake.write_text('while [ "$1" != -o ]; do shift; done; printf "\\177ELFjunk" > "$2"\n')
    monkeypatch.setenv("CC", f"sh '{fake}'")
    assert helper.build() is None
    failed = os.path.basename(helper.binary_path("failed"))  # no compile on next use
    assert sorted(os.listdir(bin_dir)) == sorted([".gitignore", ".lock", failed])
    assert os.stat(bin_dir / ".lock").st_mode & 0o777 == 0o600


def test_lock_and_gitignore_do_not_follow_symlinks(
    bin_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    (bin_dir / ".gitignore").symlink_to(victim)
    (bin_dir / ".lock").symlink_to(victim)
    monkeypatch.setenv("CC", "true")
    assert helper.build() is None  # the lock cannot be opened: no build
    assert victim.read_text() == "keep\n"


def test_unknown_machine_refuses_raw_syscalls_in_one_line() -> None:
    from netlens_runtime import sysc
    from netlens_runtime.errors import RuntimeFailure

    with pytest.raises(RuntimeFailure) as info:
        sysc._nr(-1)
    assert "x86_64" in str(info.value) and "\n" not in str(info.value)
    assert sysc._nr(sysc.SYS_SETNS) == sysc.SYS_SETNS
