"""containerlab topology files (``*.clab.yml``) read into the lab model ``lab up`` builds.

containerlab describes a lab as ``name`` plus ``topology: {defaults, kinds, nodes,
links}``; its nodes are containers of some *kind*. netlens runs the ``linux`` kind
(a plain container) and the ``bridge`` kind (an L2 segment), which together are
most of what people write by hand. The file is turned into the same
:class:`~netlens_runtime.lab_model.LabSpec` the native loader makes, through the
same cross checks (:mod:`netlens_runtime.lab_cross`), so ``lab up`` builds it,
records it and rolls it back exactly as a native lab.

How the pieces map:

- every node not in ``network-mode: none`` is on one management network
  (``mgmt``, NAT to the outside, as containerlab's management bridge), with
  ``mgmt-ipv4`` as its address on ``eth0``;
- a ``kind: bridge`` node becomes a lab network (lab-scoped bridge name, so two
  labs never fight over one host bridge); a link to it is an extra leg;
- a link between two linux nodes is a point-to-point veth, without addresses
  (containerlab files set them with ``exec``);
- ``exec`` commands run in the node once its links exist, as containerlab does;
- nodes get NET_ADMIN (containerlab runs them privileged);
- ``binds`` are mounted read-only and nodev (``:rw`` is refused, and so is a socket
  or a FIFO: those a read-only bind does not stop);
- ``image``: an image in a local Docker or Podman store is the node's read-only
  root (one layer: a read-only bind; several: a read-only overlay of the layers,
  private to the node); nothing is pulled. Otherwise the node runs on the host's
  read-only root, and the caller is told once.

Anything else is refused, each unsupported kind or field on one line with its
file:line, all of them at once, before anything is built.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from typing import Any

from netlens_runtime import names
from netlens_runtime.errors import BadInput, BadInputs
from netlens_runtime.lab_cross import NodeDraft, check_links, finish_nodes
from netlens_runtime.lab_model import LabInterface, LabLink, LabNetwork, LabSpec
from netlens_runtime.lab_spec import check_runtime_names
from netlens_runtime.lab_yaml import (
    Val,
    check_exec,
    check_ifname,
    check_mtu,
    check_name,
    node_address,
)

CLAB_SUFFIXES = (".clab.yml", ".clab.yaml")

MGMT_NETWORK = "mgmt"
"""Lab-local name of the management network every node (but ``network-mode: none``) is on."""

DEFAULT_MGMT_SUBNET = "172.20.20.0/24"
"""containerlab's default management subnet: used only when a node asks for a
``mgmt-ipv4`` and the file sets no ``mgmt.ipv4-subnet`` (else the runtime picks one)."""

KINDS = ("linux", "bridge")

NODE_CAPS = ("NET_ADMIN",)
"""What a linux node gets on top of the runtime's default capabilities: containerlab
starts its nodes privileged, and their ``exec`` commands configure interfaces
(``ip addr add``). ``privileged`` would also hand over the host's devices: not done."""

_TOP = frozenset({"name", "mgmt", "topology"})
_MGMT = frozenset({"network", "ipv4-subnet", "ipv4-gw"})
_TOPOLOGY = frozenset({"defaults", "kinds", "nodes", "links"})
_NODE = frozenset(
    {"kind", "image", "cmd", "exec", "env", "binds", "labels", "mgmt-ipv4", "network-mode"}
)
_SHARED = _NODE - {"mgmt-ipv4"}
"""What ``defaults`` and ``kinds`` entries may set (an address is one node's)."""
_LINK = frozenset({"endpoints", "mtu"})
_PIPE_KINDS = {stat.S_IFSOCK: "socket", stat.S_IFIFO: "FIFO"}
"""Host paths a ``binds`` entry may not name: what a read-only mount does not make
read-only (device nodes are made harmless by mounting every volume nodev)."""

Notify = Callable[[str], None]


def _shows_proc(host: str) -> str | None:
    """Why binding ``host`` would show the node a procfs, or None.

    A bound procfs is read-only only for its own files: ``/proc/PID/root`` of a
    process with no more capabilities than the node (another container's, a
    root service that dropped some) is that process's root, writable (a hand
    test wrote into another container's /tmp through ``/proc:/hostproc``). So no
    path on or under a proc mount, none with a proc mount below it (``/``, whose
    binds are recursive), and none whose text and target part ways (a link
    through ``/proc/PID/root`` into another mount namespace)."""
    try:
        real = os.path.realpath(host)
    except OSError:  # a /proc/PID/root link this process may not read
        return f"{host} cannot be followed"
    if real == "/proc" or real.startswith("/proc/"):
        return f"{host} is in the host's /proc"
    try:
        if not os.path.samestat(os.stat(host), os.stat(real)):
            return f"{host} leads somewhere else than {real} (through /proc/PID/root)"
    except OSError:
        return f"{host} cannot be followed"
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            rows = [line.split() for line in fh]
    except OSError:
        return None
    under = real.rstrip("/") + "/"
    for row in rows:
        if "-" not in row:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), row[4])  # \040: space
        fstype = row[row.index("-") + 1]
        if fstype == "proc" and (point == real or point.startswith(under)):
            return f"{host} holds the host's /proc (mounted at {point})"
    return None


def is_clab(path: str, root: Val) -> bool:
    """A containerlab file: by its suffix, or by a top-level ``topology:`` key."""
    if path.endswith(CLAB_SUFFIXES):
        return True
    from yaml import MappingNode, ScalarNode

    node = root.node
    return isinstance(node, MappingNode) and any(
        isinstance(k, ScalarNode) and k.value == "topology" for k, _ in node.value
    )


class _Unsupported:
    """Every unsupported kind or field of the file, each one line: all reported at once."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, v: Val, message: str) -> None:
        where = v.where
        line = f"{where.file}:{where.line}: {where.path}: {message}"
        if line not in self.lines:  # a default's bad kind is met once per node
            self.lines.append(line)

    def fields(self, v: Val, allowed: frozenset[str]) -> dict[str, Val]:
        """The mapping's entries; unknown keys are noted (one line each) and dropped."""
        out: dict[str, Val] = {}
        for key, item in v.mapping().items():
            if key in allowed:
                out[key] = item
            elif key in _NODE:  # a supported field in the wrong place
                self.add(item, f"field {key!r} is set per node, not here")
            else:
                self.add(item, f"field {key!r} is not supported by netlens")
        return out

    def raise_if_any(self) -> None:
        if self.lines:
            raise BadInputs(self.lines)


def load_clab(
    path: str, root: Val, display: str, *, name: str | None = None, notify: Notify | None = None
) -> LabSpec:
    """The lab of containerlab file ``path`` (already composed as ``root``)."""
    return _ClabLoader(path, display, notify).load(root, name)


class _ClabLoader:
    def __init__(self, path: str, display: str, notify: Notify | None) -> None:
        self.path = os.path.abspath(path)
        self.base = os.path.dirname(self.path)
        self.display = display
        self.notify = notify
        self.bad = _Unsupported()

    def load(self, root: Val, name_override: str | None) -> LabSpec:
        top = self.bad.fields(root, _TOP)
        if "topology" not in top:
            raise root.err("missing field 'topology'")
        topo = self.bad.fields(top["topology"], _TOPOLOGY)
        defaults = self.bad.fields(topo["defaults"], _SHARED) if "defaults" in topo else {}
        kinds: dict[str, dict[str, Val]] = {}
        if "kinds" in topo:
            for kind, kv in topo["kinds"].mapping().items():
                if kind not in KINDS:
                    self.bad.add(kv, f"kind {kind!r} is not supported (netlens runs linux, bridge)")
                kinds[kind] = self.bad.fields(kv, _SHARED - {"kind"})
        if "nodes" not in topo:
            raise top["topology"].err("missing field 'nodes'")
        entries = topo["nodes"].mapping()
        merged: dict[str, tuple[Val, str, dict[str, Val]]] = {}
        for node_name, nv in entries.items():
            own = self.bad.fields(nv, _NODE)
            kind_val = own.get("kind", defaults.get("kind"))
            kind = kind_val.string() if kind_val is not None else "linux"
            if kind not in KINDS:
                assert kind_val is not None
                self.bad.add(
                    kind_val, f"kind {kind!r} is not supported (netlens runs linux, bridge)"
                )
                continue
            fields = {**defaults, **kinds.get(kind, {}), **own}
            fields.pop("kind", None)
            merged[node_name] = (nv, kind, fields)
        self.bad.raise_if_any()  # nothing else is worth reading before these are fixed
        lab_name = self._lab_name(root, top, name_override)
        mgmt = self.bad.fields(top["mgmt"], _MGMT) if "mgmt" in top else {}
        self.bad.raise_if_any()
        bridges = [n for n, (_, kind, _) in merged.items() if kind == "bridge"]
        networks: dict[str, tuple[LabNetwork, Val]] = {}
        for bname in bridges:
            nv, _, f = merged[bname]
            check_name(nv, "network", bname)
            for key, item in f.items():
                if not item.path.startswith("topology.defaults."):  # those are for linux nodes
                    self.bad.add(item, f"field {key!r} does not apply to a bridge")
            networks[bname] = (LabNetwork(name=bname, line=nv.where.line), nv)
        self.bad.raise_if_any()
        drafts = [
            self._node(node_name, nv, f)
            for node_name, (nv, _, f) in merged.items()
            if node_name not in networks
        ]
        if not drafts:
            raise topo["nodes"].err("a lab needs at least one linux node")
        if any(d.fields["network"] is not None for d in drafts):
            if MGMT_NETWORK in networks:
                raise networks[MGMT_NETWORK][1].err(
                    f"the name {MGMT_NETWORK!r} is the management network's in netlens"
                )
            networks = {MGMT_NETWORK: self._mgmt(root, mgmt, drafts), **networks}
        check_runtime_names(lab_name, networks, drafts)
        links = self._links(topo.get("links"), drafts, networks)
        self._images(drafts)
        nodes = finish_nodes(drafts, networks, links)
        check_links(links, drafts)
        return LabSpec(
            name=lab_name,
            path=self.path,
            networks=tuple(n for n, _ in networks.values()),
            nodes=tuple(nodes),
            links=tuple(lk for lk, _ in links),
        )

    def _lab_name(self, root: Val, top: dict[str, Val], override: str | None) -> str:
        if override is not None:
            try:
                return names.validate_name(override, "lab")
            except BadInput as err:
                raise BadInput(f"--name: {err}") from None
        if "name" not in top:
            raise root.err("missing field 'name' (the lab's name)")
        return check_name(top["name"], "lab")

    def _mgmt(
        self, root: Val, mgmt: dict[str, Val], drafts: list[NodeDraft]
    ) -> tuple[LabNetwork, Val]:
        """The management network: containerlab's bridge with NAT, lab-scoped here."""
        from netlens_runtime import ipam

        subnet = None
        if "ipv4-subnet" in mgmt:
            subnet = str(mgmt["ipv4-subnet"].checked(ipam.parse_subnet))
        elif any("ip" in d.fields for d in drafts):
            subnet = DEFAULT_MGMT_SUBNET
        gateway = None
        if "ipv4-gw" in mgmt:
            if subnet is None:
                raise mgmt["ipv4-gw"].err("a gateway needs mgmt.ipv4-subnet")
            try:
                ipam.check_gateway_subnet(subnet, mgmt["ipv4-gw"].string())
            except BadInput as err:
                raise mgmt["ipv4-gw"].err(str(err)) from None
            gateway = mgmt["ipv4-gw"].string()
        if "network" in mgmt:  # containerlab's bridge name: netlens names bridges per lab
            check_ifname(mgmt["network"])
        where = mgmt.get("ipv4-subnet", root)
        net = LabNetwork(
            name=MGMT_NETWORK, subnet=subnet, gateway=gateway, nat=True, line=where.where.line
        )
        return net, where

    def _node(self, node_name: str, nv: Val, f: dict[str, Val]) -> NodeDraft:
        check_name(nv, "node", node_name)
        out: dict[str, Any] = {"network": MGMT_NETWORK, "cap_add": NODE_CAPS}
        if "network-mode" in f:
            mode = f["network-mode"].string()
            if mode != "none":
                raise f["network-mode"].err(f"network-mode {mode!r} is not supported (only 'none')")
            out["network"] = None
        if "cmd" in f:
            cmd = f["cmd"].string_list()
            if not cmd:
                raise f["cmd"].err("the command is empty")
            out["command"] = tuple(cmd)
        if "exec" in f:
            out["exec"] = tuple(check_exec(item) for item in f["exec"].sequence())
        if "env" in f:
            env = f["env"].string_map()
            for key, kv in f["env"].mapping().items():
                try:
                    names.validate_env(key, env[key])
                except BadInput as err:
                    raise kv.err(str(err)) from None
            out["env"] = env
        if "labels" in f:
            labels = f["labels"].string_map()
            for key in labels:
                try:
                    names.validate_label(key)
                except BadInput as err:
                    raise f["labels"].err(str(err)) from None
            out["labels"] = labels
        if "binds" in f:
            out["binds"] = tuple(self._bind(item) for item in f["binds"].sequence())
        draft = NodeDraft(node_name, nv.where, out, dict(f))
        if "mgmt-ipv4" in f:
            mv = f["mgmt-ipv4"]
            if out["network"] is None:
                raise mv.err("a node with network-mode none has no management address")
            out["ip"] = mv.checked(node_address)
            draft.ip_where = mv.where
        if "image" in f:
            f["image"].string()
        return draft

    def _bind(self, item: Val) -> str:
        """``HOST:CONTAINER[:ro]``; a relative HOST is relative to the file, as in containerlab."""
        text = item.string()
        parts = text.split(":")
        if len(parts) == 3 and parts[2] == "rw":
            raise item.err(f"bind {text!r}: netlens mounts binds read-only (drop ':rw')")
        if len(parts) in (2, 3) and parts[0] and not parts[0].startswith("/"):
            parts[0] = os.path.normpath(os.path.join(self.base, parts[0]))
        full = ":".join(parts[:2]) + ":ro"
        try:
            host, _, _ = names.check_volume(full)
        except BadInput as err:
            raise item.err(str(err)) from None
        # Read-only stops writes to files, not a connect() to a socket or a write
        # into a FIFO: a bound /var/run/docker.sock is root on the host.
        kind = _PIPE_KINDS.get(stat.S_IFMT(os.stat(host).st_mode))
        if kind is not None:
            raise item.err(
                f"bind {text!r}: {host} is a {kind}: a read-only bind would still let the "
                "node talk to whatever listens there (a lab file must not change the host)"
            )
        where = _shows_proc(host)
        if where is not None:
            raise item.err(
                f"bind {text!r}: {where}: its /proc/PID/root links lead past a read-only "
                "mount into other containers' and the host's files"
            )
        return full

    def _links(
        self,
        val: Val | None,
        drafts: list[NodeDraft],
        networks: dict[str, tuple[LabNetwork, Val]],
    ) -> list[tuple[LabLink, Val]]:
        out: list[tuple[LabLink, Val]] = []
        if val is None:
            return out
        by_name = {d.name: d for d in drafts}
        for lv in val.sequence():
            f = self.bad.fields(lv, _LINK)
            self.bad.raise_if_any()
            if "endpoints" not in f:
                raise lv.err("missing field 'endpoints'")
            ends = [self._endpoint(ev) for ev in f["endpoints"].sequence()]
            if len(ends) != 2:
                raise f["endpoints"].err(f"a link has two endpoints, got {len(ends)}")
            mtu = check_mtu(f["mtu"]) if "mtu" in f else None
            (a, ai, _), (b, bi, _) = ends
            on_bridge = [n for n, _, _ in ends if n in networks]
            if len(on_bridge) == 2:
                raise f["endpoints"].err("a link between two bridges is not supported")
            if on_bridge:
                (bridge, _, _), (node, ifname, nodev) = (
                    (ends[0], ends[1]) if a in networks else (ends[1], ends[0])
                )
                if node not in by_name:
                    raise nodev.err(f"no node {node!r} in this lab")
                if mtu is not None:
                    raise f["mtu"].err("the mtu of a bridge leg is the bridge's")
                iface = LabInterface(network=bridge, ifname=ifname)
                d = by_name[node]
                d.fields.setdefault("interfaces", []).append((iface, nodev))
                continue
            out.append((LabLink(a, ai, b, bi, mtu=mtu), lv))
        return out

    @staticmethod
    def _endpoint(ev: Val) -> tuple[str, str, Val]:
        text = ev.string()
        node, sep, ifname = text.partition(":")
        if not sep or not node or not ifname:
            raise ev.err(f"endpoint {text!r}: expected NODE:INTERFACE")
        if node in ("host", "mgmt-net", "macvlan"):
            raise ev.err(f"endpoint {text!r}: {node} endpoints are not supported")
        try:
            names.validate_ifname(ifname)
        except BadInput as err:
            raise ev.err(str(err)) from None
        return node, ifname, ev

    def _images(self, drafts: list[NodeDraft]) -> None:
        """``image``: an image a local Docker or Podman store holds is the node's
        read-only root (:mod:`netlens_runtime.lab_image`): one layer as ``rootfs``,
        several as ``layers`` (an overlay); nothing is pulled. Other nodes run on
        the host's read-only root, and the caller hears it once. A damaged store
        refuses the file at the first node naming the image."""
        from netlens_runtime import lab_image

        found: dict[str, tuple[list[str] | None, str]] = {}
        for d in drafts:
            iv = d.vals.get("image")
            if iv is None:
                continue
            ref = iv.string()
            if ref not in found:
                try:
                    found[ref] = lab_image.resolve(ref)
                except lab_image.Damaged as err:
                    raise iv.err(f"image {ref}: {err}") from None
            layers, _ = found[ref]
            if layers is not None and len(layers) == 1:
                d.fields["rootfs"] = layers[0]
            elif layers is not None:
                d.fields["layers"] = tuple(layers)
        missing = [f"image {ref} {why}" for ref, (layers, why) in found.items() if layers is None]
        if missing and self.notify is not None:
            self.notify(
                f"{self.display}: {'; '.join(missing)}: those nodes run on the host's"
                " read-only root"
            )
