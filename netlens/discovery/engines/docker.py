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
from dataclasses import dataclass, field

from netlens.discovery.engines import as_int, command_text, read_json, str_labels

DEFAULT_ROOT = "/var/lib/docker"


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
    from netlens.discovery.engines.bolt import BoltError, BoltFile

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
