"""``lab up`` of containerlab topology files on real namespaces, and ``lab down``.

Each test uses its own state directory (the ``labstate`` fixture removes whatever
it lists and fails the test if anything is left), lab names carrying the run tag
and subnets in 10.OCTET.x, moved by the run tag. What the lab built is read back
with iproute2 inside each node's namespace, not from netlens' own records.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import RUN_TAG
from runtime_host import kernel_changes, kernel_state

from netlens_runtime import api
from netlens_runtime.errors import RuntimeFailure
from netlens_runtime.lab_impair import ImpairSpec
from netlens_runtime.lab_model import LabSpec
from netlens_runtime.lab_spec import load_lab

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _image_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private Docker store (empty unless a test fills it): not the host's images."""
    from netlens_runtime import lab_image

    monkeypatch.setattr(lab_image, "DOCKER_ROOT", str(tmp_path / "docker"))
    monkeypatch.setattr(lab_image, "PODMAN_ROOT", str(tmp_path / "no-podman"))
    return tmp_path / "docker"


OCTET = 100 + (int(RUN_TAG, 16) + 37) % 100

TOPO = f"""\
name: clab
mgmt:
  ipv4-subnet: 10.{OCTET}.50.0/24
topology:
  defaults:
    kind: linux
    image: alpine:3
  nodes:
    r1:
      mgmt-ipv4: 10.{OCTET}.50.11
      exec:
        - ip addr add 10.{OCTET}.60.1/30 dev eth1
        - ip addr add 10.{OCTET}.61.1/24 dev eth2
    r2:
      mgmt-ipv4: 10.{OCTET}.50.12
      env: {{ROLE: r2}}
      exec:
        - ip addr add 10.{OCTET}.60.2/30 dev eth1
    h1:
      network-mode: none
      exec:
        - ip addr add 10.{OCTET}.61.2/24 dev eth1
    sw:
      kind: bridge
  links:
    - endpoints: ["r1:eth1", "r2:eth1"]
      mtu: 1400
    - endpoints: ["r1:eth2", "sw:r1p"]
    - endpoints: ["h1:eth1", "sw:h1p"]
"""


def _ip(pid: int, *args: str) -> Any:
    res = subprocess.run(
        ["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-j", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(res.stdout)


def _addrs(pid: int) -> dict[str, tuple[str, list[str], int]]:
    """ifname -> (operstate, IPv4 addresses with prefix, mtu) as iproute2 reports them."""
    return {
        i["ifname"]: (
            i["operstate"],
            [f"{a['local']}/{a['prefixlen']}" for a in i["addr_info"] if a["family"] == "inet"],
            i["mtu"],
        )
        for i in _ip(pid, "addr", "show")
    }


def _ping(pid: int, ip: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", f"--net=/proc/{pid}/ns/net", "ping", "-c", "1", "-W", "3", ip],
        capture_output=True,
        text=True,
    )


def test_clab_topology_up_and_down(labstate: Path, tmp_path: Path) -> None:
    from netlens_runtime import lab_ops, lab_record

    path = tmp_path / "topo.clab.yml"
    path.write_text(TOPO)
    notes: list[str] = []
    spec = load_lab(str(path), name=f"cl{RUN_TAG}a", notify=notes.append)
    assert len(notes) == 1 and "alpine:3" in notes[0]
    before = kernel_state(labstate)
    lab_ops.lab_up(spec)
    try:
        pids = {
            c["labels"]["netlens.lab.node"]: int(c["pid"])
            for c in api.list_containers()
            if c["labels"].get("netlens.lab") == spec.name
        }
        assert set(pids) == {"r1", "r2", "h1"}
        r1, r2, h1 = _addrs(pids["r1"]), _addrs(pids["r2"]), _addrs(pids["h1"])
        assert r1["eth0"][1] == [f"10.{OCTET}.50.11/24"]
        assert r2["eth0"][1] == [f"10.{OCTET}.50.12/24"]
        assert "eth0" not in h1  # network-mode: none
        assert r1["eth1"][1:] == ([f"10.{OCTET}.60.1/30"], 1400)
        assert r2["eth1"][1:] == ([f"10.{OCTET}.60.2/30"], 1400)
        assert r1["eth2"][1] == [f"10.{OCTET}.61.1/24"]
        assert h1["eth1"][1] == [f"10.{OCTET}.61.2/24"]
        # the p2p veth is a pair between r1 and r2, the bridge legs reach each other
        ping = _ping(pids["r1"], f"10.{OCTET}.60.2")
        assert ping.returncode == 0, ping.stdout + ping.stderr
        ping = _ping(pids["h1"], f"10.{OCTET}.61.1")
        assert ping.returncode == 0, ping.stdout + ping.stderr
        # the bridge 'sw' is a host bridge holding both legs
        sw = lab_record.network_name(spec.name, "sw")
        bridge = next(str(n["bridge"]) for n in api.list_networks() if n["name"] == sw)
        ports = subprocess.run(
            ["ip", "-j", "link", "show", "master", bridge], capture_output=True, text=True
        )
        assert len(json.loads(ports.stdout)) == 2
        assert before.names.isdisjoint({bridge})
        # lab save / lab export write what runs; both read back to this lab
        saved, exported = tmp_path / "saved.yaml", tmp_path / "exp.clab.yml"
        res = _cli("link", "set", f"{spec.name}:r2:eth0", "--rate", "10mbit")
        assert res.returncode == 0, res.stderr
        for argv in (
            ["lab", "save", spec.name, str(saved)],
            ["lab", "export", spec.name, "--format", "clab", "-o", str(exported)],
        ):
            res = _cli(*argv)
            assert res.returncode == 0, res.stderr
        live = dataclasses.replace(spec.node("r2"), impair=ImpairSpec({"rate": 10_000_000}, "both"))
        want = dataclasses.replace(
            spec, nodes=tuple(live if n.name == "r2" else n for n in spec.nodes)
        )
        assert _same(load_lab(str(saved)), want)
        assert _same(load_lab(str(exported)), spec)  # containerlab has no impairments
        assert _cli("lab", "save", spec.name, str(saved)).returncode != 0  # no overwrite
        path.write_text(TOPO.replace(f"10.{OCTET}.50.12", f"10.{OCTET}.50.13"))
        res = _cli("lab", "save", spec.name, str(tmp_path / "x.yaml"))
        assert res.returncode == 1
        assert res.stderr == (
            f"netlens: lab '{spec.name}': {path} has changed since 'lab up' (other networks,"
            " nodes or addresses); save refuses to write what does not run\n"
        )
        assert not (tmp_path / "x.yaml").exists()
    finally:
        errors = lab_ops.lab_down(spec.name)
    assert errors == []
    assert api.list_containers() == [] and api.list_networks() == []
    # the saved native file builds the same lab again
    again = load_lab(str(saved), name=f"cl{RUN_TAG}c")
    lab_ops.lab_up(again)
    try:
        pids = {c["labels"]["netlens.lab.node"]: int(c["pid"]) for c in api.list_containers()}
        assert _addrs(pids["r1"])["eth1"][1:] == ([f"10.{OCTET}.60.1/30"], 1400)
        assert _addrs(pids["r2"])["eth0"][1] == [f"10.{OCTET}.50.12/24"]
    finally:
        assert lab_ops.lab_down(again.name) == []


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netlens", *argv],
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )


def _same(a: LabSpec, b: LabSpec) -> bool:
    return dataclasses.replace(a, path="") == dataclasses.replace(b, path="")


def test_node_runs_on_its_image_from_the_local_store(
    labstate: Path, tmp_path: Path, _image_store: Path
) -> None:
    """A single-layer image in the Docker store is the node's root, read-only: ``exec``
    runs the image's own busybox, sees its files and cannot write them."""
    from image_store import docker_store

    from netlens_runtime import lab_ops

    diff = docker_store(_image_store, "lab/bb:1", "lab/bb", busybox=True)
    path = tmp_path / "img.clab.yml"
    path.write_text(
        "name: x\ntopology:\n  nodes:\n    a:\n      image: lab/bb:1\n"
        "      network-mode: none\n      exec:\n        - cat /etc/image-marker\n"
        "        - sh -c '! touch /etc/written'\n"
    )
    notes: list[str] = []
    spec = load_lab(str(path), name=f"cl{RUN_TAG}i", notify=notes.append)
    assert notes == [] and spec.node("a").rootfs == str(diff)
    lab_ops.lab_up(spec)
    try:
        (pid,) = [int(c["pid"]) for c in api.list_containers()]
        assert Path(f"/proc/{pid}/root/etc/image-marker").read_text() == "from the store\n"
        assert Path(f"/proc/{pid}/root/bin/busybox").samefile(diff / "bin" / "busybox")
    finally:
        assert lab_ops.lab_down(spec.name) == []
    assert not (diff / "etc" / "written").exists()


def _overlay_lines(mountinfo: str) -> list[str]:
    """The mountinfo lines of overlays named the way netlens names layers (fd paths)."""
    return [ln for ln in mountinfo.splitlines() if " - overlay " in ln and "/proc/self/fd/" in ln]


def test_node_runs_on_a_layered_image_read_only(
    labstate: Path, tmp_path: Path, _image_store: Path
) -> None:
    """Three layers in the Docker store's layout: the node sees the union (a file of
    each layer, the top one's version of a file two layers have), not a file a
    whiteout deleted, not what an opaque directory hides; its root is a read-only
    overlay in its own mount namespace; the host never sees that mount, and the
    store is unchanged after ``lab down``."""
    from image_store import docker_layers

    from netlens_runtime import lab_ops

    bottom, mid, top = docker_layers(_image_store, "lab/ml:1", "lab/ml", layers=3, busybox=True)
    (bottom / "etc" / "gone").write_text("deleted above\n")
    (bottom / "opt" / "d").mkdir(parents=True)
    (bottom / "opt" / "d" / "old").write_text("hidden\n")
    (mid / "etc").mkdir()
    (mid / "etc" / "layer1").write_text("one\n")
    os.mknod(mid / "etc" / "gone", 0o600 | stat.S_IFCHR, os.makedev(0, 0))  # whiteout
    (top / "etc").mkdir()
    (top / "etc" / "layer2").write_text("two\n")
    (top / "etc" / "image-marker").write_text("from layer 2\n")
    (top / "opt" / "d").mkdir(parents=True)
    os.setxattr(top / "opt" / "d", "trusted.overlay.opaque", b"y")
    (top / "opt" / "d" / "new").write_text("new\n")
    store_before = sorted(str(p) for p in _image_store.rglob("*"))
    path = tmp_path / "ml.clab.yml"
    path.write_text(
        "name: x\ntopology:\n  nodes:\n    a:\n      image: lab/ml:1\n"
        "      network-mode: none\n      exec:\n        - cat /etc/layer1 /etc/layer2\n"
        "        - sh -c '! test -e /etc/gone'\n"
        "        - sh -c '! touch /etc/written && ! touch /written'\n"
    )
    notes: list[str] = []
    spec = load_lab(str(path), name=f"cl{RUN_TAG}m", notify=notes.append)
    assert notes == [] and spec.node("a").layers == (str(top), str(mid), str(bottom))
    host_before = _overlay_lines(Path("/proc/self/mountinfo").read_text())
    lab_ops.lab_up(spec)
    try:
        (pid,) = [int(c["pid"]) for c in api.list_containers()]
        root = Path(f"/proc/{pid}/root")
        assert (root / "etc" / "layer1").read_text() == "one\n"
        assert (root / "etc" / "layer2").read_text() == "two\n"
        assert (root / "etc" / "image-marker").read_text() == "from layer 2\n"
        assert (root / "bin" / "busybox").stat().st_size == Path("/usr/bin/busybox").stat().st_size
        assert not (root / "etc" / "gone").exists()
        assert sorted(os.listdir(root / "opt" / "d")) == ["new"]
        mounts = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
        (own,) = [ln for ln in mounts if ln.split()[4] == "/"]
        fields = own.split()
        assert fields[fields.index("-") + 1] == "overlay"
        assert "ro" in fields[5].split(",")
        assert _overlay_lines(Path("/proc/self/mountinfo").read_text()) == host_before
        out = subprocess.run(
            [sys.executable, "-m", "netlens", "ps", "--format", "json"],
            capture_output=True, text=True, check=True, env=dict(os.environ),
        )  # fmt: skip
        (row,) = json.loads(out.stdout)
        assert row["view"] == "rootfs" and row["rootfs"] == f"{top}:{mid}:{bottom}"
        # restarted (lab restart), the node is on the same layers again, not the host's
        from netlens_runtime import lab_lifecycle

        lab_lifecycle.restart_nodes(spec.name, ["a"], timeout=2.0)
        (again,) = [int(c["pid"]) for c in api.list_containers()]
        assert again != pid
        root = Path(f"/proc/{again}/root")
        assert (root / "etc" / "layer2").read_text() == "two\n"
        assert not (root / "etc" / "gone").exists()
        mounts = Path(f"/proc/{again}/mountinfo").read_text().splitlines()
        (own,) = [ln for ln in mounts if ln.split()[4] == "/"]
        assert own.split()[own.split().index("-") + 1] == "overlay"
        assert _overlay_lines(Path("/proc/self/mountinfo").read_text()) == host_before
    finally:
        assert lab_ops.lab_down(spec.name) == []
    assert _overlay_lines(Path("/proc/self/mountinfo").read_text()) == host_before
    assert sorted(str(p) for p in _image_store.rglob("*")) == store_before
    assert (bottom / "etc" / "gone").read_text() == "deleted above\n"


def test_most_layers_in_a_batch_with_default_view_nodes(
    labstate: Path, tmp_path: Path, _image_store: Path
) -> None:
    """An image of the most layers mounted (128: the option names each as a short fd
    path, well inside the page the kernel takes), built in one batch with two nodes
    on the default view (those clone from the batch's template, it does not)."""
    from image_store import docker_layers

    from netlens_runtime import lab_ops, overlay

    n = overlay.MAX_LAYERS
    diffs = docker_layers(_image_store, "lab/deep:1", "lab/deep", layers=n, busybox=True)
    for i, diff in enumerate(diffs[1:], 1):
        (diff / f"layer{i}").write_text(f"{i}\n")
    path = tmp_path / "deep.clab.yml"
    path.write_text(
        "name: x\ntopology:\n  nodes:\n    a: {image: 'lab/deep:1', network-mode: none}\n"
        "    b: {network-mode: none}\n    c: {network-mode: none}\n"
    )
    spec = load_lab(str(path), name=f"cl{RUN_TAG}d")
    assert len(spec.node("a").layers) == n
    lab_ops.lab_up(spec)
    try:
        pids = {c["name"].rsplit("-", 1)[-1]: int(c["pid"]) for c in api.list_containers()}
        root = Path(f"/proc/{pids['a']}/root")
        want = sorted(f"layer{i}" for i in range(1, n))
        assert sorted(p.name for p in root.glob("layer*")) == want
        assert (root / f"layer{n - 1}").read_text() == f"{n - 1}\n"
        for node in ("b", "c"):  # the default view: the host's tools, not the image
            assert Path(f"/proc/{pids[node]}/root/usr/bin").is_dir()
            assert not Path(f"/proc/{pids[node]}/root/layer1").exists()
    finally:
        assert lab_ops.lab_down(spec.name) == []


def test_run_image_uses_the_store_and_refuses_what_it_lacks(
    labstate: Path, _image_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``netlens run --image REF``: a layered image is the container's overlay root;
    an image no store holds, or --image with --rootfs, is one line and nothing made."""
    from image_store import docker_layers

    from netlens.cli import main

    bottom, top = docker_layers(_image_store, "lab/ml:1", "lab/ml", layers=2, busybox=True)
    (top / "etc").mkdir()
    (top / "etc" / "top").write_text("top\n")
    name = f"cl{RUN_TAG}r"
    argv = ["run", "-d", "--name", name, "--network", "none"]
    assert main([*argv, "--image", "lab/ml:1", "--", "sleep", "infinity"]) == 0
    try:
        (rec,) = api.list_containers()
        root = Path(f"/proc/{rec['pid']}/root")
        assert (root / "etc" / "top").read_text() == "top\n"
        assert (root / "etc" / "image-marker").read_text() == "from the store\n"
        assert rec["layers"] == [str(top), str(bottom)] and rec["rootfs"] is None
    finally:
        assert main(["rm", "-f", name]) == 0
    capsys.readouterr()
    assert main([*argv, "--image", "nope:1", "--", "true"]) != 0
    assert main([*argv, "--image", "lab/ml:1", "--rootfs", str(bottom), "--", "true"]) != 0
    assert main([*argv, "--image", "lab/ml:1", "--host-view", "full", "--", "true"]) != 0
    assert capsys.readouterr().err.splitlines() == [
        "netlens: image nope:1 is in no local Docker or Podman store (netlens never pulls)",
        "netlens: --image and --rootfs exclude each other",
        "netlens: --host-view and --image exclude each other: the root is the image",
    ]
    shutil.rmtree(top)
    top.symlink_to(bottom)  # a layer leading out of its place in the store
    assert main([*argv, "--image", "lab/ml:1", "--", "true"]) != 0
    assert capsys.readouterr().err.splitlines() == [
        f"netlens: image lab/ml:1: the Docker store at {_image_store} is damaged: {top} is a"
        " symbolic link (or passes through one)"
    ]
    assert api.list_containers() == []


def test_lab_up_on_a_damaged_store_is_one_line_and_builds_nothing(
    labstate: Path, tmp_path: Path, _image_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A layer id that is not an id (a path in disguise): ``lab up`` says so in one
    line naming the file, the line and the store, and nothing is built."""
    from image_store import docker_layers

    from netlens.cli import main

    docker_layers(_image_store, "lab/ml:1", "lab/ml", layers=2, busybox=True)
    cache_id = sorted(_image_store.glob("image/overlay2/layerdb/sha256/*/cache-id"))[0]
    cache_id.write_text("../../../../etc")
    path = tmp_path / "bad.clab.yml"
    path.write_text("name: x\ntopology:\n  nodes:\n    a:\n      image: lab/ml:1\n")
    before = kernel_state(labstate)
    capsys.readouterr()
    assert main(["lab", "up", str(path), "--name", f"cl{RUN_TAG}x"]) != 0
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(
        f"netlens: {path.name}:5: topology.nodes.a.image: image lab/ml:1: the Docker store at"
        f" {_image_store} is damaged: layer "
    )
    assert line.endswith("'s cache-id '../../../../etc' is not an id (64 hex digits)")
    assert api.list_containers() == []
    assert kernel_changes(before, kernel_state(labstate)) == []


def test_failing_exec_rolls_back(labstate: Path, tmp_path: Path) -> None:
    from netlens_runtime import lab_ops

    path = tmp_path / "bad.clab.yml"
    path.write_text(
        "name: x\ntopology:\n  nodes:\n    a: {network-mode: none, exec: ['true', 'false']}\n"
    )
    spec = load_lab(str(path), name=f"cl{RUN_TAG}b")
    with pytest.raises(RuntimeFailure, match="node 'a': exec 'false' exited with 1"):
        lab_ops.lab_up(spec)
    assert api.list_containers() == []
    assert not (labstate / "labs" / f"{spec.name}.json").exists()


def test_execs_run_in_order_per_node_and_nodes_side_by_side(labstate: Path, tmp_path: Path) -> None:
    """A node's commands in order (the second needs the first's change); ten nodes'
    commands side by side; the first failure in the file's order is named, and the
    lab is rolled back after the commands still running have finished."""
    from netlens_runtime import lab_ops

    ok = "".join(
        f"    n{i}: {{network-mode: none, exec: ['ip link set lo mtu {1400 + i}',"
        f" \"sh -c 'test $(cat /sys/class/net/lo/mtu) = {1400 + i}'\"]}}\n"
        for i in range(10)
    )
    path = tmp_path / "many.clab.yml"
    path.write_text("name: x\ntopology:\n  nodes:\n" + ok)
    spec = load_lab(str(path), name=f"cl{RUN_TAG}e")
    lab_ops.lab_up(spec)
    try:
        mtus = sorted(
            _ip(int(c["pid"]), "link", "show", "lo")[0]["mtu"] for c in api.list_containers()
        )
        assert mtus == [1400 + i for i in range(10)]
    finally:
        assert lab_ops.lab_down(spec.name) == []
    bad = ok.replace(
        "exec: ['ip link set lo mtu 1403'", "exec: ['false', 'ip link set lo mtu 1403'"
    )
    bad = bad.replace("exec: ['ip link set lo mtu 1407'", "exec: ['sh -c \"exit 3\"'")
    path.write_text("name: x\ntopology:\n  nodes:\n" + bad)
    spec = load_lab(str(path), name=f"cl{RUN_TAG}e")
    with pytest.raises(RuntimeFailure, match=r"^node 'n3': exec 'false' exited with 1$"):
        lab_ops.lab_up(spec)
    assert api.list_containers() == []
    assert not (labstate / "labs" / f"{spec.name}.json").exists()


def test_refused_file_builds_nothing(labstate: Path, tmp_path: Path) -> None:
    path = tmp_path / "u.clab.yml"
    path.write_text(
        "name: u\ntopology:\n  nodes:\n    a: {}\n    b: {kind: ceos}\n    c: {ports: [80]}\n"
    )
    before = kernel_state(labstate)
    res = subprocess.run(
        [sys.executable, "-m", "netlens", "lab", "up", str(path)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    assert res.returncode != 0
    assert res.stderr.splitlines() == [
        "netlens: u.clab.yml:5: topology.nodes.b.kind: kind 'ceos' is not supported"
        " (netlens runs linux, bridge)",
        "netlens: u.clab.yml:6: topology.nodes.c.ports: field 'ports' is not supported by netlens",
    ]
    assert "Traceback" not in res.stderr
    assert not (labstate / "labs").exists() or not os.listdir(labstate / "labs")
    assert kernel_state(labstate).names == before.names


def test_a_device_node_in_an_image_does_not_open(
    labstate: Path, tmp_path: Path, _image_store: Path
) -> None:
    """An image layer may hold device nodes (``docker load`` of a crafted tar makes
    them as root). The image is the node's read-only root, but read-only does not
    stop a write to a device: the node wrote the host's disk through ``/disk``.
    The image root is mounted nodev (its /dev is the runtime's own, mounted after)."""
    from image_store import docker_store

    from netlens_runtime import lab_ops

    backing = tmp_path / "disk.img"
    backing.write_bytes(bytes(1 << 20))
    made = subprocess.run(
        ["losetup", "-f", "--show", str(backing)], capture_output=True, text=True, check=False
    )
    if made.returncode != 0:
        pytest.skip(f"no loop device here: {made.stderr.strip()}")
    loop = made.stdout.strip()
    try:
        diff = docker_store(_image_store, "lab/dev:1", "lab/dev", busybox=True)
        os.mknod(diff / "disk", 0o600 | stat.S_IFBLK, os.stat(loop).st_rdev)
        path = tmp_path / "dev.clab.yml"
        path.write_text(
            "name: x\ntopology:\n  nodes:\n    a:\n      image: lab/dev:1\n"
            "      network-mode: none\n      exec:\n"
            "        - sh -c '! echo written > /disk'\n"
            "        - sh -c 'echo x > /dev/null'\n"  # the runtime's own /dev still works
        )
        spec = load_lab(str(path), name=f"cl{RUN_TAG}d")
        lab_ops.lab_up(spec)  # an exec that fails rolls the lab back and raises
        assert lab_ops.lab_down(spec.name) == []
    finally:
        subprocess.run(["losetup", "-d", loop], check=False)
    assert backing.read_bytes() == bytes(1 << 20)
