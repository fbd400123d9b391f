"""Creating containers: one lock, all children cloned first, one netlink batch, one commit.

Used by ``netlens run`` and, through :mod:`netlens_runtime.api`, by lab files.
Creation journals what it is about to make (``pending/``) and rolls back
everything it made when a step fails, so a failed create leaves nothing behind
and ``gc`` can finish the job after a SIGKILL.

Batch creation (:func:`create_containers`) is the fast path: the children set up
their filesystems in parallel, one netlink batch makes every host-side veth, one
small batch goes into each container namespace, one state commit and at most
one ``nft`` call.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import select
from typing import TYPE_CHECKING, Any

from netlens_runtime import (
    cgroups,
    hostlinks,
    hostview,
    ipam,
    leftovers,
    names,
    nat,
    netpolicy,
    seccomp,
    spawn,
    spawner,
    state,
    suggest,
)
from netlens_runtime.args import NetworkArgs
from netlens_runtime.errors import BadInput, Conflict, NotFound, RuntimeFailure, fault, require_root
from netlens_runtime.netlink import Netlink, ifindex
from netlens_runtime.networks import make_network
from netlens_runtime.prepare import Job, prepare

if TYPE_CHECKING:
    from netlens_runtime.args import ContainerLike


def create_container(spec: ContainerLike, attach: bool = False) -> dict[str, Any]:
    """Create and start one container; return its state record.

    ``attach=True`` keeps its stdout/stderr on ours (``netlens run`` without -d).
    """
    return _create([spec], attach)[0]


def create_containers(specs: list[ContainerLike]) -> list[dict[str, Any]]:
    """Create and start many containers at once; all or nothing."""
    return _create(specs, False)


def _create(specs: list[ContainerLike], attach: bool) -> list[dict[str, Any]]:
    require_root("creating containers")
    if not specs:
        return []
    jobs = [prepare(s, attach) for s in specs]
    seen: set[str] = set()
    for job in jobs:
        if job.spec.name in seen:
            raise BadInput(f"container name {job.spec.name} given twice")
        seen.add(job.spec.name)
    # The batch's root is built by a helper process (spawn.Template) while we
    # take the lock, allocate addresses and make cgroups.
    shared = [j.plan for j in jobs if _templated(j)]
    template = spawn.Template(hostview.merge_skeletons(shared)) if len(shared) > 1 else None
    try:
        return _create_locked(jobs, template)
    finally:
        if template is not None:
            template.close()


def _create_locked(jobs: list[Job], template: spawn.Template | None) -> list[dict[str, Any]]:
    """The rest of :func:`_create`, under the state lock."""
    with state.locked():
        leftovers.gc_pending()
        for job in jobs:
            if os.path.exists(state.container_path(job.spec.name)):
                raise Conflict(f"container {job.spec.name} already exists")
        networks = state.load_networks()
        touched: set[str] = set()
        for job in jobs:
            netname = job.spec.network
            if netname is None:
                continue
            if netname not in networks:
                if netname != names.DEFAULT_NETWORK:
                    raise NotFound(f"no network {netname!r}{suggest.hint(netname, 'networks')}")
                make_network(NetworkArgs(names.DEFAULT_NETWORK), networks)
            job.net = networks[netname]
            touched.add(netname)
        _allocate(jobs, networks)
        journal = state.write_pending([j.spec.name for j in jobs])
        try:
            records = _build(jobs, template)
            for netname in touched:
                state.write_json(state.network_path(netname), networks[netname])
            if any(j.publish for j in jobs):
                nat.sync(list(networks.values()))
                netpolicy.sync_localnet([networks[n] for n in touched])
        except BaseException:
            _rollback(jobs)
            for netname in touched:  # undo allocations in memory and on disk
                net = networks[netname]
                for job in jobs:
                    if job.ip:
                        net["allocations"].pop(job.ip, None)
                    net["published"].pop(job.spec.name, None)
            with contextlib.suppress(OSError):
                for netname in touched:
                    state.write_json(state.network_path(netname), networks[netname])
            raise
        finally:
            state.retire(journal)
    return records


def _allocate(jobs: list[Job], networks: dict[str, dict[str, Any]]) -> None:
    """Addresses for every job, requested ones first (:func:`ipam.allocate_batch`)."""
    members: dict[str, list[Job]] = {}
    for job in jobs:
        if job.net is not None:
            members.setdefault(job.net["name"], []).append(job)
    for netname, group in members.items():
        net = networks[netname]
        subnet = ipaddress.IPv4Network(net["subnet"])
        wanted = [j.spec.ip for j in group]
        for job, ip in zip(
            group,
            ipam.allocate_batch(subnet, net["gateway"], net["allocations"], wanted),
            strict=True,
        ):
            job.ip = ip
            net["allocations"][ip] = job.spec.name
    for job in jobs:
        if job.net is None:
            continue
        net = job.net
        job.host_veth = names.host_veth_name(job.spec.name, state.scope())
        for pub in job.publish:
            pub["ip"] = job.ip
        if job.publish:
            from netlens_runtime import ports  # socket, subprocess: only when publishing

            # Once per host, whatever the network; only the host's own free addresses.
            ports.check(job.spec.name, job.publish, net, networks)
            net["published"][job.spec.name] = job.publish


def _raise_nofile(jobs: list[Job]) -> None:
    """Pipe ends per child stay open until exec: lift the soft fd limit if needed.

    Two per child stay with us; the other two pass through the spawner. The
    children get the old limit back before exec.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 4 * len(jobs) + 256
    if need > soft and (hard == resource.RLIM_INFINITY or need <= hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
        for job in jobs:
            job.plan.nofile = (soft, hard)


SPAWNER_MIN = 24  # below this a helper process's start-up costs more than it saves


def _use_spawner(jobs: list[Job]) -> bool:
    """Clone from a small helper (see spawner.start_many) for big batches without --rootfs.

    NETLENS_SPAWNER=1 or 0 forces it on or off (tests use both paths).
    """
    forced = os.environ.get("NETLENS_SPAWNER")
    if not all(_templated(j) for j in jobs):
        return False
    if forced in ("0", "1"):
        return forced == "1"
    return len(jobs) >= SPAWNER_MIN


def _templated(job: Job) -> bool:
    """The job's root is the batch template's (the default view, not --rootfs, layers or full)."""
    return not job.rootfs and not job.plan.layers and job.plan.host_view == hostview.DEFAULT_VIEW


def _helpers(n: int) -> int:
    """How many spawner helpers clone a batch of ``n`` (NETLENS_SPAWNERS=<k>, default 1).

    On the 2-core reference VM a second helper did not pay: creation is CPU
    bound there (namespaces, exec, copy-on-write faults keep both cores busy)
    and 300-node batches were 8.0 ms/node with one helper, 9.2 with two. On
    more cores it may (each helper costs a Python start, ~20 ms of one core).
    """
    forced = os.environ.get("NETLENS_SPAWNERS", "")
    if forced.isdigit() and int(forced) > 0:
        return min(int(forced), n)
    return 1


def _links_for(host: Netlink, chunk: list[Job], bridges: dict[str, int]) -> None:
    """Wait for the chunk's children's namespaces, then give each its veth (eth0).

    The host end goes on the bridge with IPv6 off (see
    :func:`netlens_runtime.hostlinks.no_ipv6`) before it is brought up.
    """
    for job in chunk:  # each child made its own network namespace, in parallel
        assert job.child is not None
        err = job.child.wait_ready()
        if err:
            raise RuntimeFailure(err)
        job.netns_inode = os.stat(f"/proc/{job.child.pid}/ns/net").st_ino
    made = []
    for job in chunk:
        if job.net is None or job.host_veth is None or job.child is None:
            continue
        br = job.net["bridge"]
        if br not in bridges:
            bridges[br] = ifindex(br)
        host.add_veth(
            job.host_veth,
            "eth0",
            peer_netns_pid=job.child.pid,
            master=bridges[br],
            mtu=int(job.net.get("mtu") or 1500),
            peer_index=2,
            up=False,
        )
        made.append(job.host_veth)
    if not made:
        return
    host.commit()
    for link in made:
        hostlinks.no_ipv6(link)
    for link in made:
        host.set_up_by_name(link)
    host.commit()


def _early_error(jobs: list[Job]) -> str:
    """The error text of a child that failed after reporting READY (e.g. a volume), if any.

    Until ``go`` a live child writes nothing more, so anything readable now is
    an error report (or EOF: it died without one).
    """
    poller = select.poll()  # not select(): a big batch has fds beyond FD_SETSIZE
    names_by_fd = {}
    for job in jobs:
        if job.child is not None and job.child.err_r >= 0:
            poller.register(job.child.err_r, select.POLLIN)
            names_by_fd[job.child.err_r] = job.spec.name
    for fd, _ in poller.poll(0):
        text = os.read(fd, 4096).decode(errors="replace")
        return text or f"{names_by_fd[fd]}: the container's setup process exited early"
    return ""


def _build(jobs: list[Job], template: spawn.Template | None) -> list[dict[str, Any]]:
    """Make cgroups, PID 1s, links; release the children; write records.

    ``template`` (for batches of more than one default-view container) is
    closed once every child is cloned: each has its own fd of it.
    """
    if 4 * len(jobs) + 256 > 1024:
        _raise_nofile(jobs)
    for job in jobs:  # the children open (create) their logs: give them pooled files
        log = job.plan.log_path
        if log is not None and not os.path.lexists(log):
            state.reuse(log, 0o640)
    tini_fd = spawn.open_tini()
    try:
        for job in jobs:
            if job.net is not None:
                prefix = ipaddress.IPv4Network(job.net["subnet"]).prefixlen
                job.plan.addr = f"{job.ip}/{prefix}"
                # An internal network has no way out: no default route either.
                job.plan.gateway = None if job.net.get("internal") else job.net["gateway"]
            spawn.prepare_netlink(job.plan)
        v2_dirs: list[str | None] = []
        for job in jobs:
            leaf = names.cgroup_leaf(job.spec.name, state.scope())
            job.cgroup_dirs = cgroups.create(leaf, job.memory, job.cpus, job.pids)
            v2, job.join_dirs = cgroups.split_v2(job.cgroup_dirs)
            v2_dirs.append(v2)
        if template is not None:
            template.wait()
        if template is not None and _use_spawner(jobs):
            children = spawner.start_many(
                [j.plan for j in jobs], tini_fd, v2_dirs, template.fd, _helpers(len(jobs))
            )
            for job, child in zip(jobs, children, strict=True):
                job.child = child
        else:
            for job, v2 in zip(jobs, v2_dirs, strict=True):
                cg_fd = os.open(v2, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if v2 else -1
                try:
                    tfd = template.fd if template is not None and _templated(job) else -1
                    job.child = spawn.start(job.plan, tini_fd, cg_fd, tfd)
                finally:
                    if cg_fd >= 0:
                        os.close(cg_fd)
    finally:
        os.close(tini_fd)
        if template is not None:
            template.close()
    fault("after_clone")
    bridges: dict[str, int] = {}
    with Netlink() as host:
        stale = [j.host_veth for j in jobs if j.host_veth and hostlinks.exists(j.host_veth)]
        for link in stale:
            host.del_link(link)
        host.commit(ignore=(19,))
        # One batch, then every child released. Releasing in chunks of 25 (their
        # exec overlapping our next chunk's links) was slower, 3.6 against 3.2
        # ms/node at 100: the children's eth0 setup and our link creation both
        # take the rtnl lock, and its waiters spin on the other core.
        try:
            _links_for(host, jobs, bridges)
        except OSError as failed:
            why = _early_error(jobs)
            if why:  # a child that died says why; our veth only missed its namespace
                raise RuntimeFailure(why) from failed
            raise
    fault("after_veth")
    for job in jobs:
        assert job.child is not None
        cgroups.join(job.join_dirs, job.child.pid)
    fault("before_exec")
    for job in jobs:
        assert job.child is not None
        job.child.release()
    # While the children exec, write their records to temporary files (on an
    # ext4 /run that churns files, allocating the inode costs ~0.8 ms a file);
    # they are renamed into place once every child has exec'd.
    staged: list[tuple[str, str]] = []
    try:
        created = state.now()
        records = [_record(job, created) for job in jobs]
        for rec in records:
            path = state.container_path(rec["name"])
            staged.append((state.stage_json(path, rec), path))
        errors = []
        for job in jobs:
            assert job.child is not None
            err = job.child.result()
            if err:
                errors.append(err)
        if errors:
            raise RuntimeFailure(
                errors[0] + (f" (and {len(errors) - 1} more)" if errors[1:] else "")
            )
        fault("after_exec")
        while staged:
            tmp, path = staged[-1]
            os.rename(tmp, path)
            staged.pop()
    finally:
        for tmp, _ in staged:
            state.retire(tmp)
    fault("after_commit")
    return records


def _record(job: Job, created: str) -> dict[str, Any]:
    """The state record of a container whose PID 1 is about to exec."""
    assert job.child is not None
    spec = job.spec
    rec: dict[str, Any] = {
        "name": spec.name,
        "id": os.urandom(32).hex(),
        "pid": job.child.pid,
        "netns_inode": job.netns_inode,
        "network": spec.network,
        "ip": job.ip,
        "gateway": job.plan.gateway if job.net else None,
        "bridge": job.net["bridge"] if job.net else None,
        "rootfs": job.rootfs,
        "layers": list(job.plan.layers),
        "command": list(spec.command),
        "labels": dict(spec.labels),
        "env": dict(spec.env),
        "created": created,
        "state": "running",
        "cgroup": cgroups.cgroup_path(names.cgroup_leaf(spec.name, state.scope())),
        "cgroup_dirs": job.cgroup_dirs,
        "host_veth": job.host_veth if job.net else None,
        "hostname": job.plan.hostname,
        "memory": job.memory,
        "cpus": job.cpus,
        "pids_limit": job.pids,
        "log_size": job.plan.log_max if job.plan.log_path else None,
        "publish": job.publish,
        "cap_add": list(spec.cap_add),
        "caps": job.plan.caps,
        "privileged": job.plan.privileged,
        "seccomp": job.seccomp,
        "seccomp_filter": seccomp.cache_file(job.seccomp, job.plan.caps),
        "sysctls": dict(spec.sysctls),
        "host_view": None if job.rootfs or job.plan.layers else job.plan.host_view,
        "volumes": [
            dict(zip(("host", "container", "read_only"), names.parse_volume(v), strict=True))
            for v in spec.volumes
        ],
        "log": job.plan.log_path,
        "links": [],
    }
    job.record = rec
    return rec


def _rollback(jobs: list[Job]) -> None:
    """Undo everything a failed create made, in reverse order."""
    for job in jobs:
        if job.child is not None:
            job.child.abort()
    # Host veths go with their namespaces (the kernel tears those down in one
    # batch); deleting each by hand costs ~20 ms (an RCU grace period) apiece.
    for job in jobs:
        cgroups.remove(job.cgroup_dirs)
        state.retire(state.container_path(job.spec.name))
        if job.plan.log_path:
            state.remove_logs(job.spec.name)
