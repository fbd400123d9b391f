"""Podman: names, labels, pids and namespace paths from Podman's own database.

Podman has no daemon to ask; everything ``podman ps`` shows is in its state
database under the storage root: ``db.sql`` (SQLite, Podman 5's default) or
``libpod/bolt_state.db`` (bbolt, Podman up to 4.x, which is what Debian 12's
4.3 writes). Both hold, per container, the same two JSON documents: the config
(name, labels, command, image) and the state (state number, pid, conmon pid,
and in newer versions the namespace path; bbolt keeps that path as a ``netns``
key beside them). That lets us name a container by its cgroup id, by any of
its pids (``--cgroups=disabled`` leaves no libpod cgroup), or by the
``/run/netns/netns-<uuid>`` bind mount alone (a container being torn down has
no process left).

When no database can be read (locked mid-write, an unknown format) we fall back
to containers/storage's ``overlay-containers/containers.json`` (names and image
only) plus each container's ``pidfile`` under the run root. Everything is read
once per identify() call, and only when some namespace looks like Podman's.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from netlens.discovery.engines import (
    Claims,
    EngineReader,
    Namespace,
    Options,
    as_int,
    command_text,
    loads,
    read_text,
    str_labels,
)
from netlens.model import Container, Engine

DEFAULT_ROOT = "/var/lib/containers/storage"
DEFAULT_RUN_ROOT = "/run/containers/storage"
_CGROUP = re.compile(r"libpod-([0-9a-f]{64})")  # conmon sits in libpod-conmon-<id>
NETNS_PREFIX = "netns-"  # Podman's /run/netns/netns-<uuid> (rootless: $XDG_RUNTIME_DIR/netns)

# libpod/define/containerstate.go
_STATES = {
    1: "configured",
    2: "created",
    3: "running",
    4: "stopped",
    5: "paused",
    6: "exited",
    7: "removing",
    8: "stopping",
}
# A pid is only trusted while the database says the container runs. State None
# (the pidfile fallback) is not live: a pidfile outlives a reboot, and its pid
# may by now belong to any process.
_LIVE = ("running", "paused", "stopping")


@dataclass(frozen=True, slots=True)
class PodmanContainer:
    id: str
    name: str
    image: str | None
    command: str | None = None
    pid: int | None = None
    state: str | None = None
    netns: str | None = None  # the bind mount of its network namespace
    labels: dict[str, str] = field(default_factory=dict)
    conmon_pid: int | None = None  # its monitor, the parent of its first process


def _loads(raw: object) -> dict[str, Any]:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str):
        return {}
    data = loads(raw)
    return data if isinstance(data, dict) else {}


def _spec_netns(config: Mapping[str, Any]) -> str | None:
    """The network namespace path in the config's OCI spec (set when created)."""
    spec = config.get("spec")
    linux = spec.get("linux") if isinstance(spec, dict) else None
    for ns in linux.get("namespaces") or () if isinstance(linux, dict) else ():
        if isinstance(ns, dict) and ns.get("type") == "network" and ns.get("path"):
            return str(ns["path"])
    return None


def _container(
    cid: str, config: Mapping[str, Any], state: Mapping[str, Any], netns: str | None
) -> PodmanContainer:
    image = config.get("rootfsImageName") or config.get("RawImageName")
    code = as_int(state.get("state"))
    return PodmanContainer(
        id=cid,
        name=str(config.get("name") or cid[:12]),
        image=str(image) if image else None,
        command=command_text(config.get("command")),
        pid=as_int(state.get("pid")) or None,
        state=_STATES.get(code) if code is not None else None,
        netns=netns or str(state.get("netns") or "") or _spec_netns(config),
        labels=str_labels(config.get("labels")),
        conmon_pid=as_int(state.get("conmonPid")) or None,
    )


def read_sqlite(path: str) -> list[PodmanContainer]:
    """Containers in Podman 5's ``db.sql``, opened read-only (never created).

    ``immutable=1`` as well as ``mode=ro``: Podman keeps db.sql in WAL mode, and a
    plain read-only open of a WAL database creates ``db.sql-wal`` / ``-shm`` beside
    it and takes locks. Immutable opens neither and locks nothing; a write landing
    mid-read can then show a torn page, which raises and sends the caller to the
    fallback readers.
    """
    import sqlite3  # only hosts with Podman 5 pay for the import

    uri = f"file:{quote(path)}?mode=ro&immutable=1"
    out: list[PodmanContainer] = []
    conn = sqlite3.connect(uri, uri=True, timeout=0.2)
    try:
        rows = conn.execute(
            "SELECT c.ID, c.JSON, s.JSON FROM ContainerConfig c "
            "LEFT JOIN ContainerState s ON s.ID = c.ID"
        ).fetchall()
    finally:
        conn.close()
    for cid, config, state in rows:
        out.append(_container(str(cid), _loads(config), _loads(state), None))
    return out


def read_bolt(path: str) -> list[PodmanContainer]:
    """Containers in Podman 4's ``bolt_state.db`` (bucket ``ctr`` -> id -> keys)."""
    from netlens.discovery.engines._bolt import BoltFile

    db = BoltFile.open(path)
    out: list[PodmanContainer] = []
    for cid, _value, is_bucket in db.bucket(b"ctr"):
        if not is_bucket:
            continue
        keys: dict[bytes, bytes | None] = {k: v for k, v, sub in db.bucket(b"ctr", cid) if not sub}
        netns = (keys.get(b"netns") or b"").decode("utf-8", "replace") or None
        out.append(
            _container(
                cid.decode("utf-8", "replace"),
                _loads(keys.get(b"config")),
                _loads(keys.get(b"state")),
                netns,
            )
        )
    return out


def read_storage(root: str, run_root: str) -> list[PodmanContainer]:
    """The fallback: containers/storage's names and image, pids from pidfiles."""
    text = read_text(os.path.join(root, "overlay-containers", "containers.json"))
    rows = loads(text) if text else []
    out: list[PodmanContainer] = []
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict) or not row.get("id"):
            continue
        cid = str(row["id"])
        meta = _loads(row.get("metadata"))
        names = row.get("names")
        first = names[0] if isinstance(names, list) and names else cid[:12]
        image = meta.get("image-name") or row.get("image")
        pidfile = os.path.join(run_root, "overlay-containers", cid, "userdata", "pidfile")
        pid = as_int((read_text(pidfile) or "").strip())
        out.append(
            PodmanContainer(
                cid, str(meta.get("name") or first), str(image) if image else None, pid=pid
            )
        )
    return out


class PodmanIndex:
    """All of one Podman storage root's containers, loaded on first use."""

    def __init__(self, root: str = DEFAULT_ROOT, run_root: str | None = None) -> None:
        self.root = root
        self.run_root = run_root or (DEFAULT_RUN_ROOT if root == DEFAULT_ROOT else root)
        self._by_id: dict[str, PodmanContainer] | None = None
        self._by_pid: dict[int, PodmanContainer] = {}
        self._by_netns: dict[str, PodmanContainer] = {}
        self._present: bool | None = None

    @property
    def present(self) -> bool:
        """Whether Podman ever ran here as root (its storage root exists)."""
        if self._present is None:
            self._present = os.path.isdir(self.root)
        return self._present

    def _load(self) -> dict[str, PodmanContainer]:
        if self._by_id is not None:
            return self._by_id
        rows: list[PodmanContainer] = []
        if self.present:
            rows = self._read_db()
        self._by_id = {c.id: c for c in rows}
        for c in rows:
            # A stopped container's last pid may belong to anyone by now.
            if c.pid and c.state in _LIVE:
                self._by_pid[c.pid] = c
            if c.netns:
                self._by_netns[c.netns] = c
        return self._by_id

    def _read_db(self) -> list[PodmanContainer]:
        sql = os.path.join(self.root, "db.sql")
        bolt = os.path.join(self.root, "libpod", "bolt_state.db")
        for path, reader in ((sql, read_sqlite), (bolt, read_bolt)):
            if not os.path.exists(path):
                continue
            try:
                return reader(path)
            except Exception:  # a torn or locked file: fall back, never fail identify
                continue
        return read_storage(self.root, self.run_root)

    def get(self, cid: str) -> PodmanContainer | None:
        return self._load().get(cid)

    def by_pid(self, pids: Iterable[int]) -> PodmanContainer | None:
        """The container whose recorded pid is among ``pids``."""
        self._load()
        for pid in pids:
            found = self._by_pid.get(pid)
            if found is not None:
                return found
        return None

    def by_netns(self, mounts: Iterable[str]) -> PodmanContainer | None:
        """The container whose namespace bind mount is one of ``mounts``."""
        self._load()
        for path in mounts:
            found = self._by_netns.get(path)
            if found is not None:
                return found
        return None


def looks_like_podman_netns(mounts: Iterable[str]) -> bool:
    """A ``.../netns/netns-<uuid>`` bind mount: the name Podman gives its namespaces."""
    marker = "/netns/" + NETNS_PREFIX  # a substring test: this runs for every namespace
    return any(marker in p for p in mounts)


def conmon_args(cmdline: str) -> tuple[str, str] | None:
    """(container id, name) from a conmon command line (``-c ID ... -n NAME``)."""
    argv = cmdline.split("\0")
    if not argv or not argv[0].endswith("conmon"):
        return None
    keys = {"-c": "id", "--cid": "id", "-n": "name", "--name": "name"}
    found: dict[str, str] = {}
    for flag, value in itertools.pairwise(argv):
        key = keys.get(flag)
        if key is not None:
            found.setdefault(key, value)
    cid = found.get("id")
    return (cid, found.get("name") or cid[:12]) if cid else None


# --- claims ---------------------------------------------------------------------


class _Claims(Claims):
    """The libpod cgroup names a container outright; without one, only evidence."""

    def __init__(self, opts: Options) -> None:
        self.index = PodmanIndex(opts["podman_root"])

    def by_cgroup(self, ns: Namespace, cgroup: str) -> Container | None:
        m = _CGROUP.search(cgroup)
        if m is None:
            return None
        cid = m.group(1)
        return self._container(ns, cid, self.index.get(cid), cgroup)

    def fallback(self, ns: Namespace) -> Container | None:
        """A Podman container named only where the namespace shows it is Podman's.

        A recorded pid alone proves nothing: after a reboot the database still
        lists "running" containers whose pids now belong to anyone. So a pid match
        counts only beside a ``netns-<uuid>`` bind mount or a conmon parent (the
        libpod cgroup is handled by :meth:`by_cgroup`), and without such evidence
        the database is not even loaded: the common host pays nothing for it.
        """
        if not self.index.present:
            return None
        looks = looks_like_podman_netns(ns.mounts)
        if not (ns.pids or looks):
            return None
        pids, cgroup = ns.pids, ns.cgroup
        if looks:
            pm = self.index.by_netns(ns.mounts) or self.index.by_pid(pids)
            if pm is not None:
                return self._container(ns, pm.id, pm, cgroup)
        if not pids:
            return None
        ppid, parent = ns.parent(pids[0])
        if not parent.split("\0", 1)[0].endswith("conmon"):
            return None
        conmon = conmon_args(parent)
        pm = self.index.get(conmon[0]) if conmon is not None else None
        if pm is None:
            # The parent is a conmon: the database's record whose first pid and
            # conmon pid both match is that container.
            cand = self.index.by_pid(pids[:1])
            if cand is not None and cand.conmon_pid is not None and cand.conmon_pid == ppid:
                pm = cand
        if pm is not None:
            return self._container(ns, pm.id, pm, cgroup)
        return self._container(ns, conmon[0], None, cgroup) if conmon is not None else None

    def _container(
        self, ns: Namespace, cid: str, pm: PodmanContainer | None, cgroup: str | None
    ) -> Container:
        pids = ns.pids
        if pm is None and pids:
            # Database unreadable: conmon, the container's parent, still names it.
            conmon = conmon_args(ns.parent(pids[0])[1])
            if conmon is not None and conmon[0] == cid:
                pm = PodmanContainer(cid, conmon[1], None)
        pid = pm.pid if pm is not None and pm.pid in pids else (pids[0] if pids else None)
        return Container(
            id=f"podman:{cid}",
            engine=Engine.PODMAN,
            name=pm.name if pm else cid[:12],
            netns=ns.id,
            engine_id=cid,
            pid=pid,
            pids=pids,
            command=(pm.command if pm else None) or (ns.cmdline(pid) if pid else None) or None,
            image=pm.image if pm else None,
            state=(pm.state if pm else None) or ("running" if pids else None),
            cgroup=cgroup,
            labels=dict(pm.labels) if pm else {},
        )


# --- networks -------------------------------------------------------------------

NETWORK_DIRS = ("/etc/containers/networks", os.path.join(DEFAULT_ROOT, "networks"))
DEFAULT_NETWORK = ("podman0", "podman")  # built in: no file unless someone edits it


def bridge_networks(dirs: Iterable[str] = NETWORK_DIRS) -> dict[str, str]:
    """Bridge interface name -> Podman network name (netavark's ``<name>.json`` files).

    Podman 4+ writes one JSON file per network it created (``name``, ``driver``,
    ``network_interface``) in its network config directory (root:
    /etc/containers/networks; the storage root's ``networks`` for others). The
    default network ``podman`` (bridge ``podman0``) lives in Podman's code and
    gets a file only when changed, so it is named unless a file says otherwise.
    macvlan/ipvlan networks name their parent NIC there: never claimed.
    """
    out: dict[str, str] = {}
    for folder in dirs:
        try:
            files = sorted(f for f in os.listdir(folder) if f.endswith(".json"))
        except OSError:
            continue
        for fname in files:
            data = _loads(read_text(os.path.join(folder, fname), regular=True))
            bridge, name = data.get("network_interface"), data.get("name")
            if data.get("driver") == "bridge" and bridge and name:
                out.setdefault(str(bridge), str(name))
    out.setdefault(*DEFAULT_NETWORK)
    return out


READER = EngineReader(
    name="podman",
    options={"podman_root": DEFAULT_ROOT, "podman_dirs": NETWORK_DIRS},
    claims=_Claims,
    networks=lambda opts: bridge_networks(opts["podman_dirs"]),
)
