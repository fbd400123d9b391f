"""Root writing output files where another user was first (``capture -w``, ``dump -o``).

This host runs with ``fs.protected_symlinks=0``, as many lab hosts do: the kernel
then follows a symlink in /tmp whoever made it. A link or file "planted" by
``nobody`` is simulated by making it here and handing it to uid 65534 with
lchown, in the test's own directory; the victim is a file of the test's own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Lab, is_root

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not is_root(), reason="needs root (capture, lchown)"),
]

NOBODY = 65534
PRECIOUS = "precious root-only contents\n"
ENV = {**os.environ, "NETLENS_NO_LOG": "1"}


def netlens(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netlens", *args],
        capture_output=True, text=True, env=ENV, timeout=120, check=False,
    )  # fmt: skip


def victim(tmp_path: Path) -> Path:
    v = tmp_path / "victim"
    v.write_text(PRECIOUS)
    v.chmod(0o600)
    return v


def planted_link(path: Path, to: Path) -> Path:
    path.symlink_to(to)
    os.lchown(path, NOBODY, NOBODY)
    return path


@pytest.fixture
def ns(lab: Lab) -> str:
    return lab.add_netns("o")


def test_capture_does_not_follow_another_users_symlink(ns: str, tmp_path: Path) -> None:
    v = victim(tmp_path)
    link = planted_link(tmp_path / "web.pcapng", v)
    res = netlens("capture", f"{ns}:lo", "-G", "1", "-w", str(link))
    assert res.returncode == 2, res.stderr
    assert "symlink owned by uid 65534" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert v.read_text() == PRECIOUS
    assert link.is_symlink()


def test_capture_does_not_write_into_another_users_file(ns: str, tmp_path: Path) -> None:
    """A file made in advance by another user would hand them every packet."""
    theirs = tmp_path / "web.pcapng"
    theirs.write_text("theirs\n")
    os.chown(theirs, NOBODY, NOBODY)
    res = netlens("capture", f"{ns}:lo", "-G", "1", "-w", str(theirs))
    assert res.returncode == 2, res.stderr
    assert "belongs to uid 65534" in res.stderr
    assert theirs.read_text() == "theirs\n"


def test_capture_file_is_private_and_own_link_is_followed(ns: str, tmp_path: Path) -> None:
    real = tmp_path / "real.pcapng"
    (tmp_path / "mine.pcapng").symlink_to(real)  # root's own link: followed, as before
    res = netlens("capture", f"{ns}:lo", "-G", "1", "-w", str(tmp_path / "mine.pcapng"))
    assert res.returncode == 0, res.stderr
    assert real.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"  # a pcapng section header
    assert real.stat().st_mode & 0o077 == 0  # packets of every container: root's only


def test_dump_does_not_follow_another_users_symlink(ns: str, tmp_path: Path) -> None:
    v = victim(tmp_path)
    link = planted_link(tmp_path / "dump.json", v)
    res = netlens("dump", "--json", "--netns", ns, "--output", str(link))
    assert res.returncode != 0, res.stderr
    assert "symlink owned by uid 65534" in res.stderr
    assert v.read_text() == PRECIOUS
    assert link.is_symlink()


def test_dump_through_own_link_replaces_its_target(ns: str, tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old\n")
    (tmp_path / "latest.json").symlink_to(real)
    res = netlens("dump", "--json", "--netns", ns, "--output", str(tmp_path / "latest.json"))
    assert res.returncode == 0, res.stderr
    assert real.read_text().startswith("{")
    assert (tmp_path / "latest.json").is_symlink()
