"""A real Docker container, named by netlens (Debian docker.io, dockerd started by hand).

The machine has no systemd and no registry: we start ``dockerd`` ourselves when
none runs, build an image with ``docker import`` from a busybox-static rootfs,
run one container with a published port on 127.0.0.1 (no packet is sent), and
check what netlens says about it: name, engine, namespace, Docker's NAT rules
and, through the full ``discover()``, the host-side veth and the container IP.

dockerd is started with our own bridge (``--bridge``, so no docker0 appears)
and ``--ip-forward=false`` (so it never flips the host's FORWARD policy to DROP
under other engineers' tests). Teardown puts the host back as found: container,
image, daemon and its containerd, the bridge, Docker's iptables chains and
rules (only those naming DOCKER or our bridge), nft tables it created if they
are left empty, its cgroups and the state directories it created (engine_host's
HostState, shared with the Podman and LXC tests).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import RUN_TAG, sh
from engine_host import HostState, busybox_rootfs_tar, require, wired_container

from netlens.discovery.identity import identify
from netlens.discovery.nat_tools import read_nat
from netlens.discovery.nsfind import find_namespaces
from netlens.model import Engine

pytestmark = [pytest.mark.engine, pytest.mark.integration]

DOCKER = "/usr/bin/docker"  # Debian's client; another `docker` may come first on PATH
DOCKERD = "/usr/sbin/dockerd"
BUSYBOX = "/bin/busybox"  # busybox-static: runs in an empty rootfs
BRIDGE = f"ni{RUN_TAG}dk"
NAME = f"ni{RUN_TAG}c1"
IMAGE = f"ni{RUN_TAG}img:latest"
SUBNET_OCTET = 100 + int(RUN_TAG, 16) % 100  # 198.18.X.0/24: benchmark range, never routed
NETWORK = f"ni{RUN_TAG}net"  # a user network: its bridge is br-<12 hex of its id>
NETWORK_OCTET = 100 + (int(RUN_TAG, 16) + 50) % 100  # apart from ours and the Podman test's
HOST_PORT = 20000 + int(RUN_TAG, 16) % 20000
STATE_PATHS = (
    "/var/lib/docker",
    "/run/docker",
    "/run/containerd",
    "/run/docker.sock",
    "/run/docker.pid",
    "/etc/docker/key.json",
)


def _docker(args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh(f"{DOCKER} {args}", check=check)


def _daemon_up() -> bool:
    return _docker("info --format '{{.ServerVersion}}'", check=False).returncode == 0


class DockerEngine:
    """dockerd for the test: reused when one already runs, else started and later
    stopped, with everything it left behind removed."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.before = HostState.capture(STATE_PATHS, cgroup_names=("docker",))
        self.proc: subprocess.Popen[bytes] | None = None
        self.containerd_pid: int | None = None
        self.log = workdir / "dockerd.log"
        self.bridge_made = False
        self.start_s = 0.0

    def start(self) -> None:
        if _daemon_up():
            return  # someone's dockerd: use it, never stop it
        t0 = time.monotonic()
        sh(f"ip link add {BRIDGE} type bridge")
        self.bridge_made = True
        sh(f"ip addr add 198.18.{SUBNET_OCTET}.1/24 dev {BRIDGE} && ip link set {BRIDGE} up")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [DOCKERD, f"--bridge={BRIDGE}", "--ip-forward=false", "--log-level=warn"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if _daemon_up():
                self.start_s = time.monotonic() - t0
                with contextlib.suppress(OSError, ValueError):
                    pidfile = Path("/run/docker/containerd/containerd.pid")
                    self.containerd_pid = int(pidfile.read_text().strip())
                return
            time.sleep(0.2)
        tail = self.log.read_text(errors="replace")[-600:] if self.log.exists() else ""
        raise RuntimeError(f"dockerd did not come up: {tail.strip()}")

    def close(self) -> None:
        """Undo everything, each step on its own so one failure does not stop the rest."""
        _docker(f"rm -f {NAME}", check=False)
        _docker(f"rmi -f {IMAGE}", check=False)
        _docker(f"network rm {NETWORK}", check=False)
        if self.proc is None:
            return  # not our daemon: its rules, bridge and state are not ours to touch
        self._stop(self.proc.pid, self.proc)
        if self.containerd_pid:
            self._stop(self.containerd_pid, None)
        if self.bridge_made:
            sh(f"ip link del {BRIDGE}", check=False)
        if "docker0" not in self.before.links and os.path.exists("/sys/class/net/docker0"):
            sh("ip link del docker0", check=False)
        marks = ("DOCKER", BRIDGE, "docker0", f"198.18.{SUBNET_OCTET}.")
        self.before.restore(marks=marks, chain_prefix="DOCKER")

    @staticmethod
    def _stop(pid: int, proc: subprocess.Popen[bytes] | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                return
            if proc is None and not os.path.exists(f"/proc/{pid}"):
                return
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if proc is not None:
            proc.wait(timeout=10)


@dataclass(frozen=True)
class Running:
    id: str
    pid: int
    ip: str
    sandbox: str
    inode: int
    network_id: str


@pytest.fixture(scope="module")
def docker_ctr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One running container; the host is restored afterwards, pass or fail."""
    require(
        "starts dockerd",
        ((DOCKERD, "docker.io"), (DOCKER, "docker.io"), (BUSYBOX, "busybox-static")),
    )
    workdir = tmp_path_factory.mktemp("ni-docker")
    engine = DockerEngine(workdir)
    try:
        try:
            engine.start()
        except RuntimeError as err:
            pytest.skip(f"could not start dockerd here: {err}")
        rootfs = busybox_rootfs_tar(workdir / "rootfs.tar", BUSYBOX, ("sh", "sleep"))
        try:
            _docker(f"import {rootfs} {IMAGE}")
            _docker(
                f"run -d --name {NAME} --label netlens.test={RUN_TAG} "
                f"-p 127.0.0.1:{HOST_PORT}:80 {IMAGE} /bin/sleep 600"
            )
            _docker(f"network create --subnet 198.18.{NETWORK_OCTET}.0/24 {NETWORK}")
        except RuntimeError as err:  # the engine's problem on this machine, not netlens's
            pytest.skip(f"dockerd runs but could not run a container here: {err}")
        network_id = _docker(f"network inspect -f '{{{{.Id}}}}' {NETWORK}").stdout.strip()
        info = json.loads(_docker(f"inspect {NAME}").stdout)[0]
        pid = int(info["State"]["Pid"])
        nets = info["NetworkSettings"]["Networks"]
        ip = next(iter(nets.values()))["IPAddress"]
        yield Running(
            id=info["Id"],
            pid=pid,
            ip=ip,
            sandbox=info["NetworkSettings"]["SandboxKey"],
            inode=os.stat(f"/proc/{pid}/ns/net").st_ino,
            network_id=network_id,
        )
    finally:
        engine.close()


def test_docker_container_is_named_by_netlens(docker_ctr: Running) -> None:
    handles = find_namespaces()
    (h,) = [x for x in handles if x.inode == docker_ctr.inode]
    assert docker_ctr.pid in h.pids

    got = {c.netns: c for c in identify(handles)}[h.id]

    assert (got.engine, got.name, got.id) == (Engine.DOCKER, NAME, f"docker:{docker_ctr.id}")
    assert got.pid == docker_ctr.pid and got.image == IMAGE
    assert got.labels.get("netlens.test") == RUN_TAG
    assert got.command == "/bin/sleep 600" and got.state == "running"


def test_docker_found_by_sandbox_mount_alone(docker_ctr: Running) -> None:
    """With no process to read (a container being torn down), the bind mount names it."""
    (h,) = [x for x in find_namespaces() if x.inode == docker_ctr.inode]
    sandbox = os.path.realpath(docker_ctr.sandbox)
    assert sandbox in h.mounts
    bare = type(h)(dev=h.dev, inode=h.inode, path=sandbox, mounts=h.mounts)
    (got,) = identify([bare])
    assert (got.engine, got.name) == (Engine.DOCKER, NAME)


def test_docker_published_port_in_nat_rules(docker_ctr: Running) -> None:
    host = next(h for h in find_namespaces() if h.is_host)
    rules = read_nat([host]).get(host.inode, ())
    dnat = [r for r in rules if r.action == "dnat" and r.dport == str(HOST_PORT)]
    assert [(r.to_addr, r.to_port, r.proto, r.dst) for r in dnat] == [
        (docker_ctr.ip, "80", "tcp", "127.0.0.1/32")
    ]
    assert dnat[0].chain == "DOCKER" and "prerouting" in (dnat[0].hook or "")


def test_discover_shows_host_veth_and_ip(docker_ctr: Running) -> None:
    from netlens.discovery import discover

    snap = discover()
    expected = BRIDGE if os.path.exists(f"/sys/class/net/{BRIDGE}") else "docker0"
    ctr, _eth, _host_end = wired_container(
        snap, f"docker:{docker_ctr.id}", docker_ctr.inode, docker_ctr.ip, expected
    )
    assert ctr.name == NAME


def test_discover_names_docker_bridges_by_their_network(docker_ctr: Running) -> None:
    """The default network's bridge is ``bridge``, a user network's ``br-<id>`` its name,
    read from dockerd's network store (``NETLENS_RECORD_DIR``: keep a copy of it)."""
    from netlens.discovery import discover
    from netlens.discovery.engines.docker import DEFAULT_ROOT, KV_PATH

    record = os.environ.get("NETLENS_RECORD_DIR")
    if record:
        import shutil

        shutil.copy(os.path.join(DEFAULT_ROOT, *KV_PATH), os.path.join(record, "local-kv.db"))
    snap = discover(with_nat=False)
    host = snap.host
    assert host is not None
    default = BRIDGE if os.path.exists(f"/sys/class/net/{BRIDGE}") else "docker0"
    user = f"br-{docker_ctr.network_id[:12]}"
    named = {i.name: i.network for i in host.interfaces if i.kind == "bridge"}
    assert named.get(default) == "bridge", named
    assert named.get(user) == NETWORK, named
    itf = host.by_name(user)
    assert itf is not None and itf.display_name == f"{NETWORK} ({user})"
