"""``lab stop|start|restart LAB [NODE...]``: stop a node's command, keep its wiring.

A stopped node keeps its network namespace (held by :mod:`netlens_runtime.nshold`)
and so everything in it: eth0 on its bridge, point-to-point links and their
peers, extra legs, addresses, routes, impairments (qdiscs, loss tables), link
state. Containerlab parks a stopped node's veths in a namespace of its own for
the same reason: a lab whose cables vanish when a node reboots is not a lab.

``stop`` holds each namespace first, then SIGTERMs every node's PID 1 at once
(tini forwards it) and SIGKILLs what is left after the grace period, as
``netlens stop`` does. ``start`` clones a new PID 1 per node that joins the held
namespace instead of making one (spawn.Plan.netns_path) and is otherwise set up
exactly as at creation, from the container's record: the same command,
environment, hostname, capabilities, seccomp filter (the compiled program the
record names), cgroup (its limits stay in the directories, which outlive the
processes), root filesystem, host view, volumes and sysctls. PID, mount, UTS and
IPC namespaces are new, as after ``docker restart``: a PID namespace dies with
its init, and with it the node's /proc and scratch tmpfs (/tmp, /run). A start
is all or nothing: if one node's setup or exec fails, every PID 1 it cloned is
killed and the nodes stay stopped, their namespaces held.

Both are idempotent, like Docker's: starting a running node or stopping a
stopped one says so and succeeds.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from netlens_runtime import (
    cgroups,
    hostview,
    lab_record,
    liveness,
    names,
    nshold,
    overlay,
    seccomp,
    spawn,
    state,
    suggest,
)
from netlens_runtime.errors import Conflict, NotFound, RuntimeFailure, fault, require_root

_WHY_ROOT = "it signals the nodes' processes and enters their namespaces"

Target = tuple[str, dict[str, Any]]
"""(lab-local node name, the node's container record)."""


def _targets(lab: str, nodes: list[str]) -> list[tuple[str, str]]:
    """(node, container name) of ``nodes`` of ``lab`` (all of them when empty), in order.

    NotFound with a did-you-mean for a lab or node that is not there; a node may
    also be named by its container name (``<lab>-<node>``).
    """
    names.validate_name(lab, "lab")
    rec = lab_record.read_record(lab)
    if rec is None:
        raise NotFound(f"no lab named {lab!r}{suggest.hint(lab, 'labs')} (see 'netlens lab ls')")
    if rec.status != "up":
        raise Conflict(f"lab {lab!r} is not up (its record says {rec.status!r})")
    if not nodes:
        return list(rec.nodes.items())
    by_container = {real: node for node, real in rec.nodes.items()}
    out: list[tuple[str, str]] = []
    for want in nodes:
        node = want if want in rec.nodes else by_container.get(want)
        if node is None:
            hint = suggest.among(want, sorted(rec.nodes))
            raise NotFound(f"lab {lab!r} has no node {want!r}{hint}")
        if (node, rec.nodes[node]) not in out:
            out.append((node, rec.nodes[node]))
    return out


def node_container(lab: str, node: str) -> str:
    """The container name of ``node`` of ``lab`` (NotFound with a did-you-mean)."""
    ((_, real),) = _targets(lab, [node])
    return real


def _load(lab: str, targets: list[tuple[str, str]]) -> list[Target]:
    """The targets' container records (under the state lock)."""
    out: list[Target] = []
    for node, real in targets:
        crec = state.load_container(real)
        if crec is None:
            raise NotFound(f"lab {lab!r}: node {node!r} has no container (see 'netlens ps -a')")
        out.append((node, crec))
    return out


# ---------------------------------------------------------------------- stop


def stop_nodes(lab: str, nodes: list[str], timeout: float = 10.0) -> list[str]:
    """Stop the nodes' commands, keep their namespaces; one line per node."""
    require_root("lab stop", _WHY_ROOT)
    targets = _targets(lab, nodes)
    said: dict[str, str] = {}
    with state.locked():
        running: list[Target] = []
        for node, crec in _load(lab, targets):
            if liveness.is_running(crec) and liveness.in_own_cgroup(crec):
                running.append((node, crec))
            elif nshold.held(crec):
                if crec.get("pid"):  # its command ended on its own since a start
                    _mark_stopped(crec)
                said[node] = "is already stopped"
            else:
                said[node] = "is not running (its namespace went with its command)"
        _hold_all(lab, running)
        recs = [crec for _, crec in running]
        pids = liveness.signal_all(recs, signal.SIGTERM)
        left = liveness.wait_dead(pids, timeout)
        if left:
            liveness.signal_all([r for r in recs if int(r["pid"]) in left], signal.SIGKILL)
            left = liveness.wait_dead(left, 5.0)
        stuck = []
        for node, crec in running:
            if int(crec["pid"]) in left:
                stuck.append(node)
                continue
            _mark_stopped(crec)
            said[node] = "stopped"
    if stuck:
        raise RuntimeFailure(f"lab {lab!r}: {', '.join(stuck)} did not exit after SIGKILL")
    return [f"{lab}: {node} {said[node]}" for node, _ in targets]


def _mark_stopped(crec: dict[str, Any]) -> None:
    """Record a node as stopped: no pid (a pid number is reused: no stale one for
    ``ps``, signals or the inspector, which then knows it by its namespace's inode)."""
    crec.update(state="exited", pid=0, finished=state.now())
    state.write_json(state.container_path(str(crec["name"])), crec)


def _hold_all(lab: str, running: list[Target]) -> None:
    """Hold every running target's namespace; on failure release the ones held here."""
    made: list[str] = []
    for node, crec in running:
        name = str(crec["name"])
        if nshold.held(crec):
            continue  # held since an earlier stop
        try:
            nshold.hold(name, int(crec["pid"]), int(crec["netns_inode"]))
        except OSError as err:
            for other in made:
                nshold.release(other)
            why = err.strerror or str(err)
            raise RuntimeFailure(
                f"lab {lab!r}: cannot hold {node}'s network namespace: {why}"
            ) from None
        made.append(name)


# --------------------------------------------------------------------- start


def start_nodes(lab: str, nodes: list[str]) -> list[str]:
    """Run the stopped nodes' commands again in their held namespaces; one line per node."""
    require_root("lab start", _WHY_ROOT)
    targets = _targets(lab, nodes)
    said: dict[str, str] = {}
    with state.locked():
        todo: list[Target] = []
        for node, crec in _load(lab, targets):
            if liveness.is_running(crec):
                said[node] = "is already running"
            elif nshold.held(crec):
                todo.append((node, crec))
            else:
                raise _gone(lab, node)
        if todo:
            _start(todo)
            said.update((node, "started") for node, _ in todo)
    return [f"{lab}: {node} {said[node]}" for node, _ in targets]


def _gone(lab: str, node: str) -> Conflict:
    return Conflict(
        f"lab {lab!r}: {node} cannot start: its network namespace is gone (its command"
        " ended before any 'lab stop', or 'netlens stop' stopped it); rebuild it with"
        f" 'netlens lab down {lab}' and 'lab up'"
    )


def restart_nodes(lab: str, nodes: list[str], timeout: float = 10.0) -> list[str]:
    """``stop`` then ``start``: the nodes' commands run again, their wiring untouched."""
    require_root("lab restart", _WHY_ROOT)
    with state.locked():  # a node that could not start again is not stopped either
        for node, crec in _load(lab, _targets(lab, nodes)):
            if not liveness.is_running(crec) and not nshold.held(crec):
                raise _gone(lab, node)
    stop_nodes(lab, nodes, timeout)
    return [line.replace(" started", " restarted") for line in start_nodes(lab, nodes)]


class _Start:
    """One node being started: its plan, cgroups and cloned PID 1."""

    def __init__(self, crec: dict[str, Any]) -> None:
        self.rec = crec
        self.plan = plan_from_record(crec)
        self.v2: str | None = None
        self.join: list[str] = []
        self.child: spawn.Child | None = None


def _start(todo: list[Target]) -> None:
    """Clone every node's PID 1 into its held namespace, release them together.

    All or nothing: every child is killed when any fails, and the records say
    stopped again.
    """
    jobs = [_Start(crec) for _, crec in todo]  # BadInput (a volume gone) before anything runs
    # As lab up does: several default-view nodes copy one small mount namespace
    # (spawn.Template) instead of the host's whole mount table each.
    shared = [j.plan for j in jobs if _templated(j.plan)]
    template = spawn.Template(hostview.merge_skeletons(shared)) if len(shared) > 1 else None
    tini_fd = -1
    try:
        tini_fd = spawn.open_tini()
        if template is not None:
            template.wait()
        for job in jobs:
            job.v2, job.join = cgroups.split_v2(_cgroup_dirs(job.rec))
            cg_fd = -1
            if job.v2:
                cg_fd = os.open(job.v2, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            tfd = template.fd if template is not None and _templated(job.plan) else -1
            try:
                job.child = spawn.start(job.plan, tini_fd, cg_fd, tfd)
            finally:
                if cg_fd >= 0:
                    os.close(cg_fd)
        if template is not None:
            template.close()  # every child has its copy
        for job in jobs:
            assert job.child is not None
            err = job.child.wait_ready()
            if err:
                raise RuntimeFailure(err)
            if liveness.netns_inode(job.child.pid) != job.rec["netns_inode"]:
                raise RuntimeFailure(f"{job.plan.name}: its PID 1 is not in the held namespace")
            cgroups.join(job.join, job.child.pid)
        # Recorded before they may exec: killed before that, we take them along
        # (they die with us until exec) and the records' pids are dead, so the
        # nodes read as stopped; killed after it, the records name what runs.
        started = state.now()
        for job in jobs:
            assert job.child is not None
            job.rec.update(pid=job.child.pid, state="running", started=started)
            state.write_json(state.container_path(job.plan.name), job.rec)
        fault("lab_start_before_exec")
        for job in jobs:
            assert job.child is not None
            job.child.release()
        errors = [e for e in (j.child.result() for j in jobs if j.child is not None) if e]
        if errors:
            more = f" (and {len(errors) - 1} more)" if errors[1:] else ""
            raise RuntimeFailure(errors[0] + more)
        fault("lab_start_after_exec")
    except BaseException:
        for job in jobs:
            if job.child is not None:
                job.child.abort()
        for job in jobs:  # a record written before the failure says stopped again
            if job.child is not None and job.rec.get("pid") == job.child.pid:
                _mark_stopped(job.rec)
        raise
    finally:
        if tini_fd >= 0:
            os.close(tini_fd)
        if template is not None:
            template.close()


def _templated(plan: spawn.Plan) -> bool:
    """The node's root is the default view (what a batch's template holds)."""
    return not plan.rootfs and not plan.layers and plan.host_view == hostview.DEFAULT_VIEW


def _cgroup_dirs(crec: dict[str, Any]) -> list[str]:
    """The node's cgroup directories, with their limits: the record's (they outlive the
    processes), made again from the record's limits if one was removed meanwhile."""
    dirs = [str(d) for d in crec.get("cgroup_dirs") or []]
    if all(os.path.isdir(d) for d in dirs):
        return dirs
    cgroups.remove(dirs, wait=0)
    leaf = names.cgroup_leaf(str(crec["name"]), state.scope())
    dirs = cgroups.create(leaf, crec.get("memory"), crec.get("cpus"), crec.get("pids_limit"))
    crec["cgroup_dirs"] = dirs
    return dirs


def plan_from_record(crec: dict[str, Any]) -> spawn.Plan:
    """The child's plan for a container made before, from its record: what
    :func:`netlens_runtime.prepare.prepare` computed from its spec then.

    Inputs that may have changed on the host since (a volume's or the root
    filesystem's host path) are checked again: BadInput in one line. A record
    without the confinement it was made with (written by an older netlens) is
    refused rather than started with less.
    """
    name = str(crec["name"])
    caps = crec.get("caps")
    if not isinstance(caps, int) or (crec.get("seccomp") is None and not crec.get("privileged")):
        raise RuntimeFailure(
            f"{name}: its record does not say how it was confined (made by an older"
            " netlens): remove it and create it again"
        )
    hostname = str(crec.get("hostname") or name)
    env = {"PATH": spawn.DEFAULT_PATH, "HOSTNAME": hostname, "HOME": "/root"}
    env.update((str(k), str(v)) for k, v in (crec.get("env") or {}).items())
    rootfs = names.validate_rootfs(str(crec["rootfs"])) if crec.get("rootfs") else None
    layers = [str(x) for x in crec.get("layers") or []]
    if layers:  # the image's layers, checked again: the store may have changed since
        layers = overlay.validate_layers(layers)
    view = str(crec.get("host_view") or hostview.DEFAULT_VIEW)
    texts = [
        f"{v['host']}:{v['container']}" + (":ro" if v.get("read_only") else "")
        for v in crec.get("volumes") or []
    ]
    own_root = rootfs if rootfs is not None else (layers[0] if layers else None)
    volumes, skeleton = hostview.place_volumes(texts, view, own_root)
    sysctls = [
        ("/proc/sys/" + names.validate_sysctl(k).replace(".", "/"), str(v))
        for k, v in (crec.get("sysctls") or {}).items()
    ]
    plan = spawn.Plan(
        name=name,
        hostname=hostname,
        argv=[str(a) for a in crec["command"]],
        env=env,
        caps=caps,
        rootfs=rootfs,
        log_path=state.log_path(name) if crec.get("log") else None,
        sysctls=sysctls,
        host_view=view,
        volumes=volumes,
        skeleton=skeleton,
        layers=layers,
    )
    plan.log_max = int(crec.get("log_size") or names.LOG_SIZE_DEFAULT)
    plan.privileged = bool(crec.get("privileged"))
    plan.seccomp = _filter(crec, caps)
    plan.netns_path = nshold.handle_path(name)
    return plan


def _filter(crec: dict[str, Any], caps: int) -> bytes | None:
    """The seccomp program the container was made with: the compiled one its record
    names (the state directory's cache, if still there and ours), else its profile
    compiled again for its capabilities; None when it runs unconfined."""
    profile = crec.get("seccomp")
    if crec.get("privileged") or profile == seccomp.UNCONFINED:
        return None
    path = crec.get("seccomp_filter")
    bpf = seccomp.load_cached(str(path)) if path else None
    return bpf if bpf is not None else seccomp.program(str(profile), caps)
