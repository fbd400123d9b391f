"""Labs: build a whole topology from one YAML file, and take it down again.

The CLI verbs live in :mod:`netlens_runtime.lab`; this module is the API behind them.

``lab up`` validates the file completely (:mod:`netlens_runtime.lab_spec`), then builds in
this order, recording every step so a failure anywhere rolls back all of it:

1. networks (``<lab>-<net>``), one by one;
2. every node in one all-or-nothing batch (``create_containers``), named
   ``<lab>-<node>`` and labelled ``netlens.lab=<lab>``;
3. point-to-point links (``connect``);
4. extra legs of multi-homed nodes (a host veth on another network's bridge);
5. addresses of those legs and static routes: one rtnetlink batch per node,
   sent on a socket opened inside the node's namespace (:mod:`netlens_runtime.lab_ns`);
6. impairments (``impair:`` blocks: :mod:`netlens_runtime.linkops`).

The lab's record (``$NETLENS_STATE_DIR/labs/<name>.json``) is written *before*
anything is created, with everything the lab will own, so even a ``lab up`` killed
half-way can be cleaned up with ``lab down``. The record is exclusive: a second
``lab up`` of the same name is refused instead of fighting over objects.

A lab name becomes a path only through :func:`netlens_runtime.state.lab_path`
(validated, inside the state directory), and a record is used only if it lists
nothing but the lab's own objects (:func:`netlens_runtime.records.check_lab`):
``lab down FILE`` of a file naming ``../../x`` or a record listing ``eth0`` is
refused, not obeyed. A record that cannot be used is set aside and skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from netlens_runtime import names
from netlens_runtime.errors import BadInput, Conflict, NeedsRoot, NotFound, RuntimeFailure
from netlens_runtime.lab_spec import LabNode, LabSpec, bundled_lab

if TYPE_CHECKING:
    from netlens_runtime.lab_ns import NodeOp

LAB_LABEL = "netlens.lab"
NODE_LABEL = "netlens.lab.node"

_fault: Callable[[str, str], None] | None = None
"""Test seam: called as ``_fault(stage, name)`` before each step; a test makes it
raise to check that a failure at that step rolls everything back."""


def state_dir() -> str:
    """The runtime's state directory (``$NETLENS_STATE_DIR``, default /run/netlens)."""
    return os.environ.get("NETLENS_STATE_DIR") or "/run/netlens"


def labs_dir() -> str:
    from netlens_runtime import state

    return state.kind_dir("labs")


def node_name(lab: str, node: str) -> str:
    """Runtime name of a lab node: node names are lab-scoped."""
    return f"{lab}-{node}"


def network_name(lab: str, net: str) -> str:
    """Runtime name of a lab network."""
    return f"{lab}-{net}"


def host_ifname(container: str, ifname: str) -> str:
    """Host end of a multi-homed node's extra leg: short, stable, unique (<= 15 bytes)."""
    digest = hashlib.sha1(f"{container}/{ifname}".encode()).hexdigest()[:11]
    return f"lx{digest}"


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise NeedsRoot(f"{what} needs root: it creates namespaces, links and rules")


# ------------------------------------------------------------------- records


@dataclass
class LabRecord:
    """What a lab owns, as stored in ``labs/<name>.json``."""

    name: str
    file: str
    status: str = "creating"
    created: float = field(default_factory=time.time)
    networks: list[str] = field(default_factory=list)
    nodes: dict[str, str] = field(default_factory=dict)
    """Lab-local node name -> runtime container name."""
    addresses: dict[str, list[str]] = field(default_factory=dict)
    """Lab-local node name -> its addresses (CIDR), for summaries and traffic."""
    host_links: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.file,
            "status": self.status,
            "created": self.created,
            "networks": self.networks,
            "nodes": self.nodes,
            "addresses": self.addresses,
            "host_links": self.host_links,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabRecord:
        """A record from checked JSON (see records.check_lab; KeyError if no name)."""
        return cls(
            name=str(data["name"]),
            file=str(data.get("file", "")),
            status=str(data.get("status", "up")),
            created=float(data.get("created", 0.0)),
            networks=[str(x) for x in data.get("networks", [])],
            nodes={str(k): str(v) for k, v in data.get("nodes", {}).items()},
            addresses={str(k): [str(a) for a in v] for k, v in data.get("addresses", {}).items()},
            host_links=[str(x) for x in data.get("host_links", [])],
        )


def _record_path(name: str) -> str:
    from netlens_runtime import state

    return state.lab_path(name)


def _claim_record(rec: LabRecord) -> None:
    """Create the record exclusively: refuse a lab that is already (being) built.

    The record is written to a temporary file and hard-linked into place, which
    fails if the name exists: readers never see a half-written record.
    """
    from netlens_runtime import state

    os.makedirs(os.path.join(state.state_dir(), "labs"), mode=0o755, exist_ok=True)
    path = _record_path(rec.name)
    tmp = state.temp_path(path)
    _write_temp(tmp, rec)
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise Conflict(
            f"lab {rec.name!r} is already up (run 'netlens lab down {rec.name}' first)"
        ) from None
    finally:
        os.unlink(tmp)


def _save_record(rec: LabRecord) -> None:
    from netlens_runtime import state

    path = _record_path(rec.name)
    tmp = state.temp_path(path)
    _write_temp(tmp, rec)
    os.replace(tmp, path)


def _write_temp(tmp: str, rec: LabRecord) -> None:
    """A fresh temporary file (no symlink followed, nothing left from before)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    with open(os.open(tmp, flags, 0o644), "w") as fh:
        json.dump(rec.to_json(), fh, indent=1)


def read_record(name: str) -> LabRecord | None:
    """The record of lab ``name``, or None when no such lab is recorded.

    BadInput for a name that is not a lab name; NotFound (saying why) for a
    record that cannot be used.
    """
    from netlens_runtime import state

    data = state.load_lab(name)
    return None if data is None else LabRecord.from_json(data)


def list_labs() -> list[LabRecord]:
    """Every usable lab record, sorted by name (others are reported and set aside)."""
    from netlens_runtime import state

    return [LabRecord.from_json(data) for _, data in sorted(state.load_labs().items())]


def check_host(spec: LabSpec) -> None:
    """What ``lab up`` would refuse on this host though the file is valid: a subnet
    that overlaps a network or a route already there (Conflict naming file:line).

    The lab's own networks do not count: checking a lab that is up is fine.
    """
    from netlens_runtime import core, ipam, state

    own = {f"network {n}" for n in plan(spec).networks}
    taken = [(label, net) for label, net in core.taken_subnets(state.load_networks())
             if label not in own]  # fmt: skip
    mine = {str(n["subnet"]) for n in state.load_networks().values()
            if f"network {n['name']}" in own}  # fmt: skip
    taken = [(label, net) for label, net in taken if str(net) not in mine]
    for net in spec.networks:
        if net.subnet is None:
            continue
        try:
            ipam.check_free(ipaddress.IPv4Network(net.subnet), taken)
        except Conflict as err:
            where = f"{os.path.basename(spec.path)}:{net.line}: networks.{net.name}"
            raise Conflict(f"{where}: {err}") from None


# ------------------------------------------------------------------- lab up


def _addresses(spec: LabSpec, node: LabNode) -> list[str]:
    out: list[str] = []
    if node.network is not None and node.ip is not None:
        subnet = spec.network(node.network).subnet
        if subnet is not None:
            out.append(f"{node.ip}/{ipaddress.ip_network(subnet).prefixlen}")
    for iface in node.interfaces:
        subnet = spec.network(iface.network).subnet
        if iface.ip is not None and subnet is not None:
            out.append(f"{iface.ip}/{ipaddress.ip_network(subnet).prefixlen}")
    for link in spec.links:
        if link.a == node.name and link.a_addr:
            out.append(link.a_addr)
        if link.b == node.name and link.b_addr:
            out.append(link.b_addr)
    return out


def plan(spec: LabSpec) -> LabRecord:
    """The record of everything ``spec`` will own, before anything exists."""
    rec = LabRecord(name=spec.name, file=spec.path)
    rec.networks = [network_name(spec.name, n.name) for n in spec.networks]
    for node in spec.nodes:
        rec.nodes[node.name] = node_name(spec.name, node.name)
        rec.addresses[node.name] = _addresses(spec, node)
        for iface in node.interfaces:
            rec.host_links.append(host_ifname(rec.nodes[node.name], iface.ifname))
    return rec


def _container_spec(spec: LabSpec, node: LabNode) -> Any:
    from netlens_runtime import api

    labels = dict(node.labels)
    labels[LAB_LABEL] = spec.name
    labels[NODE_LABEL] = node.name
    return api.ContainerSpec(
        name=node_name(spec.name, node.name),
        command=list(node.command),
        network=network_name(spec.name, node.network) if node.network else None,
        ip=node.ip,
        memory=node.memory,
        cpus=node.cpus,
        pids_limit=node.pids_limit,
        log_size=node.log_size,
        publish=list(node.publish),
        env=dict(node.env),
        labels=labels,
        cap_add=list(node.cap_add),
        rootfs=node.rootfs,
        sysctls=dict(node.sysctls),
        hostname=node.hostname or node.name,
        volumes=list(node.binds),
        privileged=node.privileged,
        security_opt=list(node.security_opt),
    )


def _step(stage: str, name: str) -> None:
    if _fault is not None:
        _fault(stage, name)


def lab_up(spec: LabSpec, *, log: Callable[[str], None] | None = None) -> LabRecord:
    """Build ``spec``; on any failure remove everything it made and re-raise."""
    from netlens_runtime import api

    _require_root("lab up")
    rec = plan(spec)
    _claim_record(rec)
    made = LabRecord(name=spec.name, file=spec.path)
    try:
        # 0. name clashes with objects outside the lab: refuse before making anything
        taken = {str(c.get("name")) for c in api.list_containers()}
        taken |= {str(n.get("name")) for n in api.list_networks()}
        clash = sorted(taken & {*rec.nodes.values(), *rec.networks})
        if clash:
            raise Conflict(f"lab {spec.name!r}: {clash[0]} already exists (another lab or run?)")
        # 1. networks
        bridges: dict[str, str] = {}
        for net in spec.networks:
            real = network_name(spec.name, net.name)
            _step("network", real)
            try:
                info = api.create_network(
                    api.NetworkSpec(
                        name=real,
                        subnet=net.subnet,
                        gateway=net.gateway,
                        nat=net.nat,
                        mtu=net.mtu,
                        bridge=net.bridge,
                        internal=net.internal,
                        allow_from=[
                            a if "/" in a else network_name(spec.name, a) for a in net.allow_from
                        ],
                    )
                )
            except RuntimeFailure as exc:
                # Point at the lab file: a subnet clash is a fix in that file.
                where = f"{os.path.basename(spec.path)}:{net.line}: networks.{net.name}"
                raise type(exc)(f"{where}: {exc}") from exc
            made.networks.append(real)
            bridges[net.name] = str(info.get("bridge") or "")
        # 2. nodes, all or nothing
        specs = [_container_spec(spec, n) for n in spec.nodes]
        infos = api.create_containers(specs)
        made.nodes = dict(rec.nodes)
        pids = _pids(spec, infos)
        # 3. point-to-point links
        for link in spec.links:
            _step("link", f"{link.a}:{link.a_ifname}-{link.b}:{link.b_ifname}")
            api.connect(
                node_name(spec.name, link.a),
                link.a_ifname,
                node_name(spec.name, link.b),
                link.b_ifname,
                a_addr=link.a_addr,
                b_addr=link.b_addr,
                mtu=link.mtu,
            )
        # 4. extra legs on other networks' bridges (host side)
        host_cmds: list[str] = []
        for node in spec.nodes:
            for iface in node.interfaces:
                bridge = bridges[iface.network]
                if not bridge:
                    raise RuntimeFailure(f"network {iface.network!r} reported no bridge")
                hname = host_ifname(rec.nodes[node.name], iface.ifname)
                mtu = spec.network(iface.network).mtu
                host_cmds.append(
                    f"link add {hname} mtu {mtu} type veth peer name {iface.ifname}"
                    f" mtu {mtu} netns {pids[node.name]}"
                )
                host_cmds.append(f"link set {hname} master {bridge} up")
                made.host_links.append(hname)
        if host_cmds:
            _run_host_batch(host_cmds)
        # 5. inside each node: extra legs' addresses and routes (one netlink batch each)
        work: list[tuple[str, list[NodeOp]]] = []
        for node in spec.nodes:
            _step("node", rec.nodes[node.name])
            ops = _node_ops(spec, node)
            if ops:
                work.append((f"/proc/{pids[node.name]}/ns/net", ops))
        if work:
            _configure_nodes(work)
        # 6. impairments from the file's impair: blocks (tc and nftables in the nodes)
        _impair(spec)
        rec.status = "up"
        _save_record(rec)
    except BaseException as exc:
        errors = _teardown(made)
        with contextlib.suppress(OSError):
            os.unlink(_record_path(spec.name))
        if errors and log is not None:
            for err in errors:
                log(f"rollback: {err}")
        if isinstance(exc, OSError) and not isinstance(exc, RuntimeFailure):
            raise RuntimeFailure(f"lab {spec.name!r}: {exc}") from exc
        raise
    return rec


def _pids(spec: LabSpec, infos: list[dict[str, Any]]) -> dict[str, int]:
    """Lab-local node name -> pid of its init, from create_containers' answer."""
    by_real = {str(i.get("name")): i for i in infos}
    out: dict[str, int] = {}
    missing = []
    for node in spec.nodes:
        info = by_real.get(node_name(spec.name, node.name), {})
        pid = info.get("pid")
        if pid:
            out[node.name] = int(pid)
        else:
            missing.append(node.name)
    if missing:
        from netlens_runtime import api

        live = {str(c.get("name")): c for c in api.list_containers()}
        for name in missing:
            pid = live.get(node_name(spec.name, name), {}).get("pid")
            if not pid:
                raise RuntimeFailure(f"node {name!r} has no running process")
            out[name] = int(pid)
    return out


def _node_ops(spec: LabSpec, node: LabNode) -> list[NodeOp]:
    """What finishes a node inside its namespace: extra legs up with their
    addresses, then static routes (in this order: a route needs its interface)."""
    from netlens_runtime.lab_ns import AddAddr, AddRoute, LinkUp

    ops: list[NodeOp] = []
    for iface in node.interfaces:
        if iface.ip is not None:
            subnet = spec.network(iface.network).subnet
            prefix = ipaddress.ip_network(subnet).prefixlen if subnet else 32
            ops.append(AddAddr(iface.ifname, f"{iface.ip}/{prefix}"))
        ops.append(LinkUp(iface.ifname))
    for route in node.routes:
        ops.append(AddRoute(route.to, route.via, route.dev))
    return ops


def _impair(spec: LabSpec) -> None:
    """Apply the lab's ``impair:`` blocks (:mod:`netlens_runtime.linkops`; pyroute2 is
    imported only when a lab has some)."""
    if not any(n.impair or any(i.impair for i in n.interfaces) for n in spec.nodes) and not any(
        lk.impair for lk in spec.links
    ):
        return
    from netlens_runtime import linkops

    _step("impair", spec.name)
    linkops.apply_many(linkops.lab_impairments(spec))


def _run_host_batch(lines: list[str]) -> None:
    res = subprocess.run(
        ["ip", "-batch", "-"], input="\n".join(lines) + "\n", capture_output=True, text=True
    )
    if res.returncode != 0:
        raise RuntimeFailure(f"ip: {res.stderr.strip() or 'failed'}")


def _configure_nodes(work: list[tuple[str, list[NodeOp]]]) -> None:
    """Apply each node's ops from one worker thread that visits every namespace."""
    from netlens.kernel.nsenter import in_netns
    from netlens_runtime.lab_ns import apply_ops

    todo = dict(work)

    def one(path: str) -> None:
        try:
            apply_ops(todo[path])
        except OSError as exc:
            raise RuntimeFailure(f"configuring node ({path}): {exc.strerror or exc}") from None

    in_netns([p for p, _ in work], one)


# ------------------------------------------------------------------ lab down


def _teardown(rec: LabRecord) -> list[str]:
    """Remove what ``rec`` lists that still exists; return the errors, keep going."""
    from netlens_runtime import api

    errors: list[str] = []
    wanted = set(rec.nodes.values())
    try:
        records = api.list_containers()
        live = {str(c.get("name")) for c in records}
        labelled = {
            str(c.get("name"))
            for c in records
            if (c.get("labels") or {}).get(LAB_LABEL) == rec.name
        }
    except RuntimeFailure as exc:
        errors.append(f"listing containers: {exc}")
        records, live, labelled = [], set(wanted), set()
    names = sorted((wanted & live) | labelled)
    if names:
        try:
            # Deletes the nodes' host veths too (one batch), so a lab rebuilt
            # right away finds its names free.
            api.remove_containers(names, force=True)
        except RuntimeFailure as exc:
            errors.append(f"removing nodes: {exc}")
    # The extra legs of multi-homed nodes are ours, not the runtime's: the kernel
    # would free them with the dead namespaces, but asynchronously, later.
    _delete_links(list(rec.host_links))
    try:
        nets = {str(n.get("name")) for n in api.list_networks()}
    except RuntimeFailure as exc:
        errors.append(f"listing networks: {exc}")
        nets = set(rec.networks)
    for net in reversed(rec.networks):
        if net in nets:
            try:
                api.remove_network(net)
            except NotFound:
                pass
            except RuntimeFailure as exc:
                errors.append(f"removing network {net}: {exc}")
    return errors


def _delete_links(links: list[str]) -> None:
    """Delete host links that still exist, in one netlink batch; missing ones are fine."""
    from netlens_runtime.core import delete_links

    delete_links(links)


def lab_name_of(arg: str) -> str:
    """``lab down`` takes a lab name or its file. For a file: the lab built from
    that file if exactly one is recorded (it may run under ``--name``), else the
    file's ``name:`` field."""
    if os.path.isfile(arg):
        built = [r.name for r in list_labs() if r.file == os.path.abspath(arg)]
        if len(built) == 1:
            return built[0]
        import yaml

        try:
            with open(arg, encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
        except (OSError, yaml.YAMLError) as exc:
            raise BadInput(f"{arg}: cannot read the lab's name: {exc}") from None
        except RecursionError:
            raise BadInput(f"{arg}: cannot read the lab's name: nested too deeply") from None
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise BadInput(f"{arg}: no 'name' field; pass the lab's name instead")
        try:
            return names.validate_name(data["name"], "lab")
        except BadInput as err:
            raise BadInput(f"{arg}: {err}") from None
    return names.validate_name(arg, "lab")


def lab_down(name: str) -> list[str]:
    """Remove lab ``name`` and its record; return non-fatal errors met on the way.

    A record that cannot be used is set aside: the lab's containers are still
    found by their label, its networks are reported, not guessed.
    """
    from netlens_runtime import state

    _require_root("lab down")
    names.validate_name(name, "lab")
    notes: list[str] = []
    try:
        rec = read_record(name)
    except state.UnusableRecord as err:
        state.set_aside(err.path, err.reason)
        rec = None
        notes.append(
            f"lab {name}: its record could not be used; its networks (named {name}-...)"
            " are left for 'netlens network rm'"
        )
    if rec is None:
        from netlens_runtime import api

        leftovers = [
            c for c in api.list_containers() if (c.get("labels") or {}).get(LAB_LABEL) == name
        ]
        if not leftovers:
            raise NotFound(f"no lab named {name!r} (see 'netlens lab ls')")
        rec = LabRecord(name=name, file="")
    errors = _teardown(rec)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_record_path(name))
    return notes + errors


# ------------------------------------------------------------------- summary


def resolve_lab_file(arg: str) -> str:
    """A path as given, or a bundled lab's path when ``arg`` is its bare name."""
    if os.path.exists(arg) or os.sep in arg:
        return arg
    bundled = bundled_lab(arg)
    return bundled if os.path.isfile(bundled) else arg


def summary_lines(spec: LabSpec, rec: LabRecord, limit: int = 40) -> Iterator[str]:
    """A short table of nodes and addresses (one screen at most)."""
    nets = ", ".join(
        f"{network_name(spec.name, n.name)} {n.subnet or ''}{' nat' if n.nat else ''}"
        for n in spec.networks
    )
    if nets:
        yield f"networks: {nets}"
    for shown, node in enumerate(spec.nodes):
        if shown >= limit:
            yield f"... and {len(spec.nodes) - limit} more nodes"
            break
        addrs = " ".join(rec.addresses.get(node.name, [])) or "-"
        fwd = " (router)" if node.sysctls.get("net.ipv4.ip_forward") == "1" else ""
        fwd += " (privileged)" if node.privileged else ""
        yield f"  {rec.nodes[node.name]:<28} {addrs}{fwd}"


# ------------------------------------------------------------------- traffic


def lab_traffic(spec: LabSpec, rec: LabRecord, **kwargs: Any) -> Any:
    """A (not yet started) :class:`runtime.traffic.TrafficGenerator` for the lab's
    ``traffic:`` flows. Destinations are restricted to the lab's own addresses."""
    from netlens_runtime import api
    from netlens_runtime.traffic import Flow, TrafficGenerator

    pids = {
        str(c.get("name")): int(c["pid"])
        for c in api.list_containers()
        if (c.get("labels") or {}).get(LAB_LABEL) == spec.name and c.get("pid")
    }
    allowed = {a.split("/")[0] for addrs in rec.addresses.values() for a in addrs}
    flows = []
    for i, f in enumerate(spec.traffic):
        src, dst = rec.nodes[f.src], rec.nodes[f.dst]
        if src not in pids or dst not in pids:
            raise NotFound(f"traffic flow {f.src} -> {f.dst}: node is not running")
        dst_ip = spec.node(f.dst).ip
        assert dst_ip is not None  # the validator insists on it
        flows.append(
            Flow(
                name=f"{f.src}>{f.dst}/{f.proto}#{i}",
                src_netns=f"/proc/{pids[src]}/ns/net",
                dst_netns=f"/proc/{pids[dst]}/ns/net",
                dst_ip=dst_ip,
                port=f.port,
                proto=f.proto,
                min_bps=f.min_bps,
                max_bps=f.max_bps,
            )
        )
    return TrafficGenerator(flows, allowed=allowed, **kwargs)
