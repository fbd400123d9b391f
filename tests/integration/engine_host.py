"""Put the host back as found after a third-party engine ran on it (Podman, LXC).

Engines leave state behind even when every container is removed: state and
lock directories, cgroups (``libpod_parent``, ``lxc.pivot``), iptables chains
(netavark's ``NETAVARK_*``), the nft tables iptables-nft made for them, and
sysctls they flipped (netavark sets ip_forward). :class:`HostState` records what
existed before the engine started; :meth:`HostState.restore` removes only what
appeared since *and* carries one of the caller's marks, so another engineer's
objects made meanwhile are never touched.

:func:`wired_container` is the check every engine test makes of the full
``discover()``: the container, its namespace, its veth and the host end on the
engine's bridge.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shlex
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import is_root, sh

from netlens.model import Container, Interface, Snapshot

SYSCTLS = (
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sys/net/bridge/bridge-nf-call-iptables",
    "/proc/sys/net/bridge/bridge-nf-call-ip6tables",
)
CGROUP_ROOTS = "/sys/fs/cgroup/*/"  # hybrid layout: one tree per controller + unified


def require(why: str, tools: Iterable[tuple[str, str]]) -> None:
    """Skip unless root and every (path, Debian package) in ``tools`` is executable."""
    if not is_root():
        pytest.skip(f"needs root ({why})")
    for path, pkg in tools:
        if not os.access(path, os.X_OK):
            pytest.skip(f"{path} missing: install Debian {pkg} (bash .ci/setup.sh)")


def nft_tables() -> set[tuple[str, str]]:
    out = sh("nft -j list tables", check=False).stdout
    try:
        items = json.loads(out).get("nftables", []) if out else []
    except ValueError:
        return set()
    return {(t["table"]["family"], t["table"]["name"]) for t in items if "table" in t}


def ipt_lines(table: str) -> set[str]:
    res = sh(f"iptables-nft-save -t {table}", check=False)
    return {ln for ln in res.stdout.splitlines() if ln.startswith(("-A ", ":"))}


def _sysctl(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _cgroups(names: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for name in names:
        found.update(glob.glob(f"{CGROUP_ROOTS}{name}"))
    return found


@dataclass
class HostState:
    """What the host looked like before the engine started."""

    paths: dict[str, bool] = field(default_factory=dict)
    cgroups: set[str] = field(default_factory=set)
    cgroup_names: tuple[str, ...] = ()
    tables: set[tuple[str, str]] = field(default_factory=set)
    ipt: dict[str, set[str]] = field(default_factory=dict)
    sysctls: dict[str, str | None] = field(default_factory=dict)
    links: set[str] = field(default_factory=set)

    @classmethod
    def capture(cls, paths: Iterable[str], cgroup_names: Iterable[str] = ()) -> HostState:
        names = tuple(cgroup_names)
        return cls(
            paths={p: os.path.lexists(p) for p in paths},
            cgroups=_cgroups(names),
            cgroup_names=names,
            tables=nft_tables(),
            ipt={t: ipt_lines(t) for t in ("nat", "filter")},
            sysctls={p: _sysctl(p) for p in SYSCTLS},
            links=set(os.listdir("/sys/class/net")),
        )

    def restore(self, marks: tuple[str, ...], chain_prefix: str) -> None:
        """Undo what appeared since capture(); each step alone so one failure
        does not stop the rest."""
        self._clean_iptables(marks, chain_prefix)
        self._clean_nft_tables()
        self._clean_cgroups()
        self._clean_paths()
        for path, value in self.sysctls.items():
            if value is not None and _sysctl(path) != value:
                with contextlib.suppress(OSError):
                    Path(path).write_text(value)

    def _clean_iptables(self, marks: tuple[str, ...], chain_prefix: str) -> None:
        """Delete rules naming one of ``marks``, then chains starting with the prefix."""
        for table, before in self.ipt.items():
            added = ipt_lines(table) - before
            mine = [ln for ln in added if any(m in ln for m in marks)]
            for line in sorted(ln for ln in mine if ln.startswith("-A ")):
                args = shlex.split(line)[1:]
                sh(f"iptables-nft -t {table} -D {shlex.join(args)}", check=False)
            chains = [ln[1:].split()[0] for ln in mine if ln.startswith(":" + chain_prefix)]
            for op in ("-F", "-X"):
                for chain in chains:
                    sh(f"iptables-nft -t {table} {op} {chain}", check=False)

    def _clean_nft_tables(self) -> None:
        """Tables iptables-nft created for the engine go when nothing is left in them."""
        for family, name in sorted(nft_tables() - self.tables):
            if name not in ("nat", "filter"):
                continue
            listing = sh(f"nft -j list table {family} {name}", check=False).stdout
            if '"rule"' not in listing:
                sh(f"nft delete table {family} {name}", check=False)

    def _clean_cgroups(self) -> None:
        for top in sorted(_cgroups(self.cgroup_names) - self.cgroups):
            # Children first; rmdir fails (harmlessly) while a process is inside.
            for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)

    def _clean_paths(self) -> None:
        for path, existed in self.paths.items():
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


def busybox_rootfs_tar(dest: Path, busybox: str, applets: Iterable[str]) -> Path:
    """A one-binary rootfs (busybox-static) as a tar for ``import`` commands."""
    import tarfile

    with tarfile.open(dest, "w") as tar:
        tar.add(busybox, arcname="bin/busybox")
        for applet in applets:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tar.addfile(info)
    return dest


def wired_container(
    snap: Snapshot, ctr_id: str, inode: int, ip: str, bridge: str
) -> tuple[Container, Interface, Interface]:
    """Assert what ``discover()`` says of one engine container; return it with both veth ends.

    The container ``ctr_id`` owns the namespace of ``inode``; the interface
    there holding ``ip`` is ``eth0``, a veth whose peer was resolved to the host
    namespace; the host end is a veth paired back to it and enslaved to the
    bridge named ``bridge``.
    """
    ctr = snap.container(ctr_id)
    assert ctr is not None, f"{ctr_id} not discovered"
    ns = snap.netns(f"netns:{inode}")
    assert ns is not None and ns.container == ctr.id
    eth = next(i for i in ns.interfaces if any(a.address == ip for a in i.addresses))
    assert eth.name == "eth0" and eth.kind == "veth" and eth.peer is not None
    host = snap.host
    assert host is not None and eth.peer.netns == host.id
    host_end = host.interface(eth.peer.ifindex)
    assert host_end is not None and host_end.kind == "veth"
    assert host_end.peer is not None and host_end.peer.ifindex == eth.ifindex
    master = host.interface(host_end.master) if host_end.master else None
    assert master is not None and master.name == bridge
    return ctr, eth, host_end
