"""identify() on a recorded fake host: one fixture tree per engine, a fake /proc."""

from __future__ import annotations

from pathlib import Path

import pytest

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
