"""Load and validate lab files, keeping the line of every value for error messages.

A lab file is YAML. It is parsed with :func:`yaml.compose`, which keeps the node
tree *with its source marks*, instead of :func:`yaml.safe_load`, which throws the
marks away. Every check therefore can say exactly where the mistake is::

    lab.yaml:12: nodes.r1.links[0].addr: '10.0.0.1/33' is not a valid address

Everything is checked here, before anything is created, so ``lab up`` never
half-builds a lab because of a typo. Every value the runtime also takes from
``netlens run`` or ``network create`` goes through the runtime's own rule
(:mod:`netlens_runtime.names`, :mod:`netlens_runtime.ipam`), with this file's
place added to its message: ``lab check`` passes exactly what ``lab up`` builds.
The result is a tree of frozen dataclasses with lab-local names
(:mod:`netlens_runtime.lab_model`); :mod:`netlens_runtime.lab_ops` turns them into
runtime objects. This module reads the file's fields; walking the YAML with its
marks and checking single values is :mod:`netlens_runtime.lab_yaml`, the checks
across nodes, links and flows :mod:`netlens_runtime.lab_cross`.

This module imports only the standard library, PyYAML and the runtime's pure
rule modules: ``lab ls`` and the unit tests stay fast and need no root.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterator
from typing import Any

import yaml

from netlens_runtime import ipam, lab_impair, names, overlay
from netlens_runtime.errors import BadInput
from netlens_runtime.lab_cross import MISSING, NodeDraft, check_links, finish_nodes, flows
from netlens_runtime.lab_impair import ImpairSpec
from netlens_runtime.lab_model import (
    MAX_NODE_COUNT,
    LabInterface,
    LabLink,
    LabNetwork,
    LabRoute,
    LabSpec,
    Where,
)
from netlens_runtime.lab_yaml import (
    Val,
    check_binds,
    check_exec,
    check_iface_addr,
    check_ifname,
    check_ip,
    check_mtu,
    check_name,
    check_route_dest,
    confinement,
    node_address,
)

# ------------------------------------------------------------------ the loader

_TOP = frozenset({"name", "networks", "nodes", "links", "traffic", "defaults"})
_NET = frozenset({"subnet", "gateway", "nat", "mtu", "bridge", "internal", "allow_from"})
_NODE = frozenset(
    {
        "count",
        "rootfs",
        "layers",
        "command",
        "network",
        "ip",
        "memory",
        "cpus",
        "pids_limit",
        "log_size",
        "cap_add",
        "env",
        "labels",
        "sysctls",
        "ip_forward",
        "hostname",
        "publish",
        "binds",
        "interfaces",
        "routes",
        "links",
        "privileged",
        "security_opt",
        "impair",
        "exec",
    }
)
_DEFAULTS = _NODE - {"count", "ip", "links", "interfaces", "hostname"}
_LINK = frozenset({"peer", "ifname", "addr", "peer_ifname", "peer_addr", "mtu", "impair"})
_TOPLINK = frozenset({"a", "b", "mtu", "impair"})
_END = frozenset({"node", "ifname", "addr"})
_IFACE = frozenset({"network", "ip", "ifname", "impair"})
_ROUTE = frozenset({"to", "via", "dev"})


def load_lab(
    path: str,
    *,
    text: str | None = None,
    scale: int | None = None,
    name: str | None = None,
    notify: Callable[[str], None] | None = None,
) -> LabSpec:
    """Read and validate a lab file; raise :class:`BadInput` naming file:line:field.

    ``text`` parses that string instead of reading ``path`` (tests). ``scale`` sets
    the total number of nodes by resizing the groups that use ``count`` (the demo's
    ``--nodes``). ``name`` overrides the lab's name (tests run the same file under a
    tagged name). A containerlab file (``*.clab.yml``, or a top-level ``topology:``)
    is read by :mod:`netlens_runtime.lab_clab`; ``notify`` hears its one-line notes.
    """
    display = os.path.basename(path)
    if text is None:
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise BadInput(f"{path}: cannot read lab file: {exc.strerror}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise BadInput(f"{display}:{line}: YAML syntax error: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"{display}: YAML error: {exc}") from None
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        raise BadInput(f"{display}: the YAML is nested too deeply") from None
    if root is None:
        raise BadInput(f"{display}:1: the lab file is empty")
    from netlens_runtime import lab_clab

    if lab_clab.is_clab(path, Val(display, root, "")):
        if scale is not None:
            raise BadInput(f"{display}: a containerlab file has no 'count' groups to grow")
        return lab_clab.load_clab(path, Val(display, root, ""), display, name=name, notify=notify)
    return _Loader(display, path, scale, name).load(Val(display, root, ""))


class _Loader:
    def __init__(self, display: str, path: str, scale: int | None, name: str | None) -> None:
        self.display = display
        self.path = os.path.abspath(path)
        self.scale = scale
        self.name_override = name

    # -- top level
    def load(self, root: Val) -> LabSpec:
        top = root.mapping(_TOP)
        if "name" in top:
            lab_name = check_name(top["name"], "lab")
        elif self.name_override is None:
            raise root.err("missing field 'name' (the lab's name)")
        if self.name_override is not None:
            try:
                lab_name = names.validate_name(self.name_override, "lab")
            except BadInput as err:
                raise BadInput(f"--name: {err}") from None
        networks = self._networks(top.get("networks"))
        if "nodes" not in top:
            raise root.err("missing field 'nodes'")
        nodes_val = top["nodes"]
        defaults = top["defaults"].mapping(_DEFAULTS) if "defaults" in top else {}
        drafts, node_links = self._nodes(nodes_val, defaults, networks)
        if not drafts:
            raise nodes_val.err("a lab needs at least one node")
        self._check_runtime_names(lab_name, networks, drafts)
        links = node_links + self._top_links(top.get("links"), drafts)
        nodes = finish_nodes(drafts, networks, links)
        check_links(links, drafts)
        traffic = flows(top.get("traffic"), nodes)
        return LabSpec(
            name=lab_name,
            path=self.path,
            networks=tuple(n for n, _ in networks.values()),
            nodes=tuple(nodes),
            links=tuple(lk for lk, _ in links),
            traffic=tuple(traffic),
        )

    @staticmethod
    def _check_runtime_names(
        lab: str, networks: dict[str, tuple[LabNetwork, Val]], drafts: list[NodeDraft]
    ) -> None:
        """The names the runtime will use, ``<lab>-<node>`` and ``<lab>-<net>``, follow its
        name rule too (at most names.NAME_MAX bytes in all)."""
        for net, nv in networks.values():
            real = f"{lab}-{net.name}"
            if len(real.encode()) > names.NAME_MAX:
                raise nv.err(
                    f"network {net.name!r} of lab {lab!r} would be {real!r}, longer than"
                    f" {names.NAME_MAX} bytes: shorten the lab or the network name"
                )
        for d in drafts:
            real = f"{lab}-{d.name}"
            if len(real.encode()) > names.NAME_MAX:
                raise d.where.error(
                    f"node {d.name!r} of lab {lab!r} would be container {real!r}, longer than"
                    f" {names.NAME_MAX} bytes: shorten the lab or the node name"
                )

    # -- networks
    def _networks(self, val: Val | None) -> dict[str, tuple[LabNetwork, Val]]:
        out: dict[str, tuple[LabNetwork, Val]] = {}
        if val is None:
            return out
        bridges: dict[str, Val] = {}
        for name, nv in val.mapping().items():
            check_name(nv, "network", name)
            f = nv.mapping(_NET)
            subnet = None
            if "subnet" in f:
                net4 = f["subnet"].checked(ipam.parse_subnet)
                for other, _ in out.values():
                    if other.subnet and net4.overlaps(ipaddress.IPv4Network(other.subnet)):
                        raise f["subnet"].err(
                            f"{net4} overlaps network {other.name!r} ({other.subnet})"
                        )
                subnet = str(net4)
            gateway = None
            if "gateway" in f:
                try:
                    ipam.check_gateway_subnet(subnet, f["gateway"].string())
                except BadInput as err:
                    raise f["gateway"].err(str(err)) from None
                sub4 = ipaddress.IPv4Network(subnet)
                gateway = f["gateway"].checked(lambda gw, sub4=sub4: ipam.gateway_for(sub4, gw))  # type: ignore[misc]
            bridge = None
            if "bridge" in f:
                bridge = check_ifname(f["bridge"])
                if bridge in bridges:
                    raise f["bridge"].err(f"bridge {bridge!r} is already used by another network")
                bridges[bridge] = f["bridge"]
            net = LabNetwork(
                name=name,
                subnet=subnet,
                gateway=gateway,
                nat=f["nat"].boolean() if "nat" in f else False,
                mtu=check_mtu(f["mtu"]) if "mtu" in f else 1500,
                bridge=bridge,
                internal=f["internal"].boolean() if "internal" in f else False,
                allow_from=tuple(f["allow_from"].string_list()) if "allow_from" in f else (),
                line=nv.where.line,
            )
            try:
                names.check_internal_nat(net.internal, net.nat)
            except BadInput as err:
                raise f["nat"].err(str(err)) from None
            out[name] = (net, nv)
        for net, nv in out.values():
            where = nv.mapping(_NET).get("allow_from")
            for item in net.allow_from:
                if "/" not in item and item not in out:
                    assert where is not None
                    raise where.err(f"{item!r} is neither a network of this lab nor a CIDR")
            if where is not None:
                try:
                    names.check_allow_from(net.name, list(net.allow_from))
                except BadInput as err:
                    raise where.err(str(err)) from None
        return out

    # -- nodes
    def _nodes(
        self,
        val: Val,
        defaults: dict[str, Val],
        networks: dict[str, tuple[LabNetwork, Val]],
    ) -> tuple[list[NodeDraft], list[tuple[LabLink, Val]]]:
        entries = val.mapping()
        groups: dict[str, int] = {}
        for name, nv in entries.items():
            check_name(nv, "node", name)
            f = nv.mapping(_NODE)
            if "count" in f:
                groups[name] = f["count"].integer(1, MAX_NODE_COUNT)
        if self.scale is not None:
            groups = self._rescale(val, entries, groups)
        drafts: list[NodeDraft] = []
        links: list[tuple[LabLink, Val]] = []
        seen: dict[str, Where] = {}
        for name, nv in entries.items():
            f = nv.mapping(_NODE)
            merged: dict[str, Val] = dict(defaults)
            merged.update(f)
            count = groups.get(name)
            if count is not None and "links" in f:
                raise f["links"].err("a node group with 'count' cannot have links")
            members = [name] if count is None else [f"{name}{i}" for i in range(1, count + 1)]
            base_ip = None
            if "ip" in merged:
                base_ip = ipaddress.IPv4Address(merged["ip"].checked(node_address))
            for idx, real in enumerate(members):
                if real in seen:
                    raise nv.err(f"node {real!r} is defined twice (also at line {seen[real].line})")
                seen[real] = nv.where
                fields = self._node_fields(merged, networks)
                if base_ip is not None:
                    fields["ip"] = str(base_ip + idx)
                draft = NodeDraft(real, nv.where, fields, merged)
                if "ip" in merged:
                    draft.ip_where = merged["ip"].where
                drafts.append(draft)
            if "links" in f:
                links.extend(self._node_links(name, f["links"]))
        return drafts, links

    def _rescale(self, val: Val, entries: dict[str, Val], groups: dict[str, int]) -> dict[str, int]:
        """Resize the ``count`` groups so the lab has ``self.scale`` nodes in total."""
        assert self.scale is not None
        fixed = len(entries) - len(groups)
        if not groups:
            raise val.err("this lab has no node group with 'count', so it cannot be scaled")
        base = fixed + sum(groups.values())
        if not base <= self.scale <= MAX_NODE_COUNT:
            raise BadInput(
                f"{self.display}: --nodes must be between {base} (the file's own size) and"
                f" {MAX_NODE_COUNT} for this lab"
            )
        # Only ever grow: flows and links may name the file's own group members.
        grown = list(groups)
        share, extra = divmod(self.scale - base, len(grown))
        return {n: groups[n] + share + (1 if i < extra else 0) for i, n in enumerate(grown)}

    def _node_fields(
        self, f: dict[str, Val], networks: dict[str, tuple[LabNetwork, Val]]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "rootfs" in f:
            rootfs = f["rootfs"].opt_string()
            if rootfs is not None:
                f["rootfs"].checked(names.validate_rootfs)
            out["rootfs"] = rootfs
        if "layers" in f:  # what ``lab save`` writes for a node on a layered image
            layers = f["layers"].string_list()
            if out.get("rootfs") is not None:
                raise f["layers"].err("rootfs and layers exclude each other")
            try:
                overlay.validate_layers(layers)
            except BadInput as err:
                raise f["layers"].err(str(err)) from None
            out["layers"] = tuple(layers)
        if "command" in f:
            cmd = f["command"].string_list()
            if not cmd:
                raise f["command"].err("the command is empty")
            out["command"] = tuple(cmd)
        if "network" in f:
            net = f["network"].opt_string()
            if net is not None and net not in networks:
                raise f["network"].err(f"no network {net!r} in this lab")
            out["network"] = net
        elif len(networks) == 1:
            out["network"] = next(iter(networks))
        elif networks:
            out["network"] = MISSING
        else:
            out["network"] = None
        if "memory" in f:
            memory = f["memory"].string().strip()
            f["memory"].checked(names.parse_memory)
            out["memory"] = memory
        if "cpus" in f:
            out["cpus"] = f["cpus"].checked(names.parse_cpus)
        if "pids_limit" in f:
            f["pids_limit"].checked(names.parse_pids_limit)
            out["pids_limit"] = int(f["pids_limit"].string())
        if "log_size" in f:
            f["log_size"].checked(names.parse_log_size)
            out["log_size"] = f["log_size"].string().strip()
        if "cap_add" in f:
            out["cap_add"] = tuple(cv.checked(names.validate_cap) for cv in f["cap_add"].sequence())
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
        sysctls: dict[str, str] = {}
        if "sysctls" in f:
            sysctls = f["sysctls"].string_map()
            for key, kv in f["sysctls"].mapping().items():
                try:
                    names.validate_sysctl(key)
                except BadInput as err:
                    raise kv.err(str(err)) from None
        if "ip_forward" in f:
            on = f["ip_forward"].boolean()
            sysctls["net.ipv4.ip_forward"] = "1" if on else "0"
        if sysctls:
            out["sysctls"] = sysctls
        if "hostname" in f:
            hv = f["hostname"]
            out["hostname"] = None if hv.is_null() else hv.checked(names.validate_hostname)
        if "publish" in f:
            pv = f["publish"]
            items = [pv] if isinstance(pv.node, yaml.ScalarNode) else pv.sequence()
            for item in items:
                if not item.is_null():
                    item.checked(names.parse_publish)
            out["publish"] = tuple(pv.string_list())
        if "binds" in f:
            out["binds"] = check_binds(f["binds"])
        if "interfaces" in f:
            out["interfaces"] = tuple(self._interfaces(f["interfaces"], networks))
        if "impair" in f:
            out["impair"] = lab_impair.from_yaml(f["impair"], with_direction=True)
        if "exec" in f:
            out["exec"] = tuple(check_exec(item) for item in f["exec"].sequence())
        if "routes" in f:
            routes = []
            for rv in f["routes"].sequence():
                r = rv.mapping(_ROUTE)
                if "to" not in r:
                    raise rv.err("missing field 'to'")
                if "via" not in r and "dev" not in r:
                    raise rv.err("a route needs 'via' or 'dev'")
                routes.append(
                    (
                        LabRoute(
                            to=check_route_dest(r["to"]),
                            via=check_ip(r["via"]) if "via" in r else None,
                            dev=check_ifname(r["dev"]) if "dev" in r else None,
                        ),
                        rv,
                    )
                )
            out["routes"] = routes
        confinement(f, out, os.path.dirname(self.path))
        return out

    def _interfaces(
        self, val: Val, networks: dict[str, tuple[LabNetwork, Val]]
    ) -> Iterator[tuple[LabInterface, Val]]:
        for iv in val.sequence():
            f = iv.mapping(_IFACE)
            for req in ("network", "ifname"):
                if req not in f:
                    raise iv.err(f"missing field {req!r}")
            net = f["network"].string()
            if net not in networks:
                raise f["network"].err(f"no network {net!r} in this lab")
            ip = f["ip"].checked(node_address) if "ip" in f else None
            impair = (
                lab_impair.from_yaml(f["impair"], with_direction=True) if "impair" in f else None
            )
            iface = LabInterface(
                network=net, ifname=check_ifname(f["ifname"]), ip=ip, impair=impair
            )
            yield (iface, iv)

    def _node_links(self, node: str, val: Val) -> Iterator[tuple[LabLink, Val]]:
        for lv in val.sequence():
            f = lv.mapping(_LINK)
            for req in ("peer", "ifname"):
                if req not in f:
                    raise lv.err(f"missing field {req!r}")
            peer = f["peer"].string()
            ifname = check_ifname(f["ifname"])
            yield (
                LabLink(
                    a=node,
                    a_ifname=ifname,
                    b=peer,
                    b_ifname=check_ifname(f["peer_ifname"]) if "peer_ifname" in f else ifname,
                    a_addr=check_iface_addr(f["addr"]) if "addr" in f else None,
                    b_addr=check_iface_addr(f["peer_addr"]) if "peer_addr" in f else None,
                    mtu=check_mtu(f["mtu"]) if "mtu" in f else None,
                    impair=_link_impair(f),
                ),
                lv,
            )

    def _top_links(self, val: Val | None, drafts: list[NodeDraft]) -> list[tuple[LabLink, Val]]:
        """Top-level ``links:`` entries: ``{a: {node, ifname, addr}, b: {...}}``."""
        out: list[tuple[LabLink, Val]] = []
        if val is None:
            return out
        for lv in val.sequence():
            f = lv.mapping(_TOPLINK)
            ends: list[tuple[str, str, str | None]] = []
            for side in ("a", "b"):
                if side not in f:
                    raise lv.err(f"missing field {side!r}")
                e = f[side].mapping(_END)
                for req in ("node", "ifname"):
                    if req not in e:
                        raise f[side].err(f"missing field {req!r}")
                ends.append(
                    (
                        e["node"].string(),
                        check_ifname(e["ifname"]),
                        check_iface_addr(e["addr"]) if "addr" in e else None,
                    )
                )
            (a, ai, aa), (b, bi, ba) = ends
            link = LabLink(
                a,
                ai,
                b,
                bi,
                aa,
                ba,
                check_mtu(f["mtu"]) if "mtu" in f else None,
                _link_impair(f),
            )
            out.append((link, lv))
        return out


check_runtime_names = _Loader._check_runtime_names
"""The ``<lab>-<node>`` / ``<lab>-<net>`` length rule, for the containerlab loader too."""


def _link_impair(f: dict[str, Val]) -> ImpairSpec | None:
    """A link's ``impair:`` block: both directions of the cable, no ``direction`` key."""
    return lab_impair.from_yaml(f["impair"], with_direction=False) if "impair" in f else None
