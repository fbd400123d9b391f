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
The result is a tree of frozen dataclasses with lab-local names;
:mod:`netlens_runtime.lab` turns them into runtime objects.

This module imports only the standard library, PyYAML and the runtime's pure
rule modules: ``lab ls`` and the unit tests stay fast and need no root.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml

from netlens_runtime import ipam, lab_impair, names
from netlens_runtime.errors import BadInput
from netlens_runtime.lab_impair import ImpairSpec
from netlens_runtime.names import ifname_problem

T = TypeVar("T")

IFNAMSIZ = 15
"""Linux interface names are at most 15 bytes (IFNAMSIZ - 1)."""

MAX_NODE_COUNT = 5000
"""Upper bound for ``count`` (and ``--nodes``): a lab of more nodes is a typo."""

_RATE_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([kmg]?)(bit|bps|b)?(?:/s)?$", re.IGNORECASE)
_RATE_UNITS = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}

PRIMARY_IFNAME = "eth0"
"""Name of a node's interface on its primary network (the runtime's choice)."""


# --------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True)
class Where:
    """A place in the lab file: ``file:line`` plus the dotted field path."""

    file: str
    line: int
    path: str

    def error(self, message: str) -> BadInput:
        """A :class:`BadInput` naming this place, ready to raise."""
        prefix = f"{self.path}: " if self.path else ""
        return BadInput(f"{self.file}:{self.line}: {prefix}{message}")


@dataclass(frozen=True, slots=True)
class LabNetwork:
    """A bridge segment of the lab (the runtime's network)."""

    name: str
    subnet: str | None = None
    gateway: str | None = None
    nat: bool = False
    mtu: int = 1500
    bridge: str | None = None
    internal: bool = False
    allow_from: tuple[str, ...] = ()
    """Lab networks (their lab names) or outside CIDRs that may open connections into it."""
    line: int = field(default=0, compare=False)
    """Line of the network in its lab file, for errors the runtime reports later."""


@dataclass(frozen=True, slots=True)
class LabInterface:
    """An extra attachment of a node to a lab network (a router's second leg)."""

    network: str
    ifname: str
    ip: str | None = None
    """Address without prefix; the prefix comes from the network's subnet."""
    impair: ImpairSpec | None = None
    """``impair:``: what this leg suffers (``lab up`` applies it with linkops)."""


@dataclass(frozen=True, slots=True)
class LabRoute:
    """A static route inside a node: ``to`` is a CIDR or ``default``."""

    to: str
    via: str | None = None
    dev: str | None = None


@dataclass(frozen=True, slots=True)
class LabLink:
    """A point-to-point veth straight between two nodes (no bridge)."""

    a: str
    a_ifname: str
    b: str
    b_ifname: str
    a_addr: str | None = None
    b_addr: str | None = None
    mtu: int | None = None
    impair: ImpairSpec | None = None
    """``impair:``: what each direction of the cable suffers (each end's egress)."""


@dataclass(frozen=True, slots=True)
class LabNode:
    """One container of the lab, with lab-local names (``r1``, not ``lab-r1``)."""

    name: str
    command: tuple[str, ...] = ("sleep", "infinity")
    network: str | None = None
    ip: str | None = None
    rootfs: str | None = None
    memory: str | None = None
    cpus: float | None = None
    cap_add: tuple[str, ...] = ()
    pids_limit: int | None = None
    """None: the runtime's default (names.PIDS_DEFAULT); 0: no limit."""
    log_size: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    sysctls: dict[str, str] = field(default_factory=dict)
    hostname: str | None = None
    publish: tuple[str, ...] = ()
    binds: tuple[str, ...] = ()
    interfaces: tuple[LabInterface, ...] = ()
    routes: tuple[LabRoute, ...] = ()
    privileged: bool = False
    security_opt: tuple[str, ...] = ()
    impair: ImpairSpec | None = None
    """``impair:`` of the node itself: its primary interface (eth0) suffers it."""


@dataclass(frozen=True, slots=True)
class LabFlow:
    """A traffic generator flow between two nodes of the lab (demo traffic)."""

    src: str
    dst: str
    proto: str = "tcp"
    port: int = 5201
    min_bps: int = 1_000_000
    max_bps: int = 10_000_000


@dataclass(frozen=True, slots=True)
class LabSpec:
    """A validated lab: what ``lab up`` builds, in creation order."""

    name: str
    path: str
    networks: tuple[LabNetwork, ...]
    nodes: tuple[LabNode, ...]
    links: tuple[LabLink, ...] = ()
    traffic: tuple[LabFlow, ...] = ()

    def node(self, name: str) -> LabNode:
        """The node called ``name`` (lab-local)."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def network(self, name: str) -> LabNetwork:
        """The network called ``name`` (lab-local)."""
        for n in self.networks:
            if n.name == name:
                return n
        raise KeyError(name)


# ------------------------------------------------------------------ yaml walking


class _Val:
    """A composed YAML node plus where it is: the walker's unit of work."""

    __slots__ = ("file", "node", "path")

    _constructor = yaml.constructor.SafeConstructor()

    def __init__(self, file: str, node: yaml.Node, path: str) -> None:
        self.file = file
        self.node = node
        self.path = path

    @property
    def where(self) -> Where:
        return Where(self.file, self.node.start_mark.line + 1, self.path)

    def err(self, message: str) -> BadInput:
        return self.where.error(message)

    def child(self, node: yaml.Node, key: str | int) -> _Val:
        if isinstance(key, int):
            path = f"{self.path}[{key}]"
        else:
            path = f"{self.path}.{key}" if self.path else key
        return _Val(self.file, node, path)

    # ---- shapes
    def is_null(self) -> bool:
        return isinstance(self.node, yaml.ScalarNode) and self.node.tag.endswith(":null")

    def mapping(self, allowed: frozenset[str] | None = None) -> dict[str, _Val]:
        """The mapping's entries by key; duplicate and unknown keys are errors."""
        if self.is_null():
            return {}
        if not isinstance(self.node, yaml.MappingNode):
            raise self.err(f"expected a mapping, got {self._kind()}")
        out: dict[str, _Val] = {}
        for knode, vnode in self.node.value:
            if not isinstance(knode, yaml.ScalarNode):
                raise _Val(self.file, knode, self.path).err("keys must be plain names")
            key = str(knode.value)
            kval = _Val(self.file, knode, f"{self.path}.{key}" if self.path else key)
            if key in out:
                raise kval.err(f"duplicate key {key!r}")
            if allowed is not None and key not in allowed:
                raise kval.err(f"unknown field (expected one of: {', '.join(sorted(allowed))})")
            out[key] = self.child(vnode, key)
        return out

    def sequence(self) -> list[_Val]:
        if self.is_null():
            return []
        if not isinstance(self.node, yaml.SequenceNode):
            raise self.err(f"expected a list, got {self._kind()}")
        return [self.child(n, i) for i, n in enumerate(self.node.value)]

    def scalar(self) -> Any:
        if not isinstance(self.node, yaml.ScalarNode):
            raise self.err(f"expected a single value, got {self._kind()}")
        return self._constructor.construct_object(self.node)

    def _kind(self) -> str:
        if isinstance(self.node, yaml.MappingNode):
            return "a mapping"
        if isinstance(self.node, yaml.SequenceNode):
            return "a list"
        return repr(self._constructor.construct_object(self.node))

    # ---- typed scalars
    def string(self) -> str:
        v = self.scalar()
        if isinstance(v, bool) or v is None or isinstance(v, (list, dict)):
            raise self.err(f"expected a string, got {v!r}")
        return str(v)

    def opt_string(self) -> str | None:
        return None if self.is_null() else self.string()

    def boolean(self) -> bool:
        v = self.scalar()
        if not isinstance(v, bool):
            raise self.err(f"expected true or false, got {v!r}")
        return v

    def integer(self, lo: int, hi: int) -> int:
        v = self.scalar()
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.err(f"expected an integer, got {v!r}")
        if not lo <= v <= hi:
            raise self.err(f"{v} is out of range ({lo}..{hi})")
        return v

    def number(self) -> float:
        v = self.scalar()
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.err(f"expected a number, got {v!r}")
        return float(v)

    def string_list(self) -> list[str]:
        """A list of strings; a single string is shell-split (handy for commands)."""
        if isinstance(self.node, yaml.ScalarNode) and not self.is_null():
            try:
                return shlex.split(self.string())
            except ValueError as exc:
                raise self.err(f"cannot split {self.string()!r}: {exc}") from None
        return [item.string() for item in self.sequence()]

    def checked(self, rule: Callable[[str], T]) -> T:
        """This value (as a string) through one of the runtime's rules, whose error
        message gets this place: the lab file and ``run`` share every rule."""
        try:
            return rule(self.string())
        except BadInput as err:
            raise self.err(str(err)) from None

    def string_map(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for k, v in self.mapping().items():
            val = v.scalar()
            if val is None or isinstance(val, (list, dict)):
                raise v.err(f"expected a value, got {val!r}")
            out[k] = ("1" if val else "0") if isinstance(val, bool) else str(val)
        return out


# --------------------------------------------------------------- value checkers


def _check_name(v: _Val, what: str, name: str | None = None) -> str:
    """A lab, node or network name (names.validate_name); ``name`` when it is a mapping key."""
    if name is None:
        return v.checked(lambda text: names.validate_name(text, what))
    try:
        return names.validate_name(name, what)
    except BadInput as err:
        raise v.err(str(err)) from None


def _check_ifname(v: _Val) -> str:
    name = v.string()
    if len(name.encode()) > IFNAMSIZ:
        raise v.err(f"{name!r} is longer than {IFNAMSIZ} bytes (Linux interface name limit)")
    problem = ifname_problem(name)
    if problem:
        raise v.err(f"{name!r} is not a valid interface name: {problem}")
    if name == "lo":
        raise v.err("'lo' is the loopback interface; pick another name")
    return name


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.IPv4Network(text, strict=True)
    except ValueError:
        return False
    return "/" in text


def _check_ip(v: _Val) -> str:
    """A route gateway: IPv4 or IPv6 (a node's routes may be either)."""
    text = v.string()
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise v.err(f"{text!r} is not a valid IP address") from None
    return str(ip)


def _node_address(text: str) -> str:
    return ipam.parse_address(text, "node address")


def _check_mtu(v: _Val) -> int:
    try:
        return names.validate_mtu(v.scalar())
    except BadInput as err:
        raise v.err(str(err)) from None


def _check_iface_addr(v: _Val) -> str:
    """A point-to-point link's address with prefix, e.g. ``10.0.0.1/30`` (as connect takes)."""
    return str(v.checked(ipam.parse_iface_address))


def _check_route_dest(v: _Val) -> str:
    text = v.string()
    if text == "default":
        return text
    try:
        return str(ipaddress.ip_network(text, strict=True))
    except ValueError as exc:
        raise v.err(f"{text!r} is not a valid destination (a CIDR or 'default': {exc})") from None


def _check_binds(v: _Val) -> tuple[str, ...]:
    """``binds:`` (containerlab's name): ``HOST:CONTAINER[:ro]`` strings, as ``netlens run -v``."""
    from netlens_runtime.names import parse_volume

    out = []
    for item in v.sequence():
        text = item.string()
        try:
            host = parse_volume(text)[0]
        except BadInput as exc:
            raise item.err(str(exc)) from None
        if not os.path.exists(host):
            raise item.err(f"host path {host} does not exist")
        out.append(text)
    return tuple(out)


def parse_rate(text: str) -> int:
    """``'10mbit'`` -> 10_000_000 bits/s. Raises ValueError on nonsense."""
    m = _RATE_RE.match(text.strip())
    if not m:
        raise ValueError(text)
    value = float(m.group(1)) * _RATE_UNITS[m.group(2).lower()]
    if (m.group(3) or "").lower() == "bps":  # bytes per second
        value *= 8
    return int(value)


def _check_rate(v: _Val) -> tuple[int, int]:
    """``'2-20mbit'`` or ``'5mbit'`` -> (min, max) bits per second."""
    text = v.string()
    lo_text, sep, hi_text = text.partition("-")
    try:
        if sep:
            unit = _RATE_RE.match(hi_text.strip())
            suffix = "".join(g or "" for g in unit.groups()[1:]) if unit else ""
            lo = parse_rate(lo_text if not lo_text.strip().isdigit() else lo_text + suffix)
            hi = parse_rate(hi_text)
        else:
            lo = hi = parse_rate(text)
    except ValueError:
        raise v.err(f"{text!r} is not a rate (e.g. 10mbit or 2-20mbit)") from None
    if lo <= 0 or hi < lo:
        raise v.err(f"{text!r}: rates must be positive and low-high")
    if hi > 1_000_000_000:
        raise v.err(f"{text!r}: at most 1gbit per flow")
    return lo, hi


_PROFILES_OK: set[tuple[str, int, int, int]] = set()
"""Profile files (path and identity) already read and found good."""


def _confinement(f: dict[str, _Val], out: dict[str, Any], base: str) -> None:
    """``privileged: true`` and ``security_opt: [seccomp=unconfined|FILE]`` of a node.

    A profile FILE is relative to the lab file's directory and is read and
    checked here (Docker's JSON format), so a bad one stops ``lab up`` and
    ``lab check`` before anything is made.
    """
    if "privileged" in f:
        out["privileged"] = f["privileged"].boolean()
    if "security_opt" not in f:
        return
    from netlens_runtime import seccomp_profile

    opts = []
    for v in f["security_opt"].sequence():
        key, sep, value = v.string().partition("=")
        if key != "seccomp" or not sep or not value:
            raise v.err(f"{v.string()!r}: use seccomp=unconfined or seccomp=FILE")
        if value != "unconfined":
            value = os.path.join(base, value)
            try:
                st = os.stat(value)
                seen = (value, st.st_ino, st.st_size, st.st_mtime_ns)
                if seen not in _PROFILES_OK:  # a group of a thousand nodes: read once
                    with open(value, "rb") as fh:
                        seccomp_profile.parse(fh.read(seccomp_profile.MAX_BYTES + 1), value)
                    _PROFILES_OK.add(seen)
            except OSError as exc:
                raise v.err(f"seccomp profile {value}: {exc.strerror}") from None
            except BadInput as exc:
                raise v.err(str(exc)) from None
            if out.get("privileged"):
                raise v.err("a privileged node runs without a seccomp filter: drop this profile")
        opts.append(f"seccomp={value}")
    out["security_opt"] = tuple(opts)


# ------------------------------------------------------------------ the loader

_TOP = frozenset({"name", "networks", "nodes", "links", "traffic", "defaults"})
_NET = frozenset({"subnet", "gateway", "nat", "mtu", "bridge", "internal", "allow_from"})
_NODE = frozenset(
    {
        "count",
        "rootfs",
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
    }
)
_DEFAULTS = _NODE - {"count", "ip", "links", "interfaces", "hostname"}
_LINK = frozenset({"peer", "ifname", "addr", "peer_ifname", "peer_addr", "mtu", "impair"})
_TOPLINK = frozenset({"a", "b", "mtu", "impair"})
_END = frozenset({"node", "ifname", "addr"})
_IFACE = frozenset({"network", "ip", "ifname", "impair"})
_ROUTE = frozenset({"to", "via", "dev"})
_FLOW = frozenset({"from", "to", "proto", "port", "rate"})


@dataclass
class _NodeDraft:
    """A node while it is being read: values plus where each came from."""

    name: str
    where: Where
    fields: dict[str, Any]
    vals: dict[str, _Val]
    ip_where: Where | None = None


def load_lab(
    path: str, *, text: str | None = None, scale: int | None = None, name: str | None = None
) -> LabSpec:
    """Read and validate a lab file; raise :class:`BadInput` naming file:line:field.

    ``text`` parses that string instead of reading ``path`` (tests). ``scale`` sets
    the total number of nodes by resizing the groups that use ``count`` (the demo's
    ``--nodes``). ``name`` overrides the lab's name (tests run the same file under a
    tagged name).
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
    return _Loader(display, path, scale, name).load(_Val(display, root, ""))


class _Loader:
    def __init__(self, display: str, path: str, scale: int | None, name: str | None) -> None:
        self.display = display
        self.path = os.path.abspath(path)
        self.scale = scale
        self.name_override = name

    # -- top level
    def load(self, root: _Val) -> LabSpec:
        top = root.mapping(_TOP)
        if "name" in top:
            lab_name = _check_name(top["name"], "lab")
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
        nodes = self._finish_nodes(drafts, networks, links)
        self._check_links(links, drafts)
        traffic = self._traffic(top.get("traffic"), nodes)
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
        lab: str, networks: dict[str, tuple[LabNetwork, _Val]], drafts: list[_NodeDraft]
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
    def _networks(self, val: _Val | None) -> dict[str, tuple[LabNetwork, _Val]]:
        out: dict[str, tuple[LabNetwork, _Val]] = {}
        if val is None:
            return out
        bridges: dict[str, _Val] = {}
        for name, nv in val.mapping().items():
            _check_name(nv, "network", name)
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
                if subnet is None:
                    raise f["gateway"].err("a gateway needs a subnet")
                sub4 = ipaddress.IPv4Network(subnet)
                gateway = f["gateway"].checked(lambda gw, sub4=sub4: ipam.gateway_for(sub4, gw))  # type: ignore[misc]
            bridge = None
            if "bridge" in f:
                bridge = _check_ifname(f["bridge"])
                if bridge in bridges:
                    raise f["bridge"].err(f"bridge {bridge!r} is already used by another network")
                bridges[bridge] = f["bridge"]
            net = LabNetwork(
                name=name,
                subnet=subnet,
                gateway=gateway,
                nat=f["nat"].boolean() if "nat" in f else False,
                mtu=_check_mtu(f["mtu"]) if "mtu" in f else 1500,
                bridge=bridge,
                internal=f["internal"].boolean() if "internal" in f else False,
                allow_from=tuple(f["allow_from"].string_list()) if "allow_from" in f else (),
                line=nv.where.line,
            )
            if net.internal and net.nat:
                raise f["nat"].err("an internal network has no NAT")
            out[name] = (net, nv)
        for net, nv in out.values():
            for item in net.allow_from:
                if item not in out and not _is_cidr(item):
                    raise nv.mapping(_NET)["allow_from"].err(
                        f"{item!r} is neither a network of this lab nor a CIDR"
                    )
        return out

    # -- nodes
    def _nodes(
        self,
        val: _Val,
        defaults: dict[str, _Val],
        networks: dict[str, tuple[LabNetwork, _Val]],
    ) -> tuple[list[_NodeDraft], list[tuple[LabLink, _Val]]]:
        entries = val.mapping()
        groups: dict[str, int] = {}
        for name, nv in entries.items():
            _check_name(nv, "node", name)
            f = nv.mapping(_NODE)
            if "count" in f:
                groups[name] = f["count"].integer(1, MAX_NODE_COUNT)
        if self.scale is not None:
            groups = self._rescale(val, entries, groups)
        drafts: list[_NodeDraft] = []
        links: list[tuple[LabLink, _Val]] = []
        seen: dict[str, Where] = {}
        for name, nv in entries.items():
            f = nv.mapping(_NODE)
            merged: dict[str, _Val] = dict(defaults)
            merged.update(f)
            count = groups.get(name)
            if count is not None and "links" in f:
                raise f["links"].err("a node group with 'count' cannot have links")
            members = [name] if count is None else [f"{name}{i}" for i in range(1, count + 1)]
            base_ip = None
            if "ip" in merged:
                base_ip = ipaddress.IPv4Address(merged["ip"].checked(_node_address))
            for idx, real in enumerate(members):
                if real in seen:
                    raise nv.err(f"node {real!r} is defined twice (also at line {seen[real].line})")
                seen[real] = nv.where
                fields = self._node_fields(merged, networks)
                if base_ip is not None:
                    fields["ip"] = str(base_ip + idx)
                draft = _NodeDraft(real, nv.where, fields, merged)
                if "ip" in merged:
                    draft.ip_where = merged["ip"].where
                drafts.append(draft)
            if "links" in f:
                links.extend(self._node_links(name, f["links"]))
        return drafts, links

    def _rescale(
        self, val: _Val, entries: dict[str, _Val], groups: dict[str, int]
    ) -> dict[str, int]:
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
        self, f: dict[str, _Val], networks: dict[str, tuple[LabNetwork, _Val]]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "rootfs" in f:
            rootfs = f["rootfs"].opt_string()
            if rootfs is not None:
                f["rootfs"].checked(names.validate_rootfs)
            out["rootfs"] = rootfs
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
            out["network"] = _MISSING
        else:
            out["network"] = None
        if "memory" in f:
            memory = f["memory"].string().strip()
            f["memory"].checked(names.parse_memory)
            out["memory"] = memory
        if "cpus" in f:
            out["cpus"] = f["cpus"].checked(names.parse_cpus)
        if "pids_limit" in f:
            limit = f["pids_limit"].integer(-1, names.PIDS_MAX)
            f["pids_limit"].checked(names.parse_pids_limit)
            out["pids_limit"] = limit
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
                if key.startswith("netlens."):
                    raise f["labels"].err(f"{key!r}: labels starting with 'netlens.' are reserved")
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
            out["binds"] = _check_binds(f["binds"])
        if "interfaces" in f:
            out["interfaces"] = tuple(self._interfaces(f["interfaces"], networks))
        if "impair" in f:
            out["impair"] = lab_impair.from_yaml(f["impair"], with_direction=True)
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
                            to=_check_route_dest(r["to"]),
                            via=_check_ip(r["via"]) if "via" in r else None,
                            dev=_check_ifname(r["dev"]) if "dev" in r else None,
                        ),
                        rv,
                    )
                )
            out["routes"] = routes
        _confinement(f, out, os.path.dirname(self.path))
        return out

    def _interfaces(
        self, val: _Val, networks: dict[str, tuple[LabNetwork, _Val]]
    ) -> Iterator[tuple[LabInterface, _Val]]:
        for iv in val.sequence():
            f = iv.mapping(_IFACE)
            for req in ("network", "ifname"):
                if req not in f:
                    raise iv.err(f"missing field {req!r}")
            net = f["network"].string()
            if net not in networks:
                raise f["network"].err(f"no network {net!r} in this lab")
            ip = f["ip"].checked(_node_address) if "ip" in f else None
            impair = (
                lab_impair.from_yaml(f["impair"], with_direction=True) if "impair" in f else None
            )
            iface = LabInterface(
                network=net, ifname=_check_ifname(f["ifname"]), ip=ip, impair=impair
            )
            yield (iface, iv)

    def _node_links(self, node: str, val: _Val) -> Iterator[tuple[LabLink, _Val]]:
        for lv in val.sequence():
            f = lv.mapping(_LINK)
            for req in ("peer", "ifname"):
                if req not in f:
                    raise lv.err(f"missing field {req!r}")
            peer = f["peer"].string()
            ifname = _check_ifname(f["ifname"])
            yield (
                LabLink(
                    a=node,
                    a_ifname=ifname,
                    b=peer,
                    b_ifname=_check_ifname(f["peer_ifname"]) if "peer_ifname" in f else ifname,
                    a_addr=_check_iface_addr(f["addr"]) if "addr" in f else None,
                    b_addr=_check_iface_addr(f["peer_addr"]) if "peer_addr" in f else None,
                    mtu=_check_mtu(f["mtu"]) if "mtu" in f else None,
                    impair=_link_impair(f),
                ),
                lv,
            )

    def _top_links(self, val: _Val | None, drafts: list[_NodeDraft]) -> list[tuple[LabLink, _Val]]:
        """Top-level ``links:`` entries: ``{a: {node, ifname, addr}, b: {...}}``."""
        out: list[tuple[LabLink, _Val]] = []
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
                        _check_ifname(e["ifname"]),
                        _check_iface_addr(e["addr"]) if "addr" in e else None,
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
                _check_mtu(f["mtu"]) if "mtu" in f else None,
                _link_impair(f),
            )
            out.append((link, lv))
        return out

    # -- cross checks
    def _finish_nodes(
        self,
        drafts: list[_NodeDraft],
        networks: dict[str, tuple[LabNetwork, _Val]],
        links: list[tuple[LabLink, _Val]],
    ) -> list[LabNode]:
        used_ips: dict[tuple[str, str], str] = {}
        for net, _nv in networks.values():
            if net.subnet:  # the runtime's default gateway (the first address) is taken too
                gw = ipam.gateway_for(ipaddress.IPv4Network(net.subnet), net.gateway)
                used_ips[(net.name, gw)] = f"the gateway of network {net.name!r}"
        nodes: list[LabNode] = []
        for d in drafts:
            f = d.fields
            if f.get("network") is _MISSING:
                raise d.where.error(
                    "field 'network' is required when the lab has several"
                    " networks (or 'network: null' for none)"
                )
            network = f.get("network")
            if f.get("impair") is not None and network is None:
                raise d.vals["impair"].err(
                    f"node {d.name!r} has no network, so no {PRIMARY_IFNAME} to impair"
                    " (impair its links or interfaces instead)"
                )
            ip = f.get("ip")
            if ip is not None:
                where = d.ip_where or d.where
                if network is None:
                    raise where.error(f"node {d.name!r} has an ip but no network")
                self._check_host_ip(ip, networks[network][0], where, d.name, used_ips)
            ifnames: dict[str, str] = {}
            if network is not None:
                ifnames[PRIMARY_IFNAME] = f"its network {network!r}"
            ifaces: list[LabInterface] = []
            for iface, iv in f.get("interfaces", []):
                self._claim_ifname(ifnames, iface.ifname, iv, f"network {iface.network!r}")
                if iface.network == network:
                    raise iv.err(f"node {d.name!r} is already on network {iface.network!r}")
                if iface.ip is not None:
                    self._check_host_ip(
                        iface.ip, networks[iface.network][0], iv.where, d.name, used_ips
                    )
                ifaces.append(iface)
            for link, lv in links:
                for node, ifname, peer in (
                    (link.a, link.a_ifname, link.b),
                    (link.b, link.b_ifname, link.a),
                ):
                    if node == d.name:
                        self._claim_ifname(ifnames, ifname, lv, f"the link to {peer!r}")
            routes: list[LabRoute] = []
            connected = self._connected(d.name, network, ip, ifaces, networks, links)
            for route, rv in f.get("routes", []):
                if route.dev is not None and route.dev not in ifnames:
                    raise rv.err(f"node {d.name!r} has no interface {route.dev!r}")
                if route.via is not None and route.dev is None:
                    via = ipaddress.ip_address(route.via)
                    if not any(via in net for net in connected):
                        raise rv.err(
                            f"gateway {route.via} is not on any network of node {d.name!r}"
                        )
                routes.append(route)
            kwargs = {k: v for k, v in f.items() if k not in ("interfaces", "routes", "network")}
            nodes.append(
                LabNode(
                    name=d.name,
                    network=network,
                    interfaces=tuple(ifaces),
                    routes=tuple(routes),
                    **kwargs,
                )
            )
        return nodes

    @staticmethod
    def _claim_ifname(ifnames: dict[str, str], ifname: str, v: _Val, what: str) -> None:
        if ifname in ifnames:
            raise v.err(f"interface {ifname!r} is already used by {ifnames[ifname]}")
        ifnames[ifname] = what

    @staticmethod
    def _check_host_ip(
        ip: str,
        net: LabNetwork,
        where: Where,
        node: str,
        used: dict[tuple[str, str], str],
    ) -> None:
        if net.subnet is None:
            raise where.error(f"network {net.name!r} has no subnet, so {ip} cannot be placed")
        subnet = ipaddress.ip_network(net.subnet)
        addr = ipaddress.ip_address(ip)
        if addr not in subnet:
            raise where.error(f"{ip} (node {node!r}) is not inside {net.name!r} ({subnet})")
        if addr in (subnet.network_address, subnet.broadcast_address):
            raise where.error(
                f"{ip} (node {node!r}) is the network or broadcast address of {subnet}"
            )
        key = (net.name, ip)
        if key in used:
            raise where.error(f"{ip} (node {node!r}) is already used by {used[key]}")
        used[key] = f"node {node!r}"

    @staticmethod
    def _connected(
        node: str,
        network: str | None,
        ip: str | None,
        ifaces: list[LabInterface],
        networks: dict[str, tuple[LabNetwork, _Val]],
        links: list[tuple[LabLink, _Val]],
    ) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """Subnets a node is directly on: where its route gateways must be."""
        nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for name in [network, *(i.network for i in ifaces)]:
            if name is not None and networks[name][0].subnet:
                nets.append(ipaddress.ip_network(networks[name][0].subnet or ""))
        for link, _lv in links:
            for end, addr in ((link.a, link.a_addr), (link.b, link.b_addr)):
                if end == node and addr is not None:
                    nets.append(ipaddress.ip_interface(addr).network)
        return nets

    def _check_links(self, links: list[tuple[LabLink, _Val]], drafts: list[_NodeDraft]) -> None:
        names = {d.name for d in drafts}
        addrs: dict[str, int] = {}
        for link, lv in links:
            for end in (link.a, link.b):
                if end not in names:
                    raise lv.err(f"no node {end!r} in this lab")
            if link.a == link.b:
                raise lv.err("a link needs two different nodes")
            if link.a_addr and link.b_addr:
                a = ipaddress.ip_interface(link.a_addr)
                b = ipaddress.ip_interface(link.b_addr)
                if a.network != b.network:
                    raise lv.err(f"{link.a_addr} and {link.b_addr} are not in the same subnet")
                if a.ip == b.ip:
                    raise lv.err(f"both ends have the address {a.ip}")
            for addr in (link.a_addr, link.b_addr):
                if addr is None:
                    continue
                ip = str(ipaddress.ip_interface(addr).ip)
                if ip in addrs:
                    raise lv.err(f"{ip} is already used by the link at line {addrs[ip]}")
                addrs[ip] = lv.where.line

    def _traffic(self, val: _Val | None, nodes: list[LabNode]) -> list[LabFlow]:
        out: list[LabFlow] = []
        if val is None:
            return out
        by_name = {n.name: n for n in nodes}
        ports: set[tuple[str, str, int]] = set()
        for fv in val.sequence():
            f = fv.mapping(_FLOW)
            for req in ("from", "to"):
                if req not in f:
                    raise fv.err(f"missing field {req!r}")
            src, dst = f["from"].string(), f["to"].string()
            for key, name in (("from", src), ("to", dst)):
                if name not in by_name:
                    raise f[key].err(f"no node {name!r} in this lab")
            if src == dst:
                raise fv.err("a flow needs two different nodes")
            if by_name[dst].ip is None:
                raise f["to"].err(f"node {dst!r} has no fixed ip, so it cannot receive traffic")
            proto = f["proto"].string().lower() if "proto" in f else "tcp"
            if proto not in ("tcp", "udp"):
                raise f["proto"].err(f"{proto!r}: expected tcp or udp")
            lo, hi = _check_rate(f["rate"]) if "rate" in f else (1_000_000, 10_000_000)
            port = f["port"].integer(1, 65535) if "port" in f else 5201 + len(out)
            flow_key = (dst, proto, port)
            if flow_key in ports:
                raise fv.err(f"{proto} port {port} on {dst!r} is already used by another flow")
            ports.add(flow_key)
            out.append(
                LabFlow(
                    src=src,
                    dst=dst,
                    proto=proto,
                    port=port,
                    min_bps=lo,
                    max_bps=hi,
                )
            )
        return out


def _link_impair(f: dict[str, _Val]) -> ImpairSpec | None:
    """A link's ``impair:`` block: both directions of the cable, no ``direction`` key."""
    return lab_impair.from_yaml(f["impair"], with_direction=False) if "impair" in f else None


class _Missing:
    """Marker: a node without 'network' in a lab with several networks."""


_MISSING: Any = _Missing()


def iter_lab_files(directory: str) -> Iterator[str]:
    """The ``*.yaml`` files of a directory, sorted (bundled labs)."""
    for entry in sorted(os.listdir(directory)):
        if entry.endswith((".yaml", ".yml")):
            yield os.path.join(directory, entry)


def bundled_lab(name: str) -> str:
    """Path of a lab file shipped in ``runtime/netlens_runtime/labs/`` (``demo`` -> demo.yaml)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "labs", f"{name}.yaml")
