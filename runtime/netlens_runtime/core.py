"""The runtime's engine: networks and containers (public face: :mod:`netlens_runtime.api`).

Used by ``netlens run/ps/rm/...`` and, through runtime.api, by lab files. It
does not import ``dataclasses`` (whose ``inspect`` import costs ~10 ms of the
150 ms budget of ``netlens run``); the API module adds the dataclass specs. Every mutation holds the
state lock, journals what it is about to make (``pending/``), and rolls back
everything it made when a step fails, so a failed create leaves nothing behind
and ``gc`` can finish the job after a SIGKILL.

Batch creation (:func:`create_containers`) is the fast path: one lock, all
children cloned first (they set up their filesystems in parallel), one
netlink batch for every host-side veth, one small batch per container
namespace, one state commit and at most one ``nft`` call.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import select
import signal
import time
from typing import TYPE_CHECKING, Any

from netlens_runtime import cgroups, hostview, ipam, names, nat, netpolicy, seccomp, spawn, state
from netlens_runtime.errors import BadInput, Conflict, NeedsRoot, NotFound, RuntimeFailure
from netlens_runtime.netlink import Netlink, NetlinkError, ifindex

if TYPE_CHECKING:
    from typing import Protocol

    class NetworkLike(Protocol):
        """What network creation reads: api.NetworkSpec or :class:`NetworkArgs`."""

        name: str
        subnet: str | None
        gateway: str | None
        nat: bool
        mtu: int
        bridge: str | None
        internal: bool
        allow_from: list[str]

    class ContainerLike(Protocol):
        """What container creation reads: api.ContainerSpec or :class:`ContainerArgs`."""

        name: str
        command: list[str]
        network: str | None
        ip: str | None
        memory: str | None
        cpus: float | None
        publish: list[str]
        env: dict[str, str]
        labels: dict[str, str]
        cap_add: list[str]
        rootfs: str | None
        sysctls: dict[str, str]
        hostname: str | None
        volumes: list[str]
        host_view: str
        privileged: bool
        security_opt: list[str]


class NetworkArgs:
    """Plain twin of api.NetworkSpec (no dataclasses import on the CLI's fast path)."""

    def __init__(
        self,
        name: str,
        subnet: str | None = None,
        gateway: str | None = None,
        nat: bool = True,
        mtu: int = 1500,
        bridge: str | None = None,
        internal: bool = False,
        allow_from: list[str] | None = None,
    ) -> None:
        self.name, self.subnet, self.gateway = name, subnet, gateway
        self.nat, self.mtu, self.bridge = nat, mtu, bridge
        self.internal, self.allow_from = internal, list(allow_from or [])


class ContainerArgs:
    """Plain twin of api.ContainerSpec, same fields and defaults."""

    def __init__(
        self,
        name: str,
        command: list[str] | None = None,
        network: str | None = "default",
        ip: str | None = None,
        memory: str | None = None,
        cpus: float | None = None,
        publish: list[str] | None = None,
        pids_limit: int | str | None = None,
        log_size: int | str | None = None,
        env: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        cap_add: list[str] | None = None,
        rootfs: str | None = None,
        sysctls: dict[str, str] | None = None,
        hostname: str | None = None,
        volumes: list[str] | None = None,
        host_view: str = hostview.DEFAULT_VIEW,
        privileged: bool = False,
        security_opt: list[str] | None = None,
    ) -> None:
        self.name = name
        self.command = command if command is not None else ["sleep", "infinity"]
        self.network, self.ip, self.memory, self.cpus = network, ip, memory, cpus
        self.pids_limit, self.log_size = pids_limit, log_size
        self.publish = publish or []
        self.env = env or {}
        self.labels = labels or {}
        self.cap_add = cap_add or []
        self.rootfs = rootfs
        self.sysctls = sysctls or {}
        self.hostname = hostname
        self.volumes = volumes or []
        self.host_view = host_view
        self.privileged = privileged
        self.security_opt = security_opt or []


def require_root(
    what: str = "the netlens runtime", why: str = "it creates namespaces, links and cgroups"
) -> None:
    """NeedsRoot (one line: what needs root and ``why``) unless we are root."""
    if os.geteuid() != 0:
        raise NeedsRoot(f"{what} needs root ({why})")


def _now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def _fault(point: str) -> None:
    """Test hook: ``NETLENS_FAULT=<point>`` fails (or ``hang_<point>`` hangs) there."""
    fault = os.environ.get("NETLENS_FAULT")
    if not fault:
        return
    if fault == point:
        raise RuntimeFailure(f"injected fault at {point}")
    if fault == f"hang_{point}":
        time.sleep(3600)


# --- liveness -------------------------------------------------------------------


def netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


_OWN_NETNS: list[int | None] = []


def is_running(rec: dict[str, Any]) -> bool:
    """The record's PID 1 is alive and still the same process (netns inode matches).

    A container never shares our network namespace: a record naming a process
    of ours (the host's, say) is not a running container, whatever it says.
    """
    pid = rec.get("pid")
    if not pid:
        return False
    ino = netns_inode(int(pid))
    if not _OWN_NETNS:
        _OWN_NETNS.append(netns_inode(os.getpid()))
    if ino is None or ino != rec.get("netns_inode") or ino == _OWN_NETNS[0]:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# --- networks -------------------------------------------------------------------


def taken_subnets(
    networks: dict[str, dict[str, Any]],
) -> list[tuple[str, ipaddress.IPv4Network]]:
    """(label, subnet) of every network and every other host route: what a new
    network's subnet must not overlap (``network create``, ``lab up``, ``lab check``)."""
    own = {ipaddress.IPv4Network(n["subnet"]) for n in networks.values()}
    taken = [(f"network {k}", ipaddress.IPv4Network(n["subnet"])) for k, n in networks.items()]
    taken += [("a host route", r) for r in ipam.host_routes() if r not in own]
    return taken


def _make_network(spec: NetworkLike, networks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Create bridge, address, rules and record; caller holds the lock."""
    names.validate_name(spec.name, "network")
    if spec.name in networks:
        raise Conflict(f"network {spec.name} already exists")
    bridge = names.validate_ifname(spec.bridge or names.bridge_name(spec.name, state.scope()))
    if os.path.exists(f"/sys/class/net/{bridge}"):
        raise Conflict(f"interface {bridge} already exists")
    if not 68 <= spec.mtu <= 65535:
        raise BadInput(f"invalid mtu {spec.mtu}")
    taken = taken_subnets(networks)
    if spec.subnet:
        subnet = ipam.parse_subnet(spec.subnet)
        ipam.check_free(subnet, taken)
    else:
        subnet = ipam.pick_subnet(taken)
    gateway = ipam.gateway_for(subnet, spec.gateway)
    rec: dict[str, Any] = {
        "name": spec.name,
        "bridge": bridge,
        "subnet": str(subnet),
        "gateway": gateway,
        "nat": spec.nat and not spec.internal,
        "internal": spec.internal,
        "allow_from": netpolicy.check_allow_from(spec.name, spec.allow_from),
        "mtu": spec.mtu,
        "created": _now(),
        "allocations": {},
        "published": {},
    }
    made_bridge = False
    try:
        with Netlink() as nl:
            nl.add_bridge(bridge, spec.mtu)
            nl.commit()
            made_bridge = True
            nl.add_addr(ifindex(bridge), f"{gateway}/{subnet.prefixlen}")
            nl.commit()
        if rec["nat"]:
            nat.need_forwarding()
        state.write_json(state.network_path(spec.name), rec)
        nat.sync([*networks.values(), rec])
        rec["iptables_forward"] = nat.allow_forward(bridge)
        _fault("network_rules")
        state.write_json(state.network_path(spec.name), rec)
    except BaseException:
        state.remove_file(state.network_path(spec.name))
        if made_bridge:
            _del_links([bridge])
        with contextlib.suppress(RuntimeFailure):
            nat.sync(list(networks.values()))
        nat.disallow_forward(bridge)
        with contextlib.suppress(OSError):
            nat.release_forwarding(list(networks.values()))
        raise
    networks[spec.name] = rec
    return rec


def _del_links(links: list[str]) -> None:
    with contextlib.suppress(OSError), Netlink() as nl:
        for link in links:
            nl.del_link(link)
        nl.commit(ignore=(19,))  # ENODEV: already gone


def delete_links(links: list[str]) -> None:
    """Delete many host links at once: tag them with a fresh link group, delete the group.

    A group goes in one unregister batch instead of one per link (100 nodes:
    3.0 ms/node against 3.4-4.8 one by one; what is left is mostly the kernel
    walking the host's IPv6 routing table once per device, whoever deletes
    it). The group number is random in a range nothing else here uses;
    setting it is cheap, and a link that vanished meanwhile (its namespace's
    teardown took it) is fine (ENODEV).
    """
    present = [link for link in links if _exists(link)]
    if not present:
        return
    if len(present) == 1:
        _del_links(present)
        return
    group = 0x40000000 | int.from_bytes(os.urandom(4), "little") & 0x3FFFFFFF
    with contextlib.suppress(OSError), Netlink() as nl:
        for link in present:
            nl.set_group(link, group)
        nl.commit(ignore=(19,))
        nl.del_group(group)
        nl.commit(ignore=(19,))


def create_network(spec: NetworkLike) -> dict[str, Any]:
    """Create a bridge network; Conflict if the name, bridge or subnet is taken."""
    require_root("network create")
    names.validate_name(spec.name, "network")
    with state.locked():
        return _make_network(spec, state.load_networks())


def remove_network(name: str) -> None:
    """Delete a network (bridge, rules, record); Conflict while containers use it.

    The last NAT network of the state directory also puts ``ip_forward`` back
    if netlens turned it on (:func:`runtime.nat.release_forwarding`).
    """
    require_root("network rm")
    names.validate_name(name, "network")
    with state.locked():
        networks = state.load_networks()
        net = networks.get(name)
        if net is None:
            raise NotFound(f"no network {name}")
        users = sorted(set((net.get("allocations") or {}).values()))
        users = [u for u in users if os.path.exists(state.container_path(u))]
        if users:
            raise Conflict(f"network {name} is used by containers: {', '.join(users[:5])}")
        del networks[name]
        _del_links([net["bridge"]])
        nat.disallow_forward(net["bridge"])
        nat.sync(list(networks.values()))
        state.remove_file(state.network_path(name))
        nat.release_forwarding(list(networks.values()))


def list_networks() -> list[dict[str, Any]]:
    out = []
    for net in state.load_networks().values():
        net = dict(net)
        net["containers"] = len(net.get("allocations") or {})
        out.append(net)
    return out


# --- containers -----------------------------------------------------------------


class _Job:
    """One container being created: its validated inputs and what was made so far."""

    def __init__(
        self,
        spec: ContainerLike,
        plan: spawn.Plan,
        memory: int | None,
        cpus: float | None,
        publish: list[dict[str, Any]],
        pids: int | None = None,
    ) -> None:
        self.spec = spec
        self.plan = plan
        self.memory = memory
        self.cpus = cpus
        self.pids = pids
        self.rootfs = plan.rootfs
        self.publish = publish
        self.seccomp = seccomp.DEFAULT  # the profile: default, unconfined or a file's path
        self.net: dict[str, Any] | None = None
        self.ip: str | None = None
        self.host_veth: str | None = None
        self.cgroup_dirs: list[str] = []
        self.join_dirs: list[str] = []
        self.child: spawn.Child | None = None
        self.netns_inode = 0
        self.record: dict[str, Any] | None = None


def _bounding() -> int:
    """Every capability we can pass on (a privileged container's set): our bounding set.

    Not simply all of them: a runtime started with fewer (a sandbox, a
    container) cannot grant what it lacks, and capset would fail.
    """
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16) & names.cap_mask(["ALL"])
    return names.cap_mask(["ALL"])


def _prepare(spec: ContainerLike, attach: bool) -> _Job:
    """Validate a spec (the rules of :mod:`netlens_runtime.names`) and compute the
    child's plan.

    No side effects, but for the seccomp cache (netlens_runtime.seccomp): a profile
    compiled here for the first time is kept in the state directory.
    """
    names.validate_name(spec.name)
    if spec.network is not None:
        names.validate_name(spec.network, "network")
    if not spec.command:
        raise BadInput("no command given")
    memory = names.parse_memory(spec.memory) if spec.memory else None
    cpus = names.parse_cpus(spec.cpus) if spec.cpus is not None else None
    pids: int | None = names.PIDS_DEFAULT
    explicit = getattr(spec, "pids_limit", None)
    if explicit is not None:
        pids = names.parse_pids_limit(explicit)
    if pids is not None and not cgroups.has_pids():
        if explicit is not None:
            raise BadInput("this host has no pids cgroup controller: --pids-limit cannot work")
        pids = None  # the default is a safety net where the host has one
    log_size = getattr(spec, "log_size", None)
    log_max = names.parse_log_size(log_size) if log_size is not None else names.LOG_SIZE_DEFAULT
    publish = [names.parse_publish(p) for p in spec.publish]
    if publish and spec.network is None:
        raise BadInput("--publish needs a network")
    privileged = bool(spec.privileged)
    profile = seccomp.parse_security_opts(list(spec.security_opt), privileged)
    caps = _bounding() if privileged else names.cap_mask(spec.cap_add)
    sysctls = [
        ("/proc/sys/" + names.validate_sysctl(k).replace(".", "/"), str(v))
        for k, v in spec.sysctls.items()
    ]
    rootfs = names.validate_rootfs(spec.rootfs) if spec.rootfs is not None else None
    if spec.host_view not in hostview.VIEWS:
        raise BadInput(f"invalid host view {spec.host_view!r}: use {' or '.join(hostview.VIEWS)}")
    if rootfs is not None and spec.host_view != hostview.DEFAULT_VIEW:
        raise BadInput("--host-view and --rootfs exclude each other: the root is DIR")
    volumes, skeleton = hostview.place_volumes(list(spec.volumes), spec.host_view, rootfs)
    hostname = spec.name  # a valid name fits a hostname's length
    if spec.hostname:
        hostname = names.validate_hostname(spec.hostname)
    env = {"PATH": spawn.DEFAULT_PATH, "HOSTNAME": hostname, "HOME": "/root"}
    env.update(names.validate_env(k, v) for k, v in spec.env.items())
    plan = spawn.Plan(
        name=spec.name,
        hostname=hostname,
        argv=list(spec.command),
        env=env,
        caps=caps,
        rootfs=rootfs,
        log_path=None if attach else state.log_path(spec.name),
        sysctls=sysctls,
        host_view=spec.host_view,
        volumes=volumes,
        skeleton=skeleton,
    )
    plan.log_max = log_max
    plan.privileged = privileged
    plan.seccomp = seccomp.program(profile, caps)  # cached: no compile per container
    job = _Job(spec, plan, memory, cpus, publish, pids)
    job.seccomp = profile
    return job


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
    jobs = [_prepare(s, attach) for s in specs]
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


def _create_locked(jobs: list[_Job], template: spawn.Template | None) -> list[dict[str, Any]]:
    """The rest of :func:`_create`, under the state lock."""
    with state.locked():
        _gc_pending()
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
                    raise NotFound(f"no network {netname}")
                _make_network(NetworkArgs(names.DEFAULT_NETWORK), networks)
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


def _allocate(jobs: list[_Job], networks: dict[str, dict[str, Any]]) -> None:
    """Addresses for every job, requested ones first (:func:`ipam.allocate_batch`)."""
    members: dict[str, list[_Job]] = {}
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


def _raise_nofile(jobs: list[_Job]) -> None:
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


def _use_spawner(jobs: list[_Job]) -> bool:
    """Clone from a small helper (see spawn.start_many) for big batches without --rootfs.

    NETLENS_SPAWNER=1 or 0 forces it on or off (tests use both paths).
    """
    forced = os.environ.get("NETLENS_SPAWNER")
    if not all(_templated(j) for j in jobs):
        return False
    if forced in ("0", "1"):
        return forced == "1"
    return len(jobs) >= SPAWNER_MIN


def _templated(job: _Job) -> bool:
    """The job's root is the batch template's (the default view, not --rootfs or full)."""
    return not job.rootfs and job.plan.host_view == hostview.DEFAULT_VIEW


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


def _links_for(host: Netlink, chunk: list[_Job], bridges: dict[str, int]) -> None:
    """Wait for the chunk's children's namespaces, then give each its veth (eth0).

    The host end goes on the bridge with IPv6 off (see :func:`_no_ipv6`) before
    it is brought up.
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
        _no_ipv6(link)
    for link in made:
        host.set_up_by_name(link)
    host.commit()


def _early_error(jobs: list[_Job]) -> str:
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


def _build(jobs: list[_Job], template: spawn.Template | None) -> list[dict[str, Any]]:
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
            children = spawn.start_many(
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
    _fault("after_clone")
    bridges: dict[str, int] = {}
    with Netlink() as host:
        stale = [j.host_veth for j in jobs if j.host_veth and _exists(j.host_veth)]
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
    _fault("after_veth")
    for job in jobs:
        assert job.child is not None
        cgroups.join(job.join_dirs, job.child.pid)
    _fault("before_exec")
    for job in jobs:
        assert job.child is not None
        job.child.release()
    # While the children exec, write their records to temporary files (on an
    # ext4 /run that churns files, allocating the inode costs ~0.8 ms a file);
    # they are renamed into place once every child has exec'd.
    staged: list[tuple[str, str]] = []
    try:
        created = _now()
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
        _fault("after_exec")
        while staged:
            tmp, path = staged[-1]
            os.rename(tmp, path)
            staged.pop()
    finally:
        for tmp, _ in staged:
            state.retire(tmp)
    _fault("after_commit")
    return records


def _record(job: _Job, created: str) -> dict[str, Any]:
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
        "host_view": None if job.rootfs else job.plan.host_view,
        "volumes": [
            dict(zip(("host", "container", "read_only"), names.parse_volume(v), strict=True))
            for v in spec.volumes
        ],
        "log": job.plan.log_path,
        "links": [],
    }
    job.record = rec
    return rec


def _no_ipv6(link: str) -> None:
    """No IPv6 on a host veth (a bridge port needs no address), set before it goes up.

    Bringing a link up with IPv6 on walks the host's whole IPv6 routing table
    (rt6_sync_up), adds link-local and multicast routes to it and sends
    probes into the bridge: with a thousand links on the host each walk
    visits ~3000 routes. With this and eth0's quiet IPv6 (see
    spawn.prepare_netlink), 1000 containers came up in 10 s instead of 16.
    """
    with (
        contextlib.suppress(OSError),
        open(f"/proc/sys/net/ipv6/conf/{link}/disable_ipv6", "w") as fh,
    ):
        fh.write("1")


def _exists(link: str) -> bool:
    return os.path.exists(f"/sys/class/net/{link}")


def _rollback(jobs: list[_Job]) -> None:
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


def _wait_dead(pids: list[int], timeout: float) -> list[int]:
    """Wait until every pid has exited (reaping our own children); return survivors."""
    fds: dict[int, int] = {}
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        try:
            fds[os.pidfd_open(pid)] = pid
        except OSError:
            continue
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    while fds:
        left_ms = int((deadline - time.monotonic()) * 1000)
        if left_ms <= 0:
            break
        for fd, _ in poller.poll(left_ms):
            pid = fds.pop(fd)
            poller.unregister(fd)
            os.close(fd)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
    for fd in fds:
        os.close(fd)
    return list(fds.values())


def _in_own_cgroup(rec: dict[str, Any]) -> bool:
    """The record's pid is in the container's own cgroup (checked before a signal:
    a pid number is only a number, and a record only a file)."""
    try:
        with open(f"/proc/{int(rec['pid'])}/cgroup") as fh:
            text = fh.read()
    except OSError:
        return False
    if not rec.get("cgroup_dirs"):
        return not cgroups.tracks()  # a host where a container may have no cgroup
    want = cgroups.cgroup_path(names.cgroup_leaf(str(rec["name"]), state.scope()))
    return any(line.endswith(f":{want}") for line in text.splitlines())


def _signal(recs: list[dict[str, Any]], sig: int) -> list[int]:
    pids = []
    for rec in recs:
        if is_running(rec) and _in_own_cgroup(rec):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(rec["pid"]), sig)
                pids.append(int(rec["pid"]))
    return pids


def stop_container(name: str, timeout: float = 10.0) -> None:
    """SIGTERM to PID 1 (tini forwards it), SIGKILL after ``timeout`` seconds."""
    require_root("stop")
    names.validate_name(name)
    with state.locked():
        rec = state.load_container(name)
        if rec is None:
            raise NotFound(f"no container {name}")
        pids = _signal([rec], signal.SIGTERM)
        if _wait_dead(pids, timeout):
            _signal([rec], signal.SIGKILL)
            _wait_dead(pids, 5.0)
        rec["state"] = "exited"
        state.write_json(state.container_path(name), rec)


def remove_container(name: str, force: bool = False) -> None:
    remove_containers([name], force)


def remove_containers(names_: list[str], force: bool = True) -> None:
    """Kill (if ``force``) and remove containers; NotFound before touching any."""
    require_root("rm")
    for name in names_:
        names.validate_name(name)
    with state.locked():
        _gc_pending()
        recs = []
        for name in names_:
            rec = state.load_container(name)
            if rec is None:
                raise NotFound(f"no container {name}")
            recs.append(rec)
        running = [r["name"] for r in recs if is_running(r)]
        if running and not force:
            raise Conflict(f"container {running[0]} is running: stop it first or use rm -f")
        pids = _signal(recs, signal.SIGKILL)
        left = _wait_dead(pids, 10.0)
        if left:
            raise RuntimeFailure(f"processes {left[:5]} did not exit after SIGKILL")
        # Their namespaces would take the host veths along, but later and
        # asynchronously: delete them now so the names are free when we return.
        delete_links([str(r["host_veth"]) for r in recs if r.get("host_veth")])
        if any(r.get("impair") for r in recs):  # loss rules outside their namespaces
            from netlens_runtime import linkloss

            linkloss.forget(recs)
        networks = state.load_networks()
        touched: set[str] = set()
        published = False
        for rec in recs:
            cgroups.remove(list(rec.get("cgroup_dirs") or []))
            net = networks.get(str(rec.get("network")))
            if net is not None:
                if net["allocations"].get(rec.get("ip")) == rec["name"]:
                    del net["allocations"][rec["ip"]]
                if net["published"].pop(rec["name"], None):
                    published = True
                touched.add(net["name"])
        for netname in touched:
            state.write_json(state.network_path(netname), networks[netname])
        if published:
            nat.sync(list(networks.values()))
            netpolicy.sync_localnet([networks[n] for n in touched])
        for rec in recs:
            state.retire(state.container_path(rec["name"]))
            state.remove_logs(rec["name"])


def list_containers() -> list[dict[str, Any]]:
    """Every container record, with ``state`` checked against the live process."""
    out = []
    for rec in state.load_containers().values():
        if rec.get("state") == "running" and not is_running(rec):
            rec["state"] = "exited"
        out.append(rec)
    return out


def get_container(name: str) -> dict[str, Any]:
    rec = state.load_container(name)
    if rec is None:
        raise NotFound(f"no container {name}")
    if rec.get("state") == "running" and not is_running(rec):
        rec["state"] = "exited"
    return rec


def _open_netns(rec: dict[str, Any]) -> int:
    if not is_running(rec):
        raise Conflict(f"container {rec['name']} is not running")
    fd = os.open(f"/proc/{rec['pid']}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    if os.fstat(fd).st_ino != rec["netns_inode"]:
        os.close(fd)
        raise Conflict(f"container {rec['name']} is not running")
    return fd


def connect(
    a: str,
    a_ifname: str,
    b: str,
    b_ifname: str,
    a_addr: str | None = None,
    b_addr: str | None = None,
    mtu: int | None = None,
) -> None:
    """A veth straight between two containers (``a_ifname`` in a, ``b_ifname`` in b).

    Addresses are CIDR strings (``10.0.0.1/30``); the link dies with either
    container. Recorded under ``links`` in both records.
    """
    require_root("connect")
    names.validate_ifname(a_ifname)
    names.validate_ifname(b_ifname)
    for addr in (a_addr, b_addr):
        if addr is not None:
            try:
                ipaddress.IPv4Interface(addr)
            except ValueError:
                raise BadInput(f"invalid address {addr!r}: use CIDR like 10.0.0.1/30") from None
    if a == b:
        raise BadInput("connect needs two different containers")
    names.validate_name(a)
    names.validate_name(b)
    with state.locked():
        ra, rb = state.load_container(a), state.load_container(b)
        if ra is None or rb is None:
            raise NotFound(f"no container {a if ra is None else b}")
        fa = _open_netns(ra)
        fb = _open_netns(rb)
        try:
            with Netlink() as host:
                host.add_veth(a_ifname, b_ifname, netns_fd=fa, peer_netns_fd=fb, mtu=mtu, up=False)
                try:
                    host.commit()
                except NetlinkError as err:
                    raise Conflict(f"connect {a}:{a_ifname} - {b}:{b_ifname}: {err}") from None
            try:
                for fd, ifname, addr in ((fa, a_ifname, a_addr), (fb, b_ifname, b_addr)):
                    with Netlink(fd) as nl:
                        index = nl.get_index(ifname)
                        nl.set_up(index)
                        if addr is not None:
                            nl.add_addr(index, addr)
                        nl.commit()
            except BaseException:
                with contextlib.suppress(OSError), Netlink(fa) as nl:
                    nl.del_link(a_ifname)
                    nl.commit(ignore=(19,))
                raise
        finally:
            os.close(fa)
            os.close(fb)
        for rec, ifname, peer, peer_if, addr in (
            (ra, a_ifname, b, b_ifname, a_addr),
            (rb, b_ifname, a, a_ifname, b_addr),
        ):
            rec.setdefault("links", []).append(
                {"ifname": ifname, "peer": peer, "peer_ifname": peer_if, "addr": addr}
            )
            state.write_json(state.container_path(rec["name"]), rec)


# --- garbage collection -----------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def _undo_unrecorded(name: str, removed: list[str], why: str = "half-created") -> None:
    """Remove what a killed create left for ``name``: processes, links, cgroups, log."""
    dirs = cgroups.all_dirs().get(names.cgroup_leaf(name, state.scope()), [])
    pids = sorted({p for d in dirs for p in cgroups.procs(d)})
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _wait_dead(pids, 5.0)
    link = names.host_veth_name(name, state.scope())
    if _exists(link):
        _del_links([link])
        removed.append(f"link {link}")
    for d in dirs:
        if not cgroups.remove([d]):
            removed.append(f"cgroup {d}")
    if os.path.exists(state.log_path(name)):
        state.remove_logs(name)
        removed.append(f"log {name}")
    removed.append(f"container {name} ({why})")


def _has_leftovers(name: str) -> bool:
    """Kernel objects or a log that a container called ``name`` would have made."""
    scope = state.scope()
    return bool(
        cgroups.all_dirs().get(names.cgroup_leaf(name, scope))
        or _exists(names.host_veth_name(name, scope))
        or os.path.lexists(state.log_path(name))
    )


_QUARANTINED = re.compile(r"(containers|networks)\.(.+)\.json\.[0-9]+")


def _repair_set_aside(
    recs: dict[str, dict[str, Any]], networks: dict[str, dict[str, Any]], removed: list[str]
) -> bool:
    """Remove the kernel objects of records that were set aside (quarantine/), derived
    from their names as a killed create's are: the container's processes, host veth,
    cgroups and log (an unusable record leaves it unmanageable: rm cannot find it);
    a network's derived bridge if no port is left on it. A name that has a usable
    record again is left alone. True if a network's bridge went (rules to re-render).
    """
    try:
        entries = os.listdir(state.sub(state.QUARANTINE))
    except FileNotFoundError:
        return False
    scope = state.scope()
    bridges = {str(n["bridge"]) for n in networks.values()}
    changed = False
    for fname in sorted(entries):
        m = _QUARANTINED.fullmatch(fname)
        if m is None or not names.NAME_RE.fullmatch(m.group(2)):
            continue
        kind, name = m.groups()
        if kind == "containers" and name not in recs and _has_leftovers(name):
            _undo_unrecorded(name, removed, "its record was set aside")
        if kind == "networks" and name not in networks:
            bridge = names.bridge_name(name, scope)
            if (
                bridge in bridges
                or not _exists(bridge)
                or os.listdir(f"/sys/class/net/{bridge}/brif")
            ):
                continue
            _del_links([bridge])
            nat.disallow_forward(bridge)
            removed.append(f"bridge {bridge} of network {name} (its record was set aside)")
            changed = True
    return changed


def _gc_pending() -> list[str]:
    """Finish creates whose process died (SIGKILL): cheap, run by run and rm."""
    removed: list[str] = []
    for path, journal in state.load_pending():
        owner = int(journal.get("owner", 0))
        if owner == os.getpid() or _pid_alive(owner):
            continue
        networks = state.load_networks()
        for name in journal.get("names", []):
            if os.path.exists(state.container_path(name)):
                continue
            _undo_unrecorded(name, removed)
            for net in networks.values():
                stale = [ip for ip, n in net["allocations"].items() if n == name]
                for ip in stale:
                    del net["allocations"][ip]
                net["published"].pop(name, None)
                if stale:
                    state.write_json(state.network_path(net["name"]), net)
        state.remove_file(path)
        removed.append(f"journal {os.path.basename(path)}")
    return removed


def gc() -> list[str]:
    """Remove leftovers of killed or failed commands; return what was removed.

    Half-made containers from a killed create; state records that cannot be
    used (empty, torn, misnamed, the wrong shape: set aside into quarantine/,
    see state.set_aside), and the kernel objects such records stood for
    (:func:`_repair_set_aside`); address allocations whose container record is gone;
    logs and temporary files without a record or a live writer; cgroups of
    this host's ``netlens`` group that no record names and that are empty and
    older than a minute (younger ones may belong to a create in progress in
    another state directory); then the nft table is re-rendered from state, and
    host forwarding is put back if netlens turned it on and no NAT network is left.
    """
    require_root("gc")
    with state.locked():
        aside = len(state.set_aside_paths)
        removed = _gc_pending()
        recs = state.load_containers()
        networks = state.load_networks()
        for net in networks.values():
            stale = [ip for ip, n in net["allocations"].items() if n not in recs]
            for ip in stale:
                del net["allocations"][ip]
                removed.append(f"address {ip} on {net['name']}")
            for cname in [c for c in net["published"] if c not in recs]:
                del net["published"][cname]
                removed.append(f"published ports of {cname}")
            state.write_json(state.network_path(net["name"]), net)
        for kind in ("containers", "networks", "logs", "pending", "seccomp"):
            with contextlib.suppress(OSError):
                for fname in os.listdir(state.kind_dir(kind)):
                    path = os.path.join(state.kind_dir(kind), fname)
                    if _gc_leftover(kind, fname, recs):
                        state.remove_file(path)
                        removed.append(f"file {path}")
        removed += [f"file {path}" for path in state.set_aside_paths[aside:]]
        resync = _repair_set_aside(recs, networks, removed)
        now = time.time()
        scope = state.scope()
        leaves = {names.cgroup_leaf(n, scope) for n in recs}
        for leaf, dirs in cgroups.all_dirs().items():
            scoped = (
                len(leaf) > 9
                and leaf[-9] == "."
                and all(c in "0123456789abcdef" for c in leaf[-8:])
            )
            mine = leaf.endswith(f".{scope}") if scope else not scoped
            if leaf in leaves or not mine:
                continue
            for d in dirs:
                try:
                    old = now - os.stat(d).st_mtime > 60
                except OSError:
                    continue
                if old and not cgroups.procs(d) and not cgroups.remove([d], wait=0):
                    removed.append(f"cgroup {d}")
        if networks or resync:
            nat.sync(list(networks.values()))
            netpolicy.sync_localnet(list(networks.values()))
        if nat.release_forwarding(list(networks.values())):
            removed.append("net.ipv4.ip_forward put back (no NAT network left)")
        return removed


def _gc_leftover(kind: str, fname: str, recs: dict[str, dict[str, Any]]) -> bool:
    """Whether gc removes file ``fname`` of state directory ``kind``.

    Temporary files (``.<file>.<pid>.tmp``) of a process that is gone, and
    logs (current or rotated) of no container. Records are not judged by
    their name: the listings set aside what cannot be used.
    """
    temp = state.TEMP_RE.fullmatch(fname)
    if temp is not None:
        pid = int(temp.group(2))
        return pid == os.getpid() or not _pid_alive(pid)
    if kind == "logs":
        return state.log_owner(fname) not in recs
    return False
