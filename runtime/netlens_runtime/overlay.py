"""A container's root made of an image's layers: a read-only overlay, private to it.

An image of several layers (a Docker or Podman image built ``FROM`` another one)
is not one directory: its files are the union of the layers' directories, upper
ones hiding lower ones, and a deleted file is a *whiteout* in the layer that
deleted it (a 0/0 character device; an opaque directory hides all below it).
overlayfs reads exactly that format, so the root is an overlay whose lowerdirs
are the layers, topmost first. With no upperdir an overlay is read-only by
construction: nothing the container does reaches the store.

The overlay is mounted by the container's setup process in its own mount
namespace, after that namespace was made private and before pivot_root
(:func:`mount_layers`, called from hostview.setup_fs), so it is nobody else's
mount: it vanishes with the container's last process, and nothing outlives
``lab up`` or ``lab down`` on the host.

Each layer is opened with O_NOFOLLOW and checked to be the very directory
validated in the parent (:func:`validate_layers`), then named to the kernel as
``/proc/self/fd/N``: the directory cannot be swapped for a symbolic link between
the check and the mount, and the mount option stays short (a page is the limit:
~19 bytes a layer instead of a store path of ~90; Docker's own short links under
``overlay2/l/`` would be symbolic links to trust). A directory whose name holds
``:`` or ``,`` (the option's separators) needs no escaping either.
"""

from __future__ import annotations

import contextlib
import os
import stat

from netlens_runtime.errors import BadInput

MAX_LAYERS = 128
"""Docker refuses to build beyond 127 layers; 128 fd paths fit a page of mount options."""

MOUNT_POINTS = ("proc", "sys", "dev", "tmp")
"""What a root must have (names.validate_rootfs): the runtime mounts over them."""


def _entry_kind(layers: list[str], name: str) -> str:
    """What the overlay would show at ``/name``: "dir", "other" or "none".

    The topmost layer holding the name decides: a directory, a whiteout (the
    name was deleted there: none) or anything else.
    """
    for layer in layers:
        try:
            st = os.lstat(os.path.join(layer, name))
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            return "dir"
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            return "none"
        return "other"
    return "none"


def validate_layers(paths: list[str]) -> list[str]:
    """Layer directories (topmost first) for an overlay root: their real paths.

    At least two (one directory is a plain ``--rootfs``), at most
    :data:`MAX_LAYERS`; the union must hold /proc, /sys, /dev and /tmp
    directories, as a ``--rootfs`` must.
    """
    if len(paths) < 2:
        raise BadInput("a layered root needs at least two layers (one is a --rootfs)")
    if len(paths) > MAX_LAYERS:
        raise BadInput(f"a layered root of {len(paths)} layers: at most {MAX_LAYERS} are mounted")
    real = []
    for path in paths:
        resolved = os.path.realpath(path)
        if not os.path.isdir(resolved):
            raise BadInput(f"layer {path!r} is not a directory")
        real.append(resolved)
    for sub in MOUNT_POINTS:
        if _entry_kind(real, sub) != "dir":
            raise BadInput(f"the image's layers have no /{sub} directory")
    return real


def mount_layers(layers: list[str], target: str) -> None:  # pragma: no cover - child only
    """Mount the read-only overlay of ``layers`` (topmost first) on ``target``.

    Runs in the container's own (private) mount namespace. Each layer must
    still be the directory :func:`validate_layers` returned: one that became
    a symbolic link, or moved, is refused.
    """
    from netlens_runtime import sysc  # not at the top: the lab loader imports this module

    fds: list[int] = []
    try:
        for path in layers:
            try:
                fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError as err:
                raise OSError(f"layer {path}: {os.strerror(err.errno or 0)}") from None
            fds.append(fd)
            if os.readlink(f"/proc/self/fd/{fd}") != path:
                raise OSError(f"layer {path} is no longer that directory")
        lower = ":".join(f"/proc/self/fd/{fd}" for fd in fds)
        flags = sysc.MS_RDONLY | sysc.MS_NODEV | sysc.MS_NOSUID
        try:
            sysc.mount("overlay", target, "overlay", flags, f"lowerdir={lower}")
        except OSError as err:
            why = os.strerror(err.errno or 0)
            raise OSError(f"overlay of {len(layers)} layers: {why}") from None
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
