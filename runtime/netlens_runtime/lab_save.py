"""``lab save`` and ``lab export --format clab``: a running lab written back as a file.

The lab's record names the file it was built from and its nodes; the file is read
again under the lab's name and cut down (``--nodes a,b``) or grown (``--nodes N``)
to the nodes the record lists, then the impairments set live with ``netlens link
set`` (kept in each node's container record) replace the file's ``impair:``
blocks. The result is written as a native lab file (every node spelled out, so
``lab up`` builds the same lab) or as a containerlab file that
:mod:`netlens_runtime.lab_clab` reads back.

Whatever a format cannot say (a link down, an impairment that differs per end of a
cable, a containerlab file's missing fields) is left out and reported, one line
each, to ``notify``: a saved file never claims more than it holds.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import shlex
from collections.abc import Callable
from typing import Any

from netlens_runtime import lab_record
from netlens_runtime.errors import BadInput, Conflict, NotFound
from netlens_runtime.lab_impair import Impair, ImpairSpec, format_percent
from netlens_runtime.lab_model import PRIMARY_IFNAME, LabLink, LabNode, LabSpec

Notify = Callable[[str], None]


# ---------------------------------------------------------------- the running lab


def running_spec(name: str, notify: Notify) -> LabSpec:
    """The spec of lab ``name`` as it runs: its file, its nodes, its live impairments."""
    from netlens_runtime import state
    from netlens_runtime.lab_spec import load_lab
    from netlens_runtime.lab_subset import subset

    rec = lab_record.read_record(name)
    if rec is None:
        raise NotFound(f"no lab named {name!r} (see 'netlens lab ls')")
    if rec.status != "up":
        raise Conflict(f"lab {name!r} is {rec.status}, not up")
    if not rec.file or not os.path.isfile(rec.file):
        raise NotFound(f"lab {name!r}: its file {rec.file or '(none)'} is gone")
    spec = load_lab(rec.file, name=name)
    wanted = list(rec.nodes)
    if len(wanted) > len(spec.nodes):  # built with --nodes N
        spec = load_lab(rec.file, name=name, scale=len(wanted))
    if [n.name for n in spec.nodes] != wanted:
        spec, _ = subset(spec, wanted)
    plan = lab_record.plan(spec)
    if (plan.networks, plan.nodes, plan.addresses) != (rec.networks, rec.nodes, rec.addresses):
        raise Conflict(
            f"lab {name!r}: {rec.file} has changed since 'lab up' (other networks, nodes or"
            " addresses); save refuses to write what does not run"
        )
    live = {
        node: state.load_container(real) or {} for node, real in rec.nodes.items()
    }  # fmt: skip
    return _with_live_state(spec, live, notify)


def _live_spec(entry: dict[str, Any] | None) -> tuple[ImpairSpec | None, bool]:
    """An interface's live impairment as one ``impair:`` block; False if it cannot be
    (egress and ingress set differently)."""
    entry = entry or {}
    egress = Impair.from_json(entry.get("egress"))
    ingress = Impair.from_json(entry.get("ingress"))
    if egress.is_empty() and ingress.is_empty():
        return None, True
    if ingress.is_empty():
        return ImpairSpec(egress.to_json(), "egress"), True
    if egress.is_empty():
        return ImpairSpec(ingress.to_json(), "ingress"), True
    if egress == ingress:
        return ImpairSpec(egress.to_json(), "both"), True
    return None, False


def _with_live_state(spec: LabSpec, live: dict[str, dict[str, Any]], notify: Notify) -> LabSpec:
    """``spec`` with the impairments and link states the nodes have now."""

    def impair_of(node: str) -> dict[str, Any]:
        return dict(live.get(node, {}).get("impair") or {})

    for name, rec in live.items():
        for ifname in sorted(rec.get("link_down") or {}):
            notify(f"{name}:{ifname} is down now; the file brings it up")
    nodes: list[LabNode] = []
    for node in spec.nodes:
        imp = impair_of(node.name)
        primary = node.impair
        if node.network is not None:
            primary, ok = _live_spec(imp.get(PRIMARY_IFNAME))
            if not ok:
                notify(f"{node.name}:{PRIMARY_IFNAME}: egress and ingress differ; not saved")
        ifaces = []
        for iface in node.interfaces:
            spec_i, ok = _live_spec(imp.get(iface.ifname))
            if not ok:
                notify(f"{node.name}:{iface.ifname}: egress and ingress differ; not saved")
            ifaces.append(dataclasses.replace(iface, impair=spec_i))
        nodes.append(dataclasses.replace(node, impair=primary, interfaces=tuple(ifaces)))
    links: list[LabLink] = []
    for lk in spec.links:
        a = Impair.from_json((impair_of(lk.a).get(lk.a_ifname) or {}).get("egress"))
        b = Impair.from_json((impair_of(lk.b).get(lk.b_ifname) or {}).get("egress"))
        ins = [
            Impair.from_json((impair_of(n).get(i) or {}).get("ingress"))
            for n, i in ((lk.a, lk.a_ifname), (lk.b, lk.b_ifname))
        ]
        link_imp = None
        if a == b and all(i.is_empty() for i in ins):
            link_imp = None if a.is_empty() else ImpairSpec(a.to_json(), "both")
        else:
            notify(
                f"link {lk.a}:{lk.a_ifname} - {lk.b}:{lk.b_ifname}: its ends are impaired"
                " differently; a lab file impairs a cable both ways alike, not saved"
            )
        links.append(dataclasses.replace(lk, impair=link_imp))
    return dataclasses.replace(spec, nodes=tuple(nodes), links=tuple(links))


# ---------------------------------------------------------------- native format


def impair_yaml(spec: ImpairSpec, with_direction: bool) -> dict[str, Any]:
    """An ``impair:`` block that lab_impair.from_yaml reads back to the same changes."""
    out: dict[str, Any] = {}
    for key, value in spec.changes.items():
        if key == "rate":
            out[key] = f"{int(value)}bit"
        elif key in ("delay", "jitter"):
            out[key] = f"{int(value)}us"
        else:
            out[key] = format_percent(float(value)) if value else "0%"
    if with_direction and spec.direction != "both":
        out["direction"] = spec.direction
    return out


def _node_yaml(node: LabNode) -> dict[str, Any]:
    out: dict[str, Any] = {"network": node.network}
    if node.command != LabNode.__dataclass_fields__["command"].default:
        out["command"] = list(node.command)
    plain = {
        "ip": node.ip,
        "rootfs": node.rootfs,
        "memory": node.memory,
        "cpus": node.cpus,
        "pids_limit": node.pids_limit,
        "log_size": node.log_size,
        "hostname": node.hostname,
    }
    out.update({k: v for k, v in plain.items() if v is not None})
    if node.layers:
        out["layers"] = list(node.layers)
    lists = {
        "cap_add": node.cap_add,
        "publish": node.publish,
        "binds": node.binds,
        "security_opt": node.security_opt,
        "exec": node.exec,
    }
    out.update({k: list(v) for k, v in lists.items() if v})
    maps = {"env": node.env, "labels": node.labels, "sysctls": node.sysctls}
    out.update({k: dict(v) for k, v in maps.items() if v})
    if node.privileged:
        out["privileged"] = True
    if node.impair is not None:
        out["impair"] = impair_yaml(node.impair, True)
    if node.interfaces:
        out["interfaces"] = [
            {
                "network": i.network,
                "ifname": i.ifname,
                **({"ip": i.ip} if i.ip else {}),
                **({"impair": impair_yaml(i.impair, True)} if i.impair else {}),
            }
            for i in node.interfaces
        ]
    if node.routes:
        out["routes"] = [
            {"to": r.to, **({"via": r.via} if r.via else {}), **({"dev": r.dev} if r.dev else {})}
            for r in node.routes
        ]
    return out


def to_native(spec: LabSpec) -> dict[str, Any]:
    """The lab as a native lab file's data (load_lab gives ``spec`` back)."""
    networks: dict[str, Any] = {}
    for net in spec.networks:
        f: dict[str, Any] = {}
        for key, value, default in (
            ("subnet", net.subnet, None),
            ("gateway", net.gateway, None),
            ("nat", net.nat, False),
            ("mtu", net.mtu, 1500),
            ("bridge", net.bridge, None),
            ("internal", net.internal, False),
        ):
            if value != default:
                f[key] = value
        if net.allow_from:
            f["allow_from"] = list(net.allow_from)
        networks[net.name] = f
    out: dict[str, Any] = {"name": spec.name}
    if networks:
        out["networks"] = networks
    out["nodes"] = {n.name: _node_yaml(n) for n in spec.nodes}
    if spec.links:
        out["links"] = [_link_yaml(lk) for lk in spec.links]
    if spec.traffic:
        out["traffic"] = [
            {
                "from": f.src,
                "to": f.dst,
                "proto": f.proto,
                "port": f.port,
                "rate": f"{f.min_bps}bit-{f.max_bps}bit",
            }
            for f in spec.traffic
        ]
    return out


def _ends(lk: LabLink) -> tuple[tuple[str, str, str | None], ...]:
    return ((lk.a, lk.a_ifname, lk.a_addr), (lk.b, lk.b_ifname, lk.b_addr))


def _link_yaml(lk: LabLink) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for side, (name, ifname, addr) in zip("ab", _ends(lk), strict=True):
        out[side] = {"node": name, "ifname": ifname, **({"addr": addr} if addr else {})}
    if lk.mtu is not None:
        out["mtu"] = lk.mtu
    if lk.impair is not None:
        out["impair"] = impair_yaml(lk.impair, False)
    return out


# ---------------------------------------------------------------- containerlab format


def to_clab(spec: LabSpec, notify: Notify) -> dict[str, Any]:
    """The lab as a containerlab file (linux nodes, bridges); what it cannot say is
    reported. Addresses and routes become ``exec`` commands, as containerlab labs
    set them; the management network is the primary network most nodes are on."""
    from collections import Counter

    from netlens_runtime.lab_clab import MGMT_NETWORK, NODE_CAPS

    primaries = Counter(n.network for n in spec.nodes if n.network is not None)
    mgmt_name = primaries.most_common(1)[0][0] if primaries else None
    out: dict[str, Any] = {"name": spec.name}
    if mgmt_name is not None:
        net = spec.network(mgmt_name)
        mgmt: dict[str, Any] = {}
        if net.subnet:
            mgmt["ipv4-subnet"] = net.subnet
        if net.gateway:
            mgmt["ipv4-gw"] = net.gateway
        if mgmt:
            out["mgmt"] = mgmt
    bridges = [n for n in spec.networks if n.name != mgmt_name]
    nodes: dict[str, Any] = {}
    execs: dict[str, list[str]] = {n.name: [] for n in spec.nodes}
    links: list[dict[str, Any]] = []
    ports = 0
    for node in spec.nodes:
        f: dict[str, Any] = {"kind": "linux"}
        if node.network is None:
            f["network-mode"] = "none"
        elif node.network != mgmt_name:
            notify(
                f"node {node.name!r} is on network {node.network!r}: a containerlab file has"
                f" one management network ({mgmt_name!r}); it is exported on that one"
            )
        elif node.ip:
            f["mgmt-ipv4"] = node.ip
        if node.command != ("sleep", "infinity"):
            f["cmd"] = shlex.join(node.command)
        if node.env:
            f["env"] = dict(node.env)
        if node.labels:
            f["labels"] = dict(node.labels)
        if node.binds:
            f["binds"] = list(node.binds)
        dropped = [
            k
            for k, v in (
                ("rootfs", node.rootfs),
                ("layers", node.layers),
                ("memory", node.memory),
                ("cpus", node.cpus),
                ("pids_limit", node.pids_limit),
                ("log_size", node.log_size),
                ("sysctls", node.sysctls),
                ("publish", node.publish),
                ("privileged", node.privileged),
                ("security_opt", node.security_opt),
                ("cap_add", set(node.cap_add) - set(NODE_CAPS)),
                ("impair", node.impair),
            )
            if v
        ]
        if dropped:
            notify(f"node {node.name!r}: {', '.join(dropped)} not exported (no clab field)")
        for iface in node.interfaces:
            ports += 1  # the bridge's end: any name, unique on its bridge
            links.append(
                {"endpoints": [f"{node.name}:{iface.ifname}", f"{iface.network}:p{ports}"]}
            )
            if iface.ip is not None:
                subnet = spec.network(iface.network).subnet
                prefix = ipaddress.ip_network(subnet).prefixlen if subnet else 32
                execs[node.name].append(f"ip addr add {iface.ip}/{prefix} dev {iface.ifname}")
            if iface.impair is not None:
                notify(f"node {node.name!r}: impair of {iface.ifname} not exported")
        nodes[node.name] = f
    for lk in spec.links:
        entry: dict[str, Any] = {"endpoints": [f"{lk.a}:{lk.a_ifname}", f"{lk.b}:{lk.b_ifname}"]}
        if lk.mtu is not None:
            entry["mtu"] = lk.mtu
        links.append(entry)
        for name, ifname, addr in _ends(lk):
            if addr:
                execs[name].append(f"ip addr add {addr} dev {ifname}")
        if lk.impair is not None:
            notify(f"link {lk.a}:{lk.a_ifname} - {lk.b}:{lk.b_ifname}: impair not exported")
    for node in spec.nodes:
        for r in node.routes:
            words = ["ip", "route", "add", r.to]
            words += ["via", r.via] if r.via else []
            words += ["dev", r.dev] if r.dev else []
            execs[node.name].append(" ".join(words))
        all_exec = execs[node.name] + list(node.exec)
        if all_exec:
            nodes[node.name]["exec"] = all_exec
    for br in bridges:
        if br.name in nodes or br.name == MGMT_NETWORK:
            raise BadInput(f"network {br.name!r} has a node's name or the management's")
        nodes[br.name] = {"kind": "bridge"}
        if br.subnet or br.nat:
            notify(f"network {br.name!r}: exported as a plain bridge (no subnet, no NAT)")
    if spec.traffic:
        notify(f"{len(spec.traffic)} traffic flow(s) not exported (no clab field)")
    topology: dict[str, Any] = {"nodes": nodes}
    if links:
        topology["links"] = links
    out["topology"] = topology
    return out


# ---------------------------------------------------------------- writing


def write_yaml(data: dict[str, Any], path: str | None, force: bool) -> None:
    """YAML to ``path`` (created, or replaced with ``force``, atomically) or stdout."""
    import sys

    import yaml

    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100)
    if path is None or path == "-":
        sys.stdout.write(text)
        return
    if os.path.lexists(path) and not force:
        raise Conflict(f"{path} exists (use --force to replace it)")
    tmp = f"{path}.tmp{os.getpid()}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        with open(os.open(tmp, flags, 0o644), "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
