"""``gc``: finish what killed or failed commands left (processes, links, cgroups, files).

A create journals its names first (``pending/``), so what a SIGKILL left can be
found again: every kernel object's name derives from the container's or
network's name (:mod:`netlens_runtime.names`). Records that cannot be used are
set aside by :mod:`netlens_runtime.state`, and their objects removed here.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from typing import Any

from netlens_runtime import cgroups, hostlinks, liveness, names, nat, netpolicy, nshold, state
from netlens_runtime.errors import require_root


def _undo_unrecorded(name: str, removed: list[str], why: str = "half-created") -> None:
    """Remove what a killed create left for ``name``: processes, links, cgroups, log."""
    dirs = cgroups.all_dirs().get(names.cgroup_leaf(name, state.scope()), [])
    pids = sorted({p for d in dirs for p in cgroups.procs(d)})
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    liveness.wait_dead(pids, 5.0)
    link = names.host_veth_name(name, state.scope())
    if hostlinks.exists(link):
        hostlinks.del_links([link])
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
        or hostlinks.exists(names.host_veth_name(name, scope))
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
                or not hostlinks.exists(bridge)
                or os.listdir(f"/sys/class/net/{bridge}/brif")
            ):
                continue
            hostlinks.del_links([bridge])
            nat.disallow_forward(bridge)
            removed.append(f"bridge {bridge} of network {name} (its record was set aside)")
            changed = True
    return changed


def gc_pending() -> list[str]:
    """Finish creates whose process died (SIGKILL): cheap, run by run and rm."""
    removed: list[str] = []
    for path, journal in state.load_pending():
        owner = int(journal.get("owner", 0))
        if owner == os.getpid() or liveness.pid_alive(owner):
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

    Half-made containers from a killed create; held network namespaces
    (:mod:`netlens_runtime.nshold`) of containers without a record; state records that cannot be
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
        removed = gc_pending()
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
        for name in nshold.handles():  # a stopped node's namespace whose record went
            if name not in recs and nshold.release(name):
                removed.append(f"held network namespace of {name}")
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
        return pid == os.getpid() or not liveness.pid_alive(pid)
    if kind == "logs":
        return state.log_owner(fname) not in recs
    return False
