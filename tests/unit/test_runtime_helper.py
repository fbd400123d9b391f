"""netlens-spawn (runtime/netlens_runtime/spawn_helper.c): its job format and error reports.

Nothing here clones a container (the integration tests do, through both
spawners): the program is run with jobs that make it stop before any clone.
How it is built and found: test_helpers_build.py and test_helpers_find.py.
"""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import pytest
from conftest import built_helper

from netlens_runtime import helper, spawn, spawner

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def program() -> str:
    """The program the checkout's build step made (``make setup``)."""
    return built_helper(helper.NAME, helper.find())


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


def test_program_is_the_packaged_build(program: str) -> None:
    assert program == helper.PATH and os.access(program, os.X_OK)
    assert not os.stat(program).st_mode & 0o022
    assert helper.why_untrusted(program) == ""


def test_find_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETLENS_SPAWN_HELPER", "0")
    assert helper.find() is None
    assert helper.status() == (None, "NETLENS_SPAWN_HELPER=0")


def test_empty_job_reports_no_pids(program: str) -> None:
    assert _run(program, struct.pack("=Iii", 0, -1, -1)) == (0, "")


@pytest.mark.parametrize("cut", [0, 5, 12, 40, -3])
def test_truncated_job_is_refused_before_any_clone(program: str, cut: int) -> None:
    plan = spawn.Plan("c1", "c1", ["sleep", "1"], {"PATH": "/bin"}, caps=0, log_path="/x.log")
    spawn.prepare_netlink(plan)
    job = spawner.encode_job([(plan, 7, 8, None)], 3, 4)
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
    plan.log_max = 10 << 20
    plan.privileged = True
    plan.volumes = [("/h", "/data", True, "dir"), ("/h/f", "/run/f", False, "file")]
    plan.seccomp = struct.pack("=HBBI", 0x06, 0, 0, 0x7FFF0000)  # one instruction: ret ALLOW
    job = spawner.encode_job([(plan, 7, 8, "/sys/fs/cgroup/x")], 3, 4)
    # ... nofile soft and hard, then half the log size (log_helper.c rotates there)
    assert struct.unpack_from("=IiiiiQqqq", job) == (1, 3, 4, 7, 8, 5, 1024, 4096, 5 << 20)
    off = struct.calcsize("=IiiiiQqqq")

    def text() -> str:
        nonlocal off
        (n,) = struct.unpack_from("=I", job, off)
        off += 4 + n
        return job[off - n : off].decode()

    def u32() -> int:
        nonlocal off
        off += 4
        return int(struct.unpack_from("=I", job, off - 4)[0])

    assert [text() for _ in range(4)] == ["c1", "host1", "", "/sys/fs/cgroup/x"]
    # Right after cgroup_dir: fs flags (1: privileged) and the volumes.
    assert (u32(), u32()) == (spawner.FS_PRIVILEGED, 2)
    assert (text(), text(), u32()) == ("/h", "/data", spawner.VOL_RDONLY | spawner.VOL_MKDIR)
    assert (text(), text(), u32()) == ("/h/f", "/run/f", spawner.VOL_MKFILE)
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
    code, report = _run(program, spawner.encode_job([(plan, 7, 8, None)], 3, 4))
    assert code == 1 and report.startswith("!bad job"), report


def test_null_bytes_are_refused_not_truncated() -> None:
    from netlens_runtime.errors import RuntimeFailure

    plan = spawn.Plan("c1", "c1", ["echo", "a\0b"], {}, caps=0)
    with pytest.raises(RuntimeFailure, match="null byte"):
        spawner.encode_job([(plan, 7, 8, None)], 3, 4)


def test_symlink_to_a_good_build_is_not_trusted(program: str, tmp_path: Path) -> None:
    link = tmp_path / "netlens-spawn"
    link.symlink_to(program)
    assert helper.why_untrusted(program) == ""
    assert helper.why_untrusted(str(link)) == "not an executable regular file"


def test_unknown_machine_refuses_raw_syscalls_in_one_line() -> None:
    from netlens_runtime import sysc
    from netlens_runtime.errors import RuntimeFailure

    with pytest.raises(RuntimeFailure) as info:
        sysc._nr(-1)
    assert "x86_64" in str(info.value) and "\n" not in str(info.value)
    assert sysc._nr(sysc.SYS_SETNS) == sysc.SYS_SETNS
