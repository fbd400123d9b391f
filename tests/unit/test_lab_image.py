"""A containerlab node's ``image`` looked up in local Docker and Podman stores
(netlens_runtime.lab_image), on fake stores written in the stores' layout."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from pathlib import Path

import pytest
from image_store import (
    chain_ids,
    docker_layers,
    docker_store,
    make_rootfs,
    podman_layers,
    podman_store,
)

from netlens_runtime import lab_image
from netlens_runtime.errors import BadInput
from netlens_runtime.lab_spec import load_lab

pytestmark = pytest.mark.unit


@pytest.fixture
def stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    docker, podman = tmp_path / "docker", tmp_path / "podman"
    monkeypatch.setattr(lab_image, "DOCKER_ROOT", str(docker))
    monkeypatch.setattr(lab_image, "PODMAN_ROOT", str(podman))
    return docker, podman


@pytest.mark.parametrize(
    ("ref", "want"),
    [
        ("alpine", ("docker.io/library/alpine", "latest")),
        ("alpine:3", ("docker.io/library/alpine", "3")),
        ("docker.io/alpine:3", ("docker.io/library/alpine", "3")),
        ("frr/frr:9", ("docker.io/frr/frr", "9")),
        ("ghcr.io/x/y:1.2", ("ghcr.io/x/y", "1.2")),
        ("localhost:5000/lab", ("localhost:5000/lab", "latest")),
        ("alpine@sha256:ab", ("docker.io/library/alpine", "@sha256:ab")),
    ],
)
def test_normalize(ref: str, want: tuple[str, str]) -> None:
    assert lab_image.normalize(ref) == want


def test_docker_single_layer(stores: tuple[Path, Path]) -> None:
    diff = docker_store(stores[0], "alpine:3", "alpine")
    assert lab_image.resolve("docker.io/library/alpine:3") == ([str(diff)], "")
    assert lab_image.resolve("alpine:3.19")[0] is None


def test_docker_layers_follow_the_chain_ids_topmost_first(stores: tuple[Path, Path]) -> None:
    """Each layer is found through its chain id (not its diff id): a store whose
    cache-ids sat under the diff ids would find nothing above the first layer."""
    diffs = docker_layers(stores[0], "nginx:1", "nginx", layers=3)
    assert lab_image.resolve("nginx:1") == ([str(d) for d in diffs[::-1]], "")


def test_docker_layer_under_its_diff_id_is_not_found(stores: tuple[Path, Path]) -> None:
    diffs = docker_layers(stores[0], "nginx:1", "nginx", layers=2)
    layerdb = stores[0] / "image" / "overlay2" / "layerdb" / "sha256"
    config = json.loads(
        next(
            (stores[0] / "image" / "overlay2" / "imagedb" / "content" / "sha256").iterdir()
        ).read_text()
    )
    top_chain = chain_ids(config["rootfs"]["diff_ids"])[1].removeprefix("sha256:")
    top_diff = config["rootfs"]["diff_ids"][1].removeprefix("sha256:")
    (layerdb / top_chain).rename(layerdb / top_diff)
    with pytest.raises(lab_image.Damaged, match=f"{top_chain}/cache-id is missing"):
        lab_image.resolve("nginx:1")
    assert diffs[1].is_dir()


def test_podman(stores: tuple[Path, Path]) -> None:
    diff = podman_store(stores[1], ["docker.io/library/busybox:latest"])
    assert lab_image.resolve("busybox") == ([str(diff)], "")


def test_podman_layers_follow_the_parents(stores: tuple[Path, Path]) -> None:
    diffs = podman_layers(stores[1], ["quay.io/a/b:1"], layers=3)
    assert lab_image.resolve("quay.io/a/b:1") == ([str(d) for d in diffs[::-1]], "")


def test_layered_image_without_mount_points_is_unusable(stores: tuple[Path, Path]) -> None:
    """The union of the layers must hold /proc, /sys, /dev and /tmp; a whiteout in
    an upper layer deletes the one below."""
    diffs = docker_layers(stores[0], "x:1", "x", layers=2)
    os.mknod(diffs[1] / "tmp", 0o600 | stat.S_IFCHR, os.makedev(0, 0))
    assert lab_image.resolve("x:1") == (
        None,
        "is unusable: the image's layers have no /tmp directory",
    )


def test_no_store(stores: tuple[Path, Path]) -> None:
    assert lab_image.resolve("alpine") == (
        None,
        "is in no local Docker or Podman store (netlens never pulls)",
    )


def test_store_paths_are_never_taken_from_the_json_unchecked(stores: tuple[Path, Path]) -> None:
    base = stores[0] / "image" / "overlay2"
    base.mkdir(parents=True)
    (base / "repositories.json").write_text(
        '{"Repositories": {"x": {"x:1": "sha256:../../../../etc"}}}'
    )
    with pytest.raises(lab_image.Damaged) as err:
        lab_image.resolve("x:1")
    assert str(err.value) == (
        f"the Docker store at {stores[0]} is damaged: the image id of x:1"
        " 'sha256:../../../../etc' is not an id (64 hex digits)"
    )
    assert lab_image.resolve("y:1")[0] is None  # an image it does not name: not its business


@pytest.mark.parametrize("what", ["cache-id", "layer-dir", "podman-parent", "podman-dir"])
def test_damaged_store_is_one_line(stores: tuple[Path, Path], tmp_path: Path, what: str) -> None:
    """A bad id or a symbolic link leading out of the store refuses the image."""
    outside = tmp_path / "outside"
    make_rootfs(outside)
    if what == "cache-id":
        diffs = docker_layers(stores[0], "x:1", "x", layers=2)
        cache_id = next(stores[0].glob("image/overlay2/layerdb/sha256/*/cache-id"))
        cache_id.write_text("../../../etc\n")
        want = "cache-id '../../../etc' is not an id"
    elif what == "layer-dir":
        diffs = docker_layers(stores[0], "x:1", "x", layers=2)
        shutil.rmtree(diffs[1])
        diffs[1].symlink_to(outside)
        want = f"{diffs[1]} is a symbolic link (or passes through one)"
    elif what == "podman-parent":
        diffs = podman_layers(stores[1], ["docker.io/library/x:1"], layers=2)
        layers_json = stores[1] / "overlay-layers" / "layers.json"
        entries = json.loads(layers_json.read_text())
        entries[0]["parent"] = "../../../outside"
        layers_json.write_text(json.dumps(entries))
        want = "is not an id (64 hex digits)"
    else:
        diffs = podman_layers(stores[1], ["docker.io/library/x:1"], layers=2)
        layer_dir = diffs[0].parent
        shutil.rmtree(layer_dir)
        layer_dir.symlink_to(tmp_path)
        want = "is a symbolic link (or passes through one)"
    with pytest.raises(lab_image.Damaged, match=re.escape(want)) as err:
        lab_image.resolve("x:1")
    assert "\n" not in str(err.value) and str(err.value).startswith("the ")


def test_podman_parent_loop_is_damaged(stores: tuple[Path, Path]) -> None:
    podman_layers(stores[1], ["docker.io/library/x:1"], layers=2)
    layers_json = stores[1] / "overlay-layers" / "layers.json"
    entries = json.loads(layers_json.read_text())
    entries[1]["parent"] = entries[0]["id"]  # the bottom layer's parent is the top one
    layers_json.write_text(json.dumps(entries))
    with pytest.raises(lab_image.Damaged, match="is its own ancestor"):
        lab_image.resolve("x:1")


def test_symlinked_store_root_is_followed(stores: tuple[Path, Path], tmp_path: Path) -> None:
    """A store moved elsewhere and linked back (/var/lib/docker -> /data/docker) is fine:
    only links below the store's root are refused."""
    real = tmp_path / "data-docker"
    diffs = docker_layers(real, "x:1", "x", layers=2)
    stores[0].symlink_to(real)
    assert lab_image.resolve("x:1") == ([str(d) for d in diffs[::-1]], "")


def test_clab_node_gets_the_store_rootfs_and_others_are_told_once(
    stores: tuple[Path, Path],
) -> None:
    diff = docker_store(stores[0], "alpine:3", "alpine")
    notes: list[str] = []
    spec = load_lab(
        "t.clab.yml",
        text="name: x\ntopology:\n  nodes:\n    a: {image: alpine:3}\n    b: {image: 'nginx:1'}\n"
        "    c: {image: 'nginx:1'}\n",
        notify=notes.append,
    )
    assert spec.node("a").rootfs == str(diff) and spec.node("a").layers == ()
    assert spec.node("b").rootfs is None and spec.node("c").rootfs is None
    assert notes == [
        "t.clab.yml: image nginx:1 is in no local Docker or Podman store (netlens never"
        " pulls): those nodes run on the host's read-only root"
    ]


def test_clab_node_on_a_layered_image_gets_its_layers(stores: tuple[Path, Path]) -> None:
    diffs = docker_layers(stores[0], "lab/ml:1", "lab/ml", layers=3)
    notes: list[str] = []
    spec = load_lab(
        "t.clab.yml",
        text="name: x\ntopology:\n  nodes:\n    a: {image: lab/ml:1}\n",
        notify=notes.append,
    )
    assert notes == []
    assert spec.node("a").rootfs is None
    assert spec.node("a").layers == tuple(str(d) for d in diffs[::-1])


def test_clab_file_on_a_damaged_store_is_refused_at_the_image_line(
    stores: tuple[Path, Path], tmp_path: Path
) -> None:
    diffs = docker_layers(stores[0], "lab/ml:1", "lab/ml", layers=2)
    shutil.rmtree(diffs[1])
    diffs[1].symlink_to(tmp_path)
    with pytest.raises(BadInput) as err:
        load_lab(
            "t.clab.yml",
            text="name: x\ntopology:\n  nodes:\n    a:\n      image: lab/ml:1\n",
            notify=lambda _: None,
        )
    assert str(err.value) == (
        f"t.clab.yml:5: topology.nodes.a.image: image lab/ml:1: the Docker store at"
        f" {stores[0]} is damaged: {diffs[1]} is a symbolic link (or passes through one)"
    )


def test_native_layers_field_and_save_round_trip(stores: tuple[Path, Path]) -> None:
    """``lab save`` writes a layered node as native ``layers``, which loads back."""
    import yaml

    from netlens_runtime.lab_save import to_native

    diffs = docker_layers(stores[0], "lab/ml:1", "lab/ml", layers=2)
    spec = load_lab("t.clab.yml", text="name: x\ntopology:\n  nodes:\n    a: {image: lab/ml:1}\n")
    again = load_lab("x.yaml", text=yaml.safe_dump(to_native(spec)))
    assert again.node("a").layers == tuple(str(d) for d in diffs[::-1])
    with pytest.raises(BadInput, match="rootfs and layers exclude each other"):
        load_lab(
            "x.yaml",
            text=f"name: y\nnodes:\n  a:\n    rootfs: {diffs[0]}\n    layers: [{diffs[0]}, /]\n",
        )
    with pytest.raises(BadInput, match=r"x.yaml:4: nodes.a.layers: .*at least two layers"):
        load_lab("x.yaml", text=f"name: y\nnodes:\n  a:\n    layers: [{diffs[0]}]\n")
