"""A containerlab node's ``image`` found in a local Docker or Podman image store.

netlens never pulls and never unpacks: it only looks up images the host already
holds. A single-layer image (alpine, busybox and most base images) is one
directory in the store, which the runtime mounts read-only as the node's root
(``--rootfs``: a read-only bind, so the store is never written). An image of
several layers would need an overlay mount that outlives ``lab up``; it is not
used, and neither is an image the stores do not hold: those nodes run on the
host's read-only root, and :func:`resolve` says why.

Docker (overlay2): ``image/overlay2/repositories.json`` maps the reference to an
image id, the image's config lists its layers' diff ids, and a one-layer
image's chain id is its diff id, whose ``cache-id`` names ``overlay2/<id>/diff``.
Podman (containers/storage): ``overlay-images/images.json`` maps names to a top
layer, ``overlay-layers/layers.json`` gives its parent (none for one layer), and
the files are in ``overlay/<layer>/diff``. Every id read from a store is checked
to be hex before it becomes a path.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from netlens_runtime import names
from netlens_runtime.errors import BadInput

DOCKER_ROOT = "/var/lib/docker"
PODMAN_ROOT = "/var/lib/containers/storage"

_HEX = re.compile(r"^[0-9a-f]{64}$")


def normalize(ref: str) -> tuple[str, str]:
    """``alpine:3`` -> (``docker.io/library/alpine``, ``3``); the tag defaults to latest.

    A digest reference (``@sha256:``) keeps the digest as its "tag"."""
    name, at, digest = ref.partition("@")
    if at:
        tag = "@" + digest
    else:
        slash = name.rfind("/")
        colon = name.rfind(":")
        if colon > slash:
            name, tag = name[:colon], name[colon + 1 :]
        else:
            tag = "latest"
    first = name.split("/", 1)[0]
    if "/" not in name or ("." not in first and ":" not in first and first != "localhost"):
        name = f"docker.io/{name}"
    if name.count("/") == 1 and name.startswith("docker.io/"):
        name = "docker.io/library/" + name.split("/", 1)[1]
    return name, tag


def _full(ref: str) -> str:
    name, tag = normalize(ref)
    return f"{name}{tag}" if tag.startswith("@") else f"{name}:{tag}"


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _docker(ref: str) -> tuple[str | None, str | None]:
    """(rootfs, None), or (None, why not) if Docker holds the image, or (None, None)."""
    base = os.path.join(DOCKER_ROOT, "image", "overlay2")
    repos = _read_json(os.path.join(base, "repositories.json"))
    if not isinstance(repos, dict):
        return None, None
    want = _full(ref)
    image_id = None
    for refs in (repos.get("Repositories") or {}).values():
        for key, value in (refs or {}).items():
            if isinstance(key, str) and _full(key) == want and isinstance(value, str):
                image_id = value.removeprefix("sha256:")
    if image_id is None or not _HEX.match(image_id):
        return None, None
    config = _read_json(os.path.join(base, "imagedb", "content", "sha256", image_id))
    diff_ids = ((config or {}).get("rootfs") or {}).get("diff_ids") or []
    if len(diff_ids) != 1:
        return None, f"has {len(diff_ids)} layers in the Docker store (one is used)"
    chain = str(diff_ids[0]).removeprefix("sha256:")
    if not _HEX.match(chain):
        return None, None
    try:
        with open(os.path.join(base, "layerdb", "sha256", chain, "cache-id")) as fh:
            cache = fh.read().strip()
    except OSError:
        return None, None
    if not re.match(r"^[0-9a-f]{64}$|^[0-9a-z]{26}$", cache):
        return None, None
    return os.path.join(DOCKER_ROOT, "overlay2", cache, "diff"), None


def _podman(ref: str) -> tuple[str | None, str | None]:
    images = _read_json(os.path.join(PODMAN_ROOT, "overlay-images", "images.json"))
    if not isinstance(images, list):
        return None, None
    want = _full(ref)
    layer = None
    for img in images:
        if isinstance(img, dict) and any(_full(str(n)) == want for n in img.get("names") or []):
            layer = str(img.get("layer") or "")
    if layer is None or not _HEX.match(layer):
        return None, None
    layers = _read_json(os.path.join(PODMAN_ROOT, "overlay-layers", "layers.json"))
    entry = next((x for x in layers or [] if isinstance(x, dict) and x.get("id") == layer), None)
    if entry is None:
        return None, None
    if entry.get("parent"):
        return None, "has several layers in the Podman store (one is used)"
    return os.path.join(PODMAN_ROOT, "overlay", layer, "diff"), None


def resolve(ref: str) -> tuple[str | None, str]:
    """The image's root directory, or None and why the node runs on the host's root."""
    reasons = []
    for look in (_docker, _podman):
        rootfs, why = look(ref)
        if rootfs is not None:
            try:
                return names.validate_rootfs(rootfs), ""
            except BadInput as err:
                why = f"is unusable: {err}"
        if why:
            reasons.append(why)
    if reasons:
        return None, reasons[0]
    return None, "is in no local Docker or Podman store (netlens never pulls)"
