"""netlens's own runtime: ``$NETLENS_STATE_DIR/containers/<name>.json``.

The bundled runtime (``runtime/``) writes one small JSON file per container. The
inspector reads those files like any other engine's state and never imports the
runtime. Keys may be missing (older runtime, a file written half-way): every
field is optional except a name.
"""

from __future__ import annotations

import os
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

DEFAULT_STATE_DIR = "/run/netlens"


def default_state_dir() -> str:
    """The runtime's state dir: ``$NETLENS_STATE_DIR`` or /run/netlens."""
    return os.environ.get("NETLENS_STATE_DIR") or DEFAULT_STATE_DIR


@dataclass(frozen=True, slots=True)
class NetlensContainer:
    id: str
    name: str
    pid: int | None
    netns_inode: int | None
    state: str | None
    command: str | None
    image: str | None
    cgroup: str | None
    labels: dict[str, str] = field(default_factory=dict)
    privileged: bool | None = None  # None: a record from before the runtime wrote it


def _flag(value: object) -> bool | None:
    """A record's boolean, None when missing or not a boolean (a hand-edited file)."""
    return value if isinstance(value, bool) else None


class NetlensIndex:
    """All runtime containers, indexed by namespace inode and by pid."""

    def __init__(self, state_dir: str | None = None) -> None:
        self.dir = os.path.join(state_dir or default_state_dir(), "containers")
        self.by_inode: dict[int, NetlensContainer] = {}
        self.by_pid: dict[int, NetlensContainer] = {}
        try:
            files = sorted(f for f in os.listdir(self.dir) if f.endswith(".json"))
        except OSError:
            files = []
        for fname in files:
            data = read_json(os.path.join(self.dir, fname))
            if data is None:
                continue
            name = str(data.get("name") or fname[: -len(".json")])
            ctr = NetlensContainer(
                id=str(data.get("id") or name),
                name=name,
                pid=as_int(data.get("pid")),
                netns_inode=as_int(data.get("netns_inode")),
                state=str(data["state"]) if data.get("state") else None,
                command=command_text(data.get("command")),
                image=str(data.get("image") or data.get("rootfs") or "") or None,
                cgroup=str(data["cgroup"]) if data.get("cgroup") else None,
                labels=str_labels(data.get("labels")),
                privileged=_flag(data.get("privileged")),
            )
            if ctr.netns_inode:
                self.by_inode[ctr.netns_inode] = ctr
            if ctr.pid:
                self.by_pid[ctr.pid] = ctr

    def match(self, inode: int, pids: tuple[int, ...]) -> NetlensContainer | None:
        """The container of this namespace, by inode or by pid.

        Namespace inodes are reused soon after a namespace dies, so a stale state
        file's inode may now belong to someone else's namespace: an inode match
        counts only when the recorded pid is inside (or either side has no pid).
        """
        hit = self.by_inode.get(inode)
        if hit is not None and (hit.pid is None or not pids or hit.pid in pids):
            return hit
        for pid in pids:
            hit = self.by_pid.get(pid)
            if hit is not None:
                return hit
        return None


def bridge_networks(state_dir: str | None = None) -> dict[str, str]:
    """Bridge interface name -> network name (``networks/<name>.json``, key ``bridge``)."""
    root = os.path.join(state_dir or default_state_dir(), "networks")
    try:
        files = sorted(f for f in os.listdir(root) if f.endswith(".json"))
    except OSError:
        return {}
    out: dict[str, str] = {}
    for fname in files:
        data = read_json(os.path.join(root, fname))
        if data is not None and data.get("bridge"):
            out[str(data["bridge"])] = str(data.get("name") or fname[: -len(".json")])
    return out


class _Claims(Claims):
    """The runtime's state files name a namespace by inode or pid, before anyone."""

    def __init__(self, opts: Options) -> None:
        self.index = NetlensIndex(opts["netlens_state_dir"])

    def recorded(self, ns: Namespace) -> Container | None:
        nl = self.index.match(ns.handle.inode, ns.pids)
        if nl is None:
            return None
        return Container(
            id=f"netlens:{nl.id}",
            engine=Engine.NETLENS,
            name=nl.name,
            netns=ns.id,
            engine_id=nl.id,
            pid=nl.pid if nl.pid in ns.pids or not ns.pids else ns.lowest,
            pids=ns.pids,
            command=nl.command,
            image=nl.image,
            state=nl.state,
            cgroup=nl.cgroup,
            labels=nl.labels,
            privileged=nl.privileged,
        )


READER = EngineReader(
    name="netlens",
    options={"netlens_state_dir": None},  # None: $NETLENS_STATE_DIR or /run/netlens
    claims=_Claims,
    networks=lambda opts: bridge_networks(opts["netlens_state_dir"]),
)
