"""Name the container (or process) behind each network namespace.

An engineer looking at ``netns:4026532451`` wants to read ``docker web-1`` or
``mininet h3``. Every engine leaves a different trace, so we try them from the
most specific to the least:

1. netlens's own runtime state files (match by namespace inode or pid);
2. Docker, by the namespace's bind mount (``SandboxKey``);
3. the cgroup of the namespace's lowest pid: ``docker-<id>`` / ``docker/<id>``,
   ``libpod-<id>`` (Podman), ``lxc.payload.<name>`` (LXC),
   ``cri-containerd-<id>`` / ``kubepods`` (containerd, Kubernetes);
4. Podman's database by namespace bind mount (``/run/netns/netns-<uuid>``) or
   by pid, when Podman's storage exists (no cgroup: ``--cgroups=disabled``, or
   a container being torn down with no process left); a pid counts only beside
   Podman evidence (that bind mount, or a conmon parent), never alone: pids
   recorded before a reboot get reused;
5. containerd task bundles by init pid (plain ``ctr`` / nerdctl tasks);
6. the command line of the lowest pid (``bash --norc -is mininet:h1``);
7. an ``ip netns`` name;
8. otherwise the processes holding it (``sleep[1234]``).

Engine parents are read only for namespaces already known to be the engine's,
or, on hosts where Podman's storage exists, for the lowest pid of a namespace
no earlier step named (is it a conmon's child?): conmon (``-c <id> -n <name>``)
names a container the database lacks, LXC's monitor (``[lxc monitor] <lxcpath> <name>``) when an LXC
container's config is not under the default lxcpath. Asking every unnamed
namespace's parent would cost two more reads each (+50 ms at 1000
process-held namespaces), so an LXC container with a cgroup dir of its own
choosing stays a plain process.

Cost matters at 1000 namespaces: engine indexes are read once per call and only
when some namespace needs them, and per namespace we read at most the cgroup,
cmdline and comm of its *lowest* pid. No subprocess, no netlink, no daemon.
Every ``*_root`` keyword exists so tests can point at recorded fixture trees.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from netlens.discovery.engines import containerd as _containerd
from netlens.discovery.engines import docker as _docker
from netlens.discovery.engines import lxc as _lxc
from netlens.discovery.engines import netlens_rt as _netlens
from netlens.discovery.engines import podman as _podman
from netlens.discovery.engines import read_text
from netlens.discovery.nsfind import NsHandle
from netlens.model import Container, Engine

_DOCKER_CG = re.compile(r"docker[-/]([0-9a-f]{64})")
_PODMAN_CG = re.compile(r"libpod-([0-9a-f]{64})")  # conmon sits in libpod-conmon-<id>
_LXC_CG = re.compile(r"lxc\.payload[./]([^/\s]+)|^/lxc/([^/\s]+)")
_CRI_CG = re.compile(r"cri-containerd-([0-9a-f]{64})|kubepods[^\s]*?/([0-9a-f]{64})")
_MININET = re.compile(r"(?:^|\s)mininet:(\S+)")


def _cgroup_path(text: str) -> str | None:
    """The most telling path of a /proc/PID/cgroup file.

    Prefer a v1 controller path that names something (hybrid hosts put engine
    cgroups there, with the v2 line left at ``/``), else the v2 ``0::`` path.
    """
    v2: str | None = None
    for line in text.splitlines():
        _hier, _sep, rest = line.partition(":")
        ctrl, _sep, path = rest.partition(":")
        if not path:
            continue
        if ctrl == "" and _hier == "0":
            v2 = path
        elif path != "/" and (ctrl.startswith(("memory", "cpu", "pids")) or ctrl == "name=systemd"):
            return path
    return v2


def _cmdline(proc_root: str, pid: int) -> str:
    raw = read_text(f"{proc_root}/{pid}/cmdline") or ""
    return " ".join(p for p in raw.split("\0") if p)


def _comm(proc_root: str, pid: int) -> str:
    return (read_text(f"{proc_root}/{pid}/comm") or "").strip() or "process"


def _parent(proc_root: str, pid: int) -> tuple[int | None, str]:
    """(ppid, raw NUL-separated command line of the parent) of ``pid``; (None, "")
    when gone.

    The ppid is the second field after the ``(comm)`` of /proc/PID/stat; comm may
    hold spaces and parentheses, so split after the last ``)``.
    """
    stat = read_text(f"{proc_root}/{pid}/stat") or ""
    fields = stat[stat.rfind(")") + 1 :].split()
    if len(fields) < 2 or not fields[1].isdigit():
        return None, ""
    return int(fields[1]), read_text(f"{proc_root}/{fields[1]}/cmdline") or ""


def _parent_cmdline(proc_root: str, pid: int) -> str:
    """The raw (NUL-separated) command line of ``pid``'s parent, "" when gone."""
    return _parent(proc_root, pid)[1]


class _Identifier:
    """Engine indexes shared by all handles of one identify() call."""

    def __init__(
        self,
        proc_root: str,
        netlens_state_dir: str | None,
        docker_root: str,
        podman_root: str,
        lxc_root: str,
        containerd_root: str,
    ) -> None:
        self.proc_root = proc_root.rstrip("/") or "/"
        self.netlens = _netlens.NetlensIndex(netlens_state_dir)
        self.docker = _docker.DockerIndex(docker_root)
        self.podman = _podman.PodmanIndex(podman_root)
        self.lxc_root = lxc_root
        self.containerd = _containerd.ContainerdIndex(containerd_root)
        self.containerd_present = os.path.isdir(self.containerd.tasks_dir)

    def host(self, h: NsHandle) -> Container:
        name = (read_text(f"{self.proc_root}/sys/kernel/hostname") or "").strip() or "host"
        pid = 1 if 1 in h.pids else (min(h.pids) if h.pids else None)
        return Container(
            id=f"host:{name}",
            engine=Engine.HOST,
            name=name,
            netns=h.id,
            engine_id=name,
            pid=pid,
            pids=h.pids,
            state="running",
        )

    def one(self, h: NsHandle) -> Container | None:
        if h.is_host:
            return self.host(h)
        pids = tuple(sorted(h.pids))
        lowest = pids[0] if pids else None

        nl = self.netlens.match(h.inode, pids)
        if nl is not None:
            return Container(
                id=f"netlens:{nl.id}",
                engine=Engine.NETLENS,
                name=nl.name,
                netns=h.id,
                engine_id=nl.id,
                pid=nl.pid if nl.pid in pids or not pids else lowest,
                pids=pids,
                command=nl.command,
                image=nl.image,
                state=nl.state,
                cgroup=nl.cgroup,
                labels=nl.labels,
                privileged=nl.privileged,
            )

        mounts = (*h.mounts, h.path)
        dk = self.docker.by_sandbox(mounts)
        cgroup: str | None = None
        if dk is None and lowest is not None:
            cgroup = _cgroup_path(read_text(f"{self.proc_root}/{lowest}/cgroup") or "")
            found = self._by_cgroup(h, pids, cgroup, mounts)
            if found is not None:
                return found
            if not cgroup or cgroup == "/":
                # In a cgroup namespace every path reads "/": fall back to pids.
                dk = self.docker.by_pid(pids)
        if dk is not None:
            if cgroup is None and lowest is not None:
                cgroup = _cgroup_path(read_text(f"{self.proc_root}/{lowest}/cgroup") or "")
            return self._docker(h, pids, dk, cgroup)

        if self.podman.present and (pids or _podman.looks_like_podman_netns(mounts)):
            found = self._podman_by_evidence(h, pids, mounts, cgroup)
            if found is not None:
                return found

        if self.containerd_present and pids:
            task = self.containerd.by_pid(pids)
            if task is not None:
                return self._task(h, pids, task, cgroup)

        command = _cmdline(self.proc_root, lowest) if lowest is not None else None
        if command:
            mn = _MININET.search(command)
            if mn:
                return Container(
                    id=f"mininet:{mn.group(1)}",
                    engine=Engine.MININET,
                    name=mn.group(1),
                    netns=h.id,
                    engine_id=mn.group(1),
                    pid=lowest,
                    pids=pids,
                    command=command,
                    cgroup=cgroup,
                )
        if h.names:
            name = h.names[0]
            return Container(
                id=f"netns:{name}",
                engine=Engine.NETNS,
                name=name,
                netns=h.id,
                engine_id=name,
                pid=lowest,
                pids=pids,
                command=command or None,
                cgroup=cgroup,
            )
        if lowest is not None:
            comm = _comm(self.proc_root, lowest)
            return Container(
                id=f"process:{lowest}",
                engine=Engine.PROCESS,
                name=f"{comm}[{lowest}]",
                netns=h.id,
                engine_id=str(lowest),
                pid=lowest,
                pids=pids,
                command=command or f"[{comm}]",
                cgroup=cgroup,
            )
        return None  # only a bind mount nobody claims: no owner to name

    def _by_cgroup(
        self, h: NsHandle, pids: tuple[int, ...], cgroup: str | None, mounts: tuple[str, ...]
    ) -> Container | None:
        if not cgroup or cgroup == "/":
            return None
        m = _DOCKER_CG.search(cgroup)
        if m:
            dk = self.docker.get(m.group(1))
            # A process that made its own namespace inside a container shares the
            # container's cgroup: claim the namespace only if it is the container's.
            if dk is not None and (
                dk.pid in pids or (dk.sandbox_key is not None and dk.sandbox_key in mounts)
            ):
                return self._docker(h, pids, dk, cgroup)
            if dk is None and any("/docker/netns/" in p for p in mounts):
                cid = m.group(1)
                stub = _docker.DockerContainer(cid, cid[:12], pids[0], "", None, None, None)
                return self._docker(h, pids, stub, cgroup)
        m = _PODMAN_CG.search(cgroup)
        if m:
            cid = m.group(1)
            return self._podman(h, pids, cid, self.podman.get(cid), cgroup)
        m = _LXC_CG.search(cgroup)
        if m:
            return self._lxc(h, pids, m.group(1) or m.group(2), cgroup)
        m = _CRI_CG.search(cgroup)
        if m:
            cid = m.group(1) or m.group(2)
            task = self.containerd.get(cid)
            if task is None:
                task = _containerd.ContainerdTask(cid, "", cid[:12], pids[0], None, None)
            return self._task(h, pids, task, cgroup)
        return None

    def _podman_by_evidence(
        self, h: NsHandle, pids: tuple[int, ...], mounts: tuple[str, ...], cgroup: str | None
    ) -> Container | None:
        """A Podman container named only where the namespace shows it is Podman's.

        A recorded pid alone proves nothing: after a reboot the database still
        lists "running" containers whose pids now belong to anyone. So a pid match
        counts only beside a ``netns-<uuid>`` bind mount or a conmon parent (the
        libpod cgroup is handled by :meth:`_by_cgroup`), and without such evidence
        the database is not even loaded: the common host pays nothing for it.
        """
        if _podman.looks_like_podman_netns(mounts):
            pm = self.podman.by_netns(mounts) or self.podman.by_pid(pids)
            if pm is not None:
                return self._podman(h, pids, pm.id, pm, cgroup)
        if not pids:
            return None
        ppid, parent = _parent(self.proc_root, pids[0])
        if not parent.split("\0", 1)[0].endswith("conmon"):
            return None
        conmon = _podman.conmon_args(parent)
        pm = self.podman.get(conmon[0]) if conmon is not None else None
        if pm is None:
            # The parent is a conmon: the database's record whose first pid and
            # conmon pid both match is that container.
            cand = self.podman.by_pid(pids[:1])
            if cand is not None and cand.conmon_pid is not None and cand.conmon_pid == ppid:
                pm = cand
        if pm is not None:
            return self._podman(h, pids, pm.id, pm, cgroup)
        return self._podman(h, pids, conmon[0], None, cgroup) if conmon is not None else None

    def _podman(
        self,
        h: NsHandle,
        pids: tuple[int, ...],
        cid: str,
        pm: _podman.PodmanContainer | None,
        cgroup: str | None,
    ) -> Container:
        if pm is None and pids:
            # Database unreadable: conmon, the container's parent, still names it.
            conmon = _podman.conmon_args(_parent_cmdline(self.proc_root, pids[0]))
            if conmon is not None and conmon[0] == cid:
                pm = _podman.PodmanContainer(cid, conmon[1], None)
        pid = pm.pid if pm is not None and pm.pid in pids else (pids[0] if pids else None)
        return Container(
            id=f"podman:{cid}",
            engine=Engine.PODMAN,
            name=pm.name if pm else cid[:12],
            netns=h.id,
            engine_id=cid,
            pid=pid,
            pids=pids,
            command=(pm.command if pm else None)
            or (_cmdline(self.proc_root, pid) if pid else None)
            or None,
            image=pm.image if pm else None,
            state=(pm.state if pm else None) or ("running" if pids else None),
            cgroup=cgroup,
            labels=dict(pm.labels) if pm else {},
        )

    def _lxc(self, h: NsHandle, pids: tuple[int, ...], name: str, cgroup: str | None) -> Container:
        cfg = _lxc.read_config(self.lxc_root, name)
        if cfg is None:
            # Not under our lxcpath: the monitor (init's parent) says which one.
            monitor = _lxc.monitor_args(_parent_cmdline(self.proc_root, pids[0]))
            if monitor is not None and monitor[1] == name and monitor[0] != self.lxc_root:
                cfg = _lxc.read_config(monitor[0], name)
        return Container(
            id=f"lxc:{name}",
            engine=Engine.LXC,
            name=name,
            netns=h.id,
            engine_id=name,
            pid=pids[0],
            pids=pids,
            command=_cmdline(self.proc_root, pids[0]) or None,
            image=cfg.image if cfg else None,
            state="running",
            cgroup=cgroup,
            labels=dict(cfg.labels) if cfg else {},
        )

    def _docker(
        self, h: NsHandle, pids: tuple[int, ...], dk: _docker.DockerContainer, cgroup: str | None
    ) -> Container:
        return Container(
            id=f"docker:{dk.id}",
            engine=Engine.DOCKER,
            name=dk.name,
            netns=h.id,
            engine_id=dk.id,
            pid=dk.pid if dk.pid in pids or not pids else pids[0],
            pids=pids,
            command=dk.command,
            image=dk.image,
            state=dk.state or "running",
            cgroup=cgroup,
            labels=dk.labels,
        )

    def _task(
        self,
        h: NsHandle,
        pids: tuple[int, ...],
        task: _containerd.ContainerdTask,
        cgroup: str | None,
    ) -> Container:
        return Container(
            id=f"containerd:{task.id}",
            engine=Engine.CONTAINERD,
            name=task.name,
            netns=h.id,
            engine_id=task.id,
            pid=task.pid if task.pid in pids or not pids else pids[0],
            pids=pids,
            command=task.command or (_cmdline(self.proc_root, pids[0]) if pids else None) or None,
            image=task.image,
            state="running",
            cgroup=cgroup,
            labels=task.labels,
        )


def identify(
    handles: Sequence[NsHandle],
    *,
    proc_root: str = "/proc",
    netlens_state_dir: str | None = None,
    docker_root: str = _docker.DEFAULT_ROOT,
    podman_root: str = _podman.DEFAULT_ROOT,
    lxc_root: str = _lxc.DEFAULT_ROOT,
    containerd_root: str = _containerd.DEFAULT_ROOT,
) -> list[Container]:
    """Return one Container per namespace that has an owner, in ``handles`` order.

    The host namespace yields an ``engine="host"`` container named after the
    hostname (``Snapshot.counts`` leaves it out of the container count). A
    namespace held only by a bind mount that no engine claims has no owner and
    is left out. ``netlens_state_dir`` defaults to ``$NETLENS_STATE_DIR`` or
    /run/netlens; the other roots default to each engine's standard path.
    Never raises for vanished processes or unreadable state files.
    """
    ident = _Identifier(
        proc_root, netlens_state_dir, docker_root, podman_root, lxc_root, containerd_root
    )
    out: list[Container] = []
    for h in handles:
        ctr = ident.one(h)
        if ctr is not None:
            out.append(ctr)
    return out
