"""The opt-in deep scan finds namespaces that only a foreign mount or an open fd holds.

Three namespaces, each invisible to the default scan: one `ip netns add`-ed
inside a private mount namespace (``unshare -m``: the bind mount never reaches
ours), one held by an fd opened through /run/netns and then `ip netns del`-ed
(the fd's link then reads "/", not net:[...]), and one held by an fd of
/proc/PID/ns/net whose process exited (the link reads net:[INODE]).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import RUN_TAG, is_root, sh

from netlens.discovery.nsfind import find_namespaces
from netlens.kernel.nsenter import open_netns

pytestmark = pytest.mark.integration

MNT_NAME = f"nd{RUN_TAG}dm"
FD_NAME = f"nd{RUN_TAG}df"


def _wait(pred: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def holders() -> Iterator[dict[str, tuple[int, str]]]:
    """Build the three namespaces; kill, close and remove everything afterwards."""
    if not is_root():
        pytest.skip("needs root")
    procs: list[subprocess.Popen[bytes]] = []
    fds: list[int] = []
    try:
        shell = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             f"ip netns add {MNT_NAME} && exec sleep 300"],
        )  # fmt: skip
        procs.append(shell)
        foreign = f"/proc/{shell.pid}/root/run/netns/{MNT_NAME}"
        _wait(lambda: f"/run/netns/{MNT_NAME} " in Path(f"/proc/{shell.pid}/mountinfo").read_text(),
              "the mount inside the private mount namespace")  # fmt: skip
        mnt_ino = os.stat(foreign).st_ino

        sh(f"ip netns add {FD_NAME}")
        fds.append(os.open(f"/run/netns/{FD_NAME}", os.O_RDONLY | os.O_CLOEXEC))
        sh(f"ip netns del {FD_NAME}")
        fd_ino = os.fstat(fds[-1]).st_ino

        sleeper = subprocess.Popen(["unshare", "-n", "sleep", "300"])
        procs.append(sleeper)
        ours = os.stat("/proc/self/ns/net").st_ino
        _wait(lambda: os.stat(f"/proc/{sleeper.pid}/ns/net").st_ino != ours, "unshare -n")
        fds.append(os.open(f"/proc/{sleeper.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC))
        proc_ino = os.fstat(fds[-1]).st_ino
        sleeper.kill()
        sleeper.wait()
        yield {
            "mnt": (mnt_ino, foreign),
            "fd": (fd_ino, f"/proc/{os.getpid()}/fd/{fds[0]}"),
            "proc": (proc_ino, f"/proc/{os.getpid()}/fd/{fds[1]}"),
        }
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        sh(f"ip netns del {FD_NAME}", check=False)
        # `ip netns add` made the mount point file in the shared /run/netns directory.
        with contextlib.suppress(OSError):
            os.unlink(f"/run/netns/{MNT_NAME}")


def test_deep_scan_finds_foreign_mount_and_fd_holders(holders: dict[str, tuple[int, str]]) -> None:
    inodes = {ino for ino, _path in holders.values()}

    plain = {h.inode for h in find_namespaces()}
    deep = {h.inode: h for h in find_namespaces(deep=True)}

    assert not inodes & plain, "the default scan must not pay for (or find) these"
    for kind, (ino, path) in holders.items():
        h = deep[ino]
        assert (h.path, h.pids) == (path, ()), kind
        assert h.mounts == ((path,) if kind == "mnt" else ()), kind
        fd = open_netns(h.path)  # the holder's path opens it, as discovery will
        assert fd is not None, kind
        try:
            assert os.fstat(fd).st_ino == ino, kind
        finally:
            os.close(fd)


def test_deep_scan_from_environment_reaches_discover(
    holders: dict[str, tuple[int, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from netlens.discovery import discover

    mnt_ino, _path = holders["mnt"]
    monkeypatch.setenv("NETLENS_DEEP_SCAN", "1")
    snap = discover(with_identity=False, with_nat=False)
    ns = snap.netns(f"netns:{mnt_ino}")
    assert ns is not None and any(i.name == "lo" for i in ns.interfaces)


def test_dump_deep_flag_adds_only_with_the_flag(holders: dict[str, tuple[int, str]]) -> None:
    """`netlens dump --deep` lists the foreign-mount namespace; the plain dump does not."""
    import json
    import sys

    mnt_ino, _path = holders["mnt"]
    key = f"netns:{mnt_ino}"
    env = {k: v for k, v in os.environ.items() if k != "NETLENS_DEEP_SCAN"}

    def ids(*extra: str) -> set[str]:
        out = subprocess.run(
            [sys.executable, "-m", "netlens", "dump", "--json", *extra],
            capture_output=True, text=True, check=True, env=env,
        )  # fmt: skip
        return {ns["id"] for ns in json.loads(out.stdout)["namespaces"]}

    assert key not in ids()
    assert key in ids("--deep")
