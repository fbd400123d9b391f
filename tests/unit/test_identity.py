"""identify() on a recorded fake host: one fixture tree per engine, a fake /proc."""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
import struct
import threading
from pathlib import Path

import pytest

from netlens.discovery.engines._bolt import BoltError, BoltFile
from netlens.discovery.engines.lxc import monitor_args as lxc_monitor_args
from netlens.discovery.engines.podman import PodmanContainer, PodmanIndex
from netlens.discovery.engines.podman import conmon_args as podman_conmon_args
from netlens.discovery.identity import identify
from netlens.discovery.nsfind import NsHandle
from netlens.model import Container, Engine

pytestmark = pytest.mark.unit

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "identity"
D1 = "3f2a" + "a" * 60
D2 = "7b1c" + "b" * 60
P1 = "c0de" + "c" * 60
K1 = "d00d" + "d" * 60
N1 = "e1e1" + "e" * 60


def _h(
    inode: int,
    *,
    pids: tuple[int, ...] = (),
    names: tuple[str, ...] = (),
    mounts: tuple[str, ...] = (),
    is_host: bool = False,
) -> NsHandle:
    path = mounts[0] if mounts else (f"/proc/{pids[0]}/ns/net" if pids else "/nowhere")
    return NsHandle(
        dev=4, inode=inode, path=path, is_host=is_host, names=names, mounts=mounts, pids=pids
    )


def _run(*handles: NsHandle, fix: Path = FIX) -> dict[int, Container]:
    out = identify(
        handles,
        proc_root=str(fix / "proc"),
        netlens_state_dir=str(fix / "netlens"),
        docker_root=str(fix / "docker"),
        podman_root=str(fix / "podman"),
        lxc_root=str(fix / "lxc"),
        containerd_root=str(fix / "containerd"),
    )
    by_ns = {int(c.netns.split(":")[1]): c for c in out if c.netns}
    assert len(by_ns) == len(out), "one container per namespace"
    return by_ns


def test_docker_by_cgroup_on_hybrid_layout() -> None:
    c = _run(_h(1, pids=(101, 100)))[1]
    assert (c.engine, c.name, c.id) == (Engine.DOCKER, "web-1", f"docker:{D1}")
    assert c.netns == "netns:1"
    assert c.pid == 100 and c.pids == (100, 101)
    assert c.image == "nginx:1.25"
    assert c.command == "nginx -g daemon off;"
    assert c.state == "running"
    assert c.labels == {"com.example.team": "net", "empty": ""}
    assert c.cgroup == f"/docker/{D1}"


def test_docker_by_sandbox_mount_without_processes() -> None:
    c = _run(_h(2, mounts=("/run/docker/netns/99aa88bb77cc",)))[2]
    assert (c.engine, c.name, c.engine_id, c.image) == (Engine.DOCKER, "db", D2, "postgres:16")
    assert c.pid is None and c.pids == ()


def test_namespace_made_inside_a_container_is_not_the_container() -> None:
    """pid 900 sits in web-1's cgroup but holds its own namespace."""
    c = _run(_h(3, pids=(900,)))[3]
    assert c.engine == Engine.PROCESS
    assert c.name == "sh[900]"
    assert c.command == "unshare -n sh"


def test_podman_lxc_kubernetes_nerdctl() -> None:
    got = _run(_h(4, pids=(200,)), _h(5, pids=(300,)), _h(6, pids=(400,)), _h(7, pids=(1100,)))
    assert (got[4].engine, got[4].name, got[4].engine_id) == (Engine.PODMAN, "web-pod", P1)
    assert got[4].image == "docker.io/library/httpd:2.4"
    assert (got[5].engine, got[5].name, got[5].id) == (Engine.LXC, "web1", "lxc:web1")
    assert got[5].image == "busybox"
    assert got[5].labels["lxc.net.0.veth.pair"] == "vethweb1"
    assert (got[6].engine, got[6].name) == (
        Engine.CONTAINERD,
        "kube-system/coredns-5d78c9869d-abcde",
    )
    assert got[6].engine_id == K1 and got[6].command == "/pause"
    assert (got[7].engine, got[7].name, got[7].pid) == (Engine.CONTAINERD, "cache", 1100)
    assert got[7].id == f"containerd:{N1}"


def test_mininet_netns_process_and_kernel_thread() -> None:
    got = _run(
        _h(8, pids=(500,)),
        _h(9, pids=(800,), names=("blue",), mounts=("/run/netns/blue",)),
        _h(10, pids=(600,)),
        _h(11, pids=(1000,)),
    )
    assert (got[8].engine, got[8].name, got[8].id) == (Engine.MININET, "h1", "mininet:h1")
    assert (got[9].engine, got[9].name, got[9].id) == (Engine.NETNS, "blue", "netns:blue")
    assert got[9].pid == 800 and got[9].command == "iperf3 -s"
    assert (got[10].engine, got[10].name, got[10].id) == (
        Engine.PROCESS,
        "sleep[600]",
        "process:600",
    )
    assert got[10].command == "sleep infinity"
    assert got[11].name == "kworker/u8:1[1000]" and got[11].command == "[kworker/u8:1]"


def test_netlens_runtime_by_inode_and_pid() -> None:
    got = _run(_h(4026532700, pids=(700,)), _h(4026532701), _h(12, pids=(700,)))
    web = got[4026532700]
    assert (web.engine, web.name, web.id, web.pid) == (
        Engine.NETLENS,
        "web",
        "netlens:nl-0001",
        700,
    )
    assert web.command == "/bin/busybox httpd -f" and web.labels == {"role": "web"}
    assert web.cgroup == "/netlens/web" and web.state == "running"
    idle = got[4026532701]
    assert (idle.engine, idle.name, idle.pid) == (Engine.NETLENS, "idle", None)
    assert got[12].name == "web"  # matched by pid when the inode is not recorded


def test_stale_netlens_record_does_not_claim_a_reused_inode() -> None:
    """web.json says inode 4026532700 / pid 700; here that inode holds pid 600 only."""
    got = _run(_h(4026532700, pids=(600,)))
    assert (got[4026532700].engine, got[4026532700].name) == (Engine.PROCESS, "sleep[600]")


def test_unowned_bind_mount_and_host() -> None:
    got = _run(_h(13, mounts=("/mnt/keep/ns",)), _h(14, pids=(1, 600), is_host=True))
    assert 13 not in got
    assert (got[14].engine, got[14].name, got[14].pid) == (Engine.HOST, "lab-host", 1)


def test_vanished_process_and_missing_engine_roots(tmp_path: Path) -> None:
    """Nothing installed, processes gone: a named namespace still gets its name."""
    got = _run(_h(15, pids=(4242,), names=("red",)), _h(16, pids=(4243,)), fix=tmp_path)
    assert (got[15].engine, got[15].name) == (Engine.NETNS, "red")
    assert got[16].name == "process[4243]"


def test_netlens_state_dir_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETLENS_STATE_DIR", str(FIX / "netlens"))
    out = identify([_h(4026532701)], proc_root=str(FIX / "proc"))
    assert [c.name for c in out] == ["idle"]


# --- Podman's database, conmon and LXC's monitor ------------------------------------

BOLT_GZ = FIX / "podman4" / "bolt_state.db.gz"
WEB_POD = "c851f2aebf1fd9b30845fe309602a85916c619c86de7d662b40ecad0abae6628"
WEB_POD_NETNS = "/run/netns/netns-f34e64c7-5722-8bd9-bdd8-f845f8781f0d"


def _proc(root: Path, pid: int, *, ppid: int = 1, cgroup: str = "0::/\n", argv: str = "") -> None:
    """A fake /proc/PID: stat (for the ppid), cgroup, cmdline (NUL-separated) and comm."""
    d = root / str(pid)
    d.mkdir(parents=True)
    comm = os.path.basename(argv.split("\0")[0]) or "sleep"
    (d / "stat").write_text(f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 0 0\n")
    (d / "cgroup").write_text(cgroup)
    (d / "cmdline").write_text(argv + "\0" if argv else "")
    (d / "comm").write_text(comm + "\n")


def _ident(tmp: Path, *handles: NsHandle, lxc_root: Path | None = None) -> dict[int, Container]:
    out = identify(
        handles,
        proc_root=str(tmp / "proc"),
        netlens_state_dir=str(tmp / "netlens"),
        docker_root=str(tmp / "docker"),
        podman_root=str(tmp / "podman"),
        lxc_root=str(lxc_root or tmp / "lxc"),
        containerd_root=str(tmp / "containerd"),
    )
    return {int(c.netns.split(":")[1]): c for c in out if c.netns}


def _bolt_root(tmp: Path) -> None:
    """Podman 4.3's real bolt_state.db (recorded here: web-pod running, done-job exited)."""
    (tmp / "podman" / "libpod").mkdir(parents=True)
    (tmp / "podman" / "libpod" / "bolt_state.db").write_bytes(gzip.decompress(BOLT_GZ.read_bytes()))


def test_bolt_reader_walks_podman4_database() -> None:
    db = BoltFile(gzip.decompress(BOLT_GZ.read_bytes()))
    assert {k: v for k, v, _b in db.bucket(b"name-registry")} == {
        b"web-pod": WEB_POD.encode(),
        b"done-job": b"df40b1e2258c09d9be00ab2bd361a351c126ea60ab544026754ed595f9eae47d",
    }
    assert db.tree(b"ctr", WEB_POD.encode())[b"netns"] == WEB_POD_NETNS.encode()
    assert list(db.bucket(b"no-such-bucket")) == []


def test_bolt_reader_survives_torn_and_foreign_files() -> None:
    data = gzip.decompress(BOLT_GZ.read_bytes())
    with pytest.raises(BoltError):
        BoltFile(b"SQLite format 3\0" + bytes(8192))
    torn = BoltFile(data[: 3 * 4096])  # meta pages intact, the tree cut off
    assert list(torn.bucket(b"ctr")) == []


def test_podman4_by_pid_netns_mount_and_labels(tmp_path: Path) -> None:
    _bolt_root(tmp_path)
    (tmp_path / "proc").mkdir()
    got = _ident(tmp_path, _h(1, pids=(9745,)))[1]  # its /proc is unreadable: pid alone
    assert got.engine == Engine.PROCESS  # a recorded pid alone may be reused after a reboot
    _proc(tmp_path / "proc", 9745, ppid=300, argv="/bin/sleep\x00600")
    _proc(tmp_path / "proc", 300, argv="/usr/sbin/sshd")
    got = _ident(tmp_path, _h(1, pids=(9745,)))[1]  # not a conmon's child: a stale pid
    assert got.engine == Engine.PROCESS
    _proc(tmp_path / "proc", 9735, argv="/usr/bin/conmon\x00--api-version\x001")
    (tmp_path / "proc" / "9745" / "stat").write_text("9745 (sleep) S 9735 1 1 0 -1 0\n")
    got = _ident(tmp_path, _h(1, pids=(9745,)))[1]  # its parent is the recorded conmon
    assert (got.engine, got.name, got.id) == (Engine.PODMAN, "web-pod", f"podman:{WEB_POD}")
    assert got.pid == 9745 and got.state == "running" and got.image == "localhost/busybox:rec"
    assert got.labels == {"team": "net", "empty": ""} and got.command == "/bin/sleep 600"

    bare = _h(2, names=(os.path.basename(WEB_POD_NETNS),), mounts=(WEB_POD_NETNS,))
    got = _ident(tmp_path, bare)[2]
    assert (got.engine, got.name, got.pid, got.state) == (Engine.PODMAN, "web-pod", None, "running")


def test_podman_conmon_parent_names_a_container_the_database_lacks(tmp_path: Path) -> None:
    """A libpod cgroup whose id the database does not list (written after we read it)."""
    _bolt_root(tmp_path)
    cid = "ab" * 32
    conmon = "\0".join(
        ("/usr/bin/conmon", "--api-version", "1", "-c", cid, "-u", cid, "-n", "side")
    )
    _proc(tmp_path / "proc", 209, argv=conmon)
    _proc(
        tmp_path / "proc",
        210,
        ppid=209,
        cgroup=f"0::/libpod_parent/libpod-{cid}\n",
        argv="/bin/sleep\x00600",
    )
    got = _ident(tmp_path, _h(3, pids=(210,)))[3]
    assert (got.engine, got.name, got.engine_id, got.pid) == (Engine.PODMAN, "side", cid, 210)
    assert got.command == "/bin/sleep 600" and got.labels == {}


def test_podman5_sqlite_database(tmp_path: Path) -> None:
    (tmp_path / "podman").mkdir()
    db = sqlite3.connect(tmp_path / "podman" / "db.sql")
    db.executescript(
        "CREATE TABLE ContainerConfig(ID TEXT PRIMARY KEY, Name TEXT, PodID TEXT, JSON TEXT);"
        "CREATE TABLE ContainerState(ID TEXT PRIMARY KEY, State INTEGER, ExitCode INTEGER,"
        " JSON TEXT);"
    )
    rows = [
        ("a1" * 32, "api", 3, 4321, "/run/netns/netns-1111"),
        ("b2" * 32, "old", 4, 4322, ""),  # stopped: its last pid is not its any more
    ]
    for cid, name, state, pid, netns in rows:
        config = {"name": name, "labels": {"tier": name}, "rootfsImageName": "quay.io/x:1"}
        db.execute(
            "INSERT INTO ContainerConfig VALUES (?, ?, NULL, ?)", (cid, name, json.dumps(config))
        )
        st = {"state": state, "pid": pid, "netns": netns}
        db.execute("INSERT INTO ContainerState VALUES (?, ?, 0, ?)", (cid, state, json.dumps(st)))
    db.commit()
    db.close()
    _proc(tmp_path / "proc", 4322, argv="sleep\0infinity")
    _proc(tmp_path / "proc", 4320, argv="/usr/bin/conmon\0-c\0" + "a1" * 32 + "\0-n\0api")
    _proc(tmp_path / "proc", 4321, ppid=4320, argv="sleep\0infinity")

    got = _ident(
        tmp_path, _h(1, pids=(4321,)), _h(2, mounts=("/run/netns/netns-1111",)), _h(3, pids=(4322,))
    )
    assert (got[1].engine, got[1].name, got[1].labels) == (Engine.PODMAN, "api", {"tier": "api"})
    assert (got[2].name, got[2].pid, got[2].image) == ("api", None, "quay.io/x:1")
    assert (got[3].engine, got[3].name) == (Engine.PROCESS, "sleep[4322]")


def test_unreadable_podman_database_falls_back_to_storage(tmp_path: Path) -> None:
    root = tmp_path / "podman"
    (root / "libpod").mkdir(parents=True)
    (root / "libpod" / "bolt_state.db").write_bytes(b"\0" * 8192)
    (root / "overlay-containers").mkdir()
    src = FIX / "podman" / "overlay-containers" / "containers.json"
    (root / "overlay-containers" / "containers.json").write_text(src.read_text())
    (tmp_path / "proc").mkdir()
    got = _ident(tmp_path, _h(1, pids=(200,)))  # pid 200 unknown here: no name
    assert got[1].engine == Engine.PROCESS
    _proc(tmp_path / "proc", 200, cgroup=f"0::/machine.slice/libpod-{P1}.scope\n")
    got = _ident(tmp_path, _h(1, pids=(200,)))
    assert (got[1].engine, got[1].name, got[1].image) == (
        Engine.PODMAN,
        "web-pod",
        "docker.io/library/httpd:2.4",
    )


def _podman5_db(
    path: Path, rows: list[tuple[str, str, int, int, str]], *, wal: bool = False
) -> None:
    """A db.sql with Podman 5's two tables; ``wal``: in WAL mode, as Podman keeps it."""
    db = sqlite3.connect(path)
    if wal:
        assert db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    db.executescript(
        "CREATE TABLE ContainerConfig(ID TEXT PRIMARY KEY, Name TEXT, PodID TEXT, JSON TEXT);"
        "CREATE TABLE ContainerState(ID TEXT PRIMARY KEY, State INTEGER, ExitCode INTEGER,"
        " JSON TEXT);"
    )
    for cid, name, state, pid, netns in rows:
        config = {"name": name, "rootfsImageName": "quay.io/x:1"}
        db.execute(
            "INSERT INTO ContainerConfig VALUES (?, ?, NULL, ?)", (cid, name, json.dumps(config))
        )
        st = {"state": state, "pid": pid, "netns": netns}
        db.execute("INSERT INTO ContainerState VALUES (?, ?, 0, ?)", (cid, state, json.dumps(st)))
    db.commit()
    db.close()


def test_podman5_wal_database_is_read_without_writing_beside_it(tmp_path: Path) -> None:
    """Podman 5 keeps db.sql in WAL mode: reading it must not create -wal / -shm."""
    root = tmp_path / "podman"
    root.mkdir()
    _podman5_db(root / "db.sql", [("a1" * 32, "api", 3, 4321, "/run/netns/netns-1111")], wal=True)
    before = sorted(os.listdir(root))
    assert before == ["db.sql"]  # closed cleanly: no -wal/-shm left by the writer
    got = _ident(tmp_path, _h(1, mounts=("/run/netns/netns-1111",)))
    assert (got[1].engine, got[1].name) == (Engine.PODMAN, "api")
    assert sorted(os.listdir(root)) == before


def test_podman_pid_without_live_state_or_evidence_is_not_a_container(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pidfile-only record (state unknown) never claims a pid, and without any
    Podman evidence on the namespace the database is not even read."""
    root = tmp_path / "podman"
    (root / "overlay-containers" / P1 / "userdata").mkdir(parents=True)
    src = FIX / "podman" / "overlay-containers" / "containers.json"
    (root / "overlay-containers" / "containers.json").write_text(src.read_text())
    (root / "overlay-containers" / P1 / "userdata" / "pidfile").write_text("777\n")
    index = PodmanIndex(str(root))
    record = index.get(P1)
    assert record is not None and record.pid == 777
    assert index.by_pid([777]) is None  # state None: maybe a stale pid after a reboot

    loads: list[str] = []
    real = PodmanIndex._read_db

    def counting(self: PodmanIndex) -> list[PodmanContainer]:
        loads.append(self.root)
        return real(self)

    monkeypatch.setattr(PodmanIndex, "_read_db", counting)
    _proc(tmp_path / "proc", 777, ppid=1, argv="/bin/sleep\x00600")
    _proc(tmp_path / "proc", 1, argv="/sbin/init")
    got = _ident(tmp_path, _h(1, pids=(777,)), _h(2, mounts=("/run/netns/plain",)))
    assert got[1].engine == Engine.PROCESS and 2 not in got
    assert loads == []  # no libpod cgroup, netns-<uuid> mount or conmon parent: not read
    got = _ident(tmp_path, _h(3, pids=(777,), mounts=("/run/netns/netns-9999",)))
    assert got[3].engine == Engine.PROCESS and loads == [str(root)]


def _bolt_meta(page_size: int, pgid: int, root: int, txid: int) -> bytes:
    """One bbolt meta page (header, body, FNV-64a checksum), padded to a page."""
    body = struct.pack("<IIII QQ QQQ", 0xED0CDAED, 2, page_size, 0, root, 0, 0, 4, txid)
    ck = 0xCBF29CE484222325
    for byte in body:
        ck = ((ck ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    page = struct.pack("<QHHI", pgid, 0x04, 0, 0) + body + struct.pack("<Q", ck)
    return page.ljust(page_size, b"\0")


@pytest.mark.timeout(20)
def test_bolt_branch_page_pointing_at_itself_ends_with_an_error(tmp_path: Path) -> None:
    """A torn file whose root branch lists itself twice would walk 2**32 pages:
    the walk stops at the first revisited page and raises, and the Podman index
    falls back to containers/storage."""
    psize = 4096
    branch = struct.pack("<QHHI", 2, 0x01, 2, 0) + struct.pack("<IIQ", 0, 0, 2) * 2
    data = _bolt_meta(psize, 0, 2, 5) + _bolt_meta(psize, 1, 2, 6) + branch.ljust(psize, b"\0")
    with pytest.raises(BoltError):
        list(BoltFile(data).bucket(b"ctr"))

    root = tmp_path / "podman"
    (root / "libpod").mkdir(parents=True)
    (root / "libpod" / "bolt_state.db").write_bytes(data)
    (root / "overlay-containers").mkdir()
    src = FIX / "podman" / "overlay-containers" / "containers.json"
    (root / "overlay-containers" / "containers.json").write_text(src.read_text())
    found = PodmanIndex(str(root)).get(P1)
    assert found is not None and found.name == "web-pod"


def test_bolt_half_written_meta_page_is_not_chosen() -> None:
    """The meta page with the higher txid but a wrong checksum (written halfway)
    loses to the older, intact one."""
    data = bytearray(gzip.decompress(BOLT_GZ.read_bytes()))
    root_at = 16 + 16  # a meta page's root pgid, after its page header and 4 u32s
    (older_root,) = struct.unpack_from("<Q", data, root_at)  # meta 0: txid 16
    (newer_root,) = struct.unpack_from("<Q", data, 4096 + root_at)  # meta 1: txid 17
    assert BoltFile(bytes(data)).root == newer_root != older_root
    data[4096 + root_at : 4096 + root_at + 8] = struct.pack("<Q", 999)  # checksum now wrong
    assert BoltFile(bytes(data)).root == older_root


@pytest.mark.timeout(20)
def test_fifo_as_lxc_config_does_not_hang(tmp_path: Path) -> None:
    """An lxcpath from a monitor's command line whose config is a FIFO: skipped."""
    lxcpath = tmp_path / "elsewhere"
    (lxcpath / "side").mkdir(parents=True)
    os.mkfifo(lxcpath / "side" / "config")
    proc = tmp_path / "proc"
    _proc(proc, 309, argv=f"[lxc monitor] {lxcpath} side")
    _proc(proc, 310, ppid=309, cgroup="0::/lxc.payload.side\n", argv="/sbin/init")
    out: list[dict[int, Container]] = []
    worker = threading.Thread(
        target=lambda: out.append(_ident(tmp_path, _h(1, pids=(310,)), lxc_root=tmp_path / "lxc")),
        daemon=True,
    )
    worker.start()
    worker.join(10)
    if worker.is_alive():
        # Unblock the reader (open a writer and close it) so no thread is left behind.
        os.close(os.open(lxcpath / "side" / "config", os.O_WRONLY | os.O_NONBLOCK))
        worker.join(5)
        pytest.fail("reading a FIFO lxc config blocked")
    got = out[0][1]
    assert (got.engine, got.name, got.labels, got.image) == (Engine.LXC, "side", {}, None)


def test_lxc_monitor_gives_private_lxcpath(tmp_path: Path) -> None:
    lxcpath = tmp_path / "elsewhere"
    (lxcpath / "side").mkdir(parents=True)
    (lxcpath / "side" / "config").write_text(
        'lxc.uts.name = "side"\nlxc.net.0.type = veth\nlxc.net.0.ipv4.address = 198.18.0.2/24\n'
    )
    default = tmp_path / "lxc"
    (default / "other").mkdir(parents=True)
    proc = tmp_path / "proc"
    _proc(proc, 309, argv=f"[lxc monitor] {lxcpath} side")
    _proc(proc, 310, ppid=309, cgroup="0::/lxc.payload.side\n", argv="/sbin/init")

    got = _ident(tmp_path, _h(1, pids=(310,)), lxc_root=default)[1]

    assert (got.engine, got.name, got.id, got.pid) == (Engine.LXC, "side", "lxc:side", 310)
    assert got.labels["lxc.uts.name"] == "side"
    assert got.labels["lxc.net.0.ipv4.address"] == "198.18.0.2/24"


def test_engine_command_line_parsers() -> None:
    assert podman_conmon_args("/usr/bin/conmon\0-c\0abc\0-n\0web\0") == ("abc", "web")
    assert podman_conmon_args("/usr/bin/conmon\0--cid\0abcdef0123456789") == (
        "abcdef0123456789",
        "abcdef012345",
    )
    assert podman_conmon_args("/usr/bin/sleep\0-c\0x") is None
    assert lxc_monitor_args("[lxc monitor] /var/lib/lxc web1") == ("/var/lib/lxc", "web1")
    assert lxc_monitor_args("lxc-start\0-n\0web1") is None
