"""Fake local image stores (Docker overlay2, Podman containers/storage) for tests.

Only the files netlens reads are written, in the stores' own layout, so the
lookup in netlens_runtime.lab_image is tested on the same paths and JSON shapes
it meets on a real host, without Docker or Podman installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path


def _id(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def make_rootfs(diff: Path, busybox: bool = False) -> None:
    """A root directory the runtime accepts; with ``busybox``, one that runs ``sleep``."""
    for sub in ("proc", "sys", "dev", "tmp", "etc", "bin"):
        (diff / sub).mkdir(parents=True, exist_ok=True)
    if busybox:
        shutil.copy2("/usr/bin/busybox", diff / "bin" / "busybox")
        for tool in ("sleep", "sh", "ip", "cat", "true", "false", "hostname"):
            os.symlink("busybox", diff / "bin" / tool)
    (diff / "etc" / "image-marker").write_text("from the store\n")


def docker_store(
    root: Path, ref_key: str, repo: str, layers: int = 1, busybox: bool = False
) -> Path:
    """A Docker overlay2 store holding one image; returns its single layer's diff dir."""
    image_id = _id(ref_key)
    diff_ids = [f"sha256:{_id(f'{ref_key}/{i}')}" for i in range(layers)]
    base = root / "image" / "overlay2"
    (base / "imagedb" / "content" / "sha256").mkdir(parents=True)
    (base / "repositories.json").write_text(
        json.dumps({"Repositories": {repo: {ref_key: f"sha256:{image_id}"}}})
    )
    (base / "imagedb" / "content" / "sha256" / image_id).write_text(
        json.dumps({"rootfs": {"type": "layers", "diff_ids": diff_ids}})
    )
    chain = diff_ids[0].removeprefix("sha256:")
    cache = _id(f"cache/{ref_key}")
    (base / "layerdb" / "sha256" / chain).mkdir(parents=True)
    (base / "layerdb" / "sha256" / chain / "cache-id").write_text(cache)
    diff = root / "overlay2" / cache / "diff"
    make_rootfs(diff, busybox)
    return diff


def podman_store(root: Path, names: list[str], parent: bool = False) -> Path:
    layer = _id("/".join(names))
    (root / "overlay-images").mkdir(parents=True)
    (root / "overlay-layers").mkdir(parents=True)
    (root / "overlay-images" / "images.json").write_text(
        json.dumps([{"id": _id("img"), "names": names, "layer": layer}])
    )
    entry: dict[str, str] = {"id": layer}
    if parent:
        entry["parent"] = _id("below")
    (root / "overlay-layers" / "layers.json").write_text(json.dumps([entry]))
    diff = root / "overlay" / layer / "diff"
    make_rootfs(diff)
    return diff
