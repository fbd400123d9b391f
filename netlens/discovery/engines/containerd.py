"""containerd / CRI (Kubernetes): task bundles under ``/run/containerd``.

containerd's runtime v2 shim keeps one bundle per running task at
``io.containerd.runtime.v2.task/<namespace>/<id>/`` with ``init.pid`` and the
OCI ``config.json`` whose annotations carry the Kubernetes pod and container
names. The ``moby`` namespace is Docker's and is left to the Docker reader.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from netlens.discovery.engines import (
    Claims,
    EngineReader,
    Namespace,
    Options,
    as_int,
    command_text,
    read_json,
    read_text,
    str_labels,
)
from netlens.model import Container, Engine

DEFAULT_ROOT = "/run/containerd"
_TASKS = "io.containerd.runtime.v2.task"
_CGROUP = re.compile(r"cri-containerd-([0-9a-f]{64})|kubepods[^\s]*?/([0-9a-f]{64})")


@dataclass(frozen=True, slots=True)
class ContainerdTask:
    id: str
    namespace: str
    name: str
    pid: int | None
    image: str | None
    command: str | None
    labels: dict[str, str] = field(default_factory=dict)


def _task(bundle: str, namespace: str, cid: str) -> ContainerdTask:
    pid = as_int((read_text(os.path.join(bundle, "init.pid")) or "").strip())
    spec = read_json(os.path.join(bundle, "config.json")) or {}
    ann = str_labels(spec.get("annotations"))
    proc = spec.get("process")
    args = proc.get("args") if isinstance(proc, dict) else None
    pod = ann.get("io.kubernetes.cri.sandbox-name")
    pod_ns = ann.get("io.kubernetes.cri.sandbox-namespace")
    cname = ann.get("io.kubernetes.cri.container-name")
    if pod:
        name = f"{pod_ns}/{pod}" if pod_ns else pod
        if cname and ann.get("io.kubernetes.cri.container-type") != "sandbox":
            name = f"{name}/{cname}"
    else:
        name = ann.get("nerdctl/name") or cid[:12]
    return ContainerdTask(
        id=cid,
        namespace=namespace,
        name=name,
        pid=pid,
        image=ann.get("io.kubernetes.cri.image-name"),
        command=command_text(args),
        labels=ann,
    )


class ContainerdIndex:
    """Running containerd tasks by id and by init pid, read on first use."""

    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        self.tasks_dir = os.path.join(root, _TASKS)
        self._by_id: dict[str, ContainerdTask] | None = None
        self._by_pid: dict[int, ContainerdTask] = {}

    def _load(self) -> dict[str, ContainerdTask]:
        if self._by_id is not None:
            return self._by_id
        self._by_id = {}
        try:
            namespaces = sorted(os.listdir(self.tasks_dir))
        except OSError:
            namespaces = []
        for ns in namespaces:
            if ns == "moby":
                continue
            try:
                ids = sorted(os.listdir(os.path.join(self.tasks_dir, ns)))
            except OSError:
                continue
            for cid in ids:
                task = _task(os.path.join(self.tasks_dir, ns, cid), ns, cid)
                self._by_id[cid] = task
                if task.pid:
                    self._by_pid[task.pid] = task
        return self._by_id

    def get(self, cid: str) -> ContainerdTask | None:
        return self._load().get(cid)

    def by_pid(self, pids: tuple[int, ...]) -> ContainerdTask | None:
        self._load()
        for pid in pids:
            hit = self._by_pid.get(pid)
            if hit is not None:
                return hit
        return None


class _Claims(Claims):
    """A CRI cgroup names the task; a plain ``ctr``/nerdctl task only by init pid."""

    def __init__(self, opts: Options) -> None:
        self.index = ContainerdIndex(opts["containerd_root"])
        self.present = os.path.isdir(self.index.tasks_dir)

    def by_cgroup(self, ns: Namespace, cgroup: str) -> Container | None:
        m = _CGROUP.search(cgroup)
        if m is None or ns.lowest is None:
            return None
        cid = m.group(1) or m.group(2)
        task = self.index.get(cid)
        if task is None:
            task = ContainerdTask(cid, "", cid[:12], ns.lowest, None, None)
        return _container(ns, task, cgroup)

    def fallback(self, ns: Namespace) -> Container | None:
        if not self.present or not ns.pids:
            return None
        task = self.index.by_pid(ns.pids)
        return _container(ns, task, ns.cgroup) if task is not None else None


def _container(ns: Namespace, task: ContainerdTask, cgroup: str | None) -> Container:
    pids = ns.pids
    return Container(
        id=f"containerd:{task.id}",
        engine=Engine.CONTAINERD,
        name=task.name,
        netns=ns.id,
        engine_id=task.id,
        pid=task.pid if task.pid in pids or not pids else pids[0],
        pids=pids,
        command=task.command or (ns.cmdline(pids[0]) if pids else None) or None,
        image=task.image,
        state="running",
        cgroup=cgroup,
        labels=task.labels,
    )


READER = EngineReader(name="containerd", options={"containerd_root": DEFAULT_ROOT}, claims=_Claims)
