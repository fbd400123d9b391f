"""A layered root's rules (netlens_runtime.overlay): what validate_layers accepts and
what mount_layers refuses before it mounts anything (so these run without root)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from netlens_runtime import overlay
from netlens_runtime.errors import BadInput

pytestmark = pytest.mark.unit


def _layers(tmp_path: Path, n: int) -> list[Path]:
    out = [tmp_path / f"l{i}" for i in range(n)]
    for layer in out:
        layer.mkdir()
    for sub in overlay.MOUNT_POINTS:
        (out[-1] / sub).mkdir()
    return out


def test_union_decides_and_paths_become_real(tmp_path: Path) -> None:
    """/proc in the bottom layer, /tmp only in the top: their union is a root."""
    top, bottom = _layers(tmp_path, 2)
    (bottom / "tmp").rmdir()
    (top / "tmp").mkdir()
    (tmp_path / "link").symlink_to(top)
    assert overlay.validate_layers([str(tmp_path / "link"), str(bottom)]) == [str(top), str(bottom)]


@pytest.mark.parametrize("hide", ["whiteout", "file"])
def test_upper_layer_hides_a_mount_point(tmp_path: Path, hide: str) -> None:
    top, bottom = _layers(tmp_path, 2)
    if hide == "whiteout":
        os.mknod(top / "dev", 0o600 | stat.S_IFCHR, os.makedev(0, 0))
    else:
        (top / "dev").write_text("")
    with pytest.raises(BadInput, match=r"^the image's layers have no /dev directory$"):
        overlay.validate_layers([str(top), str(bottom)])


def test_counts(tmp_path: Path) -> None:
    (only,) = _layers(tmp_path, 1)
    with pytest.raises(BadInput, match="at least two layers"):
        overlay.validate_layers([str(only)])
    with pytest.raises(BadInput, match="129 layers: at most 128"):
        overlay.validate_layers([str(only)] * 129)
    assert len(overlay.validate_layers([str(only)] * 128)) == 128
    with pytest.raises(BadInput, match="is not a directory"):
        overlay.validate_layers([str(only), str(tmp_path / "nothing")])


def test_mount_refuses_a_layer_that_became_a_link(tmp_path: Path) -> None:
    """Validated, then swapped for a symbolic link: refused at open, nothing mounted."""
    top, bottom = _layers(tmp_path, 2)
    checked = overlay.validate_layers([str(top), str(bottom)])
    top.rename(tmp_path / "elsewhere")
    top.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError, match=f"^layer {top}: "):
        overlay.mount_layers(checked, str(tmp_path / "target"))


def test_mount_refuses_a_path_through_a_link(tmp_path: Path) -> None:
    """A link above the layer (O_NOFOLLOW sees only the last name): the opened
    directory is not the path given, so it is refused."""
    top, bottom = _layers(tmp_path, 2)
    (tmp_path / "via").symlink_to(tmp_path)
    via = str(tmp_path / "via" / top.name)
    with pytest.raises(OSError, match=f"^layer {via} is no longer that directory$"):
        overlay.mount_layers([via, str(bottom)], str(tmp_path / "target"))


def test_mount_option_fits_a_page_at_the_most_layers() -> None:
    """128 layers named as /proc/self/fd/N (N up to 4 digits) stay under the page
    the kernel copies mount options into."""
    option = "lowerdir=" + ":".join(f"/proc/self/fd/{1000 + i}" for i in range(overlay.MAX_LAYERS))
    assert len(option) < 4096
