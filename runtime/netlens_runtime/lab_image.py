"""A containerlab node's ``image`` found in a local Docker or Podman image store.

netlens never pulls and never unpacks: it only looks up images the host already
holds, and never writes the store. The result is the image's layer directories,
topmost first. A single-layer image (alpine, busybox and most base images) is
one directory, which the runtime mounts read-only as the node's root
(``--rootfs``: a read-only bind). An image of several layers (anything built
``FROM`` another image) becomes a read-only overlay of its layers, mounted by
the node's own setup process in its private mount namespace
(:mod:`netlens_runtime.overlay`): whiteouts and opaque directories are
overlayfs's own format, and the mount vanishes with the node. An image the
stores do not hold runs on the host's read-only root, and :func:`resolve` says
why.

Docker (overlay2): ``image/overlay2/repositories.json`` maps the reference to an
image id; the image's config lists its layers' diff ids, bottom first; layer
*n*'s chain id is sha256 of "chain id of *n-1*, a space, diff id of *n*" (the
first layer's is its diff id); ``layerdb/sha256/<chain>/cache-id`` names
``overlay2/<cache-id>/diff``. Podman (containers/storage):
``overlay-images/images.json`` maps names to a top layer,
``overlay-layers/layers.json`` gives each layer's parent, and the files are in
``overlay/<layer>/diff``.

A store is trusted no further than needed: every id read from it is checked to
be 64 hex digits before it becomes a path, every path built from ids must be
its own real path (no symbolic link anywhere below the store's root), files are
opened with O_NOFOLLOW, and a parent chain may not loop. A store that names
the image but breaks one of these rules is damaged: :func:`resolve` raises one
line saying where, and nothing is built.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

from netlens_runtime import names, overlay
from netlens_runtime.errors import BadInput

DOCKER_ROOT = "/var/lib/docker"
PODMAN_ROOT = "/var/lib/containers/storage"

_HEX = re.compile(r"^[0-9a-f]{64}$")


class Damaged(BadInput):
    """A store that holds the image but cannot be read safely (bad id, symlink, loop)."""


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


class _Store:
    """One store's root (its real path) and the checks every path below it passes."""

    def __init__(self, kind: str, root: str) -> None:
        self.kind = kind
        self.root = os.path.realpath(root)

    def damaged(self, why: str) -> Damaged:
        return Damaged(f"the {self.kind} store at {self.root} is damaged: {why}")

    def hex_id(self, value: object, what: str) -> str:
        """A 64-hex id from the store (``sha256:`` prefix allowed), or Damaged."""
        text = value.removeprefix("sha256:") if isinstance(value, str) else ""
        if not _HEX.match(text):
            shown = repr(value)[:80]
            raise self.damaged(f"{what} {shown} is not an id (64 hex digits)")
        return text

    def path(self, *parts: str, must_exist: bool = True) -> str:
        """root/parts, refused when a symbolic link anywhere below the root leads elsewhere."""
        path = os.path.join(self.root, *parts)
        if os.path.realpath(path) != path:
            raise self.damaged(f"{path} is a symbolic link (or passes through one)")
        if must_exist and not os.path.lexists(path):
            raise self.damaged(f"{path} is missing")
        return path

    def read(self, *parts: str, optional: bool = False) -> str | None:
        """A file below the root, opened without following a link; None if optional and absent."""
        path = self.path(*parts, must_exist=not optional)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            if optional:
                return None
            raise self.damaged(f"{path} is missing") from None
        except OSError as err:
            raise self.damaged(f"{path}: {os.strerror(err.errno or 0)}") from None
        with os.fdopen(fd, encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def json(self, *parts: str, optional: bool = False) -> Any:
        text = self.read(*parts, optional=optional)
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise self.damaged(f"{os.path.join(self.root, *parts)} is not JSON") from None


def _docker(ref: str) -> list[str] | None:
    """The image's layer directories (topmost first) if Docker holds it, else None."""
    store = _Store("Docker", DOCKER_ROOT)
    if not os.path.isdir(store.root):
        return None
    base = ("image", "overlay2")
    repos = store.json(*base, "repositories.json", optional=True)
    if not isinstance(repos, dict):
        return None
    want = _full(ref)
    image: object = None
    for refs in (repos.get("Repositories") or {}).values():
        for key, value in (refs or {}).items() if isinstance(refs, dict) else ():
            if isinstance(key, str) and _full(key) == want:
                image = value
    if image is None:
        return None
    image_id = store.hex_id(image, f"the image id of {ref}")
    config = store.json(*base, "imagedb", "content", "sha256", image_id)
    rootfs = config.get("rootfs") if isinstance(config, dict) else None
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not diff_ids:
        raise store.damaged(f"the config of {ref} lists no layers")
    layers = []
    chain = ""
    for diff_id in diff_ids:
        diff = store.hex_id(diff_id, "a layer's diff id")
        if not chain:
            chain = diff
        else:
            chain = hashlib.sha256(f"sha256:{chain} sha256:{diff}".encode()).hexdigest()
        cache_text = store.read(*base, "layerdb", "sha256", chain, "cache-id") or ""
        cache = store.hex_id(cache_text.strip(), f"layer {chain[:12]}'s cache-id")
        layers.append(store.path("overlay2", cache, "diff"))
    return layers[::-1]


def _podman(ref: str) -> list[str] | None:
    """The image's layer directories (topmost first) if Podman holds it, else None."""
    store = _Store("Podman", PODMAN_ROOT)
    if not os.path.isdir(store.root):
        return None
    images = store.json("overlay-images", "images.json", optional=True)
    if not isinstance(images, list):
        return None
    want = _full(ref)
    top: object = None
    for img in images:
        if isinstance(img, dict) and any(_full(str(n)) == want for n in img.get("names") or []):
            top = img.get("layer")
    if top is None:
        return None
    layer = store.hex_id(top, f"the top layer of {ref}")
    entries = store.json("overlay-layers", "layers.json")
    parents = {
        str(e.get("id")): e.get("parent") for e in entries or [] if isinstance(e, dict)
    }  # fmt: skip
    layers: list[str] = []
    seen: set[str] = set()
    while True:
        if layer in seen:
            raise store.damaged(f"layer {layer[:12]} is its own ancestor")
        if layer not in parents:
            raise store.damaged(f"layer {layer[:12]} is not in overlay-layers/layers.json")
        seen.add(layer)
        layers.append(store.path("overlay", layer, "diff"))
        parent = parents[layer]
        if not parent:
            return layers
        layer = store.hex_id(parent, f"the parent of layer {layer[:12]}")


def resolve(ref: str) -> tuple[list[str] | None, str]:
    """The image's layer directories (topmost first; one for a single-layer image),
    or None and why the node runs on the host's root.

    Raises :class:`Damaged` (one line) when a store holds the image but cannot
    be read safely; a root that lacks /proc, /sys, /dev or /tmp is a reason.
    """
    reasons = []
    for look in (_docker, _podman):
        layers = look(ref)
        if layers is None:
            continue
        try:
            if len(layers) == 1:
                return [names.validate_rootfs(layers[0])], ""
            return overlay.validate_layers(layers), ""
        except BadInput as err:
            reasons.append(f"is unusable: {err}")
    if reasons:
        return None, reasons[0]
    return None, "is in no local Docker or Podman store (netlens never pulls)"
