"""Fake local image stores (Docker overlay2, Podman containers/storage) for tests.

Only the files netlens reads are written, in the stores' own layout, so the
lookup in netlens_runtime.lab_image is tested on the same paths and JSON shapes
it meets on a real host, without Docker or Podman installed. A Docker image's
layers are found through chain ids computed the way Docker computes them
(:func:`chain_ids`), so a wrong chain in netlens finds no layer here either.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path


def _id(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The OCI chain ids of layers with these diff ids (``sha256:hex``), bottom first."""
    out: list[str] = []
    for diff in diff_ids:
        out.append(diff if not out else "sha256:" + _id(f"{out[-1]} {diff}"))
    return out


def make_rootfs(diff: Path, busybox: bool = False) -> None:
    """A root directory the runtime accepts; with ``busybox``, one that runs ``sleep``."""
    for sub in ("proc", "sys", "dev", "tmp", "etc", "bin"):
        (diff / sub).mkdir(parents=True, exist_ok=True)
    if busybox:
        shutil.copy2("/usr/bin/busybox", diff / "bin" / "busybox")
        for tool in ("sleep", "sh", "ip", "cat", "true", "false", "hostname", "touch", "ls"):
            os.symlink("busybox", diff / "bin" / tool)
    (diff / "etc" / "image-marker").write_text("from the store\n")


def docker_store(
    root: Path, ref_key: str, repo: str, layers: int = 1, busybox: bool = False
) -> Path:
    """A Docker overlay2 store holding one image; returns its bottom layer's diff dir
    (a root the runtime accepts; the layers above it are empty, see docker_layers)."""
    return docker_layers(root, ref_key, repo, layers, busybox)[0]


def docker_layers(
    root: Path, ref_key: str, repo: str, layers: int = 1, busybox: bool = False
) -> list[Path]:
    """A Docker overlay2 store holding one image of ``layers`` layers; their diff dirs,
    bottom first (the bottom one a root the runtime accepts, the others empty)."""
    image_id = _id(ref_key)
    diff_ids = [f"sha256:{_id(f'{ref_key}/{i}')}" for i in range(layers)]
    base = root / "image" / "overlay2"
    (base / "imagedb" / "content" / "sha256").mkdir(parents=True, exist_ok=True)
    repos_file = base / "repositories.json"
    repos = json.loads(repos_file.read_text()) if repos_file.exists() else {"Repositories": {}}
    repos["Repositories"].setdefault(repo, {})[ref_key] = f"sha256:{image_id}"
    repos_file.write_text(json.dumps(repos))
    (base / "imagedb" / "content" / "sha256" / image_id).write_text(
        json.dumps({"rootfs": {"type": "layers", "diff_ids": diff_ids}})
    )
    diffs = []
    for i, chain in enumerate(chain_ids(diff_ids)):
        cache = _id(f"cache/{ref_key}/{i}")
        layer = base / "layerdb" / "sha256" / chain.removeprefix("sha256:")
        layer.mkdir(parents=True)
        (layer / "cache-id").write_text(cache)
        diff = root / "overlay2" / cache / "diff"
        diff.mkdir(parents=True)
        diffs.append(diff)
    make_rootfs(diffs[0], busybox)
    return diffs


def podman_store(root: Path, names: list[str], parent: bool = False) -> Path:
    """A Podman store holding one image; returns its top layer's diff dir. With
    ``parent`` the image has a second (bottom, empty) layer below it."""
    return podman_layers(root, names, 2 if parent else 1)[-1]


def podman_layers(root: Path, names: list[str], layers: int = 1) -> list[Path]:
    """A Podman store holding one image of ``layers`` layers; their diff dirs, bottom
    first (the top one a root the runtime accepts, the others empty)."""
    ids = [_id("/".join(names) + f"/{i}") for i in range(layers)]
    (root / "overlay-images").mkdir(parents=True)
    (root / "overlay-layers").mkdir(parents=True)
    (root / "overlay-images" / "images.json").write_text(
        json.dumps([{"id": _id("img"), "names": names, "layer": ids[-1]}])
    )
    entries: list[dict[str, str]] = []
    for i, layer in enumerate(ids):
        entry = {"id": layer}
        if i:
            entry["parent"] = ids[i - 1]
        entries.append(entry)
    (root / "overlay-layers" / "layers.json").write_text(json.dumps(entries[::-1]))
    diffs = [root / "overlay" / layer / "diff" for layer in ids]
    for diff in diffs:
        diff.mkdir(parents=True)
    make_rootfs(diffs[-1])
    return diffs
