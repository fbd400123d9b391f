"""Real LXC containers, named by netlens (Debian 12 lxc 5.0).

LXC keeps no namespace handle on disk: only the container's init holds its
namespace, the host end of its veth gets a random name (``vethXXXXXX``), and
the name is found in the init's cgroup (``lxc.payload.<name>``) and in its
parent, the monitor (``[lxc monitor] <lxcpath> <name>``). The busybox template
builds the rootfs from the host's busybox, so nothing is downloaded.

The container sits on a bridge of our own (``nd<tag>lb``, 198.18.X.0/24,
static address from the config: lxc-net's lxcbr0 and dnsmasq are not used) and
the template's rcS is replaced so udhcpc never runs. A second container lives
in a private lxcpath (``lxc-create -P``) to check that its config is still
found through the monitor. Teardown stops and destroys both, removes the
bridge, and the cgroups (``lxc.pivot`` etc.) and /run/lxc if LXC made them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import RUN_TAG, sh
from engine_host import HostState, require, wired_container

from netlens.discovery.identity import identify
from netlens.discovery.nsfind import find_namespaces
from netlens.model import Engine

pytestmark = [pytest.mark.engine, pytest.mark.integration]

TEMPLATE = "/usr/share/lxc/templates/lxc-busybox"
NAME = f"nd{RUN_TAG}lx"
NAME_P = f"nd{RUN_TAG}lp"  # in a private lxcpath
BRIDGE = f"nd{RUN_TAG}lb"
SUBNET_OCTET = 100 + (int(RUN_TAG, 16) + 71) % 100  # 198.18.X.0/24
IP = f"198.18.{SUBNET_OCTET}.2"
RCS = "#!/bin/sh\n/bin/mount -a\n"  # the template's rcS also runs syslogd and udhcpc


def _lxc(cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh(f"/usr/bin/{cmd}", check=check)


@dataclass(frozen=True)
class Running:
    pid: int
    inode: int
    pid_p: int
    inode_p: int
    lxcpath_p: str


def _start(name: str, conf: Path, lxcpath: str) -> tuple[int, int]:
    _lxc(f"lxc-create -P {lxcpath} -n {name} -t busybox -f {conf}")
    Path(lxcpath, name, "rootfs/etc/init.d/rcS").write_text(RCS)
    _lxc(f"lxc-start -P {lxcpath} -n {name} -d")
    _lxc(f"lxc-wait -P {lxcpath} -n {name} -s RUNNING -t 20")
    pid = int(_lxc(f"lxc-info -P {lxcpath} -n {name} -pH").stdout.strip())
    return pid, os.stat(f"/proc/{pid}/ns/net").st_ino


@pytest.fixture(scope="module")
def lxc_ctrs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """Two running containers; the host is restored afterwards, pass or fail."""
    require("lxc-start", (("/usr/bin/lxc-start", "lxc"), (TEMPLATE, "lxc")))
    workdir = tmp_path_factory.mktemp("nd-lxc")
    private = workdir / "lxcpath"
    private.mkdir()
    names = (NAME, NAME_P)
    cgroups = (
        "lxc.pivot",
        "lxc.payload",
        *(f"lxc.{k}.{n}" for k in ("payload", "monitor") for n in names),
    )
    before = HostState.capture(("/run/lxc", f"/var/lib/lxc/{NAME}"), cgroup_names=cgroups)
    started: list[tuple[str, str]] = []
    try:
        sh(f"ip link add {BRIDGE} type bridge")
        sh(f"ip addr add 198.18.{SUBNET_OCTET}.1/24 dev {BRIDGE} && ip link set {BRIDGE} up")
        conf = workdir / "net.conf"
        conf.write_text(
            "lxc.net.0.type = veth\n"
            f"lxc.net.0.link = {BRIDGE}\n"
            "lxc.net.0.flags = up\n"
            "lxc.net.0.name = eth0\n"
            f"lxc.net.0.ipv4.address = {IP}/24\n"
        )
        bare = workdir / "empty.conf"
        bare.write_text("lxc.net.0.type = empty\n")  # own namespace, only lo
        try:
            started.append((NAME, "/var/lib/lxc"))
            pid, inode = _start(NAME, conf, "/var/lib/lxc")
            started.append((NAME_P, str(private)))
            pid_p, inode_p = _start(NAME_P, bare, str(private))
        except RuntimeError as err:  # the engine's problem on this machine, not netlens's
            pytest.skip(f"lxc could not start a container here: {err}")
        yield Running(pid, inode, pid_p, inode_p, str(private))
    finally:
        for name, lxcpath in reversed(started):
            _lxc(f"lxc-stop -P {lxcpath} -n {name} -k", check=False)
            _lxc(f"lxc-destroy -P {lxcpath} -n {name}", check=False)
        sh(f"ip link del {BRIDGE}", check=False)
        before.restore(marks=(BRIDGE,), chain_prefix=f"nd{RUN_TAG}")


def test_lxc_container_is_named_by_netlens(lxc_ctrs: Running) -> None:
    (h,) = [x for x in find_namespaces() if x.inode == lxc_ctrs.inode]
    assert lxc_ctrs.pid in h.pids and h.mounts == ()  # no handle on disk

    got = {c.netns: c for c in identify([h])}[h.id]

    assert (got.engine, got.name, got.id) == (Engine.LXC, NAME, f"lxc:{NAME}")
    assert got.pid == lxc_ctrs.pid and got.image == "busybox"
    assert got.cgroup == f"/lxc.payload.{NAME}"
    assert got.labels["lxc.net.0.link"] == BRIDGE
    assert got.labels["lxc.net.0.ipv4.address"] == f"{IP}/24"
    assert got.labels["lxc.uts.name"] == NAME  # the template quotes it; LXC does not


def test_lxc_private_lxcpath_config_found_through_monitor(lxc_ctrs: Running) -> None:
    (h,) = [x for x in find_namespaces() if x.inode == lxc_ctrs.inode_p]

    (got,) = identify([h])

    assert (got.engine, got.name, got.pid) == (Engine.LXC, NAME_P, lxc_ctrs.pid_p)
    assert got.labels["lxc.rootfs.path"] == f"dir:{lxc_ctrs.lxcpath_p}/{NAME_P}/rootfs"
    assert got.labels["lxc.net.0.type"] == "empty"


def test_discover_shows_random_host_veth_and_ip(lxc_ctrs: Running) -> None:
    from netlens.discovery import discover

    snap = discover(with_nat=False)
    ctr, _eth, host_end = wired_container(snap, f"lxc:{NAME}", lxc_ctrs.inode, IP, BRIDGE)
    assert ctr.pid == lxc_ctrs.pid
    # LXC picked the host end's name itself: the kernel agrees it sits on our bridge.
    assert os.path.realpath(f"/sys/class/net/{host_end.name}/master").endswith(f"/{BRIDGE}")
