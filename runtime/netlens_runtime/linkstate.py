"""``netlens link down|up``: pull a cable out and plug it back in.

Both ends of the veth go down, as with a pulled cable: for a point-to-point
link the two nodes' interfaces, for a container on a bridge its eth0 and the
host end (the bridge port). A veth has no carrier switch of its own (``ip link
set carrier`` is refused), so both ends are set administratively down; the
operational state in ``netlens dump --json`` says ``down`` for both.

An administrative down also takes the routes through the interface (the
kernel deletes them) and IPv6 addresses (unless ``keep_addr_on_down``); a
cable plugged back in should bring the node back as it was, so ``down`` saves
the routes of each node end in the container's record and sets
``keep_addr_on_down``, and ``up`` puts both back. Connected routes come back
by themselves with the addresses.
"""

from __future__ import annotations

import os
from typing import Any

from netlens.kernel.nsenter import call_in
from netlens_runtime import linkloss, state
from netlens_runtime.linkops import (
    Peer,
    Target,
    check_link,
    find_peer,
    label_of,
    open_netns,
    require_root,
    resolve,
    save,
    section,
)


def _down_here(ifname: str, node: bool) -> dict[str, Any]:
    """In the thread's namespace: save routes (and keep IPv6 addresses), set down."""
    from netlens_runtime.linkctl import Tc, keep_addresses

    with Tc() as tc:
        routes = tc.routes_via(ifname) if node else []
        keep = keep_addresses(ifname) if node else None
        tc.set_state(ifname, up=False)
    return {"routes": routes, "keep": keep}


def _up_here(ifname: str, saved: dict[str, Any]) -> list[str]:
    """In the thread's namespace: set up, put routes and the IPv6 setting back."""
    from netlens_runtime.linkctl import Tc, put_back_keep

    with Tc() as tc:
        if not tc.has_link(ifname):
            return [f"{ifname} is gone"]
        tc.set_state(ifname, up=True)
        failed = tc.restore_routes(ifname, list(saved.get("routes") or []))
    put_back_keep(ifname, saved.get("keep"))
    return failed


def _in_peer(peer: Peer, func: Any) -> Any:
    if peer.where == linkloss.HOST:
        return call_in(None, func)
    rec = state.load_container(peer.where)
    fd = linkloss.open_netns(rec) if rec else None
    if fd is None:
        return None  # its namespace is gone: that end with it
    try:
        return call_in(fd, func)
    finally:
        os.close(fd)


def link_down(target: str) -> str:
    """Take both ends of ``target``'s cable down; returns a line to print."""
    require_root("link down")
    with state.locked():
        t = resolve(target)
        down = section(t.rec, "link_down")
        if t.ifname in down or _owner_of(t) is not None:
            return f"{t.label} is already down"
        fd = open_netns(t.rec)
        try:
            check_link(t, fd)
            peer = find_peer(t, fd)
            own = call_in(fd, lambda: _down_here(t.ifname, node=True))
            entry: dict[str, Any] = {**own, "peer": None}
            try:
                if peer is not None:
                    node = peer.where != linkloss.HOST
                    saved = _in_peer(peer, lambda: _down_here(peer.dev, node=node))
                    entry["peer"] = {"where": peer.where, "dev": peer.dev, **(saved or {})}
            except BaseException:
                call_in(fd, lambda: _up_here(t.ifname, own))
                raise
        finally:
            os.close(fd)
        down[t.ifname] = entry
        save(t)
    other = f" and {_peer_label(entry['peer'])}" if entry["peer"] else ""
    return f"{t.label}{other}: down"


def _peer_label(peer: dict[str, Any]) -> str:
    if peer["where"] == linkloss.HOST:
        return f"host:{peer['dev']}"
    rec = state.load_container(str(peer["where"])) or {"name": peer["where"]}
    return label_of(rec, str(peer["dev"]))


def _owner_of(t: Target) -> tuple[dict[str, Any], str] | None:
    """The record and interface whose ``link down`` took ``t`` down as its peer."""
    for rec in state.load_containers().values():
        for ifname, entry in (rec.get("link_down") or {}).items():
            peer = entry.get("peer") or {}
            if peer.get("where") == t.container and peer.get("dev") == t.ifname:
                return rec, str(ifname)
    return None


def link_up(target: str) -> tuple[str, list[str]]:
    """Bring both ends of ``target``'s cable back (either end may be named).

    Returns a line to print and the routes the kernel refused to take back.
    """
    require_root("link up")
    with state.locked():
        t = resolve(target)
        if t.ifname not in (t.rec.get("link_down") or {}):
            owner = _owner_of(t)
            if owner is not None:
                rec, ifname = owner
                t = Target(str(rec["name"]), ifname, label_of(rec, ifname), rec)
        entry = (t.rec.get("link_down") or {}).get(t.ifname)
        fd = open_netns(t.rec)
        failed: list[str] = []
        try:
            check_link(t, fd)
            if entry is None:  # not ours: bring both ends up anyway
                peer = find_peer(t, fd)
                entry = {"routes": [], "keep": None, "peer": None}
                if peer is not None:
                    entry["peer"] = {"where": peer.where, "dev": peer.dev, "routes": []}
            saved = entry
            failed += call_in(fd, lambda: _up_here(t.ifname, saved))
            peer_entry = entry.get("peer")
            if peer_entry:
                pr = Peer(str(peer_entry["where"]), str(peer_entry["dev"]))
                failed += _in_peer(pr, lambda: _up_here(pr.dev, peer_entry)) or []
        finally:
            os.close(fd)
        down = t.rec.get("link_down") or {}
        if down.pop(t.ifname, None) is not None:
            if not down:
                t.rec.pop("link_down", None)
            save(t)
    other = f" and {_peer_label(entry['peer'])}" if entry.get("peer") else ""
    return f"{t.label}{other}: up", failed
