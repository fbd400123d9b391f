"""Impairments and link state of lab and container interfaces: the API behind ``netlens link``.

A target is ``LAB:NODE:IF`` (a lab node's interface) or ``CONTAINER:IF``. What
netlens set on it lives in the container's state record, so it goes with the
container (``rm``, ``lab down``) and ``link show`` or a later ``lab save`` can
read it:

    "impair": {"eth0": {"egress": {"rate": 10000000, "delay": 20000},
                        "ingress": {}, "made": {"ifb": null, "loss": [...]}}},
    "link_down": {"p2p0": {"routes": [...], "peer": {...}}}

Every change holds the runtime's state lock, clears what netlens made on the
interface before, applies the new settings, and on any failure clears the half
made and puts the old settings back: a refused ``link set`` changes nothing.
The kernel work is in :mod:`netlens_runtime.linkctl` (tc, links, routes, with
pyroute2: imported only here, inside the functions that change something) and
:mod:`netlens_runtime.linkloss` (nftables loss), both run inside the node's
namespace through :func:`netlens.kernel.nsenter.call_in`.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from netlens.kernel.nsenter import call_in
from netlens_runtime import linkloss, state
from netlens_runtime.errors import BadInput, Conflict, NeedsRoot, NotFound
from netlens_runtime.lab_impair import Impair, ImpairError, ImpairSpec, nft_loss
from netlens_runtime.names import ifname_problem

if TYPE_CHECKING:
    from netlens_runtime.lab_model import LabSpec

LAB_LABEL = "netlens.lab"
NODE_LABEL = "netlens.lab.node"
"""The labels lab_ops puts on lab nodes (lab_record's; a unit test keeps them the same)."""
PRIMARY = "eth0"


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise NeedsRoot(f"{what} needs root (it changes traffic control inside namespaces)")


@dataclass
class Target:
    """An interface of a container, with the container's state record in hand."""

    container: str
    ifname: str
    label: str
    rec: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Peer:
    """The other end of a target's veth: in the host (``linkloss.HOST``) or a container."""

    where: str
    dev: str


def label_of(rec: dict[str, Any], ifname: str) -> str:
    """``lab:node:if`` for a lab node, else ``container:if``."""
    labels = rec.get("labels") or {}
    lab, node = labels.get(LAB_LABEL), labels.get(NODE_LABEL)
    return f"{lab}:{node}:{ifname}" if lab and node else f"{rec.get('name')}:{ifname}"


def resolve(text: str) -> Target:
    """``LAB:NODE:IF`` or ``CONTAINER:IF`` -> a :class:`Target` (NotFound, BadInput)."""
    parts = text.split(":")
    if len(parts) == 3 and all(parts):
        lab, node, ifname = parts
        found = [
            r
            for r in state.load_containers().values()
            if (r.get("labels") or {}).get(LAB_LABEL) == lab
            and (r.get("labels") or {}).get(NODE_LABEL) == node
        ]
        if not found:
            raise NotFound(f"no node {node!r} in lab {lab!r} (see 'netlens lab ls')")
        rec = found[0]
    elif len(parts) == 2 and all(parts):
        name, ifname = parts
        loaded = state.load_container(name)
        if loaded is None:
            raise NotFound(f"no container {name} (a lab node is LAB:NODE:IF)")
        rec = loaded
    else:
        raise BadInput(f"link target {text!r}: give LAB:NODE:IF or CONTAINER:IF")
    problem = ifname_problem(ifname)
    if problem:
        raise BadInput(f"link target {text!r}: bad interface name: {problem}")
    return Target(str(rec["name"]), ifname, label_of(rec, ifname), rec)


def open_netns(rec: dict[str, Any]) -> int:
    fd = linkloss.open_netns(rec)
    if fd is None:
        raise Conflict(f"container {rec.get('name')} is not running")
    return fd


def check_link(t: Target, fd: int) -> None:
    """NotFound naming the target when its container has no such interface."""

    def exists() -> bool:
        try:
            socket.if_nametoindex(t.ifname)
        except OSError:
            return False
        return True

    if not call_in(fd, exists):
        raise NotFound(f"{t.label}: container {t.container} has no interface {t.ifname}")


def save(t: Target) -> None:
    state.write_json(state.container_path(t.container), t.rec)


def section(rec: dict[str, Any], key: str) -> dict[str, Any]:
    section = rec.get(key)
    if not isinstance(section, dict):
        section = rec[key] = {}
    return section


# ------------------------------------------------------------------ peers


def _peer_candidate(rec: dict[str, Any], ifname: str) -> Peer | None:
    for link in rec.get("links") or []:
        if link.get("ifname") == ifname and link.get("peer"):
            return Peer(str(link["peer"]), str(link.get("peer_ifname") or ifname))
    if ifname == PRIMARY and rec.get("host_veth"):
        return Peer(linkloss.HOST, str(rec["host_veth"]))
    if (rec.get("labels") or {}).get(LAB_LABEL):
        from netlens_runtime.lab_record import host_ifname

        dev = host_ifname(str(rec["name"]), ifname)
        if os.path.exists(f"/sys/class/net/{dev}"):
            return Peer(linkloss.HOST, dev)
    return None


def _index_in(where: str, dev: str) -> int | None:
    """``dev``'s ifindex in its namespace, None when it (or the namespace) is gone."""

    def look() -> int | None:
        try:
            return socket.if_nametoindex(dev)
        except OSError:
            return None

    if where == linkloss.HOST:
        return look()
    rec = state.load_container(where)
    fd = linkloss.open_netns(rec) if rec else None
    if fd is None:
        return None
    try:
        return call_in(fd, look)
    finally:
        os.close(fd)


def find_peer(t: Target, fd: int) -> Peer | None:
    """The other end of ``t``'s veth, from the records, checked against the kernel
    (the veth's peer index must be that device's index)."""
    from netlens_runtime.linkctl import Tc

    cand = _peer_candidate(t.rec, t.ifname)
    if cand is None:
        return None

    def peer_index() -> int | None:
        with Tc() as tc:
            return tc.peer_index(t.ifname)

    want = call_in(fd, peer_index)
    return cand if want is not None and want == _index_in(cand.where, cand.dev) else None


# ------------------------------------------------------------ impairments


def _netem_message(t: Target, egress: Impair, ingress: Impair) -> str:
    wanted = [f for f in ("delay", "jitter", "corrupt", "duplicate") if f in
              {*egress.netem_fields(), *ingress.netem_fields()}]  # fmt: skip
    verb = "needs" if len(wanted) == 1 else "need"
    return (
        f"{t.label}: {' and '.join(wanted)} {verb} the kernel's netem qdisc (module"
        " sch_netem), which this kernel does not have; nothing was changed"
    )


def _clear(t: Target, fd: int, entry: dict[str, Any]) -> None:
    """Remove what ``entry`` says netlens made for ``t`` (and any tc of ours on it)."""
    from netlens_runtime.linkctl import Tc

    def clear() -> None:
        with Tc() as tc:
            if tc.has_link(t.ifname):
                tc.clear(t.ifname)

    call_in(fd, clear)
    table = linkloss.table_name(t.container, t.ifname)
    for where in {str(m.get("where")) for m in (entry.get("made") or {}).get("loss", [])}:
        linkloss.delete_in(where, [table])


def _shape(
    t: Target, fd: int, egress: Impair, ingress: Impair, peer: Peer | None
) -> dict[str, Any]:
    """Apply both directions on a cleared interface; return what was made.

    On failure the caller clears again: the ifb and the qdiscs are found by
    their names and handles, the loss tables by their name (fixed per target)
    in every namespace they may have landed in, so nothing made here is missed.
    """
    from netlens_runtime.linkctl import Tc

    def shape() -> str | None:
        with Tc() as tc:
            return tc.shape(t.ifname, egress, ingress)

    made: dict[str, Any] = {"ifb": call_in(fd, shape), "loss": []}
    table = linkloss.table_name(t.container, t.ifname)
    chains: dict[str, list[linkloss.LossChain]] = {}
    loss_e, loss_i = nft_loss(egress), nft_loss(ingress)
    if loss_e is not None:
        assert peer is not None
        chains.setdefault(peer.where, []).append(
            linkloss.LossChain(
                "egress", peer.dev, loss_e, t.label, bridge_port=peer.where == linkloss.HOST
            )
        )
    if loss_i is not None:
        chains.setdefault(t.container, []).append(
            linkloss.LossChain("ingress", t.ifname, loss_i, t.label)
        )
    for where, items in chains.items():
        made["loss"].append({"where": where, "table": table})
        script = linkloss.render(table, t.label, items)
        if where == t.container:
            linkloss.run_nft(fd, script)
        elif where == linkloss.HOST:
            linkloss.run_nft(None, script)
        else:
            peer_rec = state.load_container(where)
            peer_fd = linkloss.open_netns(peer_rec) if peer_rec else None
            if peer_fd is None:
                raise Conflict(f"{t.label}: the other end's container {where} is not running")
            try:
                linkloss.run_nft(peer_fd, script)
            finally:
                os.close(peer_fd)
    return made


def _probe_netem(t: Target, fd: int, egress: Impair, ingress: Impair) -> None:
    from netlens_runtime.linkctl import NetemMissing, Tc

    def probe() -> None:
        with Tc() as tc:
            tc.probe_netem()

    try:
        call_in(fd, probe)
    except NetemMissing:
        raise NetemMissing(_netem_message(t, egress, ingress)) from None


def _apply(t: Target, egress: Impair, ingress: Impair, old: dict[str, Any]) -> dict[str, Any]:
    """Replace what ``old`` made on ``t`` by ``egress``/``ingress``; all or nothing."""
    from netlens_runtime.linkctl import NetemMissing

    fd = open_netns(t.rec)
    try:
        check_link(t, fd)
        peer = None
        if nft_loss(egress) is not None:
            peer = find_peer(t, fd)
            if peer is None:
                raise BadInput(
                    f"{t.label}: egress loss drops at the other end of the cable, and"
                    f" {t.ifname} is not a veth netlens made; use --direction ingress"
                )
        if egress.netem_fields() or ingress.netem_fields():
            _probe_netem(t, fd, egress, ingress)
        _clear(t, fd, old)
        # Every namespace a new table may land in, to clear on failure.
        attempt = {"made": {"loss": [{"where": t.container}]}}
        if peer is not None:
            attempt["made"]["loss"].append({"where": peer.where})
        try:
            return _shape(t, fd, egress, ingress, peer)
        except BaseException as exc:
            _clear(t, fd, attempt)
            if old.get("made"):
                _restore(t, fd, old)
            if isinstance(exc, NetemMissing):
                raise NetemMissing(_netem_message(t, egress, ingress)) from None
            raise
    finally:
        os.close(fd)


def _restore(t: Target, fd: int, old: dict[str, Any]) -> None:
    """Best effort: put ``old`` back after a failed change (it worked before)."""
    egress, ingress = Impair.from_json(old.get("egress")), Impair.from_json(old.get("ingress"))
    peer = find_peer(t, fd) if nft_loss(egress) is not None else None
    try:
        old["made"] = _shape(t, fd, egress, ingress, peer)
    except Exception:
        _clear(t, fd, old)
        old.clear()


def _set(t: Target, spec: ImpairSpec) -> dict[str, Any]:
    impair = section(t.rec, "impair")
    old = impair.get(t.ifname) or {}
    e0, i0 = Impair.from_json(old.get("egress")), Impair.from_json(old.get("ingress"))
    dirs = spec.directions()
    try:
        egress = e0.merged(spec.changes) if "egress" in dirs else e0
        ingress = i0.merged(spec.changes) if "ingress" in dirs else i0
    except ImpairError as exc:
        raise BadInput(f"{t.label}: {exc}") from None
    had_old = bool(old)
    try:
        made = _apply(t, egress, ingress, old)
    except BaseException:
        if had_old:  # _restore put the old settings back (new "made"), or cleared them
            if not old:
                impair.pop(t.ifname, None)
                if not impair:
                    t.rec.pop("impair", None)
            save(t)
        raise
    if egress.is_empty() and ingress.is_empty():
        impair.pop(t.ifname, None)
        if not impair:
            t.rec.pop("impair", None)
        entry: dict[str, Any] = {}
    else:
        entry = {"egress": egress.to_json(), "ingress": ingress.to_json(), "made": made}
        impair[t.ifname] = entry
    save(t)
    return entry


def set_impair(target: str, spec: ImpairSpec) -> tuple[str, Impair, Impair]:
    """Change ``target``'s impairments (merged into what is set; zeros clear).

    Returns (label, egress, ingress) as now set.
    """
    require_root("link set")
    with state.locked():
        t = resolve(target)
        entry = _set(t, spec)
    return t.label, Impair.from_json(entry.get("egress")), Impair.from_json(entry.get("ingress"))


def reset(target: str) -> str:
    """Remove every impairment netlens set on ``target``; returns its label."""
    require_root("link reset")
    with state.locked():
        t = resolve(target)
        impair = section(t.rec, "impair")
        old = impair.get(t.ifname) or {}
        fd = linkloss.open_netns(t.rec)
        if fd is not None:
            try:
                _clear(t, fd, old)
            finally:
                os.close(fd)
        else:  # not running: its own namespace is gone; tables elsewhere are not
            linkloss.forget([{"name": t.container, "impair": {t.ifname: old}}])
        impair.pop(t.ifname, None)
        if not impair:
            t.rec.pop("impair", None)
        save(t)
    return t.label


def apply_many(items: list[tuple[str, str, ImpairSpec]]) -> None:
    """Apply (container, ifname, spec) items under one lock (``lab up``); stops at the
    first failure, after which that item changed nothing (the caller rolls back the rest)."""
    require_root("link set")
    with state.locked():
        for container, ifname, spec in items:
            rec = state.load_container(container)
            if rec is None:
                raise NotFound(f"no container {container}")
            _set(Target(container, ifname, label_of(rec, ifname), rec), spec)


def lab_impairments(spec: LabSpec) -> list[tuple[str, str, ImpairSpec]]:
    """The (container, ifname, spec) items of a lab file's ``impair:`` blocks.

    A link's block impairs both directions of the cable: each end's egress.
    """
    from netlens_runtime.lab_record import node_name

    items: list[tuple[str, str, ImpairSpec]] = []
    for node in spec.nodes:
        real = node_name(spec.name, node.name)
        if node.impair is not None:
            items.append((real, PRIMARY, node.impair))
        for iface in node.interfaces:
            if iface.impair is not None:
                items.append((real, iface.ifname, iface.impair))
    for link in spec.links:
        if link.impair is not None:
            egress = ImpairSpec(link.impair.changes, "egress")
            items.append((node_name(spec.name, link.a), link.a_ifname, egress))
            items.append((node_name(spec.name, link.b), link.b_ifname, egress))
    return items


# ----------------------------------------------------------------- listing


def show(lab: str | None = None) -> list[dict[str, Any]]:
    """What netlens set where: one object per interface with impairments or down."""
    rows: list[dict[str, Any]] = []
    for name, rec in sorted(state.load_containers().items()):
        labels = rec.get("labels") or {}
        if lab is not None and labels.get(LAB_LABEL) != lab:
            continue
        impair = rec.get("impair") or {}
        down = rec.get("link_down") or {}
        for ifname in sorted({*impair, *down}):
            entry = impair.get(ifname) or {}
            rows.append(
                {
                    "target": label_of(rec, ifname),
                    "container": name,
                    "lab": labels.get(LAB_LABEL),
                    "node": labels.get(NODE_LABEL),
                    "ifname": ifname,
                    "egress": Impair.from_json(entry.get("egress")).to_json(),
                    "ingress": Impair.from_json(entry.get("ingress")).to_json(),
                    "state": "down" if ifname in down else "up",
                }
            )
    return rows
