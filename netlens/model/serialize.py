"""Snapshot <-> JSON, fast and exact.

Why hand-written: ``dataclasses.asdict`` deep-copies recursively through
``copy.deepcopy`` and introspects fields at every level; on a 1000-namespace
snapshot it costs several times more than these explicit functions, and
``netlens dump --json`` has a 0.5 s budget for the whole process. Explicit
functions also fix the JSON shape in one place, next to ``schema.json``:

- every dataclass field is written, ``None`` as ``null``, so consumers (jq,
  the schema) can rely on every key being present;
- an :class:`IfRef` is written as its ``key`` string (``"netns:123/4"``), the
  same id the graph uses;
- mappings (labels, sysctls) are written with sorted keys and the field order is
  the dataclass order, so two dumps of the same host diff line by line.

Reading is strict about types (a dump is data from outside) and tolerant about
absent optional keys (a dump from an older minor version lacks the fields added
since). Any problem becomes one :class:`~netlens.errors.SnapshotFileError` line
naming the JSON path, never a traceback.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from netlens.errors import SnapshotFileError
from netlens.model.types import (
    SCHEMA_VERSION,
    Address,
    BondInfo,
    BridgeInfo,
    BridgePortInfo,
    Container,
    Counters,
    FdbEntry,
    IfRef,
    Interface,
    L3Vrf,
    MacvlanInfo,
    NatRule,
    Neighbour,
    Netns,
    NextHop,
    Route,
    Rule,
    Server,
    Snapshot,
    TrafficControl,
    VethPair,
    VlanInfo,
    VxlanInfo,
)

__all__ = [
    "dumps",
    "load_file",
    "loads",
    "schema_path",
    "snapshot_from_dict",
    "snapshot_to_dict",
]

T = TypeVar("T")

_COUNTER_KEYS = (
    "rx_bytes",
    "tx_bytes",
    "rx_packets",
    "tx_packets",
    "rx_errors",
    "tx_errors",
    "rx_dropped",
    "tx_dropped",
)

# --------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------


def _ref(r: IfRef | None) -> str | None:
    return None if r is None else f"{r.netns}/{r.ifindex}"


def _address(a: Address) -> dict[str, Any]:
    return {
        "family": a.family,
        "address": a.address,
        "prefixlen": a.prefixlen,
        "scope": a.scope,
        "broadcast": a.broadcast,
        "label": a.label,
    }


def _counters(c: Counters | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {
        "rx_bytes": c.rx_bytes,
        "tx_bytes": c.tx_bytes,
        "rx_packets": c.rx_packets,
        "tx_packets": c.tx_packets,
        "rx_errors": c.rx_errors,
        "tx_errors": c.tx_errors,
        "rx_dropped": c.rx_dropped,
        "tx_dropped": c.tx_dropped,
    }


def _bridge(b: BridgeInfo | None) -> dict[str, Any] | None:
    if b is None:
        return None
    return {
        "stp": b.stp,
        "vlan_filtering": b.vlan_filtering,
        "forward_delay_cs": b.forward_delay_cs,
        "ageing_time_cs": b.ageing_time_cs,
        "bridge_id": b.bridge_id,
        "root_id": b.root_id,
    }


def _port(p: BridgePortInfo | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {
        "state": p.state,
        "cost": p.cost,
        "priority": p.priority,
        "learning": p.learning,
        "flood": p.flood,
        "hairpin": p.hairpin,
    }


def _vxlan(v: VxlanInfo | None) -> dict[str, Any] | None:
    if v is None:
        return None
    return {
        "vni": v.vni,
        "remote": v.remote,
        "group": v.group,
        "local": v.local,
        "port": v.port,
        "underlay": v.underlay,
        "learning": v.learning,
    }


def _tc(t: TrafficControl | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {
        "kinds": list(t.kinds),
        "rate_bps": t.rate_bps,
        "delay_us": t.delay_us,
        "jitter_us": t.jitter_us,
        "loss_pct": t.loss_pct,
        "corrupt_pct": t.corrupt_pct,
        "duplicate_pct": t.duplicate_pct,
        "ingress": t.ingress,
        "ingress_to": t.ingress_to,
    }


def _interface(i: Interface) -> dict[str, Any]:
    vlan = i.vlan
    bond = i.bond
    mv = i.macvlan
    return {
        "netns": i.netns,
        "ifindex": i.ifindex,
        "name": i.name,
        "kind": i.kind,
        "operstate": i.operstate,
        "admin_up": i.admin_up,
        "carrier": i.carrier,
        "mtu": i.mtu,
        "mac": i.mac,
        "alias": i.alias,
        "master": i.master,
        "link": i.link,
        "link_netnsid": i.link_netnsid,
        "addresses": [_address(a) for a in i.addresses] if i.addresses else [],
        "peer": _ref(i.peer),
        "lower": _ref(i.lower),
        "bridge": _bridge(i.bridge),
        "port": _port(i.port),
        "vxlan": _vxlan(i.vxlan),
        "vlan": None if vlan is None else {"vlan_id": vlan.vlan_id, "protocol": vlan.protocol},
        "bond": None if bond is None else {"mode": bond.mode, "miimon": bond.miimon},
        "macvlan": None if mv is None else {"mode": mv.mode},
        "vrf_table": i.vrf_table,
        "uplink": i.uplink,
        "speed_mbps": i.speed_mbps,
        "driver": i.driver,
        "counters": _counters(i.counters),
        "network": i.network,
        "tc": _tc(i.tc),
    }


def _route(r: Route) -> dict[str, Any]:
    return {
        "family": r.family,
        "table": r.table,
        "dst": r.dst,
        "type": r.type,
        "gateway": r.gateway,
        "ifindex": r.ifindex,
        "dev": r.dev,
        "protocol": r.protocol,
        "scope": r.scope,
        "metric": r.metric,
        "prefsrc": r.prefsrc,
        "nexthops": [
            {"gateway": h.gateway, "ifindex": h.ifindex, "dev": h.dev, "weight": h.weight}
            for h in r.nexthops
        ]
        if r.nexthops
        else [],
    }


def _rule(r: Rule) -> dict[str, Any]:
    return {
        "family": r.family,
        "priority": r.priority,
        "table": r.table,
        "action": r.action,
        "src": r.src,
        "dst": r.dst,
        "iif": r.iif,
        "oif": r.oif,
        "fwmark": r.fwmark,
        "invert": r.invert,
    }


def _neigh(n: Neighbour) -> dict[str, Any]:
    return {
        "family": n.family,
        "ip": n.ip,
        "mac": n.mac,
        "ifindex": n.ifindex,
        "dev": n.dev,
        "state": n.state,
        "router": n.router,
    }


def _fdb(f: FdbEntry) -> dict[str, Any]:
    return {
        "mac": f.mac,
        "ifindex": f.ifindex,
        "master": f.master,
        "vlan": f.vlan,
        "state": f.state,
        "flags": list(f.flags),
        "age": f.age,
    }


def _nat(n: NatRule) -> dict[str, Any]:
    return {
        "source": n.source,
        "family": n.family,
        "table": n.table,
        "chain": n.chain,
        "hook": n.hook,
        "action": n.action,
        "proto": n.proto,
        "src": n.src,
        "dst": n.dst,
        "in_iface": n.in_iface,
        "out_iface": n.out_iface,
        "dport": n.dport,
        "to_addr": n.to_addr,
        "to_port": n.to_port,
        "comment": n.comment,
        "text": n.text,
    }


def _netns(n: Netns) -> dict[str, Any]:
    sysctls = n.sysctls
    return {
        "id": n.id,
        "inode": n.inode,
        "dev": n.dev,
        "is_host": n.is_host,
        "name": n.name,
        "names": list(n.names),
        "mounts": list(n.mounts),
        "pids": list(n.pids),
        "nsid": n.nsid,
        "container": n.container,
        "interfaces": [_interface(i) for i in n.interfaces],
        "routes": [_route(r) for r in n.routes],
        "rules": [_rule(r) for r in n.rules],
        "neighbours": [_neigh(x) for x in n.neighbours] if n.neighbours else [],
        "fdb": [_fdb(f) for f in n.fdb] if n.fdb else [],
        "vrfs": [
            {"ifindex": v.ifindex, "name": v.name, "table": v.table, "members": list(v.members)}
            for v in n.vrfs
        ]
        if n.vrfs
        else [],
        "nat": [_nat(r) for r in n.nat] if n.nat else [],
        "sysctls": {k: sysctls[k] for k in sorted(sysctls)} if sysctls else {},
        "complete": n.complete,
        "errors": list(n.errors),
    }


def _container(c: Container) -> dict[str, Any]:
    labels = c.labels
    return {
        "id": c.id,
        "engine": str(c.engine),
        "name": c.name,
        "netns": c.netns,
        "engine_id": c.engine_id,
        "pid": c.pid,
        "pids": list(c.pids),
        "command": c.command,
        "image": c.image,
        "state": c.state,
        "cgroup": c.cgroup,
        "labels": {k: labels[k] for k in sorted(labels)} if labels else {},
        "privileged": c.privileged,
    }


def _server(s: Server) -> dict[str, Any]:
    return {
        "hostname": s.hostname,
        "kernel": s.kernel,
        "arch": s.arch,
        "cpu_count": s.cpu_count,
        "mem_total": s.mem_total,
        "boot_id": s.boot_id,
        "uptime_s": s.uptime_s,
    }


def snapshot_to_dict(s: Snapshot) -> dict[str, Any]:
    """The dump document (schema.json) of a snapshot: plain dicts, lists and scalars.

    ``schema_version`` comes first so a reader (human or program) sees it before
    anything else.
    """
    return {
        "schema_version": s.schema_version,
        "taken_at": s.taken_at,
        "root": s.root,
        "warnings": list(s.warnings),
        "server": _server(s.server),
        "namespaces": [_netns(n) for n in s.namespaces],
        "containers": [_container(c) for c in s.containers],
        "veth_pairs": [{"a": _ref(p.a), "b": _ref(p.b)} for p in s.veth_pairs],
    }


def dumps(s: Snapshot, pretty: bool = False, extra: dict[str, Any] | None = None) -> str:
    """Serialize a snapshot to JSON text (no trailing newline).

    ``extra`` adds top-level keys after the snapshot's own (``rates`` from
    ``--sample``). ``pretty`` indents by two spaces. ``allow_nan=False``: NaN and
    infinity are not JSON, and a dump other tools cannot parse is worse than an
    error.
    """
    if not pretty:
        # The writer allocates only strings and short-lived lists; the cyclic
        # collector would just rescan the snapshot's objects meanwhile.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            text = _write(s)
        finally:
            if gc_was_enabled:
                gc.enable()
        if not extra:
            return text
        if not _TOP_KEYS.intersection(extra):
            return text[:-1] + "".join(f",{_esc(k)}:{_json_any(v)}" for k, v in extra.items()) + "}"
    doc = snapshot_to_dict(s)
    if extra:
        doc.update(extra)
    if pretty:
        return json.dumps(doc, indent=2, allow_nan=False)
    return json.dumps(doc, separators=(",", ":"), allow_nan=False)


_TOP_KEYS = frozenset(
    (
        "schema_version",
        "taken_at",
        "root",
        "warnings",
        "server",
        "namespaces",
        "containers",
        "veth_pairs",
    )
)


# --------------------------------------------------------------------------------------
# the compact writer (the ``dump --json`` fast path)
# --------------------------------------------------------------------------------------

# ``json.dumps(snapshot_to_dict(s))`` builds a dict per object and then walks it
# again in C: on 1000 namespaces that was about 300 ms of a 0.5 s budget. The
# writer below emits the very same text directly (same keys, order, separators
# and ASCII escaping; unit tests compare it with the dict path byte for byte,
# also on generated snapshots): one f-string per class, field by field in
# dataclass order. The text of an object that discovery shares between
# namespaces (addresses, routes, rules, bridge ports: one object per distinct
# value) is made once per dump and looked up by ``id``. The functions are
# written out rather than generated at import time: compiling them on every
# start cost about 15 ms. A field added to types.py needs a line here and one in
# the dict writer above (test_every_model_field_is_written and the byte-for-byte
# tests catch a miss).

_esc = json.encoder.encode_basestring_ascii  # the C escaper json.dumps itself uses
_json_any = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _w_float(v: float) -> str:
    if type(v) is not float:  # an int read back from a dump
        return _json_any(v)
    if v != v or v in (float("inf"), float("-inf")):
        raise ValueError(f"Out of range float values are not JSON compliant: {v!r}")
    return float.__repr__(v)


def _w_scalars(seq: Any) -> str:
    """A tuple of str or int (names, pids, members, flags) as a JSON list."""
    if not seq:
        return "[]"
    first = type(seq[0])
    if first is str:
        return "[" + ",".join(map(_esc, seq)) + "]"
    if first is int and all(type(x) is int for x in seq):
        return "[" + ",".join(map(int.__repr__, seq)) + "]"
    return _json_any(list(seq))


def _w_map(d: dict[str, Any]) -> str:
    if not d:
        return "{}"
    keys = sorted(d)
    items = [(k, d[k]) for k in keys]
    if all(type(k) is str and type(v) is str for k, v in items):  # sysctls, labels
        return "{" + ",".join([_esc(k) + ":" + _esc(v) for k, v in items]) + "}"
    return _json_any(dict(items))


_int = int.__repr__  # what json.dumps writes for an int


def _w_ref(r: IfRef | None) -> str:
    return "null" if r is None else _esc(r.netns + "/" + _int(r.ifindex))


def _w_list(write: Callable[[Any, dict[int, str]], str], seq: Any, c: dict[int, str]) -> str:
    return "[" + ",".join([write(x, c) for x in seq]) + "]" if seq else "[]"


def _w_cached(write: Callable[[Any, dict[int, str]], str], seq: Any, c: dict[int, str]) -> str:
    """``_w_list`` for the shared classes: a text made before is looked up here,
    without a call to the writer."""
    get = c.get
    return "[" + ",".join([get(id(x)) or write(x, c) for x in seq]) + "]"


def _w_Address(o: Address, c: dict[int, str]) -> str:
    t = c.get(id(o))
    if t is None:
        t = c[id(o)] = (
            f'{{"family":{_int(o.family)}'
            f',"address":{_esc(o.address)}'
            f',"prefixlen":{_int(o.prefixlen)}'
            f',"scope":{_esc(o.scope)}'
            f',"broadcast":{"null" if o.broadcast is None else _esc(o.broadcast)}'
            f',"label":{"null" if o.label is None else _esc(o.label)}'
            "}"
        )
    return t


def _w_Counters(o: Counters, c: dict[int, str]) -> str:
    return (
        f'{{"rx_bytes":{_int(o.rx_bytes)}'
        f',"tx_bytes":{_int(o.tx_bytes)}'
        f',"rx_packets":{_int(o.rx_packets)}'
        f',"tx_packets":{_int(o.tx_packets)}'
        f',"rx_errors":{_int(o.rx_errors)}'
        f',"tx_errors":{_int(o.tx_errors)}'
        f',"rx_dropped":{_int(o.rx_dropped)}'
        f',"tx_dropped":{_int(o.tx_dropped)}'
        "}"
    )


def _w_BridgeInfo(o: BridgeInfo, c: dict[int, str]) -> str:
    return (
        f'{{"stp":{"true" if o.stp else "false"}'
        f',"vlan_filtering":{"true" if o.vlan_filtering else "false"}'
        f',"forward_delay_cs":{"null" if o.forward_delay_cs is None else _int(o.forward_delay_cs)}'
        f',"ageing_time_cs":{"null" if o.ageing_time_cs is None else _int(o.ageing_time_cs)}'
        f',"bridge_id":{"null" if o.bridge_id is None else _esc(o.bridge_id)}'
        f',"root_id":{"null" if o.root_id is None else _esc(o.root_id)}'
        "}"
    )


def _w_BridgePortInfo(o: BridgePortInfo, c: dict[int, str]) -> str:
    t = c.get(id(o))
    if t is None:
        t = c[id(o)] = (
            f'{{"state":{_esc(o.state)}'
            f',"cost":{"null" if o.cost is None else _int(o.cost)}'
            f',"priority":{"null" if o.priority is None else _int(o.priority)}'
            f',"learning":{"null" if o.learning is None else "true" if o.learning else "false"}'
            f',"flood":{"null" if o.flood is None else "true" if o.flood else "false"}'
            f',"hairpin":{"null" if o.hairpin is None else "true" if o.hairpin else "false"}'
            "}"
        )
    return t


def _w_VxlanInfo(o: VxlanInfo, c: dict[int, str]) -> str:
    return (
        f'{{"vni":{_int(o.vni)}'
        f',"remote":{"null" if o.remote is None else _esc(o.remote)}'
        f',"group":{"null" if o.group is None else _esc(o.group)}'
        f',"local":{"null" if o.local is None else _esc(o.local)}'
        f',"port":{"null" if o.port is None else _int(o.port)}'
        f',"underlay":{"null" if o.underlay is None else _int(o.underlay)}'
        f',"learning":{"null" if o.learning is None else "true" if o.learning else "false"}'
        "}"
    )


def _w_VlanInfo(o: VlanInfo, c: dict[int, str]) -> str:
    return f'{{"vlan_id":{_int(o.vlan_id)},"protocol":{_esc(o.protocol)}}}'


def _w_BondInfo(o: BondInfo, c: dict[int, str]) -> str:
    return f'{{"mode":{_esc(o.mode)},"miimon":{"null" if o.miimon is None else _int(o.miimon)}}}'


def _w_MacvlanInfo(o: MacvlanInfo, c: dict[int, str]) -> str:
    return f'{{"mode":{_esc(o.mode)}}}'


def _w_addresses(seq: tuple[Address, ...], c: dict[int, str]) -> str:
    get = c.get
    return "[" + ",".join([get(id(a)) or _w_Address(a, c) for a in seq]) + "]"


def _w_Interface(o: Interface, c: dict[int, str]) -> str:
    return (
        f'{{"netns":{_esc(o.netns)}'
        f',"ifindex":{_int(o.ifindex)}'
        f',"name":{_esc(o.name)}'
        f',"kind":{_esc(o.kind)}'
        f',"operstate":{_esc(o.operstate)}'
        f',"admin_up":{"true" if o.admin_up else "false"}'
        f',"carrier":{"null" if o.carrier is None else "true" if o.carrier else "false"}'
        f',"mtu":{_int(o.mtu)}'
        f',"mac":{"null" if o.mac is None else _esc(o.mac)}'
        f',"alias":{"null" if o.alias is None else _esc(o.alias)}'
        f',"master":{"null" if o.master is None else _int(o.master)}'
        f',"link":{"null" if o.link is None else _int(o.link)}'
        f',"link_netnsid":{"null" if o.link_netnsid is None else _int(o.link_netnsid)}'
        f',"addresses":{_w_addresses(o.addresses, c) if o.addresses else "[]"}'
        f',"peer":{_w_ref(o.peer)}'
        f',"lower":{_w_ref(o.lower)}'
        f',"bridge":{"null" if o.bridge is None else _w_BridgeInfo(o.bridge, c)}'
        f',"port":{"null" if o.port is None else _w_BridgePortInfo(o.port, c)}'
        f',"vxlan":{"null" if o.vxlan is None else _w_VxlanInfo(o.vxlan, c)}'
        f',"vlan":{"null" if o.vlan is None else _w_VlanInfo(o.vlan, c)}'
        f',"bond":{"null" if o.bond is None else _w_BondInfo(o.bond, c)}'
        f',"macvlan":{"null" if o.macvlan is None else _w_MacvlanInfo(o.macvlan, c)}'
        f',"vrf_table":{"null" if o.vrf_table is None else _int(o.vrf_table)}'
        f',"uplink":{"true" if o.uplink else "false"}'
        f',"speed_mbps":{"null" if o.speed_mbps is None else _int(o.speed_mbps)}'
        f',"driver":{"null" if o.driver is None else _esc(o.driver)}'
        f',"counters":{"null" if o.counters is None else _w_Counters(o.counters, c)}'
        f',"network":{"null" if o.network is None else _esc(o.network)}'
        f',"tc":{"null" if o.tc is None else _w_tc(o.tc)}'
        "}"
    )


def _w_tc(t: TrafficControl) -> str:
    return json.dumps(_tc(t), separators=(",", ":"))  # rare: a few interfaces per host


def _w_NextHop(o: NextHop, c: dict[int, str]) -> str:
    t = c.get(id(o))
    if t is None:
        t = c[id(o)] = (
            f'{{"gateway":{"null" if o.gateway is None else _esc(o.gateway)}'
            f',"ifindex":{"null" if o.ifindex is None else _int(o.ifindex)}'
            f',"dev":{"null" if o.dev is None else _esc(o.dev)}'
            f',"weight":{_int(o.weight)}'
            "}"
        )
    return t


def _w_Route(o: Route, c: dict[int, str]) -> str:
    t = c.get(id(o))
    if t is None:
        t = c[id(o)] = (
            f'{{"family":{_int(o.family)}'
            f',"table":{_int(o.table)}'
            f',"dst":{_esc(o.dst)}'
            f',"type":{_esc(o.type)}'
            f',"gateway":{"null" if o.gateway is None else _esc(o.gateway)}'
            f',"ifindex":{"null" if o.ifindex is None else _int(o.ifindex)}'
            f',"dev":{"null" if o.dev is None else _esc(o.dev)}'
            f',"protocol":{_esc(o.protocol)}'
            f',"scope":{_esc(o.scope)}'
            f',"metric":{"null" if o.metric is None else _int(o.metric)}'
            f',"prefsrc":{"null" if o.prefsrc is None else _esc(o.prefsrc)}'
            f',"nexthops":{_w_list(_w_NextHop, o.nexthops, c) if o.nexthops else "[]"}'
            "}"
        )
    return t


def _w_Rule(o: Rule, c: dict[int, str]) -> str:
    t = c.get(id(o))
    if t is None:
        t = c[id(o)] = (
            f'{{"family":{_int(o.family)}'
            f',"priority":{_int(o.priority)}'
            f',"table":{_int(o.table)}'
            f',"action":{_esc(o.action)}'
            f',"src":{"null" if o.src is None else _esc(o.src)}'
            f',"dst":{"null" if o.dst is None else _esc(o.dst)}'
            f',"iif":{"null" if o.iif is None else _esc(o.iif)}'
            f',"oif":{"null" if o.oif is None else _esc(o.oif)}'
            f',"fwmark":{"null" if o.fwmark is None else _int(o.fwmark)}'
            f',"invert":{"true" if o.invert else "false"}'
            "}"
        )
    return t


def _w_Neighbour(o: Neighbour, c: dict[int, str]) -> str:
    return (
        f'{{"family":{_int(o.family)}'
        f',"ip":{_esc(o.ip)}'
        f',"mac":{"null" if o.mac is None else _esc(o.mac)}'
        f',"ifindex":{_int(o.ifindex)}'
        f',"dev":{"null" if o.dev is None else _esc(o.dev)}'
        f',"state":{_esc(o.state)}'
        f',"router":{"true" if o.router else "false"}'
        "}"
    )


def _w_FdbEntry(o: FdbEntry, c: dict[int, str]) -> str:
    return (
        f'{{"mac":{_esc(o.mac)}'
        f',"ifindex":{_int(o.ifindex)}'
        f',"master":{"null" if o.master is None else _int(o.master)}'
        f',"vlan":{"null" if o.vlan is None else _int(o.vlan)}'
        f',"state":{_esc(o.state)}'
        f',"flags":{_w_scalars(o.flags)}'
        f',"age":{"null" if o.age is None else _w_float(o.age)}'
        "}"
    )


def _w_L3Vrf(o: L3Vrf, c: dict[int, str]) -> str:
    return (
        f'{{"ifindex":{_int(o.ifindex)}'
        f',"name":{_esc(o.name)}'
        f',"table":{_int(o.table)}'
        f',"members":{_w_scalars(o.members)}'
        "}"
    )


def _w_NatRule(o: NatRule, c: dict[int, str]) -> str:
    return (
        f'{{"source":{_esc(o.source)}'
        f',"family":{_esc(o.family)}'
        f',"table":{_esc(o.table)}'
        f',"chain":{_esc(o.chain)}'
        f',"hook":{"null" if o.hook is None else _esc(o.hook)}'
        f',"action":{_esc(o.action)}'
        f',"proto":{"null" if o.proto is None else _esc(o.proto)}'
        f',"src":{"null" if o.src is None else _esc(o.src)}'
        f',"dst":{"null" if o.dst is None else _esc(o.dst)}'
        f',"in_iface":{"null" if o.in_iface is None else _esc(o.in_iface)}'
        f',"out_iface":{"null" if o.out_iface is None else _esc(o.out_iface)}'
        f',"dport":{"null" if o.dport is None else _esc(o.dport)}'
        f',"to_addr":{"null" if o.to_addr is None else _esc(o.to_addr)}'
        f',"to_port":{"null" if o.to_port is None else _esc(o.to_port)}'
        f',"comment":{"null" if o.comment is None else _esc(o.comment)}'
        f',"text":{_esc(o.text)}'
        "}"
    )


def _w_Netns(o: Netns, c: dict[int, str]) -> str:
    return (
        f'{{"id":{_esc(o.id)}'
        f',"inode":{_int(o.inode)}'
        f',"dev":{_int(o.dev)}'
        f',"is_host":{"true" if o.is_host else "false"}'
        f',"name":{_esc(o.name)}'
        f',"names":{_w_scalars(o.names)}'
        f',"mounts":{_w_scalars(o.mounts)}'
        f',"pids":{_w_scalars(o.pids)}'
        f',"nsid":{"null" if o.nsid is None else _int(o.nsid)}'
        f',"container":{"null" if o.container is None else _esc(o.container)}'
        f',"interfaces":{_w_list(_w_Interface, o.interfaces, c)}'
        f',"routes":{_w_cached(_w_Route, o.routes, c) if o.routes else "[]"}'
        f',"rules":{_w_cached(_w_Rule, o.rules, c) if o.rules else "[]"}'
        f',"neighbours":{_w_list(_w_Neighbour, o.neighbours, c) if o.neighbours else "[]"}'
        f',"fdb":{_w_list(_w_FdbEntry, o.fdb, c) if o.fdb else "[]"}'
        f',"vrfs":{_w_list(_w_L3Vrf, o.vrfs, c) if o.vrfs else "[]"}'
        f',"nat":{_w_list(_w_NatRule, o.nat, c) if o.nat else "[]"}'
        f',"sysctls":{_w_map(o.sysctls)}'
        f',"complete":{"true" if o.complete else "false"}'
        f',"errors":{_w_scalars(o.errors)}'
        "}"
    )


def _w_Container(o: Container, c: dict[int, str]) -> str:
    return (
        f'{{"id":{_esc(o.id)}'
        f',"engine":{_esc(str(o.engine))}'
        f',"name":{_esc(o.name)}'
        f',"netns":{"null" if o.netns is None else _esc(o.netns)}'
        f',"engine_id":{"null" if o.engine_id is None else _esc(o.engine_id)}'
        f',"pid":{"null" if o.pid is None else _int(o.pid)}'
        f',"pids":{_w_scalars(o.pids)}'
        f',"command":{"null" if o.command is None else _esc(o.command)}'
        f',"image":{"null" if o.image is None else _esc(o.image)}'
        f',"state":{"null" if o.state is None else _esc(o.state)}'
        f',"cgroup":{"null" if o.cgroup is None else _esc(o.cgroup)}'
        f',"labels":{_w_map(o.labels)}'
        f',"privileged":{"null" if o.privileged is None else "true" if o.privileged else "false"}'
        "}"
    )


def _w_Server(o: Server, c: dict[int, str]) -> str:
    return (
        f'{{"hostname":{_esc(o.hostname)}'
        f',"kernel":{_esc(o.kernel)}'
        f',"arch":{_esc(o.arch)}'
        f',"cpu_count":{_int(o.cpu_count)}'
        f',"mem_total":{_int(o.mem_total)}'
        f',"boot_id":{"null" if o.boot_id is None else _esc(o.boot_id)}'
        f',"uptime_s":{"null" if o.uptime_s is None else _w_float(o.uptime_s)}'
        "}"
    )


def _write(s: Snapshot) -> str:
    """The compact text of ``json.dumps(snapshot_to_dict(s), separators=(",", ":"))``."""
    cache: dict[int, str] = {}
    netns = _w_Netns
    container = _w_Container
    pairs = ",".join(
        f'{{"a":{_esc(_ref(p.a) or "")},"b":{"null" if p.b is None else _esc(_ref(p.b) or "")}}}'
        for p in s.veth_pairs
    )
    return "".join(
        (
            f'{{"schema_version":{_esc(s.schema_version)},"taken_at":{_w_float(s.taken_at)},'
            f'"root":{"true" if s.root else "false"},"warnings":{_w_scalars(s.warnings)},'
            f'"server":{_w_Server(s.server, cache)},"namespaces":[',
            ",".join([netns(n, cache) for n in s.namespaces]),
            '],"containers":[',
            ",".join([container(c, cache) for c in s.containers]),
            '],"veth_pairs":[',
            pairs,
            "]}",
        )
    )


# --------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------

# Reading is table-driven: each class has a spec of (key, kind, nullable, default,
# nested reader), and one loop checks and converts every field. That is one dict
# lookup and one type test per field instead of a few method calls, which matters
# for ``netlens view`` of a 1000-namespace dump (hundreds of thousands of fields).
# Paths for error messages are built only when something is wrong: readers get
# a cheap (parent, key) chain and format it on failure.

_MISSING: Any = object()
_REQ: Any = object()  # default: the key is required
_NEWDICT: Any = object()  # default: a fresh empty dict

_STR, _INT, _BOOL, _FLOAT, _OBJ, _OBJS, _STRS, _INTS, _MAP, _REF = range(10)
_WANT = {
    _STR: "a string",
    _INT: "an integer",
    _BOOL: "true or false",
    _FLOAT: "a number",
    _OBJ: "an object",
    _OBJS: "a list",
    _STRS: "a list",
    _INTS: "a list",
    _MAP: "an object",
    _REF: "an interface key like 'netns:123/4'",
}

Path = Any  # str (the root) or (parent Path, key or index)
Reader = Callable[[Any, Path], Any]
Field = tuple[str, int, bool, Any, Reader | None]


def _fmt(path: Path) -> str:
    parts: list[str] = []
    while isinstance(path, tuple):
        path, key = path
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return str(path) + "".join(reversed(parts))


def _fail(path: Path, msg: str) -> NoReturn:
    raise SnapshotFileError(f"{_fmt(path)}: {msg}")


def _jtype(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def _bad(path: Path, kind: int, nullable: bool, v: Any) -> NoReturn:
    want = _WANT[kind] + (" or null" if nullable else "")
    if kind == _REF and isinstance(v, str):
        _fail(path, f"expected {want}, got {v!r}")
    _fail(path, f"expected {want}, got {_jtype(v)}")


def _parse_ref(v: Any, path: Path, nullable: bool = False) -> IfRef:
    if type(v) is str:
        ns, sep, idx = v.rpartition("/")
        if sep and ns:
            try:
                return IfRef(ns, int(idx))
            except ValueError:
                pass
    _bad(path, _REF, nullable, v)


def _read(cls: Callable[..., T], spec: tuple[Field, ...], d: Any, path: Path) -> T:
    """Check and convert one JSON object per ``spec`` and build ``cls`` from it."""
    if type(d) is not dict:
        _fail(path, f"expected an object, got {_jtype(d)}")
    kw: dict[str, Any] = {}
    get = d.get
    for key, kind, nullable, default, sub in spec:
        v = get(key, _MISSING)
        if v is _MISSING:
            if default is _REQ:
                _fail(path, f"missing required key {key!r}")
            kw[key] = {} if default is _NEWDICT else default
        elif v is None and nullable:
            kw[key] = None
        elif kind == _STR:
            if type(v) is not str:
                _bad((path, key), kind, nullable, v)
            kw[key] = v
        elif kind == _INT:
            if type(v) is not int:
                _bad((path, key), kind, nullable, v)
            kw[key] = v
        elif kind == _BOOL:
            if type(v) is not bool:
                _bad((path, key), kind, nullable, v)
            kw[key] = v
        elif kind == _OBJS:
            if type(v) is not list:
                _bad((path, key), kind, nullable, v)
            assert sub is not None
            kw[key] = tuple([sub(x, ((path, key), i)) for i, x in enumerate(v)]) if v else ()
        elif kind == _REF:
            kw[key] = _parse_ref(v, (path, key), nullable)
        elif kind == _OBJ:
            assert sub is not None
            kw[key] = sub(v, (path, key))
        elif kind == _FLOAT:
            if type(v) is not float and type(v) is not int:
                _bad((path, key), kind, nullable, v)
            kw[key] = float(v)
        elif kind in (_STRS, _INTS):
            if type(v) is not list:
                _bad((path, key), kind, nullable, v)
            want = str if kind == _STRS else int
            for i, x in enumerate(v):
                if type(x) is not want:
                    _bad(((path, key), i), _STR if want is str else _INT, False, x)
            kw[key] = tuple(v)
        else:  # _MAP of str -> str
            if type(v) is not dict:
                _bad((path, key), kind, nullable, v)
            for k, x in v.items():
                if type(x) is not str:
                    _bad(((path, key), k), _STR, False, x)
            kw[key] = dict(v)
    return cls(**kw)


def _reader(cls: Callable[..., T], *spec: Field) -> Callable[[Any, Path], T]:
    def read(d: Any, path: Path) -> T:
        return _read(cls, spec, d, path)

    return read


def _f(
    key: str, kind: int, default: Any = _REQ, sub: Reader | None = None, *, null: bool = False
) -> Field:
    return (key, kind, null, default, sub)


def _o(key: str, kind: int, sub: Reader | None = None) -> Field:
    """An optional (nullable, default None) field."""
    return (key, kind, True, None, sub)


_r_address = _reader(
    Address,
    _f("family", _INT),
    _f("address", _STR),
    _f("prefixlen", _INT),
    _f("scope", _STR, "global"),
    _o("broadcast", _STR),
    _o("label", _STR),
)
_r_counters = _reader(Counters, *(_f(k, _INT, 0) for k in _COUNTER_KEYS))
_r_bridge = _reader(
    BridgeInfo,
    _f("stp", _BOOL, False),
    _f("vlan_filtering", _BOOL, False),
    _o("forward_delay_cs", _INT),
    _o("ageing_time_cs", _INT),
    _o("bridge_id", _STR),
    _o("root_id", _STR),
)
_r_port = _reader(
    BridgePortInfo,
    _f("state", _STR, "forwarding"),
    _o("cost", _INT),
    _o("priority", _INT),
    _o("learning", _BOOL),
    _o("flood", _BOOL),
    _o("hairpin", _BOOL),
)
_r_vxlan = _reader(
    VxlanInfo,
    _f("vni", _INT),
    _o("remote", _STR),
    _o("group", _STR),
    _o("local", _STR),
    _o("port", _INT),
    _o("underlay", _INT),
    _o("learning", _BOOL),
)
_r_tc = _reader(
    TrafficControl,
    _f("kinds", _STRS, ()),
    _o("rate_bps", _INT),
    _o("delay_us", _INT),
    _o("jitter_us", _INT),
    _o("loss_pct", _FLOAT),
    _o("corrupt_pct", _FLOAT),
    _o("duplicate_pct", _FLOAT),
    _f("ingress", _BOOL, False),
    _o("ingress_to", _INT),
)
_r_interface = _reader(
    Interface,
    _f("netns", _STR),
    _f("ifindex", _INT),
    _f("name", _STR),
    _f("kind", _STR),
    _f("operstate", _STR, "unknown"),
    _f("admin_up", _BOOL, False),
    _o("carrier", _BOOL),
    _f("mtu", _INT, 1500),
    _o("mac", _STR),
    _o("alias", _STR),
    _o("master", _INT),
    _o("link", _INT),
    _o("link_netnsid", _INT),
    _f("addresses", _OBJS, (), _r_address),
    _o("peer", _REF),
    _o("lower", _REF),
    _o("bridge", _OBJ, _r_bridge),
    _o("port", _OBJ, _r_port),
    _o("vxlan", _OBJ, _r_vxlan),
    _o("vlan", _OBJ, _reader(VlanInfo, _f("vlan_id", _INT), _f("protocol", _STR, "802.1Q"))),
    _o("bond", _OBJ, _reader(BondInfo, _f("mode", _STR), _o("miimon", _INT))),
    _o("macvlan", _OBJ, _reader(MacvlanInfo, _f("mode", _STR))),
    _o("vrf_table", _INT),
    _f("uplink", _BOOL, False),
    _o("speed_mbps", _INT),
    _o("driver", _STR),
    _o("counters", _OBJ, _r_counters),
    _o("network", _STR),
    _o("tc", _OBJ, _r_tc),
)
_r_nexthop = _reader(
    NextHop, _o("gateway", _STR), _o("ifindex", _INT), _o("dev", _STR), _f("weight", _INT, 1)
)
_r_route = _reader(
    Route,
    _f("family", _INT),
    _f("table", _INT),
    _f("dst", _STR),
    _f("type", _STR, "unicast"),
    _o("gateway", _STR),
    _o("ifindex", _INT),
    _o("dev", _STR),
    _f("protocol", _STR, "boot"),
    _f("scope", _STR, "universe"),
    _o("metric", _INT),
    _o("prefsrc", _STR),
    _f("nexthops", _OBJS, (), _r_nexthop),
)
_r_rule = _reader(
    Rule,
    _f("family", _INT),
    _f("priority", _INT),
    _f("table", _INT),
    _f("action", _STR, "lookup"),
    _o("src", _STR),
    _o("dst", _STR),
    _o("iif", _STR),
    _o("oif", _STR),
    _o("fwmark", _INT),
    _f("invert", _BOOL, False),
)
_r_neigh = _reader(
    Neighbour,
    _f("family", _INT),
    _f("ip", _STR),
    _o("mac", _STR),
    _f("ifindex", _INT),
    _o("dev", _STR),
    _f("state", _STR),
    _f("router", _BOOL, False),
)
_r_fdb = _reader(
    FdbEntry,
    _f("mac", _STR),
    _f("ifindex", _INT),
    _o("master", _INT),
    _o("vlan", _INT),
    _f("state", _STR, "reachable"),
    _f("flags", _STRS, ()),
    _o("age", _FLOAT),
)
_r_l3vrf = _reader(
    L3Vrf, _f("ifindex", _INT), _f("name", _STR), _f("table", _INT), _f("members", _INTS, ())
)
_r_nat = _reader(
    NatRule,
    _f("source", _STR),
    _f("family", _STR),
    _f("table", _STR),
    _f("chain", _STR),
    _o("hook", _STR),
    _f("action", _STR),
    *(_o(k, _STR) for k in ("proto", "src", "dst", "in_iface", "out_iface", "dport")),
    *(_o(k, _STR) for k in ("to_addr", "to_port", "comment")),
    _f("text", _STR, ""),
)
_r_netns = _reader(
    Netns,
    _f("id", _STR),
    _f("inode", _INT),
    _f("dev", _INT),
    _f("is_host", _BOOL),
    _f("name", _STR),
    _f("names", _STRS, ()),
    _f("mounts", _STRS, ()),
    _f("pids", _INTS, ()),
    _o("nsid", _INT),
    _o("container", _STR),
    _f("interfaces", _OBJS, (), _r_interface),
    _f("routes", _OBJS, (), _r_route),
    _f("rules", _OBJS, (), _r_rule),
    _f("neighbours", _OBJS, (), _r_neigh),
    _f("fdb", _OBJS, (), _r_fdb),
    _f("vrfs", _OBJS, (), _r_l3vrf),
    _f("nat", _OBJS, (), _r_nat),
    _f("sysctls", _MAP, _NEWDICT),
    _f("complete", _BOOL, True),
    _f("errors", _STRS, ()),
)
_r_container = _reader(
    Container,
    _f("id", _STR),
    _f("engine", _STR),
    _f("name", _STR),
    _o("netns", _STR),
    _o("engine_id", _STR),
    _o("pid", _INT),
    _f("pids", _INTS, ()),
    _o("command", _STR),
    _o("image", _STR),
    _o("state", _STR),
    _o("cgroup", _STR),
    _f("labels", _MAP, _NEWDICT),
    _o("privileged", _BOOL),
)
_r_server = _reader(
    Server,
    _f("hostname", _STR),
    _f("kernel", _STR),
    _f("arch", _STR),
    _f("cpu_count", _INT),
    _f("mem_total", _INT),
    _o("boot_id", _STR),
    _o("uptime_s", _FLOAT),
)
_r_pair = _reader(VethPair, _f("a", _REF), _o("b", _REF))
_r_snapshot = _reader(
    Snapshot,
    _f("server", _OBJ, _REQ, _r_server),
    _f("namespaces", _OBJS, (), _r_netns),
    _f("containers", _OBJS, (), _r_container),
    _f("veth_pairs", _OBJS, (), _r_pair),
    _f("taken_at", _FLOAT, 0.0),
    _f("root", _BOOL, True),
    _f("warnings", _STRS, ()),
    _f("schema_version", _STR),
)


def _major(version: str) -> str:
    return version.split(".", 1)[0]


def snapshot_from_dict(d: Any, where: str = "snapshot") -> Snapshot:
    """Rebuild a :class:`Snapshot` from a dump document.

    Accepts any version with this netlens's schema *major* (a newer minor only
    adds optional keys, which are ignored). ``where`` prefixes error messages,
    usually the file name. Raises :class:`SnapshotFileError` with one line.
    """
    if type(d) is not dict:
        _fail(where, f"expected an object, got {_jtype(d)}")
    version = d.get("schema_version")
    if not isinstance(version, str) or not version:
        _fail(
            where, "not a netlens dump (no 'schema_version'); make one with 'netlens dump --json'"
        )
    if _major(version) != _major(SCHEMA_VERSION):
        _fail(
            where,
            f"schema version {version} is not readable by this netlens "
            f"(reads {_major(SCHEMA_VERSION)}.x); use the netlens that wrote it",
        )
    return _r_snapshot(d, where)


def loads(text: str | bytes, where: str = "snapshot") -> Snapshot:
    """Parse dump JSON text into a :class:`Snapshot` (errors: one line)."""
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
        raise SnapshotFileError(f"{where}: not valid JSON ({err})") from None
    return snapshot_from_dict(doc, where)


def load_file(path: str | os.PathLike[str]) -> Snapshot:
    """Read a file written by ``netlens dump --json`` (what ``netlens view FILE`` uses)."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            data = fh.read()
    except OSError as err:
        raise SnapshotFileError(f"cannot read {name}: {err.strerror or err}") from None
    return loads(data, name)


def schema_path() -> str:
    """Path of the JSON Schema shipped with the package (``schema.json``)."""
    return os.path.join(os.path.dirname(__file__), "schema.json")
