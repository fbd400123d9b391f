"""``lab up`` / ``lab down`` on real namespaces, and rollback of a failed ``lab up``.

Every test runs against its own state directory (``NETLENS_STATE_DIR``), uses lab
names carrying ``nl`` + the run tag, and moves the fixture subnets to a second
octet picked from the run tag so parallel runs do not collide. The ``labstate``
fixture (conftest.py) removes whatever its state directory still lists, pass or
fail, and fails the test if anything of it is left.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import RUN_TAG
from runtime_host import kernel_changes, kernel_state

from netlens.kernel.nsenter import in_netns
from netlens_runtime import api
from netlens_runtime.errors import Conflict, NotFound, RuntimeFailure
from netlens_runtime.lab_model import LabSpec
from netlens_runtime.lab_spec import load_lab

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "labs" / "good"
OCTET = 100 + int(RUN_TAG, 16) % 100


def _text(fixture: str) -> str:
    """Fixture text with its 10.231.x subnets moved to this run's 10.OCTET.x."""
    return (FIXTURES / fixture).read_text().replace("10.231.", f"10.{OCTET}.")


def _spec(fixture: str, suffix: str, tmp_path: Path) -> LabSpec:
    path = tmp_path / fixture
    path.write_text(_text(fixture))
    return load_lab(str(path), name=f"nl{RUN_TAG}{suffix}")


def _pids() -> dict[str, int]:
    return {c["name"]: int(c["pid"]) for c in api.list_containers()}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def _run_in(pid: int, argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", f"--net=/proc/{pid}/ns/net", *argv], capture_output=True, text=True
    )


def _tcp_roundtrip(src_pid: int, dst_pid: int, dst_ip: str, port: int) -> bytes:
    """Listen in dst, connect from src (sockets opened inside each namespace)."""

    def listener(_p: str) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((dst_ip, port))
        s.listen(1)
        return s

    def client(_p: str) -> socket.socket:
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    (srv,) = in_netns([f"/proc/{dst_pid}/ns/net"], listener)
    (cli,) = in_netns([f"/proc/{src_pid}/ns/net"], client)
    try:
        cli.settimeout(5)
        srv.settimeout(5)
        cli.connect((dst_ip, port))
        conn, _ = srv.accept()
        with conn:
            cli.sendall(b"hello across the router")
            cli.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
        return data
    finally:
        cli.close()
        srv.close()


def test_routed_lab_connects_two_segments_through_the_router(
    labstate: Path, tmp_path: Path
) -> None:
    from netlens_runtime import lab_ops, lab_record

    spec = _spec("routed.yaml", "r", tmp_path)
    before = kernel_state(labstate)
    rec = lab_ops.lab_up(spec)
    assert rec.status == "up"
    a, b, r = (lab_record.node_name(spec.name, n) for n in ("a", "b", "r"))
    pids = _pids()
    assert {a, b, r} <= set(pids)
    labels = {c["name"]: c["labels"] for c in api.list_containers()}
    assert labels[a]["netlens.lab"] == spec.name and labels[a]["netlens.lab.node"] == "a"
    assert (labstate / "labs" / f"{spec.name}.json").is_file()
    assert [x.name for x in lab_record.list_labs()] == [spec.name]

    b_ip = f"10.{OCTET}.2.10"
    assert _run_in(pids[r], ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1"
    ping = _run_in(pids[a], ["ping", "-c", "2", "-W", "2", b_ip])
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert "ttl=63" in ping.stdout  # one hop: through r, not bridged
    assert _tcp_roundtrip(pids[a], pids[b], b_ip, 15301) == b"hello across the router"

    # r's extra leg is in its record and holds its address in the right network's IPAM
    right = lab_record.network_name(spec.name, "right")
    leg_ip = f"10.{OCTET}.2.254"
    (leg,) = api.get_container(r)["legs"]
    assert leg == {
        "ifname": "eth1",
        "network": right,
        "ip": leg_ip,
        "host_veth": lab_record.host_ifname(r, "eth1"),
    }
    assert _link_exists(leg["host_veth"])
    allocations = {str(n["name"]): n["allocations"] for n in api.list_networks()}
    assert allocations[right][leg_ip] == r
    with pytest.raises(Conflict):  # the address is taken: no duplicate IP on the segment
        api.create_container(
            api.ContainerSpec(
                name=f"nl{RUN_TAG}dup", command=["sleep", "60"], network=right, ip=leg_ip
            )
        )

    bridges = [str(n["bridge"]) for n in api.list_networks()]
    assert len(bridges) == 2
    assert all(_link_exists(br) for br in bridges)
    up = kernel_state(labstate)
    assert up.names >= set(bridges)
    api.remove_containers([r], force=True)  # rm releases the leg's address with the node
    allocations = {str(n["name"]): n["allocations"] for n in api.list_networks()}
    assert leg_ip not in allocations[right] and r not in allocations[right].values()
    assert lab_ops.lab_down(spec.name) == []
    # nft table and chains, FORWARD rules of both bridges, cgroups, forwarding claim
    assert kernel_changes(before, kernel_state(labstate), known=up.names) == []
    assert not (labstate / "labs" / f"{spec.name}.json").exists()
    assert api.list_containers() == [] and api.list_networks() == []
    assert not any(_alive(p) for p in pids.values())
    assert not any(_link_exists(br) for br in bridges)
    assert not any(_link_exists(h) for h in rec.host_links)


def test_p2p_chain_and_lab_down_by_file(labstate: Path, tmp_path: Path) -> None:
    from netlens_runtime import lab_ops, lab_record

    spec = _spec("p2p.yaml", "c", tmp_path)
    before = kernel_state(labstate)
    lab_ops.lab_up(spec)
    up = kernel_state(labstate)
    pids = _pids()
    x, z = (pids[lab_record.node_name(spec.name, n)] for n in ("x", "z"))
    # x -> y (forwarding) -> z over two point-to-point veths, no bridge at all.
    ping = _run_in(x, ["ping", "-c", "1", "-W", "2", f"10.{OCTET}.9.6"])
    assert ping.returncode == 0, ping.stdout + ping.stderr
    link = _run_in(z, ["ip", "-o", "link", "show", "to-y"]).stdout
    assert " mtu 1400 " in link, link
    # lab down FILE: the name comes from the file's `name:` field.
    path = tmp_path / "named.yaml"
    path.write_text(_text("p2p.yaml").replace("name: chain", f"name: {spec.name}"))
    assert lab_ops.lab_name_of(str(path)) == spec.name
    lab_ops.lab_down(lab_ops.lab_name_of(str(path)))
    assert api.list_containers() == []
    assert not any(_alive(p) for p in pids.values())
    assert kernel_changes(before, kernel_state(labstate), known=up.names) == []


def test_second_lab_up_of_same_name_is_refused(labstate: Path, tmp_path: Path) -> None:
    from netlens_runtime import lab_ops

    spec = _spec("routed.yaml", "d", tmp_path)
    lab_ops.lab_up(spec)
    before = _pids()
    with pytest.raises(Conflict, match="already up"):
        lab_ops.lab_up(spec)
    assert _pids() == before  # the running lab is untouched
    lab_ops.lab_down(spec.name)
    with pytest.raises(NotFound):
        lab_ops.lab_down(spec.name)


SIX_NODES = """
name: six
networks:
  n: {{subnet: 10.{o}.40.0/24, nat: true}}
nodes:
  h:
    count: 4
    ip: 10.{o}.40.10
  k:
    ip: 10.{o}.40.20
    links: [{{peer: m, ifname: p0, addr: 10.{o}.41.1/30, peer_addr: 10.{o}.41.2/30}}]
  m:
    network: null
"""


@pytest.mark.parametrize("where", ["fifth-node", "core-batch", "link"])
def test_failed_lab_up_rolls_back_everything(
    where: str, labstate: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure while the 5th node is set up (or inside the runtime's batch, or at
    the p2p link) leaves no container, process, bridge, veth, record or network."""
    from netlens_runtime import lab_ops, lab_record

    spec = load_lab("six.yaml", text=SIX_NODES.format(o=OCTET), name=f"nl{RUN_TAG}f")
    assert [n.name for n in spec.nodes][4] == "k"
    created: list[dict[str, Any]] = []
    real_create = api.create_containers

    def spy(specs: list[api.ContainerSpec]) -> list[dict[str, Any]]:
        out = real_create(specs)
        created.extend(out)
        return out

    monkeypatch.setattr(api, "create_containers", spy)
    nets: list[dict[str, Any]] = []
    real_net = api.create_network

    def spy_net(nspec: api.NetworkSpec) -> dict[str, Any]:
        out = real_net(nspec)
        nets.append(out)
        return out

    monkeypatch.setattr(api, "create_network", spy_net)
    fifth = lab_record.node_name(spec.name, "k")
    before = kernel_state(labstate)
    if where == "core-batch":
        monkeypatch.setenv("NETLENS_FAULT", "before_exec")
    else:
        stage = "node" if where == "fifth-node" else "link"

        def fault(st: str, name: str) -> None:
            if st == stage and (st == "link" or name == fifth):
                raise RuntimeFailure(f"injected failure at {st} {name}")

        monkeypatch.setattr(lab_ops, "_fault", fault)
    with pytest.raises(RuntimeFailure, match="injected"):
        lab_ops.lab_up(spec)
    if where != "core-batch":
        assert len(created) == 6  # the failure came after every node existed
    assert api.list_containers() == []
    assert api.list_networks() == []
    assert lab_record.list_labs() == []
    assert not (labstate / "labs" / f"{spec.name}.json").exists()
    assert not any(_alive(int(c["pid"])) for c in created)
    assert len(nets) == 1 and not _link_exists(nets[0]["bridge"])
    for c in created:
        assert not c["host_veth"] or not _link_exists(c["host_veth"])
    assert not any(e.endswith(".json") for e in os.listdir(labstate / "pending"))
    # the kernel too: the NAT network's table and FORWARD rules, cgroups, forwarding
    ours = [str(n["bridge"]) for n in nets] + [str(c["host_veth"]) for c in created]
    after = kernel_state(labstate, also=[str(c["name"]) for c in created])
    assert kernel_changes(before, after, known=ours) == []
    # And the same lab builds fine right after (nothing is left to conflict with).
    monkeypatch.delenv("NETLENS_FAULT", raising=False)
    monkeypatch.setattr(lab_ops, "_fault", None)
    lab_ops.lab_up(spec)
    lab_ops.lab_down(spec.name)


def test_cli_verbs(labstate: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``lab check|up|ls|down`` through the argparse wiring the CLI uses."""
    from netlens_runtime import lab

    parser = argparse.ArgumentParser(prog="netlens")
    lab.add_commands(parser.add_subparsers(dest="command"))
    path = tmp_path / "routed.yaml"
    path.write_text(_text("routed.yaml"))
    name = f"nl{RUN_TAG}v"

    def call(*argv: str) -> int:
        args = parser.parse_args(list(argv))
        return int(args.func(args))

    assert call("lab", "check", str(path)) == 0
    assert "ok: lab 'routed', 3 nodes" in capsys.readouterr().out
    assert call("lab", "up", str(path), "--name", name) == 0
    out = capsys.readouterr().out
    assert f"lab {name} up: 3 nodes, 2 networks" in out and f"10.{OCTET}.2.254/24" in out
    assert call("lab", "ls") == 0
    assert name in capsys.readouterr().out
    assert call("lab", "down", name) == 0
    assert call("lab", "ls") == 0
    assert "no labs" in capsys.readouterr().out


def test_not_root_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, labstate: Path
) -> None:
    from netlens_runtime import lab_ops
    from netlens_runtime.errors import NeedsRoot

    spec = _spec("routed.yaml", "n", tmp_path)
    with monkeypatch.context() as m, pytest.raises(NeedsRoot, match="lab up needs root"):
        m.setattr(os, "geteuid", lambda: 1000)
        lab_ops.lab_up(spec)
    assert not (labstate / "labs").exists() or not os.listdir(labstate / "labs")


def test_name_clash_is_refused_before_anything_is_made(labstate: Path, tmp_path: Path) -> None:
    from netlens_runtime import lab_ops, lab_record

    spec = _spec("routed.yaml", "k", tmp_path)
    squatter = lab_record.node_name(spec.name, "b")
    api.create_container(api.ContainerSpec(name=squatter, network=None))
    pid = _pids()[squatter]
    with pytest.raises(Conflict, match=f"{squatter} already exists"):
        lab_ops.lab_up(spec)
    assert api.list_networks() == []
    assert [c["name"] for c in api.list_containers()] == [squatter]
    assert _alive(pid)
    assert lab_record.list_labs() == []
