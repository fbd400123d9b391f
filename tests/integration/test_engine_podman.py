"""A real Podman container, named by netlens (Debian's podman 4.3 + netavark).

Podman has no daemon: ``podman run`` leaves conmon watching runc's container
and writes everything into its bbolt database. No registry here, so the image
is ``podman import`` of a busybox-static rootfs. The container runs on a
network of our own (198.18.X.0/24, so the host's podman0/10.88 is never
touched; podman 4.3 cannot name its bridge, it picks ``podmanN``) and we check
what netlens says about it: name, engine, labels, the
``/run/netns/netns-<uuid>`` handle, and through the full ``discover()`` the
host-side veth paired to its eth0 and its address.

Our own containers.conf (``CONTAINERS_CONF``) picks runc (crun refuses this
hybrid cgroup layout) and low ulimits (the default nproc limit is above ours).
Teardown removes the container (``-t 0``: busybox sleep as pid 1 ignores
SIGTERM), image, network, netavark's iptables chains, cgroups, sysctls and the
storage directories, each only if this test made it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import RUN_TAG, sh
from engine_host import HostState, busybox_rootfs_tar, require, wired_container

from netlens.discovery.identity import identify
from netlens.discovery.nsfind import find_namespaces
from netlens.model import Engine

pytestmark = [pytest.mark.engine, pytest.mark.integration]

PODMAN = "/usr/bin/podman"
BUSYBOX = "/bin/busybox"
NAME = f"nd{RUN_TAG}pc"
NETWORK = f"nd{RUN_TAG}pn"
IMAGE = f"localhost/nd{RUN_TAG}pi:latest"
SUBNET_OCTET = 100 + (int(RUN_TAG, 16) + 37) % 100  # 198.18.X.0/24, apart from docker's
STATE_PATHS = (
    "/var/lib/containers",
    "/run/containers",
    "/run/libpod",
    "/etc/containers/networks",
    "/etc/cni/net.d/cni.lock",
)
CONF = """[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "netavark"
"""


def _podman(args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh(f"{PODMAN} {args}", check=check)


@dataclass(frozen=True)
class Running:
    id: str
    bridge: str
    pid: int
    ip: str
    netns_path: str
    inode: int


@pytest.fixture(scope="module")
def podman_ctr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One running container; the host is restored afterwards, pass or fail."""
    require(
        "rootful podman",
        (
            (PODMAN, "podman"),
            ("/usr/lib/podman/netavark", "netavark"),
            ("/usr/sbin/runc", "runc"),
            (BUSYBOX, "busybox-static"),
        ),
    )
    workdir = tmp_path_factory.mktemp("nd-podman")
    conf = workdir / "containers.conf"
    conf.write_text(CONF)
    before = HostState.capture(STATE_PATHS, cgroup_names=("libpod_parent",))
    old_conf = os.environ.get("CONTAINERS_CONF")
    os.environ["CONTAINERS_CONF"] = str(conf)
    conmon_pid: int | None = None
    bridge = ""
    try:
        rootfs = busybox_rootfs_tar(workdir / "rootfs.tar", BUSYBOX, ("sh", "sleep"))
        try:
            _podman(f"import {rootfs} {IMAGE}")
            _podman(f"network create --disable-dns --subnet 198.18.{SUBNET_OCTET}.0/24 {NETWORK}")
            net_info = json.loads(_podman(f"network inspect {NETWORK}").stdout)[0]
            bridge = str(net_info["network_interface"])
            _podman(
                f"run -d --name {NAME} --network {NETWORK} --label netlens.test={RUN_TAG} "
                f"{IMAGE} /bin/sleep 600"
            )
        except RuntimeError as err:  # the engine's problem on this machine, not netlens's
            pytest.skip(f"podman could not run a container here: {err}")
        info = json.loads(_podman(f"inspect {NAME}").stdout)[0]
        conmon_pid = int(info["State"]["ConmonPid"]) or None
        pid = int(info["State"]["Pid"])
        net = info["NetworkSettings"]["Networks"][NETWORK]
        yield Running(
            id=info["Id"],
            bridge=bridge,
            pid=pid,
            ip=net["IPAddress"],
            netns_path=info["NetworkSettings"]["SandboxKey"],
            inode=os.stat(f"/proc/{pid}/ns/net").st_ino,
        )
    finally:
        _podman(f"rm -f -t 0 {NAME}", check=False)
        _podman(f"rmi -f {IMAGE}", check=False)
        _podman(f"network rm -f {NETWORK}", check=False)
        if conmon_pid is not None:  # conmon exits with its container; make sure
            with contextlib.suppress(ProcessLookupError):
                if "conmon" in Path(f"/proc/{conmon_pid}/comm").read_text(errors="replace"):
                    os.kill(conmon_pid, signal.SIGKILL)
        if old_conf is None:
            os.environ.pop("CONTAINERS_CONF", None)
        else:
            os.environ["CONTAINERS_CONF"] = old_conf
        if bridge and bridge not in before.links:
            sh(f"ip link del {bridge}", check=False)
        marks = ("NETAVARK", f"198.18.{SUBNET_OCTET}.") + ((bridge,) if bridge else ())
        before.restore(marks=marks, chain_prefix="NETAVARK")


def test_podman_container_is_named_by_netlens(podman_ctr: Running) -> None:
    (h,) = [x for x in find_namespaces() if x.inode == podman_ctr.inode]
    assert podman_ctr.pid in h.pids
    # Podman 4 names its namespaces like `ip netns` does: /run/netns/netns-<uuid>.
    assert podman_ctr.netns_path in h.mounts
    assert os.path.basename(podman_ctr.netns_path) in h.names

    got = {c.netns: c for c in identify([h])}[h.id]

    assert (got.engine, got.name, got.id) == (Engine.PODMAN, NAME, f"podman:{podman_ctr.id}")
    assert got.pid == podman_ctr.pid and got.image == IMAGE
    assert got.labels == {"netlens.test": RUN_TAG}
    assert got.command == "/bin/sleep 600" and got.state == "running"
    assert got.cgroup is not None and podman_ctr.id in got.cgroup


def test_podman_found_by_netns_mount_alone(podman_ctr: Running) -> None:
    """With no process to read (a container being torn down), the database's
    namespace path still names it."""
    (h,) = [x for x in find_namespaces() if x.inode == podman_ctr.inode]
    bare = type(h)(dev=h.dev, inode=h.inode, path=h.path, names=h.names, mounts=h.mounts)

    (got,) = identify([bare])

    assert (got.engine, got.name, got.engine_id) == (Engine.PODMAN, NAME, podman_ctr.id)
    assert got.pid is None and got.labels == {"netlens.test": RUN_TAG}


def test_discover_shows_host_veth_and_ip(podman_ctr: Running) -> None:
    from netlens.discovery import discover

    snap = discover(with_nat=False)
    ctr, _eth, _host_end = wired_container(
        snap, f"podman:{podman_ctr.id}", podman_ctr.inode, podman_ctr.ip, podman_ctr.bridge
    )
    assert ctr.name == NAME
