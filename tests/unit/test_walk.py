"""netlens-walk (netlens/kernel/walk.c) run on its own, without root.

What needs no namespace: its usage checks, the ``decode`` mode on recorded
replies (the C decoder must give exactly what decode.py gives, or decline),
the error frames of an fd that is not a network namespace (setns refuses it
before any privilege check), and a parent that goes away. The integration
tests (test_discovery_live.py) compare whole walks with the Python helper.
"""

from __future__ import annotations

import marshal
import os
import subprocess
from pathlib import Path

import pytest
from conftest import DISCOVERY_FIXTURES, REPO, built_helper, setup_py

from netlens.kernel import serve, walker, wire
from netlens.kernel.decode import DECODERS

pytestmark = pytest.mark.unit

NAMES = ",".join(wire.FIRST_ROUND)


@pytest.fixture(scope="module")
def program() -> str:
    """The walker the checkout's build step made (``make setup``)."""
    return built_helper(walker.NAME, walker.find())


def _frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    out = []
    off = 0
    while off < len(data):
        pos, idx, status, length = serve.FRAME.unpack_from(data, off)
        off += serve.FRAME.size
        assert off + length <= len(data), "truncated frame"
        out.append((pos, idx, status, data[off : off + length]))
        off += length
    return out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        [NAMES],
        ["link,nope", "enter", "5"],
        [NAMES, "enter+bogus", "5"],
        [NAMES, "nat", "5"],  # socket fds (no enter): the Python helper's job
        [NAMES, "enter", "5x"],
        [NAMES, "enter", "-1"],
    ],
)
def test_usage_errors_exit_2_and_write_nothing(program: str, argv: list[str]) -> None:
    res = subprocess.run([program, *argv], capture_output=True, timeout=10)
    assert res.returncode == 2 and res.stdout == b""


def test_no_fds_is_an_empty_walk(program: str) -> None:
    res = subprocess.run([program, NAMES, "enter+nat"], capture_output=True, timeout=10)
    assert (res.returncode, res.stdout) == (0, b"")


def _replies() -> list[tuple[str, Path]]:
    return sorted(
        (p.stem, p)
        for p in DISCOVERY_FIXTURES.glob("*/netlink/*/*.bin")
        if p.stem in ("link", "addr", "route")
    )


def test_decode_mode_matches_decode_py_or_declines(program: str) -> None:
    replies = _replies()
    assert replies, "no recorded replies"
    decoded = 0
    for name, path in replies:
        raw = path.read_bytes()
        res = subprocess.run([program, "decode", name], input=raw, capture_output=True, timeout=10)
        assert res.returncode in (0, 3), (path, res.stderr)
        if res.returncode == 0:
            assert marshal.loads(res.stdout) == DECODERS[name](raw), path
            decoded += 1
        else:
            assert res.stdout == b""
    assert decoded > 0


def test_decode_mode_declines_unknown_names(program: str) -> None:
    res = subprocess.run([program, "decode", "rule"], input=b"", capture_output=True, timeout=10)
    assert res.returncode == 3 and res.stdout == b""


@pytest.mark.parametrize("mode", ["enter", "enter+nat", "enter+nat+legacy"])
def test_a_namespace_that_cannot_be_entered_gives_error_frames(program: str, mode: str) -> None:
    fd = os.open(os.devnull, os.O_RDONLY)  # not an nsfs file: setns says EINVAL
    try:
        res = subprocess.run(
            [program, NAMES, mode, str(fd), str(fd)], pass_fds=[fd], capture_output=True, timeout=10
        )
    finally:
        os.close(fd)
    assert res.returncode == 0 and res.stderr == b""
    frames = _frames(res.stdout)
    text = f"22:{os.strerror(22)}".encode()
    want = [
        (pos, i, serve.STATUS_ERROR, text) for pos in (0, 1) for i in range(len(wire.FIRST_ROUND))
    ]
    if "nat" in mode:
        nat = [(pos, len(wire.FIRST_ROUND), serve.STATUS_NAT) for pos in (0, 1)]
        assert [f[:3] for f in frames if f[2] == serve.STATUS_NAT] == nat
        for f in frames:
            if f[2] == serve.STATUS_NAT:
                assert marshal.loads(f[3]) == (text.decode(), "", "")
        frames = [f for f in frames if f[2] != serve.STATUS_NAT]
    assert frames == want


def test_walker_builds_without_warnings(tmp_path: Path) -> None:
    cc = setup_py().compiler()
    if cc is None:
        pytest.skip("no C compiler")
    res = subprocess.run(
        [
            *cc,
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-c",
            "-o",
            str(tmp_path / "w.o"),
            str(REPO / "netlens" / "kernel" / "walk.c"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr


def test_handles_that_did_not_arrive_stop_the_walk(program: str) -> None:
    """An fd number that is not open in the walker (the parent's handles did not
    reach it): exit 1 before any frame, so the parent reads the namespaces
    itself, instead of one "bad file descriptor" error per namespace."""
    fd = os.open(os.devnull, os.O_RDONLY)
    os.close(fd)  # a number surely closed in the child too
    res = subprocess.run([program, NAMES, "enter+nat", str(fd)], capture_output=True, timeout=10)
    assert (res.returncode, res.stdout, res.stderr) == (1, b"", b"")


def test_parent_gone_means_a_quiet_exit(program: str) -> None:
    """Writing into a pipe nobody reads: EPIPE, exit 1, no message, no signal death."""
    fd = os.open(os.devnull, os.O_RDONLY)
    r, w = os.pipe()
    os.close(r)
    try:
        res = subprocess.run(
            [program, NAMES, "enter", *[str(fd)] * 50],
            pass_fds=[fd],
            stdout=w,
            stderr=subprocess.PIPE,
            timeout=10,
        )
    finally:
        os.close(fd)
        os.close(w)
    assert res.returncode == 1 and res.stderr == b""
