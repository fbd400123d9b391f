"""Which cable the dashboard's link key (``x``) pulls or plugs back, read from the snapshot.

Headless on purpose (no Textual here): the choice is the risky part of the key, so
it is a pure function of the snapshot that unit tests can drive on the fixture
host. The key only ever acts on a veth whose one end is inside a container of
netlens's own runtime (a lab node or a ``netlens run`` container): exactly what
``netlens link down|up`` accepts, named the way it takes it (``CONTAINER:IF``,
shown to people as ``LAB:NODE:IF``). Everything else is refused with a line
saying why: the host's uplink, a bridge, a Docker or Podman container's veth (a
pulled cable there is someone else's outage, and the runtime keeps no record to
bring routes back), a plain namespace made by hand.

What the selection stands for:

- an interface (an interface detail, a row of a VRF's Interfaces tab, the wire of
  a point-to-point veth on the topology): that interface's cable, from either end
  (the host end of a node's bridge port resolves to the node's end);
- a VRF or a container (a topology box, a table row): its one lab cable; with
  several the user is asked to pick one in the VRF's Interfaces tab, never guessed.

The direction follows the kernel's state as discovered: a cable with either end
administratively down is plugged back (``up`` brings both), else it is pulled.
"""

from __future__ import annotations

from dataclasses import dataclass

from netlens.errors import UsageError
from netlens.kernel.inert import terminal
from netlens.model.types import Container, Engine, Interface
from netlens.tui.index import ViewIndex

LAB_LABEL = "netlens.lab"
NODE_LABEL = "netlens.lab.node"
"""The labels the runtime puts on a lab's nodes (read from its state files by discovery)."""

PICK_HINT = "pick one in its Interfaces tab (Enter opens it)"


@dataclass(frozen=True, slots=True)
class LinkChoice:
    """One cable the key acts on.

    ``target`` is what the runtime's ``link down|up`` takes (``CONTAINER:IF``, the
    container's own name: unambiguous even when two labs have a node ``r1``);
    ``label`` and ``peer_label`` are for people; ``down`` says whether the key pulls
    the cable (asked first) or plugs it back.
    """

    target: str
    label: str
    peer_label: str
    down: bool

    @property
    def verb(self) -> str:
        return "down" if self.down else "up"

    def describe(self) -> str:
        """``lab:r1:eth1 ⇄ lab:r2:eth1`` (inert text: names come from the host)."""
        return f"{self.label} ⇄ {self.peer_label}" if self.peer_label else self.label


def _runtime_container(idx: ViewIndex, ns_id: str) -> Container | None:
    c = idx.container_of_ns.get(ns_id)
    return c if c is not None and c.engine == Engine.NETLENS else None


def _label(c: Container, ifname: str) -> str:
    lab, node = c.labels.get(LAB_LABEL), c.labels.get(NODE_LABEL)
    name = f"{lab}:{node}" if lab and node else c.name
    return terminal(f"{name}:{ifname}")


def _owner(idx: ViewIndex, ns_id: str) -> str:
    """Who made a namespace, for a refusal: ``docker container web-1``, ``the host``."""
    ns = idx.ns.get(ns_id)
    if ns is not None and ns.is_host:
        return "the host"
    c = idx.container_of_ns.get(ns_id)
    if c is not None:
        return f"{terminal(c.engine)} container {terminal(c.name)}"
    return f"namespace {idx.ns_label(ns_id)}"


def for_interface(idx: ViewIndex, itf: Interface) -> LinkChoice:
    """The cable of ``itf`` (either end of it), or UsageError saying why not."""
    name = idx.iface_label(itf.ref.key)
    if itf.uplink:
        raise UsageError(f"{name} is the host's uplink: the link key only pulls lab cables")
    if itf.kind != "veth":
        raise UsageError(
            f"{name} is a {terminal(itf.kind)}, not a cable: the link key pulls the veths"
            " of netlens labs and containers"
        )
    peer = idx.ifaces.get(itf.peer.key) if itf.peer is not None else None
    # the runtime's end: this one, else the far one (the host end of a bridge port)
    for end, other in ((itf, peer), (peer, itf)):
        if end is None:
            continue
        c = _runtime_container(idx, end.netns)
        if c is None:
            continue
        far = ""
        if other is not None:
            oc = _runtime_container(idx, other.netns)
            far = _label(oc, other.name) if oc is not None else idx.iface_label(other.ref.key)
        ends = [e for e in (itf, peer) if e is not None]
        return LinkChoice(
            target=f"{c.name}:{end.name}",
            label=_label(c, end.name),
            peer_label=far,
            down=all(e.admin_up for e in ends),
        )
    who = _owner(idx, itf.netns)
    if peer is not None and peer.netns != itf.netns:
        who += f" and {_owner(idx, peer.netns)}"
    raise UsageError(f"{name} belongs to {who}, not to a netlens lab or container: left alone")


def _candidates(idx: ViewIndex, ns_id: str) -> list[Interface]:
    ns = idx.ns.get(ns_id)
    if ns is None:
        return []
    return [i for i in ns.interfaces if i.kind == "veth"]


def choose(idx: ViewIndex, key: str | None) -> LinkChoice:
    """The cable for the selected node ``key`` (an interface key, a VRF or container
    id, ``server``), or UsageError with the one line to show."""
    if key is None:
        raise UsageError("select a lab link first: an interface, or a lab node's VRF")
    itf = idx.ifaces.get(key)
    if itf is not None:
        return for_interface(idx, itf)
    ns_id = idx.ns_of_key(key) if key != "server" else None
    ns = idx.ns.get(ns_id) if ns_id else None
    if ns is None or ns.is_host:
        raise UsageError(
            "the host itself has no lab cable to pull: select a lab node, or a veth in"
            " the Interfaces tab"
        )
    if _runtime_container(idx, ns.id) is None:
        raise UsageError(
            f"{idx.ns_label(ns.id)} belongs to {_owner(idx, ns.id)}, not to a netlens lab or"
            " container: left alone"
        )
    cands = _candidates(idx, ns.id)
    if not cands:
        raise UsageError(f"{idx.ns_label(ns.id)} has no veth to pull")
    if len(cands) > 1:
        names = ", ".join(terminal(i.name) for i in cands)
        raise UsageError(f"{idx.ns_label(ns.id)} has {len(cands)} cables ({names}): {PICK_HINT}")
    return for_interface(idx, cands[0])
