"""Unit tests of the container's view of the host (netlens_runtime.hostview, names.parse_volume).

What runs in the child (mounts) is tested by tests/integration/test_confine_fs.py;
here: volume parsing and placement, the /etc mask rules on a tree made here,
and that the C spawner's lists are the Python ones.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from netlens_runtime import hostview, names, spawn
from netlens_runtime.errors import BadInput

pytestmark = pytest.mark.unit

C_SOURCE = Path(hostview.__file__).with_name("spawn_helper.c")


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("/a:/b", ("/a", "/b", False)),
        ("/a:/b:ro", ("/a", "/b", True)),
        ("/a:/b:rw", ("/a", "/b", False)),
        ("//a/./x/:/b//c/", ("/a/x", "/b/c", False)),
    ],
)
def test_parse_volume(text: str, want: tuple[str, str, bool]) -> None:
    assert names.parse_volume(text) == want


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a:/b", "absolute"),
        ("/a:b", "absolute"),
        ("/a", "HOST:CONTAINER"),
        ("/a:/b:ro:x", "HOST:CONTAINER"),
        ("/a:/b:rx", "HOST:CONTAINER"),
        ("/a/../etc:/b", "'..'"),
        ("/a:/b/..", "'..'"),
        ("/a:/", "cannot be /"),
        ("/a:/proc", "/proc is the container's own"),
        ("/a:/sys/x", "/sys is the container's own"),
        ("/a:/dev/shm", "/dev is the container's own"),
        ("/a\0:/b", "HOST:CONTAINER"),
    ],
)
def test_parse_volume_refuses(text: str, words: str) -> None:
    with pytest.raises(BadInput, match=re.escape(words)):
        names.parse_volume(text)


def _st(mode: int, uid: int = 0, gid: int = 0) -> os.stat_result:
    return os.stat_result((mode, 0, 0, 1, uid, gid, 0, 0, 0, 0))


@pytest.mark.parametrize(
    ("mode", "uid", "gid", "only_root"),
    [
        (stat.S_IFREG | 0o600, 0, 0, True),
        (stat.S_IFREG | 0o640, 0, 0, True),  # group root
        (stat.S_IFREG | 0o000, 0, 0, True),
        (stat.S_IFREG | 0o640, 0, 42, False),  # group shadow reads /etc/shadow
        (stat.S_IFREG | 0o604, 0, 0, False),
        (stat.S_IFREG | 0o600, 1000, 0, False),  # its owner is someone else
        (stat.S_IFREG | 0o644, 0, 0, False),
        (stat.S_IFDIR | 0o700, 0, 0, True),
        (stat.S_IFDIR | 0o750, 0, 0, True),
        (stat.S_IFDIR | 0o711, 0, 0, False),  # others may enter it: its files are checked
        (stat.S_IFDIR | 0o710, 0, 7, False),
        (stat.S_IFDIR | 0o755, 0, 0, False),
    ],
)
def test_only_root(mode: int, uid: int, gid: int, only_root: bool) -> None:
    assert hostview._only_root(_st(mode, uid, gid)) is only_root


@pytest.mark.skipif(os.geteuid() != 0, reason="files owned by root need root")
def test_etc_masks_on_a_tree(tmp_path: Path) -> None:
    etc = tmp_path / "etc"

    def make(rel: str, mode: int, gid: int = 0, is_dir: bool = False) -> None:
        path = etc / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if is_dir:
            path.mkdir()
        else:
            path.write_text("x")
        os.chown(path, 0, gid)
        path.chmod(mode)

    make("passwd", 0o644)
    make("shadow", 0o640, gid=42)  # fixed list: masked although group 42 may read it
    make("gshadow-", 0o640, gid=42)
    make("sudoers.d", 0o755, is_dir=True)  # fixed list, whatever its mode
    make("sudoers.d/readme", 0o600)  # inside a masked directory: not masked on its own
    make("ssh/ssh_host_ed25519_key", 0o644)  # fixed pattern
    make("ssh/ssh_host_ed25519_key.pub", 0o644)
    make("ssl/private", 0o710, gid=7, is_dir=True)  # fixed list (Debian: group ssl-cert)
    make("private", 0o700, is_dir=True)
    make("ssl/certs/ca.pem", 0o644)
    make("app/token", 0o600)
    make("app/group-token", 0o640, gid=7)
    make("open/secret", 0o600)
    (etc / "open").chmod(0o711)
    (etc / "link").symlink_to("shadow")
    got = hostview.etc_masks(str(etc))
    want = [
        ("app/token", False),
        ("gshadow-", False),
        ("open/secret", False),
        ("private", True),
        ("shadow", False),
        ("ssh/ssh_host_ed25519_key", False),
        ("ssl/private", True),
        ("sudoers.d", True),
    ]
    assert got == [(f"{etc}/{p}", d) for p, d in want]


def test_follow_merged_usr_and_var_links() -> None:
    layout: list[tuple[str, str | None]] = [("usr", None), ("bin", "usr/bin"), ("lib", "/usr/lib")]
    assert hostview._follow("/bin/x", layout) == "/usr/bin/x"
    assert hostview._follow("/lib", layout) == "/usr/lib"
    assert hostview._follow("/var/run/frr", layout) == "/run/frr"
    assert hostview._follow("/var/lock", layout) == "/run/lock"
    assert hostview._follow("/binary", layout) == "/binary"


def test_place_volumes(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    (tmp_path / "sub").mkdir()
    d, f = str(tmp_path), str(tmp_path / "f")
    vols, skeleton = hostview.place_volumes(
        [f"{d}:/data", f"{d}:/data/sub:ro", f"{f}:/var/lib/app/f", f"{d}:/var/run/x", f"{d}:/etc"],
        "tools",
        None,
    )
    # Parents first; /var/run follows the view's symlink to the per-container /run.
    assert vols == [
        (d, "/data", False, ""),
        (d, "/etc", False, ""),
        (d, "/data/sub", True, ""),
        (d, "/run/x", False, "dir"),
        (f, "/var/lib/app/f", False, "file"),
    ]
    assert skeleton == [("/data", True)]
    _, skeleton = hostview.place_volumes([f"{f}:/srv/a/b"], "tools", None)
    assert skeleton == [("/srv", True), ("/srv/a", True), ("/srv/a/b", False)]


@pytest.mark.parametrize(
    ("volumes", "words"),
    [
        (["{d}:/x", "{d}:/x"], "given twice"),
        (["{d}:/x", "{d}:/x/missing"], "inside another volume"),
        (["{f}:/tmp"], "is a directory"),
        (["{f}:/root"], "is a directory"),
        (["{f}:/x", "{d}:/x/y"], "inside another volume"),
        (["{d}:/usr/netlens-none-such"], "read-only"),
        (["{d}:/etc/hostname"], "is a directory"),
        (["{d}/missing:/x"], "does not exist"),
    ],
)
def test_place_volumes_refuses(tmp_path: Path, volumes: list[str], words: str) -> None:
    (tmp_path / "f").write_text("x")
    texts = [v.format(d=tmp_path, f=tmp_path / "f") for v in volumes]
    if "/etc/hostname" in texts[0] and not os.path.isfile("/etc/hostname"):
        pytest.skip("no /etc/hostname here")
    with pytest.raises(BadInput, match=re.escape(words)):
        hostview.place_volumes(texts, "tools", None)


def test_full_view_and_rootfs_placement(tmp_path: Path) -> None:
    d = str(tmp_path)
    vols, skeleton = hostview.place_volumes([f"{d}:/tmp/x", f"{d}:/etc"], "full", None)
    assert vols == [(d, "/etc", False, ""), (d, "/tmp/x", False, "dir")] and skeleton == []
    with pytest.raises(BadInput, match="root"):
        hostview.place_volumes([f"{d}:/netlens-none-such"], "full", None)
    # In --rootfs DIR nothing is checked or made but on its tmpfs: the child reports a miss.
    vols, skeleton = hostview.place_volumes([f"{d}:/opt/x"], "tools", d)
    assert vols == [(d, "/opt/x", False, "")] and skeleton == []


def test_batch_skeletons_merge_or_clash() -> None:
    a = spawn.Plan("a", "a", ["true"], {}, 0, skeleton=[("/data", True)])
    b = spawn.Plan("b", "b", ["true"], {}, 0, skeleton=[("/data", True), ("/x", False)])
    assert hostview.merge_skeletons([a, b]) == [("/data", True), ("/x", False)]
    c = spawn.Plan("c", "c", ["true"], {}, 0, skeleton=[("/data", False)])
    with pytest.raises(BadInput, match="/data"):
        hostview.merge_skeletons([a, c])


def _c_strings(array: str) -> list[str]:
    """The string literals of one ``static const char *const NAME[]`` in spawn_helper.c."""
    body = re.search(rf"{array}\[\]\[?2?\]? = \{{(.*?)\}};", C_SOURCE.read_text(), re.S)
    assert body, array
    return re.findall(r'"([^"]*)"', body.group(1))


def test_c_spawner_lists_are_the_python_ones() -> None:
    assert _c_strings("proc_readonly") == list(hostview.PROC_READONLY)
    assert _c_strings("proc_mask_files") == list(hostview.PROC_MASK_FILES)
    assert _c_strings("mask_dirs") == list(hostview.MASK_DIRS)
    assert _c_strings("scratch") == [x for pair in hostview.SCRATCH for x in pair]


def test_early_error_reads_fds_past_fd_setsize() -> None:
    """A child's error report is found on any fd: a big batch holds more than 1024."""
    import resource
    from types import SimpleNamespace

    from netlens_runtime import create

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1300:
        pytest.skip("the fd limit is below 1300")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1300), hard))
    quiet_r, quiet_w = os.pipe()
    fail_r, fail_w = os.pipe()
    high = os.dup2(fail_r, 1200)
    try:
        os.write(fail_w, b"c2: setup: volume /x: No such file or directory")
        jobs = [
            SimpleNamespace(child=SimpleNamespace(err_r=quiet_r), spec=SimpleNamespace(name="c1")),
            SimpleNamespace(child=SimpleNamespace(err_r=high), spec=SimpleNamespace(name="c2")),
        ]
        assert create._early_error(jobs) == "c2: setup: volume /x: No such file or directory"  # type: ignore[arg-type]
        assert create._early_error(jobs[:1]) == ""  # type: ignore[arg-type]
    finally:
        for fd in (quiet_r, quiet_w, fail_r, fail_w, high):
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
