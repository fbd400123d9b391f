"""A container spec checked against every input rule and turned into the child's plan.

No side effects (but for the seccomp cache: a profile compiled here for the
first time is kept in the state directory), so a batch is refused whole before
anything is made. The rules are :mod:`netlens_runtime.names`', the same the lab
loader applies to a lab file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from netlens_runtime import cgroups, hostview, ipam, names, overlay, seccomp, spawn, state
from netlens_runtime.errors import BadInput

if TYPE_CHECKING:
    from netlens_runtime.args import ContainerLike


class Job:
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


def prepare(spec: ContainerLike, attach: bool) -> Job:
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
    if spec.ip is not None:
        ipam.parse_address(spec.ip)
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
    if publish:
        names.check_publish(spec.network, False)  # internal: checked once the network is known
    privileged = bool(spec.privileged)
    profile = seccomp.parse_security_opts(list(spec.security_opt), privileged)
    caps = _bounding() if privileged else names.cap_mask(spec.cap_add)
    sysctls = [
        ("/proc/sys/" + names.validate_sysctl(k).replace(".", "/"), str(v))
        for k, v in spec.sysctls.items()
    ]
    rootfs = names.validate_rootfs(spec.rootfs) if spec.rootfs is not None else None
    layers = list(getattr(spec, "layers", None) or [])
    if layers:
        if rootfs is not None:
            raise BadInput("--rootfs and an image's layers exclude each other")
        layers = overlay.validate_layers(layers)
    if spec.host_view not in hostview.VIEWS:
        raise BadInput(f"invalid host view {spec.host_view!r}: use {' or '.join(hostview.VIEWS)}")
    if rootfs is not None and spec.host_view != hostview.DEFAULT_VIEW:
        raise BadInput("--host-view and --rootfs exclude each other: the root is DIR")
    if layers and spec.host_view != hostview.DEFAULT_VIEW:
        raise BadInput("--host-view and --image exclude each other: the root is the image")
    # Any root of its own (a layered one too): the child makes nothing in it.
    own_root = rootfs if rootfs is not None else (layers[0] if layers else None)
    volumes, skeleton = hostview.place_volumes(list(spec.volumes), spec.host_view, own_root)
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
        layers=layers,
    )
    plan.log_max = log_max
    plan.privileged = privileged
    plan.seccomp = seccomp.program(profile, caps)  # cached: no compile per container
    job = Job(spec, plan, memory, cpus, publish, pids)
    job.seccomp = profile
    return job
