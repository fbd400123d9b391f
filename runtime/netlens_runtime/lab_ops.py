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

The lab's record (``$NETLENS_STATE_DIR/labs/<name>.json``, :mod:`netlens_runtime.lab_record`)
is written *before* anything is created, with everything the lab will own, so even a
``lab up`` killed half-way can be cleaned up with ``lab down``. The record is exclusive:
a second ``lab up`` of the same name is refused instead of fighting over objects.

A lab name becomes a path only through :func:`netlens_runtime.state.lab_path`
(validated, inside the state directory), and a record is used only if it lists
nothing but the lab's own objects (:func:`netlens_runtime.records.check_lab`):
``lab down FILE`` of a file naming ``../../x`` or a record listing ``eth0`` is
refused, not obeyed. A record that cannot be used is set aside and skipped.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import subprocess
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from netlens_runtime import lab_record, names, suggest
from netlens_runtime.errors import BadInput, Conflict, NotFound, RuntimeFailure, require_root
from netlens_runtime.lab_bundled import bundled_lab
from netlens_runtime.lab_model import LabNode, LabSpec

if TYPE_CHECKING:
    from netlens_runtime.lab_ns import NodeOp


_WHY_ROOT = "it creates namespaces, links and rules"

_fault: Callable[[str, str], None] | None = None
"""Test seam: called as ``_fault(stage, name)`` before each step; a test makes it
raise to check that a failure at that step rolls everything back."""


def check_host(spec: LabSpec) -> None:
    """What ``lab up`` would refuse on this host though the file is valid: a subnet
    that overlaps a network or a route already there (Conflict naming file:line).

    The lab's own networks do not count: checking a lab that is up is fine.
    """
    from netlens_runtime import ipam, networks, state

    own = {f"network {n}" for n in lab_record.plan(spec).networks}
    taken = [(label, net) for label, net in networks.taken_subnets(state.load_networks())
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


def _container_spec(spec: LabSpec, node: LabNode) -> Any:
    from netlens_runtime import api

    labels = dict(node.labels)
    labels[lab_record.LAB_LABEL] = spec.name
    labels[lab_record.NODE_LABEL] = node.name
    return api.ContainerSpec(
        name=lab_record.node_name(spec.name, node.name),
        command=list(node.command),
        network=lab_record.network_name(spec.name, node.network) if node.network else None,
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
        layers=list(node.layers),
        sysctls=dict(node.sysctls),
        hostname=node.hostname or node.name,
        volumes=list(node.binds),
        privileged=node.privileged,
        security_opt=list(node.security_opt),
    )


def _step(stage: str, name: str) -> None:
    if _fault is not None:
        _fault(stage, name)


def lab_up(spec: LabSpec, *, log: Callable[[str], None] | None = None) -> lab_record.LabRecord:
    """Build ``spec``; on any failure remove everything it made and re-raise."""
    from netlens_runtime import api

    require_root("lab up", _WHY_ROOT)
    rec = lab_record.plan(spec)
    lab_record.claim_record(rec)
    made = lab_record.LabRecord(name=spec.name, file=spec.path)
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
            real = lab_record.network_name(spec.name, net.name)
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
                            a if "/" in a else lab_record.network_name(spec.name, a)
                            for a in net.allow_from
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
                lab_record.node_name(spec.name, link.a),
                link.a_ifname,
                lab_record.node_name(spec.name, link.b),
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
                hname = lab_record.host_ifname(rec.nodes[node.name], iface.ifname)
                mtu = spec.network(iface.network).mtu
                host_cmds.append(
                    f"link add {hname} mtu {mtu} type veth peer name {iface.ifname}"
                    f" mtu {mtu} netns {pids[node.name]}"
                )
                host_cmds.append(f"link set {hname} master {bridge} up")
                made.host_links.append(hname)
        if host_cmds:
            _run_host_batch(host_cmds)
            _record_legs(spec, rec)
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
        # 7. exec: commands (containerlab's), once everything above exists
        _run_execs(spec)
        rec.status = "up"
        lab_record.save_record(rec)
    except BaseException as exc:
        errors = _teardown(made)
        with contextlib.suppress(OSError):
            os.unlink(lab_record.record_path(spec.name))
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
        info = by_real.get(lab_record.node_name(spec.name, node.name), {})
        pid = info.get("pid")
        if pid:
            out[node.name] = int(pid)
        else:
            missing.append(node.name)
    if missing:
        from netlens_runtime import api

        live = {str(c.get("name")): c for c in api.list_containers()}
        for name in missing:
            pid = live.get(lab_record.node_name(spec.name, name), {}).get("pid")
            if not pid:
                raise RuntimeFailure(f"node {name!r} has no running process")
            out[name] = int(pid)
    return out


def _record_legs(spec: LabSpec, rec: lab_record.LabRecord) -> None:
    """Each node's extra legs go into its container record (``inspect`` shows them) and
    their addresses into their networks' allocations, so ``run --ip`` cannot hand a
    leg's address to another container; ``rm`` releases them with the node."""
    from netlens_runtime import state

    with state.locked():
        nets = state.load_networks()
        touched: set[str] = set()
        for node in spec.nodes:
            if not node.interfaces:
                continue
            cname = rec.nodes[node.name]
            crec = state.load_container(cname)
            if crec is None:
                raise RuntimeFailure(f"container {cname!r} has no record")
            legs = []
            for iface in node.interfaces:
                real = lab_record.network_name(spec.name, iface.network)
                legs.append(
                    {
                        "ifname": iface.ifname,
                        "network": real,
                        "ip": iface.ip,
                        "host_veth": lab_record.host_ifname(cname, iface.ifname),
                    }
                )
                net = nets.get(real)
                if iface.ip is None or net is None:
                    continue
                owner = net["allocations"].get(iface.ip)
                if owner not in (None, cname):
                    raise Conflict(f"{iface.ip} on network {real!r} is already used by {owner!r}")
                net["allocations"][iface.ip] = cname
                touched.add(real)
            crec["legs"] = legs
            state.write_json(state.container_path(cname), crec)
        for real in sorted(touched):
            state.write_json(state.network_path(real), nets[real])


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


EXEC_PARALLEL = 8
"""Nodes whose ``exec`` commands run at once. Within a node they run in order (a
later command may need what an earlier one set up); across nodes they are
independent, as in containerlab, and a 100-node lab spent most of its ``lab up``
running 200 of them one after another."""


def _run_execs(spec: LabSpec) -> None:
    """Each node's ``exec`` commands, in order, in the node (as ``netlens exec``),
    up to :data:`EXEC_PARALLEL` nodes at once. A command that fails stops ``lab up``
    (no further command starts; those running finish), which then rolls back; the
    error names the first failed node in the file's order. Their output goes to
    stderr: stdout is the lab's summary."""
    import selectors
    import shlex
    from collections import deque

    from netlens_runtime.containers import get_container

    waiting = deque((n.name, deque(n.exec)) for n in spec.nodes if n.exec)
    if not waiting:
        return
    order = {n.name: i for i, n in enumerate(spec.nodes)}
    running: dict[int, tuple[int, str, str, deque[str]]] = {}  # pidfd -> pid, node, cmd, rest
    failures: list[tuple[int, str]] = []
    recs: dict[str, dict[str, Any]] = {}
    sel = selectors.DefaultSelector()
    try:
        while waiting or running:
            while waiting and not failures and len(running) < EXEC_PARALLEL:
                node, cmds = waiting.popleft()
                cmd = cmds.popleft()
                real = lab_record.node_name(spec.name, node)
                _step("exec", real)
                if node not in recs:  # read once per node, not per command
                    recs[node] = get_container(real)
                pid = _fork_exec(recs[node], shlex.split(cmd))
                fd = os.pidfd_open(pid)
                sel.register(fd, selectors.EVENT_READ)
                running[fd] = (pid, node, cmd, cmds)
            if not running:
                break
            for key, _ in sel.select():
                fd = int(key.fd)
                pid, node, cmd, cmds = running.pop(fd)
                sel.unregister(fd)
                os.close(fd)
                _, status = os.waitpid(pid, 0)
                rc = os.waitstatus_to_exitcode(status)
                if rc != 0:
                    failures.append((order[node], f"node {node!r}: exec {cmd!r} exited with {rc}"))
                elif cmds:
                    waiting.appendleft((node, cmds))  # its next command, before new nodes
    finally:
        for fd, (pid, *_) in running.items():  # only on an exception: reap what runs
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            os.close(fd)
        sel.close()
    if failures:
        raise RuntimeFailure(min(failures)[1])


def _fork_exec(rec: dict[str, Any], argv: list[str]) -> int:
    """exec_in from a forked child (it joins the node's namespaces, which this
    process must not); returns the child's pid."""
    import sys

    from netlens_runtime.execin import exec_in

    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 126
        try:
            os.dup2(2, 1)
            code = exec_in(rec, argv)
        except BaseException as err:
            os.write(2, f"netlens: exec {argv[0]}: {err}\n".encode())
        os._exit(code)
    return pid


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


def _teardown(rec: lab_record.LabRecord) -> list[str]:
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
            if (c.get("labels") or {}).get(lab_record.LAB_LABEL) == rec.name
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
    from netlens_runtime.hostlinks import delete_links

    delete_links(links)


def lab_name_of(arg: str) -> str:
    """``lab down`` takes a lab name or its file. For a file: the lab built from
    that file if exactly one is recorded (it may run under ``--name``), else the
    file's ``name:`` field."""
    if os.path.isfile(arg):
        built = [r.name for r in lab_record.list_labs() if r.file == os.path.abspath(arg)]
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

    require_root("lab down", _WHY_ROOT)
    names.validate_name(name, "lab")
    notes: list[str] = []
    try:
        rec = lab_record.read_record(name)
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
            c
            for c in api.list_containers()
            if (c.get("labels") or {}).get(lab_record.LAB_LABEL) == name
        ]
        if not leftovers:
            raise NotFound(
                f"no lab named {name!r}{suggest.hint(name, 'labs')} (see 'netlens lab ls')"
            )
        rec = lab_record.LabRecord(name=name, file="")
    errors = _teardown(rec)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(lab_record.record_path(name))
    return notes + errors


# ------------------------------------------------------------------- summary


def resolve_lab_file(arg: str) -> str:
    """A path as given, or a bundled lab's path when ``arg`` is its bare name."""
    if os.path.exists(arg) or os.sep in arg:
        return arg
    bundled = bundled_lab(arg)
    return bundled if os.path.isfile(bundled) else arg


def summary_lines(spec: LabSpec, rec: lab_record.LabRecord, limit: int = 40) -> Iterator[str]:
    """A short table of nodes and addresses (one screen at most)."""
    nets = ", ".join(
        f"{lab_record.network_name(spec.name, n.name)} {n.subnet or ''}{' nat' if n.nat else ''}"
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


def lab_traffic(spec: LabSpec, rec: lab_record.LabRecord, **kwargs: Any) -> Any:
    """A (not yet started) :class:`runtime.traffic.TrafficGenerator` for the lab's
    ``traffic:`` flows. Destinations are restricted to the lab's own addresses."""
    from netlens_runtime import api
    from netlens_runtime.traffic import Flow, TrafficGenerator

    pids = {
        str(c.get("name")): int(c["pid"])
        for c in api.list_containers()
        if (c.get("labels") or {}).get(lab_record.LAB_LABEL) == spec.name and c.get("pid")
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
