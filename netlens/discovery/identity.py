"""Name the container (or process) behind each network namespace.

An engineer looking at ``netns:4026532451`` wants to read ``docker web-1`` or
``mininet h3``. Every engine leaves a different trace; each engine's reader
(:mod:`netlens.discovery.engines`, listed once in
:data:`netlens.discovery.registry.READERS`) claims what its traces prove, and
asking them round by round, strongest evidence first, gives this order:

1. netlens's own runtime state files (match by namespace inode or pid);
2. Docker, by the namespace's bind mount (``SandboxKey``);
3. the cgroup of the namespace's lowest pid: ``docker-<id>`` / ``docker/<id>``,
   ``libpod-<id>`` (Podman), ``lxc.payload.<name>`` (LXC),
   ``cri-containerd-<id>`` / ``kubepods`` (containerd, Kubernetes);
4. Podman's database by namespace bind mount (``/run/netns/netns-<uuid>``) or
   by pid, when Podman's storage exists (no cgroup: ``--cgroups=disabled``, or
   a container being torn down with no process left); a pid counts only beside
   Podman evidence (that bind mount, or a conmon parent), never alone: pids
   recorded before a reboot get reused;
5. containerd task bundles by init pid (plain ``ctr`` / nerdctl tasks);
6. the command line of the lowest pid (``bash --norc -is mininet:h1``);
7. an ``ip netns`` name;
8. otherwise the processes holding it (``sleep[1234]``).

Engine parents are read only for namespaces already known to be the engine's,
or, on hosts where Podman's storage exists, for the lowest pid of a namespace
no earlier step named (is it a conmon's child?): conmon (``-c <id> -n <name>``)
names a container the database lacks, LXC's monitor (``[lxc monitor] <lxcpath> <name>``) when an LXC
container's config is not under the default lxcpath. Asking every unnamed
namespace's parent would cost two more reads each (+50 ms at 1000
process-held namespaces), so an LXC container with a cgroup dir of its own
choosing stays a plain process.

Cost matters at 1000 namespaces: engine indexes are read once per call and only
when some namespace needs them, and per namespace we read at most the cgroup,
cmdline and comm of its *lowest* pid. No subprocess, no netlink, no daemon.
Every ``*_root`` keyword (declared by its reader) exists so tests can point at
recorded fixture trees.
"""

from __future__ import annotations

from collections.abc import Sequence

from netlens.discovery import registry
from netlens.discovery.engines import Claims, Namespace
from netlens.discovery.nsfind import NsHandle
from netlens.model import Container


def _claim(ns: Namespace, claims: Sequence[Claims]) -> Container | None:
    """The first claim of the strongest round (see :class:`Claims`), else None."""
    for c in claims:
        found = c.recorded(ns)
        if found is not None:
            return found
    if ns.lowest is not None:
        cgroup = ns.cgroup
        if cgroup and cgroup != "/":
            for c in claims:
                found = c.by_cgroup(ns, cgroup)
                if found is not None:
                    return found
    for c in claims:
        found = c.fallback(ns)
        if found is not None:
            return found
    return None  # only a bind mount nobody claims: no owner to name


def identify(
    handles: Sequence[NsHandle], *, proc_root: str = "/proc", **roots: str | None
) -> list[Container]:
    """Return one Container per namespace that has an owner, in ``handles`` order.

    The host namespace yields an ``engine="host"`` container named after the
    hostname (``Snapshot.counts`` leaves it out of the container count). A
    namespace held only by a bind mount that no engine claims has no owner and
    is left out. ``roots``: the readers' own keywords (``netlens_state_dir``,
    ``docker_root``, ``podman_root``, ``lxc_root``, ``containerd_root``...);
    ``netlens_state_dir`` defaults to ``$NETLENS_STATE_DIR`` or /run/netlens,
    the others to each engine's standard path. Never raises for vanished
    processes or unreadable state files.
    """
    readers = registry.READERS
    opts = registry.options(readers, dict(roots), "identify")
    proc_root = proc_root.rstrip("/") or "/"
    opts["proc_root"] = proc_root
    claims = [r.claims(opts) for r in readers if r.claims is not None]
    out: list[Container] = []
    for h in handles:
        ctr = _claim(Namespace(h, proc_root), claims)
        if ctr is not None:
            out.append(ctr)
    return out
