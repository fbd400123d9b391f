"""Docker: containers from ``<data-root>/containers/<id>/config.v2.json``.

dockerd keeps every container's full state in that file (name, pid, sandbox
path, image, labels, command) and rewrites it on each state change, so it is the
cheapest source of truth and works while dockerd is down. A container's network
namespace is bind-mounted at ``NetworkSettings.SandboxKey``
(``/run/docker/netns/<12 hex>``, the sandbox id, not the container id), so we
match by that mount, by pid, or by the ``docker-<id>`` / ``docker/<id>`` cgroup.
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
    str_labels,
)
from netlens.model import Container, Engine

DEFAULT_ROOT = "/var/lib/docker"
_CGROUP = re.compile(r"docker[-/]([0-9a-f]{64})")


@dataclass(frozen=True, slots=True)
class DockerContainer:
    id: str
    name: str
    pid: int | None
    state: str
    sandbox_key: str | None
    image: str | None
    command: str | None
    labels: dict[str, str] = field(default_factory=dict)


def _norm_run(path: str) -> str:
    """``/var/run`` is a symlink to ``/run``; mountinfo shows the real path."""
    return "/run/" + path[len("/var/run/") :] if path.startswith("/var/run/") else path


def _state(st: dict[str, object]) -> str:
    if st.get("Dead"):
        return "dead"
    if st.get("RemovalInProgress"):
        return "removing"
    if st.get("Paused"):
        return "paused"
    if st.get("Restarting"):
        return "restarting"
    if st.get("Running"):
        return "running"
    started = str(st.get("StartedAt") or "")
    return "exited" if started and not started.startswith("0001") else "created"


def parse_config(data: dict[str, object], cid: str) -> DockerContainer:
    """One container from a parsed config.v2.json (tolerant of missing keys)."""
    st = data.get("State")
    st = st if isinstance(st, dict) else {}
    cfg = data.get("Config")
    cfg = cfg if isinstance(cfg, dict) else {}
    net = data.get("NetworkSettings")
    net = net if isinstance(net, dict) else {}
    args = data.get("Args")
    path = data.get("Path")
    argv = ([path] if isinstance(path, str) and path else []) + (
        [str(a) for a in args] if isinstance(args, list) else []
    )
    sandbox = net.get("SandboxKey")
    pid = as_int(st.get("Pid"))
    return DockerContainer(
        id=str(data.get("ID") or cid),
        name=str(data.get("Name") or cid[:12]).lstrip("/"),
        pid=pid if pid else None,
        state=_state(st),
        sandbox_key=_norm_run(sandbox) if isinstance(sandbox, str) and sandbox else None,
        image=str(cfg.get("Image")) if cfg.get("Image") else None,
        command=command_text(argv),
        labels=str_labels(cfg.get("Labels")),
    )


class DockerIndex:
    """Docker's containers, read lazily: by id on demand, all at once only when a
    namespace must be matched by sandbox path or pid (the unusual case)."""

    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        self.root = os.path.join(root, "containers")
        self._by_id: dict[str, DockerContainer | None] = {}
        self._all: list[DockerContainer] | None = None
        self._by_sandbox: dict[str, DockerContainer] = {}
        self._by_pid: dict[int, DockerContainer] = {}

    def exists(self) -> bool:
        return os.path.isdir(self.root)

    def get(self, cid: str) -> DockerContainer | None:
        """The container with full id ``cid`` (from a cgroup path), or None."""
        if cid not in self._by_id:
            data = read_json(os.path.join(self.root, cid, "config.v2.json"))
            self._by_id[cid] = parse_config(data, cid) if data is not None else None
        return self._by_id[cid]

    def _load_all(self) -> None:
        if self._all is not None:
            return
        self._all = []
        try:
            ids = os.listdir(self.root)
        except OSError:
            ids = []
        for cid in sorted(ids):
            ctr = self.get(cid)
            if ctr is None:
                continue
            self._all.append(ctr)
            if ctr.sandbox_key:
                self._by_sandbox[ctr.sandbox_key] = ctr
            if ctr.pid and ctr.state in ("running", "paused", "restarting"):
                self._by_pid[ctr.pid] = ctr

    def by_sandbox(self, paths: tuple[str, ...]) -> DockerContainer | None:
        """The container whose SandboxKey is one of these nsfs mount paths."""
        if not any("/docker/netns/" in p for p in paths):
            return None
        self._load_all()
        for p in paths:
            hit = self._by_sandbox.get(_norm_run(p))
            if hit is not None:
                return hit
        return None

    def by_pid(self, pids: tuple[int, ...]) -> DockerContainer | None:
        """The running container whose init process is one of ``pids``."""
        if not self.exists():
            return None
        self._load_all()
        for pid in pids:
            hit = self._by_pid.get(pid)
            if hit is not None:
                return hit
        return None


# --- networks -------------------------------------------------------------------

KV_PATH = ("network", "files", "local-kv.db")  # under the data root
KV_BUCKET = b"libnetwork"
_KV_BRIDGE_OPTION = "com.docker.network.bridge.name"


def _kv_json(value: bytes) -> dict[str, object] | None:
    """A libkv value: an 8-byte modification index, then the object as JSON."""
    import json

    start = value.find(b"{", 0, 16)
    if start < 0:
        return None
    try:
        data = json.loads(value[start:])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _generic_bridge(doc: dict[str, object]) -> str | None:
    """The bridge name given as a driver option (docker0, ``-o ...bridge.name=``)."""
    generic = doc.get("generic")
    if not isinstance(generic, dict):
        return None
    opts = generic.get("com.docker.network.generic")
    name = opts.get(_KV_BRIDGE_OPTION) if isinstance(opts, dict) else None
    return str(name) if name else None


def bridge_networks(root: str = DEFAULT_ROOT) -> dict[str, str]:
    """Bridge interface name -> Docker network name, from dockerd's network store.

    libnetwork keeps every network in ``<root>/network/files/local-kv.db``, a
    bbolt file (bucket ``libnetwork``) read here without the daemon, as the
    containers are. Two records per bridge network: ``.../network/<id>/`` (name,
    driver, driver options) and the bridge driver's ``.../bridge/<id>/``
    (``BridgeName``); a user network's bridge is ``br-`` + 12 hex of its id unless
    named by an option, and the default network ``bridge`` has ``docker0`` (or
    dockerd's ``--bridge``). Networks of other drivers (host, null, macvlan) own no
    bridge. A missing or unreadable store gives no names, never an error.
    """
    from netlens.discovery.engines._bolt import BoltError, BoltFile

    try:
        db = BoltFile.open(os.path.join(root, *KV_PATH))
        entries = list(db.bucket(KV_BUCKET))
    except (OSError, BoltError):
        return {}
    names: dict[str, str] = {}  # network id -> name
    bridges: dict[str, str] = {}  # network id -> bridge interface
    for key, value, is_bucket in entries:
        parts = [p for p in key.decode("utf-8", "replace").split("/") if p]
        if is_bucket or value is None or len(parts) < 5 or parts[-2] not in ("network", "bridge"):
            continue
        doc = _kv_json(value)
        if doc is None:
            continue
        nid = parts[-1]
        if parts[-2] == "network":
            if doc.get("networkType") == "bridge" and doc.get("name"):
                names[nid] = str(doc["name"])
                bridge = _generic_bridge(doc)
                if bridge:
                    bridges.setdefault(nid, bridge)
        elif doc.get("BridgeName"):
            bridges[nid] = str(doc["BridgeName"])
    return {bridges.get(nid) or f"br-{nid[:12]}": name for nid, name in names.items()}


class _Claims(Claims):
    """Docker's sandbox bind mount first; then its cgroup; a pid only where the
    cgroup says nothing (inside a cgroup namespace every path reads ``/``)."""

    def __init__(self, opts: Options) -> None:
        self.index = DockerIndex(opts["docker_root"])

    def recorded(self, ns: Namespace) -> Container | None:
        dk = self.index.by_sandbox(ns.mounts)
        return _container(ns, dk, ns.cgroup) if dk is not None else None

    def by_cgroup(self, ns: Namespace, cgroup: str) -> Container | None:
        m = _CGROUP.search(cgroup)
        if m is None or ns.lowest is None:
            return None
        dk = self.index.get(m.group(1))
        # A process that made its own namespace inside a container shares the
        # container's cgroup: claim the namespace only if it is the container's.
        if dk is not None and (
            dk.pid in ns.pids or (dk.sandbox_key is not None and dk.sandbox_key in ns.mounts)
        ):
            return _container(ns, dk, cgroup)
        if dk is None and any("/docker/netns/" in p for p in ns.mounts):
            cid = m.group(1)
            stub = DockerContainer(cid, cid[:12], ns.lowest, "", None, None, None)
            return _container(ns, stub, cgroup)
        return None

    def fallback(self, ns: Namespace) -> Container | None:
        cgroup = ns.cgroup
        if ns.lowest is None or (cgroup and cgroup != "/"):
            return None
        dk = self.index.by_pid(ns.pids)
        return _container(ns, dk, cgroup) if dk is not None else None


def _container(ns: Namespace, dk: DockerContainer, cgroup: str | None) -> Container:
    return Container(
        id=f"docker:{dk.id}",
        engine=Engine.DOCKER,
        name=dk.name,
        netns=ns.id,
        engine_id=dk.id,
        pid=dk.pid if dk.pid in ns.pids or not ns.pids else ns.pids[0],
        pids=ns.pids,
        command=dk.command,
        image=dk.image,
        state=dk.state or "running",
        cgroup=cgroup,
        labels=dk.labels,
    )


READER = EngineReader(
    name="docker",
    options={"docker_root": DEFAULT_ROOT},
    claims=_Claims,
    networks=lambda opts: bridge_networks(opts["docker_root"]),
)
