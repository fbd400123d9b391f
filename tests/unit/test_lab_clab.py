"""containerlab topology files (netlens_runtime.lab_clab): the lab they map to, and
the exact one-line refusals of what netlens does not run.

Good files are compared with the native lab file that says the same thing: both
loaders must produce the same LabSpec, so ``lab up`` needs nothing clab-specific.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from netlens_runtime.errors import BadInput, BadInputs
from netlens_runtime.lab_model import LabSpec
from netlens_runtime.lab_spec import load_lab

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _no_image_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Results must not depend on the images this host happens to hold."""
    from netlens_runtime import lab_image

    monkeypatch.setattr(lab_image, "DOCKER_ROOT", str(tmp_path / "no-docker"))
    monkeypatch.setattr(lab_image, "PODMAN_ROOT", str(tmp_path / "no-podman"))


CLAB = """\
name: c1
topology:
  defaults:
    kind: linux
    image: alpine:3
  kinds:
    linux:
      env: {ROLE: node}
  nodes:
    r1:
      exec:
        - ip addr add 10.0.0.1/30 dev eth1
      labels: {site: a}
    r2:
      mgmt-ipv4: 172.20.20.12
      cmd: sleep 1000
      env: {ROLE: edge}
    h1:
      network-mode: none
      binds: [/etc/hostname:/srv/h]
    sw:
      kind: bridge
  links:
    - endpoints: ["r1:eth1", "r2:eth1"]
      mtu: 9000
    - endpoints: ["h1:eth1", "sw:h1p"]
    - endpoints: ["sw:r1p", "r1:eth2"]
"""

NATIVE = """\
name: c1
networks:
  mgmt: {subnet: 172.20.20.0/24, nat: true}
  sw: {}
defaults:
  cap_add: [NET_ADMIN]
nodes:
  r1:
    network: mgmt
    env: {ROLE: node}
    labels: {site: a}
    exec: ["ip addr add 10.0.0.1/30 dev eth1"]
    interfaces: [{network: sw, ifname: eth2}]
  r2:
    network: mgmt
    ip: 172.20.20.12
    command: sleep 1000
    env: {ROLE: edge}
  h1:
    network: null
    env: {ROLE: node}
    binds: ["/etc/hostname:/srv/h:ro"]
    interfaces: [{network: sw, ifname: eth1}]
links:
  - {a: {node: r1, ifname: eth1}, b: {node: r2, ifname: eth1}, mtu: 9000}
"""


def _same(a: LabSpec, b: LabSpec) -> bool:
    return dataclasses.replace(a, path="") == dataclasses.replace(b, path="")


def test_clab_file_maps_to_the_native_lab() -> None:
    notes: list[str] = []
    clab = load_lab("topo.clab.yml", text=CLAB, notify=notes.append)
    assert _same(clab, load_lab("lab.yaml", text=NATIVE))
    assert notes == [
        "topo.clab.yml: image alpine:3 is in no local Docker or Podman store (netlens never"
        " pulls): those nodes run on the host's read-only root"
    ]


def test_detected_by_topology_key_without_the_suffix() -> None:
    assert _same(load_lab("any.yaml", text=CLAB), load_lab("lab.yaml", text=NATIVE))


def test_no_mgmt_network_when_every_node_opts_out() -> None:
    spec = load_lab(
        "t.clab.yml",
        text="name: x\ntopology:\n  defaults: {network-mode: none}\n  nodes:\n    a: {}\n"
        "    b: {}\n  links:\n    - endpoints: [a:eth0, b:eth0]\n",
    )
    assert spec.networks == ()
    assert [(lk.a, lk.a_ifname, lk.b, lk.b_ifname) for lk in spec.links] == [
        ("a", "eth0", "b", "eth0")
    ]


def test_mgmt_subnet_and_gateway() -> None:
    spec = load_lab(
        "t.clab.yml",
        text="name: x\nmgmt: {network: m0, ipv4-subnet: 10.9.0.0/24, ipv4-gw: 10.9.0.254}\n"
        "topology:\n  nodes:\n    a: {mgmt-ipv4: 10.9.0.5}\n",
    )
    assert spec.network("mgmt").subnet == "10.9.0.0/24"
    assert spec.network("mgmt").gateway == "10.9.0.254"
    assert spec.node("a").ip == "10.9.0.5"


def test_name_override() -> None:
    assert load_lab("t.clab.yml", text=CLAB, name="other").name == "other"


UNSUPPORTED = """\
name: u
prefix: ""
topology:
  nodes:
    r1:
      kind: nokia_srlinux
    r2:
      kind: linux
      startup-config: r2.cfg
      ports: ["80:80"]
    r3: {}
"""


def test_unsupported_kinds_and_fields_one_line_each() -> None:
    with pytest.raises(BadInput) as exc:
        load_lab("u.clab.yml", text=UNSUPPORTED)
    assert isinstance(exc.value, BadInputs)
    assert list(exc.value.lines) == [
        "u.clab.yml:2: prefix: field 'prefix' is not supported by netlens",
        "u.clab.yml:6: topology.nodes.r1.kind: kind 'nokia_srlinux' is not supported"
        " (netlens runs linux, bridge)",
        "u.clab.yml:9: topology.nodes.r2.startup-config: field 'startup-config' is not"
        " supported by netlens",
        "u.clab.yml:10: topology.nodes.r2.ports: field 'ports' is not supported by netlens",
    ]


BAD = [
    (
        "name: x\ntopology:\n  nodes:\n    a: {}\n  links:\n    - endpoints: [a:eth1, b:eth1]\n",
        "t.clab.yml:6: topology.links[0]: no node 'b' in this lab",
    ),
    (
        "name: x\ntopology:\n  nodes:\n    a: {}\n    b: {}\n  links:\n    - endpoints: [a:eth1]\n",
        "t.clab.yml:7: topology.links[0].endpoints: a link has two endpoints, got 1",
    ),
    (
        "name: x\ntopology:\n  nodes:\n    a: {}\n    b: {}\n  links:\n"
        "    - endpoints: [a-eth1, b:eth1]\n",
        "t.clab.yml:7: topology.links[0].endpoints[0]: endpoint 'a-eth1': expected NODE:INTERFACE",
    ),
    (
        "name: x\ntopology:\n  nodes:\n    a: {}\n    b: {}\n  links:\n"
        "    - endpoints: [a:eth0, b:eth1]\n",
        "t.clab.yml:7: topology.links[0]: interface 'eth0' is already used by its network 'mgmt'",
    ),
    (
        "name: x\ntopology:\n  nodes:\n    a: {}\n  links:\n"
        "    - endpoints: [a:eth1, host:veth9]\n",
        "t.clab.yml:6: topology.links[0].endpoints[1]: endpoint 'host:veth9':"
        " host endpoints are not supported",
    ),
    (
        "name: x\ntopology:\n  nodes:\n    a: {network-mode: host}\n",
        "t.clab.yml:4: topology.nodes.a.network-mode: network-mode 'host' is not supported"
        " (only 'none')",
    ),
    (
        "name: x\ntopology:\n  nodes:\n    a: {network-mode: none, mgmt-ipv4: 172.20.20.3}\n",
        "t.clab.yml:4: topology.nodes.a.mgmt-ipv4: a node with network-mode none has no"
        " management address",
    ),
    (
        "name: x\ntopology:\n  nodes:\n    a: {binds: ['/etc/hostname:/h:rw']}\n",
        "t.clab.yml:4: topology.nodes.a.binds[0]: bind '/etc/hostname:/h:rw': netlens mounts"
        " binds read-only (drop ':rw')",
    ),
    (
        "name: x\ntopology:\n  nodes:\n    a: {exec: ['']}\n",
        "t.clab.yml:4: topology.nodes.a.exec[0]: the command is empty",
    ),
    (
        "name: x\ntopology:\n  nodes:\n    a: {}\n    s: {kind: bridge, image: x}\n",
        "t.clab.yml:5: topology.nodes.s.image: field 'image' does not apply to a bridge",
    ),
    (
        "name: x\ntopology:\n  nodes:\n    s: {kind: bridge}\n",
        "t.clab.yml:4: topology.nodes: a lab needs at least one linux node",
    ),
    (
        "name: x\ntopology:\n  nodes:\n    a: {mgmt-ipv4: 10.1.1.1}\n",
        "t.clab.yml:4: topology.nodes.a.mgmt-ipv4: node 'a': address 10.1.1.1 is not a host"
        " address of 172.20.20.0/24",
    ),
    (
        "topology:\n  nodes:\n    a: {}\n",
        "t.clab.yml:1: missing field 'name' (the lab's name)",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_clab_files(text: str, message: str) -> None:
    with pytest.raises(BadInput) as exc:
        load_lab("t.clab.yml", text=text)
    assert str(exc.value) == message


def test_a_bad_default_kind_is_one_line_not_one_per_node() -> None:
    with pytest.raises(BadInputs) as exc:
        load_lab("t.clab.yml", text="name: x\ntopology:\n  defaults: {kind: srl}\n  nodes:\n"
                 "    a: {}\n    b: {}\n")  # fmt: skip
    assert list(exc.value.lines) == [
        "t.clab.yml:3: topology.defaults.kind: kind 'srl' is not supported"
        " (netlens runs linux, bridge)"
    ]


def test_runtime_names_too_long() -> None:
    with pytest.raises(BadInput) as exc:
        load_lab("t.clab.yml", text="name: " + "l" * 40 + "\ntopology:\n  nodes:\n"
                 "    " + "n" * 40 + ": {}\n")  # fmt: skip
    assert "longer than" in str(exc.value) and str(exc.value).startswith("t.clab.yml:4: ")


def test_node_field_in_defaults() -> None:
    with pytest.raises(BadInputs) as exc:
        load_lab("t.clab.yml", text="name: a\ntopology:\n  kinds: {linux: {mgmt-ipv4: 1.2.3.4}}\n"
                 "  nodes: {r1: {}}\n")  # fmt: skip
    assert list(exc.value.lines) == [
        "t.clab.yml:3: topology.kinds.linux.mgmt-ipv4: field 'mgmt-ipv4' is set per node, not here"
    ]


def test_scale_refused() -> None:
    with pytest.raises(BadInput, match="no 'count' groups"):
        load_lab("t.clab.yml", text=CLAB, scale=10)


@pytest.mark.parametrize("kind", ["socket", "FIFO"])
def test_a_bind_of_a_socket_or_fifo_is_refused(tmp_path: Path, kind: str) -> None:
    """A read-only bind does not stop connect() or a FIFO write: a lab file binding
    /var/run/docker.sock would hand its node the host (the node connected to a
    root-only socket in a hand test). Refused at load, with file:line."""
    import socket

    path = tmp_path / "s"
    if kind == "socket":
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(path))
    else:
        os.mkfifo(path)
    try:
        with pytest.raises(BadInput) as exc:
            load_lab(
                "t.clab.yml",
                text=f"name: x\ntopology:\n  nodes:\n    a: {{binds: ['{path}:/s']}}\n",
            )
    finally:
        if kind == "socket":
            listener.close()
    assert str(exc.value).startswith(f"t.clab.yml:4: topology.nodes.a.binds[0]: bind '{path}:/s': ")
    assert f"is a {kind}" in str(exc.value)


def _bind_error(host: str) -> str:
    with pytest.raises(BadInput) as exc:
        load_lab(
            "t.clab.yml", text=f"name: x\ntopology:\n  nodes:\n    a: {{binds: ['{host}:/h']}}\n"
        )
    assert str(exc.value).startswith(f"t.clab.yml:4: topology.nodes.a.binds[0]: bind '{host}:/h': ")
    return str(exc.value)


@pytest.mark.parametrize("host", ["/proc", "/proc/sys", "/"])
def test_a_bind_showing_the_hosts_proc_is_refused(host: str) -> None:
    """A read-only bind of the host's procfs (or of / with it below: binds are
    recursive) still hands over /proc/PID/root of every process with no more
    capabilities than the node: a hand test wrote into another container's /tmp."""
    assert "its /proc/PID/root links lead past a read-only mount" in _bind_error(host)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a mount namespace)")
def test_a_bind_through_another_mount_namespace_is_refused(tmp_path: Path) -> None:
    """``/proc/PID/root/x`` (or a link to it) names another mount namespace's x
    while its text, resolved here, names ours: refused, directly or through a link."""
    import subprocess

    proc = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         f"mount -t tmpfs nl-test {tmp_path} && echo ready && exec sleep 600"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        theirs = f"/proc/{proc.pid}/root{tmp_path}"
        assert "leads somewhere else" in _bind_error(theirs)
        link = tmp_path / "link"  # in our namespace, tmp_path is still the plain directory
        link.symlink_to(theirs)
        assert "leads somewhere else" in _bind_error(str(link))
    finally:
        proc.kill()
        proc.wait()
