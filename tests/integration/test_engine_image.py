"""A containerlab node on a real multi-layer image from Podman's and Docker's stores.

No registry, no network: the base image is ``import`` of a busybox-static
rootfs, and a build that cannot pull (``podman build --pull=never
--network=none``; Docker 20.10's classic builder with ``--network none`` and a
local ``FROM``) adds three layers on top of it (a COPY, a RUN that deletes a
file of the base: a whiteout, another COPY). Docker's store is found through
chain ids computed by Docker itself, so netlens's computation is checked
against the real thing, not against the fake store of the unit tests.
``lab up`` of a containerlab file naming that image runs the node on a
read-only overlay of the four layers, straight from the store: the node sees a
file of every layer and not the deleted one, cannot write its root, and after
``lab down`` the host holds no mount of it. Teardown removes both images and
whatever the engine created on the host (engine_host.HostState; dockerd is
started and stopped as tests/integration/test_engine_docker.py does).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RUN_TAG, sh
from engine_host import HostState, require

from netlens_runtime import api, lab_image
from netlens_runtime.lab_spec import load_lab

pytestmark = [pytest.mark.engine, pytest.mark.integration]

PODMAN = "/usr/bin/podman"
BUSYBOX = "/bin/busybox"
BASE = f"localhost/nl{RUN_TAG}base:1"
IMAGE = f"localhost/nl{RUN_TAG}ml:1"
DOCKER_BASE = f"nl{RUN_TAG}base:1"
DOCKER_IMAGE = f"nl{RUN_TAG}ml:1"
STATE_PATHS = ("/var/lib/containers", "/run/containers", "/run/libpod")
CONF = """[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
BUILD = """FROM {base}
COPY layer1 /etc/layer1
RUN rm /etc/gone
COPY layer2 /etc/layer2
"""
APPLETS = ("sh", "sleep", "cat", "rm", "touch", "test", "ls")


def _context(tmp_path: Path, base: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "layer1").write_text("one\n")
    (ctx / "layer2").write_text("two\n")
    (ctx / "Dockerfile").write_text(BUILD.format(base=base))
    return ctx


def _base_tar(dest: Path) -> Path:
    """busybox-static and its applets, the mount points a root needs, /etc/gone."""
    with tarfile.open(dest, "w") as tar:
        for sub in ("proc", "sys", "dev", "tmp", "etc", "bin"):
            info = tarfile.TarInfo(sub)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        gone = dest.parent / "gone"
        gone.write_text("deleted by a RUN layer\n")
        tar.add(gone, arcname="etc/gone")
    return dest


@pytest.fixture
def podman_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A four-layer image in Podman's store, built offline; removed afterwards."""
    require(
        "rootful podman",
        ((PODMAN, "podman"), ("/usr/sbin/runc", "runc"), (BUSYBOX, "busybox-static")),
    )
    conf = tmp_path / "containers.conf"
    conf.write_text(CONF)
    monkeypatch.setenv("CONTAINERS_CONF", str(conf))
    # Only Podman's store: whatever Docker holds on this host is not this test's.
    monkeypatch.setattr(lab_image, "DOCKER_ROOT", str(tmp_path / "no-docker"))
    before = HostState.capture(STATE_PATHS, cgroup_names=("libpod_parent",))
    ctx = _context(tmp_path, BASE)
    try:
        try:
            sh(f"{PODMAN} import {_base_tar(tmp_path / 'base.tar')} {BASE}")
            sh(
                f"{PODMAN} build --pull=never --network=none --layers -q -t {IMAGE}"
                f" -f {ctx / 'Dockerfile'} {ctx}"
            )
        except RuntimeError as err:  # the engine's problem on this machine, not netlens's
            pytest.skip(f"podman could not build an image here: {err}")
        yield IMAGE
    finally:
        sh(f"{PODMAN} rmi -f {IMAGE} {BASE}", check=False)
        before.restore(marks=("NETAVARK",), chain_prefix="NETAVARK")


def _host_overlays() -> list[str]:
    """Overlay mounts of the host whose lowerdirs are fd paths (netlens's naming)."""
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [ln for ln in lines if " - overlay " in ln and "/proc/self/fd/" in ln]


@pytest.fixture
def docker_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The same four-layer image in Docker's store (dockerd started if none runs)."""
    from test_engine_docker import DOCKER, DOCKERD, DockerEngine

    require(
        "starts dockerd",
        ((DOCKERD, "docker.io"), (DOCKER, "docker.io"), (BUSYBOX, "busybox-static")),
    )
    monkeypatch.setattr(lab_image, "PODMAN_ROOT", str(tmp_path / "no-podman"))
    engine = DockerEngine(tmp_path)
    try:
        try:
            engine.start()
        except RuntimeError as err:
            pytest.skip(f"could not start dockerd here: {err}")
        ctx = _context(tmp_path, DOCKER_BASE)
        try:
            sh(f"{DOCKER} import {_base_tar(tmp_path / 'base.tar')} {DOCKER_BASE}")
            sh(f"DOCKER_BUILDKIT=0 {DOCKER} build -q --network none -t {DOCKER_IMAGE} {ctx}")
        except RuntimeError as err:  # the engine's problem on this machine, not netlens's
            pytest.skip(f"dockerd runs but could not build an image here: {err}")
        yield DOCKER_IMAGE
    finally:
        sh(f"{DOCKER} rmi -f {DOCKER_IMAGE} {DOCKER_BASE}", check=False)
        engine.close()


def test_clab_node_on_a_podman_image_of_four_layers(
    podman_image: str, labstate: Path, tmp_path: Path
) -> None:
    _check_layered_node(podman_image, lab_image.PODMAN_ROOT, "overlay", tmp_path)


def test_clab_node_on_a_docker_image_of_four_layers(
    docker_image: str, labstate: Path, tmp_path: Path
) -> None:
    _check_layered_node(docker_image, lab_image.DOCKER_ROOT, "overlay2", tmp_path)


def _check_layered_node(image: str, store_root: str, layer_dir: str, tmp_path: Path) -> None:
    from netlens_runtime import lab_ops

    layers, why = lab_image.resolve(image)
    assert why == "" and layers is not None and len(layers) == 4
    store = os.path.realpath(store_root)
    assert all(p.startswith(f"{store}/{layer_dir}/") and p.endswith("/diff") for p in layers)
    path = tmp_path / "ml.clab.yml"
    path.write_text(
        f"name: x\ntopology:\n  nodes:\n    a:\n      image: {image}\n"
        "      network-mode: none\n      exec:\n        - cat /etc/layer1 /etc/layer2\n"
        "        - sh -c '! test -e /etc/gone'\n"
        "        - sh -c '! touch /etc/written && ! touch /written'\n"
    )
    notes: list[str] = []
    spec = load_lab(str(path), name=f"ei{RUN_TAG}", notify=notes.append)
    assert notes == [] and spec.node("a").layers == tuple(layers)
    assert spec.node("a").rootfs is None
    host_before = _host_overlays()
    lab_ops.lab_up(spec)
    try:
        (pid,) = [int(c["pid"]) for c in api.list_containers()]
        root = Path(f"/proc/{pid}/root")
        assert (root / "etc" / "layer1").read_text() == "one\n"
        assert (root / "etc" / "layer2").read_text() == "two\n"
        assert (root / "bin" / "busybox").is_file()
        assert not (root / "etc" / "gone").exists()
        own = next(
            ln.split()
            for ln in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
            if ln.split()[4] == "/"
        )
        assert own[own.index("-") + 1] == "overlay" and "ro" in own[5].split(",")
        assert _host_overlays() == host_before
    finally:
        assert lab_ops.lab_down(spec.name) == []
    assert _host_overlays() == host_before
    assert not any(os.path.lexists(os.path.join(p, "etc", "written")) for p in layers)
    # The base layer still holds the file the RUN layer deleted; the engine wrote a
    # whiteout (a 0/0 character device) in the layer above, and overlayfs hid it.
    kinds = []
    for layer in layers:
        with contextlib.suppress(FileNotFoundError):
            st = os.lstat(os.path.join(layer, "etc", "gone"))
            kinds.append("whiteout" if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 else "file")
    assert kinds == ["whiteout", "file"]
