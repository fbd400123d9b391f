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
are left empty, and the state directories it created.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import RUN_TAG, is_root, sh

from netlens.discovery.identity import identify
from netlens.discovery.nat import read_nat
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
HOST_PORT = 20000 + int(RUN_TAG, 16) % 20000
STATE_PATHS = (
    "/var/lib/docker",
    "/run/docker",
    "/run/containerd",
    "/run/docker.sock",
    "/run/docker.pid",
    "/etc/docker/key.json",
)
SYSCTLS = (
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sys/net/bridge/bridge-nf-call-iptables",
    "/proc/sys/net/bridge/bridge-nf-call-ip6tables",
)


def _docker(args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh(f"{DOCKER} {args}", check=check)


def _daemon_up() -> bool:
    return _docker("info --format '{{.ServerVersion}}'", check=False).returncode == 0


def _nft_tables() -> set[tuple[str, str]]:
    out = sh("nft -j list tables", check=False).stdout
    try:
        items = json.loads(out).get("nftables", []) if out else []
    except ValueError:
        return set()
    return {(t["table"]["family"], t["table"]["name"]) for t in items if "table" in t}


def _ipt_lines(table: str) -> set[str]:
    res = sh(f"iptables-nft-save -t {table}", check=False)
    return {ln for ln in res.stdout.splitlines() if ln.startswith(("-A ", ":"))}


def _sysctl(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


@dataclass
class HostState:
    """What the host looked like before the engine started."""

    paths: dict[str, bool] = field(default_factory=dict)
    tables: set[tuple[str, str]] = field(default_factory=set)
    ipt: dict[str, set[str]] = field(default_factory=dict)
    sysctls: dict[str, str | None] = field(default_factory=dict)
    docker0: bool = False

    @classmethod
    def capture(cls) -> HostState:
        return cls(
            paths={p: os.path.lexists(p) for p in STATE_PATHS},
            tables=_nft_tables(),
            ipt={t: _ipt_lines(t) for t in ("nat", "filter")},
            sysctls={p: _sysctl(p) for p in SYSCTLS},
            docker0=os.path.exists("/sys/class/net/docker0"),
        )


class DockerEngine:
    """dockerd for the test: reused when one already runs, else started and later
    stopped, with everything it left behind removed."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.before = HostState.capture()
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
        if self.proc is None:
            return  # not our daemon: its rules, bridge and state are not ours to touch
        self._stop(self.proc.pid, self.proc)
        if self.containerd_pid:
            self._stop(self.containerd_pid, None)
        self._clean_iptables()
        self._clean_nft_tables()
        if self.bridge_made:
            sh(f"ip link del {BRIDGE}", check=False)
        if not self.before.docker0 and os.path.exists("/sys/class/net/docker0"):
            sh("ip link del docker0", check=False)
        self._clean_paths()
        for path, value in self.before.sysctls.items():
            if value is not None and _sysctl(path) != value:
                with contextlib.suppress(OSError):
                    Path(path).write_text(value)

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

    def _clean_iptables(self) -> None:
        """Delete rules and chains Docker added (they name DOCKER or our bridge)."""
        for table, before in self.before.ipt.items():
            added = _ipt_lines(table) - before
            marks = ("DOCKER", BRIDGE, "docker0", f"198.18.{SUBNET_OCTET}.")
            mine = [ln for ln in added if any(m in ln for m in marks)]
            for line in sorted(ln for ln in mine if ln.startswith("-A ")):
                args = shlex.split(line)[1:]
                sh(f"iptables-nft -t {table} -D {shlex.join(args)}", check=False)
            for line in mine:
                if line.startswith(":DOCKER"):
                    chain = line[1:].split()[0]
                    sh(f"iptables-nft -t {table} -F {chain}", check=False)
            for line in mine:
                if line.startswith(":DOCKER"):
                    chain = line[1:].split()[0]
                    sh(f"iptables-nft -t {table} -X {chain}", check=False)

    def _clean_nft_tables(self) -> None:
        """Tables iptables-nft created for Docker go when nothing is left in them."""
        for family, name in sorted(_nft_tables() - self.before.tables):
            if name not in ("nat", "filter"):
                continue
            listing = sh(f"nft -j list table {family} {name}", check=False).stdout
            if '"rule"' not in listing:
                sh(f"nft delete table {family} {name}", check=False)

    def _clean_paths(self) -> None:
        for path, existed in self.before.paths.items():
            if existed or not os.path.lexists(path):
                continue
            real = os.path.realpath(path)
            mounts = [
                ln.split()[4]
                for ln in Path("/proc/self/mountinfo").read_text().splitlines()
                if ln.split()[4].startswith(real + "/") or ln.split()[4] == real
            ]
            for mnt in sorted(mounts, reverse=True):
                sh(f"umount -l {shlex.quote(mnt)}", check=False)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(path)


@dataclass(frozen=True)
class Running:
    id: str
    pid: int
    ip: str
    sandbox: str
    inode: int


@pytest.fixture(scope="module")
def docker_ctr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One running container; the host is restored afterwards, pass or fail."""
    if not is_root():
        pytest.skip("needs root (starts dockerd)")
    for binary, pkg in ((DOCKERD, "docker.io"), (DOCKER, "docker.io"), (BUSYBOX, "busybox-static")):
        if not os.access(binary, os.X_OK):
            pytest.skip(f"{binary} missing: install Debian {pkg} (bash .ci/setup.sh)")
    workdir = tmp_path_factory.mktemp("ni-docker")
    engine = DockerEngine(workdir)
    try:
        try:
            engine.start()
        except RuntimeError as err:
            pytest.skip(f"could not start dockerd here: {err}")
        rootfs = workdir / "rootfs.tar"
        with tarfile.open(rootfs, "w") as tar:
            tar.add(BUSYBOX, arcname="bin/busybox")
            for applet in ("sh", "sleep"):
                info = tarfile.TarInfo(f"bin/{applet}")
                info.type = tarfile.SYMTYPE
                info.linkname = "busybox"
                tar.addfile(info)
        try:
            _docker(f"import {rootfs} {IMAGE}")
            _docker(
                f"run -d --name {NAME} --label netlens.test={RUN_TAG} "
                f"-p 127.0.0.1:{HOST_PORT}:80 {IMAGE} /bin/sleep 600"
            )
        except RuntimeError as err:  # the engine's problem on this machine, not netlens's
            pytest.skip(f"dockerd runs but could not run a container here: {err}")
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
    ctr = snap.container(f"docker:{docker_ctr.id}")
    assert ctr is not None and ctr.name == NAME
    ns = snap.netns(f"netns:{docker_ctr.inode}")
    assert ns is not None and ns.container == ctr.id
    eth = next(i for i in ns.interfaces if any(a.address == docker_ctr.ip for a in i.addresses))
    assert eth.kind == "veth" and eth.peer is not None
    host = snap.host
    assert host is not None and eth.peer.netns == host.id
    host_end = host.interface(eth.peer.ifindex)
    assert host_end is not None and host_end.kind == "veth"
    bridge = host.interface(host_end.master) if host_end.master else None
    expected = BRIDGE if os.path.exists(f"/sys/class/net/{BRIDGE}") else "docker0"
    assert bridge is not None and bridge.name == expected
