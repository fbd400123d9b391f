"""How full is this server: counts, per-container memory and CPU, kernel headroom.

Per container, memory and CPU come from its cgroup, because that is what the
kernel charges and limits (page cache included, like ``docker stats`` minus the
inactive file pages). Three layouts exist in the wild and all are handled:

- cgroup v2 (``/sys/fs/cgroup/cgroup.controllers`` exists): ``memory.current``,
  ``memory.max``, ``memory.stat`` (inactive_file), ``cpu.stat`` usage_usec,
  ``cpu.max``;
- cgroup v1 (``/sys/fs/cgroup/memory``, ``/sys/fs/cgroup/cpuacct``):
  ``memory.usage_in_bytes``, ``memory.limit_in_bytes``, ``memory.stat``
  (total_inactive_file), ``cpuacct.usage`` (ns), ``cpu.cfs_quota_us`` /
  ``cpu.cfs_period_us``;
- hybrid (v1 controllers plus a controller-less v2 at ``unified``, this
  machine): read as v1.

The cgroup path is ``Container.cgroup`` when given, else each controller's line
in ``/proc/<pid>/cgroup`` of the container's main process. When no cgroup can be
read (a bare process, an unprivileged user), psutil sums the RSS and CPU times
of the container's processes instead.

CPU percent needs two readings; the first sample of a container reports None.
The roots are parameters so unit tests run against a fake tree.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from netlens.model.types import Container, Engine, Snapshot
from netlens.stats.types import Density, Usage

BR_MAX_PORTS = 1024  # kernel limit of ports per bridge (net/bridge/br_private.h)
_UNLIMITED = 1 << 60  # v1 reports "no limit" as a page-rounded LONG_MAX


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _read_int(path: str) -> int | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def _stat_field(path: str, name: str) -> int | None:
    text = _read(path)
    if text is None:
        return None
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if k == name:
            try:
                return int(v)
            except ValueError:
                return None
    return None


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """``/proc/PID/cgroup`` -> controller -> path; the v2 line is under ``""``."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _hid, ctrls, path = parts
        if not ctrls:
            out[""] = path
        for c in ctrls.split(","):
            if c:
                out[c] = path
    return out


_V1_DIRS = {
    "unified",
    "memory",
    "cpu",
    "cpuacct",
    "cpu,cpuacct",
    "cpuacct,cpu",
    "pids",
    "blkio",
    "cpuset",
    "devices",
    "freezer",
    "systemd",
    "net_cls",
    "net_prio",
    "net_cls,net_prio",
    "perf_event",
    "hugetlb",
    "rdma",
    "misc",
}


def normalise_cgroup(path: str) -> str:
    """Accept the forms discovery may store: ``0::/x``, ``4:memory:/x``,
    ``/sys/fs/cgroup/<controller>/x``, ``/sys/fs/cgroup/x`` and ``/x``."""
    head, sep, rest = path.partition(":")
    if sep and head.isdigit():
        path = rest.partition(":")[2]
    if path.startswith("/sys/fs/cgroup/"):
        path = path[len("/sys/fs/cgroup/") :]
        first, _, tail = path.partition("/")
        if first in _V1_DIRS:
            path = tail
    return "/" + path.strip("/")


@dataclass(slots=True)
class _CpuMark:
    usage_ns: int
    at: float


class CgroupReader:
    """Reads memory and CPU of one cgroup path in whichever layout the host uses."""

    def __init__(self, root: str = "/sys/fs/cgroup") -> None:
        self.root = root
        self.v2 = os.path.exists(os.path.join(root, "cgroup.controllers"))

    def _v1(self, ctrl: str, path: str, name: str) -> str:
        return os.path.join(self.root, ctrl, path.lstrip("/"), name)

    def _v2(self, path: str, name: str) -> str:
        return os.path.join(self.root, path.lstrip("/"), name)

    def memory(self, path: str) -> tuple[int | None, int | None]:
        """(used bytes without inactive page cache, limit or None)."""
        if self.v2:
            cur = _read_int(self._v2(path, "memory.current"))
            inactive = _stat_field(self._v2(path, "memory.stat"), "inactive_file") or 0
            lim_text = (_read(self._v2(path, "memory.max")) or "max").strip()
            limit = None if lim_text == "max" else int(lim_text)
        else:
            cur = _read_int(self._v1("memory", path, "memory.usage_in_bytes"))
            stat = self._v1("memory", path, "memory.stat")
            inactive = _stat_field(stat, "total_inactive_file") or 0
            limit = _read_int(self._v1("memory", path, "memory.limit_in_bytes"))
            if limit is not None and limit >= _UNLIMITED:
                limit = None
        if cur is None:
            return None, limit
        return max(cur - inactive, 0), limit

    def cpu_usage_ns(self, path: str) -> int | None:
        """Cumulative CPU time of the cgroup in nanoseconds."""
        if self.v2:
            usec = _stat_field(self._v2(path, "cpu.stat"), "usage_usec")
            return None if usec is None else usec * 1000
        for ctrl in ("cpuacct", "cpu,cpuacct", "cpuacct,cpu"):
            v = _read_int(self._v1(ctrl, path, "cpuacct.usage"))
            if v is not None:
                return v
        return None

    def cpu_limit(self, path: str) -> float | None:
        """CPU limit in cores (quota / period), None when unlimited."""
        if self.v2:
            text = _read(self._v2(path, "cpu.max"))
            if not text:
                return None
            quota, _, period = text.strip().partition(" ")
            if quota == "max" or not period:
                return None
            return int(quota) / int(period)
        for ctrl in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
            q = _read_int(self._v1(ctrl, path, "cpu.cfs_quota_us"))
            p = _read_int(self._v1(ctrl, path, "cpu.cfs_period_us"))
            if q is not None and p:
                return None if q < 0 else q / p
        return None

    def procs(self, path: str) -> int | None:
        """Number of processes in the cgroup."""
        f = self._v2(path, "cgroup.procs") if self.v2 else self._v1("memory", path, "cgroup.procs")
        text = _read(f)
        return None if text is None else len(text.split())

    def exists(self, path: str) -> bool:
        if path in ("", "/"):
            return False  # the root cgroup is the whole machine, not a container
        base = self._v2(path, "") if self.v2 else self._v1("memory", path, "")
        return os.path.isdir(base)


class DensitySampler:
    """Per-container usage and server density, with CPU deltas between calls."""

    def __init__(self, proc_root: str = "/proc", cgroup_root: str = "/sys/fs/cgroup") -> None:
        self.proc = proc_root
        self.cg = CgroupReader(cgroup_root)
        self._cpu: dict[str, _CpuMark] = {}

    # --- per container -------------------------------------------------------------
    def cgroup_of(self, c: Container) -> str | None:
        """The container's cgroup path in the memory hierarchy (v1) or the v2 tree."""
        if c.cgroup:
            path = normalise_cgroup(c.cgroup)
            if self.cg.exists(path):
                return path
        for pid in ([c.pid] if c.pid else []) + list(c.pids[:3]):
            text = _read(f"{self.proc}/{pid}/cgroup")
            if text is None:
                continue
            paths = parse_proc_cgroup(text)
            found = paths.get("") if self.cg.v2 else paths.get("memory")
            if found and self.cg.exists(found):
                return found
        return None

    def usage(self, c: Container, now: float) -> Usage:
        path = self.cgroup_of(c)
        if path is None:
            return self._psutil_usage(c, now)
        mem, limit = self.cg.memory(path)
        usage_ns = self.cg.cpu_usage_ns(path)
        procs = self.cg.procs(path)
        return Usage(
            mem_bytes=mem,
            mem_limit=limit,
            cpu_percent=self._cpu_percent(c.id, usage_ns, now),
            cpu_limit=self.cg.cpu_limit(path),
            processes=procs if procs is not None else len(c.pids),
        )

    def _cpu_percent(self, cid: str, usage_ns: int | None, now: float) -> float | None:
        if usage_ns is None:
            return None
        prev = self._cpu.get(cid)
        self._cpu[cid] = _CpuMark(usage_ns, now)
        if prev is None or now <= prev.at or usage_ns < prev.usage_ns:
            return None
        return (usage_ns - prev.usage_ns) / 1e9 / (now - prev.at) * 100.0

    def _psutil_usage(self, c: Container, now: float) -> Usage:
        try:
            import psutil
        except ImportError:
            # An unprivileged user may run a Python whose site-packages it cannot
            # read (root's interpreter): usage is then unknown, and sampling goes on.
            return Usage(processes=len(c.pids))

        pids = list(c.pids) or ([c.pid] if c.pid else [])
        rss = 0
        cpu_s = 0.0
        alive = 0
        for pid in pids:
            try:
                p = psutil.Process(pid)
                with p.oneshot():
                    rss += p.memory_info().rss
                    t = p.cpu_times()
                    cpu_s += t.user + t.system
                alive += 1
            except (psutil.Error, OSError):
                continue
        if alive == 0:
            return Usage(processes=0)
        return Usage(
            mem_bytes=rss,
            cpu_percent=self._cpu_percent(c.id, int(cpu_s * 1e9), now),
            processes=alive,
        )

    # --- server --------------------------------------------------------------------
    def _meminfo(self) -> tuple[int, int]:
        total = avail = 0
        for line in (_read(f"{self.proc}/meminfo") or "").splitlines():
            k, _, v = line.partition(":")
            if k == "MemTotal":
                total = int(v.split()[0]) * 1024
            elif k == "MemAvailable":
                avail = int(v.split()[0]) * 1024
        return total, max(total - avail, 0)

    def _process_count(self) -> int:
        try:
            return sum(1 for e in os.scandir(self.proc) if e.name.isdigit())
        except OSError:
            return 0

    def headroom(self, snap: Snapshot) -> dict[str, tuple[int, int]]:
        """Kernel limits that bound density: name -> (used, max)."""
        out: dict[str, tuple[int, int]] = {}
        worst = 0
        for ns in snap.namespaces:
            bridges = {i.ifindex for i in ns.interfaces if i.kind == "bridge"}
            if not bridges:
                continue
            ports: dict[int, int] = dict.fromkeys(bridges, 0)
            for i in ns.interfaces:
                if i.master in ports:
                    ports[i.master] += 1
            worst = max(worst, *ports.values())
        out["bridge_ports"] = (worst, BR_MAX_PORTS)
        cnt = _read_int(f"{self.proc}/sys/net/netfilter/nf_conntrack_count")
        mx = _read_int(f"{self.proc}/sys/net/netfilter/nf_conntrack_max")
        if cnt is not None and mx:
            out["conntrack"] = (cnt, mx)
        fnr = (_read(f"{self.proc}/sys/fs/file-nr") or "").split()
        if len(fnr) == 3:
            out["fds"] = (int(fnr[0]) - int(fnr[1]), int(fnr[2]))
        load = (_read(f"{self.proc}/loadavg") or "").split()
        pid_max = _read_int(f"{self.proc}/sys/kernel/pid_max")
        if len(load) >= 4 and "/" in load[3] and pid_max:
            out["pids"] = (int(load[3].split("/")[1]), pid_max)
        netns_max = _read_int(f"{self.proc}/sys/user/max_net_namespaces")
        if netns_max:
            out["net_namespaces"] = (len(snap.namespaces), netns_max)
        return out

    def sample(
        self, snap: Snapshot, uplink_capacity_bps: float | None = None
    ) -> tuple[dict[str, Usage], Density]:
        """Usage of every container plus the server's density figures."""
        now = time.monotonic()
        usage: dict[str, Usage] = {}
        for c in snap.containers:
            if c.engine == Engine.HOST:
                continue
            usage[c.id] = self.usage(c, now)
        for gone in set(self._cpu) - set(usage):
            del self._cpu[gone]
        return usage, self.summarize(snap, usage, uplink_capacity_bps)

    def summarize(
        self, snap: Snapshot, usage: dict[str, Usage], uplink_capacity_bps: float | None = None
    ) -> Density:
        """The server's figures from a snapshot and already-read usage (no cgroup
        reads): cheap enough to redo at every structure change."""
        counts = snap.counts()
        cpu_count = snap.server.cpu_count or os.cpu_count() or 1
        mem_total, mem_used = self._meminfo()
        mem_total = mem_total or snap.server.mem_total
        containers = counts["containers"]
        cmem = sum(u.mem_bytes or 0 for u in usage.values())
        cpus = [u.cpu_percent for u in usage.values() if u.cpu_percent is not None]
        return Density(
            containers=containers,
            namespaces=counts["namespaces"],
            veths=counts["veths"],
            bridges=counts["bridges"],
            processes=self._process_count(),
            cpu_count=cpu_count,
            mem_total=mem_total,
            mem_used=mem_used,
            containers_mem=cmem,
            containers_per_core=containers / cpu_count,
            containers_per_gib=containers / (mem_total / 2**30) if mem_total else 0.0,
            uplink_capacity_bps=uplink_capacity_bps,
            headroom=self.headroom(snap),
            containers_cpu_percent=sum(cpus) if cpus else None,
        )
