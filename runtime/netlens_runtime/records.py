"""The shapes of state records: what a container, network, lab or journal file must hold.

State files are written by netlens, but they are files: a crash, a full disk, an
editor or another tool can leave one empty, torn, of the wrong shape, or naming
things that are not its own (an interface such as ``eth0``, a cgroup elsewhere).
The runtime then acts on what a record says (kills its pid, deletes its links,
rmdirs its cgroups), so every record is checked here before it is used; one that
fails is set aside by :mod:`netlens_runtime.state` and never stops the others.

Only what the runtime reads is checked, and values the runtime can derive are
compared with the derivation (a container's host veth and cgroup directories, a
lab's host links): a record cannot point the runtime at anything it did not make.
Unknown keys are fine (a newer netlens may add some).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from netlens_runtime import cgroups, names
from netlens_runtime.errors import BadInput


class BadRecord(ValueError):
    """A record that must not be used; the message says why, in a few words."""


_Types = type | tuple[type, ...]


def _field(rec: dict[str, Any], key: str, types: _Types, optional: bool = False) -> Any:
    value = rec.get(key)
    if value is None and optional:
        return None
    if key not in rec:
        raise BadRecord(f"no {key!r}")
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise BadRecord(f"{key!r} is not {_what(types)}")
    if not isinstance(value, types):
        raise BadRecord(f"{key!r} is not {_what(types)}")
    return value


def _what(types: _Types) -> str:
    seq = types if isinstance(types, tuple) else (types,)
    return " or ".join({"str": "a string", "int": "an integer", "list": "a list",
                        "dict": "a mapping", "bool": "true/false", "float": "a number"}.get(
                        t.__name__, t.__name__) for t in seq)  # fmt: skip


def _str_map(value: Any, key: str) -> None:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise BadRecord(f"{key!r} is not a mapping of strings")


def _name(value: Any, what: str) -> str:
    try:
        return names.validate_name(value, what)
    except BadInput:
        raise BadRecord(f"{value!r} is not a valid {what} name") from None


def check_container(name: str, rec: Any, scope: str) -> dict[str, Any]:
    """A container record of file ``<name>.json`` in a state directory of ``scope``."""
    if not isinstance(rec, dict):
        raise BadRecord("not a JSON object")
    if rec.get("name") != name:
        raise BadRecord(f"it names {rec.get('name')!r}, not its own file")
    _field(rec, "id", str)
    if _field(rec, "pid", int) < 0:
        raise BadRecord("'pid' is negative")
    _field(rec, "netns_inode", int)
    _field(rec, "state", str)
    _field(rec, "created", str)
    command = _field(rec, "command", list)
    if not all(isinstance(x, str) for x in command):
        raise BadRecord("'command' is not a list of strings")
    _str_map(rec.get("labels") or {}, "labels")
    network = _field(rec, "network", str, optional=True)
    if network is not None:
        _name(network, "network")
    ip = _field(rec, "ip", str, optional=True)
    if ip is not None:
        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            raise BadRecord(f"'ip' {ip!r} is not an IPv4 address") from None
    veth = _field(rec, "host_veth", str, optional=True)
    if veth is not None and veth != names.host_veth_name(name, scope):
        raise BadRecord(f"'host_veth' {veth!r} is not this container's interface")
    leaf = names.cgroup_leaf(name, scope)
    dirs = _field(rec, "cgroup_dirs", list, optional=True) or []
    for d in dirs:
        if not isinstance(d, str) or not cgroups.owns(d, leaf):
            raise BadRecord(f"'cgroup_dirs' names {d!r}, not this container's cgroup")
    for pub in _field(rec, "publish", list, optional=True) or []:
        _publish(pub, "publish")
    for leg in _field(rec, "legs", list, optional=True) or []:
        _leg(leg)
    return rec


def _leg(leg: Any) -> None:
    """A lab node's extra leg: its names reach netlink and its address the IPAM."""
    if not isinstance(leg, dict):
        raise BadRecord(f"'legs' holds {leg!r}, not a mapping")
    try:
        names.validate_ifname(_field(leg, "ifname", str))
    except BadInput:
        raise BadRecord(f"'legs' names {leg.get('ifname')!r}, not an interface") from None
    _name(_field(leg, "network", str), "network")
    if not HOST_LINK_RE.fullmatch(_field(leg, "host_veth", str)):
        raise BadRecord(f"'legs' names {leg.get('host_veth')!r}, not a lab's host leg")
    ip = _field(leg, "ip", str, optional=True)
    if ip is not None:
        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            raise BadRecord(f"'legs' holds {ip!r}, not an IPv4 address") from None


def _publish(pub: Any, key: str) -> None:
    if not isinstance(pub, dict):
        raise BadRecord(f"{key!r} holds {pub!r}, not a mapping")
    for field, types in (("host_port", int), ("port", int), ("proto", str)):
        _field(pub, field, types)


def check_network(name: str, rec: Any) -> dict[str, Any]:
    """A network record of file ``<name>.json``."""
    if not isinstance(rec, dict):
        raise BadRecord("not a JSON object")
    if rec.get("name") != name:
        raise BadRecord(f"it names {rec.get('name')!r}, not its own file")
    bridge = _field(rec, "bridge", str)
    try:
        names.validate_ifname(bridge)
    except BadInput:
        raise BadRecord(f"'bridge' {bridge!r} is not an interface name") from None
    try:
        subnet = ipaddress.IPv4Network(_field(rec, "subnet", str))
        gateway = ipaddress.IPv4Address(_field(rec, "gateway", str))
    except ValueError as err:
        raise BadRecord(f"bad subnet or gateway: {err}") from None
    if gateway not in subnet:
        raise BadRecord(f"gateway {gateway} is not inside {subnet}")
    _field(rec, "nat", bool, optional=True)
    _field(rec, "mtu", int)
    allocations = _field(rec, "allocations", dict)
    _str_map(allocations, "allocations")
    for ip, owner in allocations.items():
        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            raise BadRecord(f"'allocations' holds {ip!r}, not an address") from None
        _name(owner, "container")
    published = _field(rec, "published", dict)
    for owner, pubs in published.items():
        _name(owner, "container")
        if not isinstance(pubs, list):
            raise BadRecord("'published' is not a mapping of lists")
        for pub in pubs:
            _publish(pub, "published")
    return rec


HOST_LINK_RE = re.compile(r"lx[0-9a-f]{11}")
"""A lab's extra host legs (lab_record.host_ifname): nothing else is deleted by lab down."""


def check_lab(name: str, rec: Any) -> dict[str, Any]:
    """A lab record of file ``labs/<name>.json``: everything it lists is the lab's own.

    Runtime names must carry the lab's prefix (``<lab>-``) and host links the
    lab's pattern: ``lab down`` of a record listing ``eth0`` or another lab's
    containers must not touch them.
    """
    if not isinstance(rec, dict):
        raise BadRecord("not a JSON object")
    if rec.get("name") != name:
        raise BadRecord(f"it names {rec.get('name')!r}, not its own file")
    prefix = f"{name}-"
    for key in ("file", "status"):
        _field(rec, key, str, optional=True)
    _field(rec, "created", (int, float), optional=True)
    nets = _field(rec, "networks", list, optional=True) or []
    nodes = _field(rec, "nodes", dict, optional=True) or {}
    _str_map(nodes, "nodes")
    for real in [*nets, *nodes.values()]:
        if not isinstance(real, str) or not real.startswith(prefix):
            raise BadRecord(f"{real!r} is not a name of lab {name!r}")
        _name(real, "runtime")
    for link in _field(rec, "host_links", list, optional=True) or []:
        if not isinstance(link, str) or not HOST_LINK_RE.fullmatch(link):
            raise BadRecord(f"'host_links' holds {link!r}, not a lab link")
    addresses = _field(rec, "addresses", dict, optional=True) or {}
    for addrs in addresses.values():
        if not isinstance(addrs, list) or not all(isinstance(a, str) for a in addrs):
            raise BadRecord("'addresses' is not a mapping of lists of strings")
    return rec


def check_journal(rec: Any) -> dict[str, Any]:
    """A ``pending/`` journal: its owner's pid and the container names it is making."""
    if not isinstance(rec, dict):
        raise BadRecord("not a JSON object")
    _field(rec, "owner", int)
    for name in _field(rec, "names", list):
        _name(name, "container")
    return rec
