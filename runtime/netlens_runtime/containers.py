"""Running containers: stop, remove, list, look up, and connect two with a veth.

Every mutation holds the state lock; a pid is signalled only while it is still
the container's (:mod:`netlens_runtime.liveness`).
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

from netlens_runtime import (
    cgroups,
    hostlinks,
    ipam,
    leftovers,
    liveness,
    names,
    nat,
    netpolicy,
    nshold,
    state,
    suggest,
)
from netlens_runtime.errors import BadInput, Conflict, NotFound, RuntimeFailure, require_root
from netlens_runtime.liveness import is_running
from netlens_runtime.netlink import Netlink, NetlinkError


def stop_container(name: str, timeout: float = 10.0) -> None:
    """SIGTERM to PID 1 (tini forwards it), SIGKILL after ``timeout`` seconds."""
    require_root("stop")
    names.validate_name(name)
    with state.locked():
        rec = state.load_container(name)
        if rec is None:
            raise NotFound(f"no container {name!r}{suggest.hint(name, 'containers')}")
        pids = liveness.signal_all([rec], signal.SIGTERM)
        if liveness.wait_dead(pids, timeout):
            liveness.signal_all([rec], signal.SIGKILL)
            liveness.wait_dead(pids, 5.0)
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
        leftovers.gc_pending()
        recs = []
        for name in names_:
            rec = state.load_container(name)
            if rec is None:
                raise NotFound(f"no container {name!r}{suggest.hint(name, 'containers')}")
            recs.append(rec)
        running = [r["name"] for r in recs if is_running(r)]
        if running and not force:
            raise Conflict(f"container {running[0]} is running: stop it first or use rm -f")
        pids = liveness.signal_all(recs, signal.SIGKILL)
        left = liveness.wait_dead(pids, 10.0)
        if left:
            raise RuntimeFailure(f"processes {left[:5]} did not exit after SIGKILL")
        # Their namespaces would take the host veths along, but later and
        # asynchronously: delete them now so the names are free when we return.
        hostlinks.delete_links([str(r["host_veth"]) for r in recs if r.get("host_veth")])
        if any(r.get("impair") for r in recs):  # loss rules outside their namespaces
            from netlens_runtime import linkloss

            linkloss.forget(recs)
        for rec in recs:  # a stopped lab node's namespace (lab_lifecycle) goes with it
            nshold.release(str(rec["name"]))
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
            for leg in rec.get("legs") or []:  # a lab node's extra legs (lab_ops)
                other = networks.get(str(leg.get("network")))
                if other is not None and other["allocations"].get(leg.get("ip")) == rec["name"]:
                    del other["allocations"][leg["ip"]]
                    touched.add(other["name"])
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
        raise NotFound(f"no container {name!r}{suggest.hint(name, 'containers')}")
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
            ipam.parse_iface_address(addr)
    if mtu is not None:
        names.validate_mtu(mtu)
    if a == b:
        raise BadInput("connect needs two different containers")
    names.validate_name(a)
    names.validate_name(b)
    with state.locked():
        ra, rb = state.load_container(a), state.load_container(b)
        if ra is None or rb is None:
            missing = a if ra is None else b
            raise NotFound(f"no container {missing!r}{suggest.hint(missing, 'containers')}")
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
