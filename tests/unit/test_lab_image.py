"""A containerlab node's ``image`` looked up in local Docker and Podman stores
(netlens_runtime.lab_image), on fake stores written in the stores' layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from image_store import docker_store, podman_store

from netlens_runtime import lab_image
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
    assert lab_image.resolve("docker.io/library/alpine:3") == (str(diff), "")
    assert lab_image.resolve("alpine:3.19")[0] is None


def test_docker_several_layers_not_used(stores: tuple[Path, Path]) -> None:
    docker_store(stores[0], "nginx:1", "nginx", layers=3)
    assert lab_image.resolve("nginx:1") == (
        None,
        "has 3 layers in the Docker store (one is used)",
    )


def test_podman(stores: tuple[Path, Path]) -> None:
    diff = podman_store(stores[1], ["docker.io/library/busybox:latest"])
    assert lab_image.resolve("busybox") == (str(diff), "")


def test_podman_layered(stores: tuple[Path, Path]) -> None:
    podman_store(stores[1], ["quay.io/a/b:1"], parent=True)
    assert lab_image.resolve("quay.io/a/b:1") == (
        None,
        "has several layers in the Podman store (one is used)",
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
    assert lab_image.resolve("x:1")[0] is None


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
    assert spec.node("a").rootfs == str(diff)
    assert spec.node("b").rootfs is None and spec.node("c").rootfs is None
    assert notes == [
        "t.clab.yml: image nginx:1 is in no local Docker or Podman store (netlens never"
        " pulls): those nodes run on the host's read-only root"
    ]
