"""What a container sees of the host's filesystem: its root, volumes, /proc and /sys.

**The default view ("tools")**: a root of its own on a fresh tmpfs holding the
host's tools and nothing else. Read-only from the host: /usr, /etc, /opt and
/bin, /sbin, /lib* (on a merged-/usr host those four are symlinks into /usr:
recreated as the same symlinks). Masked in /etc (:func:`etc_masks`): the fixed
:data:`ETC_SECRETS`, the SSH host keys and anything under /etc only root may
read. Empty and read-only: /root, /home, /var (with empty cache/ and spool/).
Nothing else of the host: no /srv, /mnt, /media, /boot, /work... Per container:
fresh tmpfs on /tmp, /run, /var/tmp, /var/log and /var/lib, its own /proc,
/sys, /dev/pts, /dev/shm, and its volumes.

**``full``** (``--host-view full``): the host's whole root read-only, the view
every container had before the default one. **``--rootfs DIR``**: DIR instead;
an image's layers (``Plan.layers``): their read-only overlay (:mod:`overlay`).

**/proc and /sys** (every view; a privileged container skips this): /proc/sys
is read-only except /proc/sys/net (per network namespace: lab routers toggle
forwarding); /proc/sysrq-trigger, /proc/irq, /proc/bus and /proc/fs are
read-only; :data:`PROC_MASK_FILES` read empty (/dev/null over them) and
:data:`MASK_DIRS` are empty read-only tmpfs; sysfs is read-only anyway. The
runtime's own sysctls are written through an fd of /proc/sys opened before it
was made read-only (:func:`container_fs`), after eth0 exists.

Who does what: a batch's :class:`netlens_runtime.spawn.Template` builds the root
once (:func:`build_root`) and every child copies that small mount namespace,
then runs :func:`container_fs` (or its C twin in spawn_helper.c: keep the
lists there equal, a unit test compares them). A single container's child
builds the same root itself (:func:`setup_fs`), so both paths give one view.

One job, kept in one module on purpose (it is a little over 500 lines): the view's
lists (what is bound, masked, made read-only) and the steps that mount them are
mirrored in spawn_helper.c, and keeping the planning beside the mounting keeps
the one Python reference that C twin is compared with.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import stat
from typing import TYPE_CHECKING

from netlens_runtime import overlay, sysc
from netlens_runtime.errors import BadInput

if TYPE_CHECKING:
    from netlens_runtime.spawn import Plan

VIEWS = ("tools", "full")
DEFAULT_VIEW = "tools"

HOST_TREES = ("usr", "etc", "opt", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
"""Top-level host entries of the default view: bound read-only, or recreated symlinks."""
ROOT_DIRS = (
    ("proc", 0o555), ("sys", 0o555), ("dev", 0o755), ("root", 0o700), ("home", 0o755),
    ("run", 0o755), ("tmp", 0o1777), ("var", 0o755),
    ("var/tmp", 0o1777), ("var/log", 0o755), ("var/lib", 0o755), ("var/cache", 0o755),
    ("var/spool", 0o755),
)  # fmt: skip
VIEW_LINKS = (("/var/run", "/run"), ("/var/lock", "/run/lock"))
"""Symlinks of the default root besides HOST_TREES' (as Debian has them)."""
SCRATCH = (
    ("/tmp", "mode=1777"), ("/run", "mode=755"), ("/var/tmp", "mode=1777"),
    ("/var/log", "mode=755"), ("/var/lib", "mode=755"),
)  # fmt: skip
"""Writable, per container: a fresh tmpfs each (the first three in every view)."""
SCRATCH_FULL = SCRATCH[:3]

ETC_SECRETS = (
    "shadow", "shadow-", "gshadow", "gshadow-", "sudoers", "sudoers.d", "ssl/private",
)  # fmt: skip
"""Masked whatever their mode, with /etc/ssh/*_key: /etc/shadow is readable by group
shadow and Debian's /etc/ssl/private by group ssl-cert, so "only root may read" alone
would miss them."""

PROC_READONLY = ("/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs")
PROC_MASK_FILES = (
    "/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/timer_stats",
    "/proc/latency_stats", "/proc/sched_debug",
)  # fmt: skip
MASK_DIRS = ("/proc/scsi", "/proc/acpi", "/proc/asound", "/sys/firmware",
             "/sys/devices/virtual/powercap")  # fmt: skip
"""Docker's default masked and read-only paths; those this kernel lacks are skipped."""

STAGE = "/proc"
"""Where a root is assembled before pivot_root: a directory every host has, which the
builder no longer needs (the container's /proc is mounted in the new root)."""

Volume = tuple[str, str, bool, str]
"""(host path, container path as seen in the view, read-only, create: "" | "dir" | "file")."""


# --- computed in the parent (or once per template) --------------------------------


def host_layout(host_root: str = "/") -> list[tuple[str, str | None]]:
    """The HOST_TREES this host has: (name, symlink target) or (name, None) for a directory."""
    out: list[tuple[str, str | None]] = []
    for name in HOST_TREES:
        path = host_root + name
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            continue
        if stat.S_ISLNK(mode):
            out.append((name, os.readlink(path)))
        elif stat.S_ISDIR(mode):
            out.append((name, None))
    return out


def _only_root(st: os.stat_result) -> bool:
    """Nobody but root may read it (a directory: enter it): no bit for others, a group
    bit only for group root, an owner bit only for owner root."""
    bit = 0o1 if stat.S_ISDIR(st.st_mode) else 0o4
    mode = st.st_mode
    return not (
        mode & bit or (mode & bit << 3 and st.st_gid != 0) or (mode & bit << 6 and st.st_uid != 0)
    )


def etc_masks(etc: str = "/etc") -> list[tuple[str, bool]]:
    """What the default view masks under ``etc``: sorted (path, is directory).

    ETC_SECRETS and /etc/ssh/*_key whatever their mode, and every file or
    directory only root may read (:func:`_only_root`); a masked directory's
    contents are not visited. One ``lstat`` per entry that is not a symlink
    (about 500 of 1300 on a Debian host, 1.5 ms with a warm cache), done once
    per batch by the template, or by a single container's child while we make
    its veth.
    Symlinks are never masked: what they point to is, where it lives.
    """
    found: dict[str, bool] = {}

    def add(path: str) -> None:
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            return
        if not stat.S_ISLNK(mode):
            found[path] = stat.S_ISDIR(mode)

    for name in ETC_SECRETS:
        add(f"{etc}/{name}")
    with contextlib.suppress(OSError), os.scandir(f"{etc}/ssh") as it:
        for entry in it:
            if entry.name.endswith("_key"):
                add(entry.path)
    stack = [etc]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except OSError:
            continue
        with it:
            for entry in it:
                try:
                    # is_symlink() reads the directory entry's type: no system call for
                    # the many links of /etc/ssl/certs and /etc/alternatives.
                    if entry.is_symlink():
                        continue
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                is_dir = stat.S_ISDIR(st.st_mode)
                if _only_root(st):
                    found[entry.path] = is_dir
                elif is_dir:
                    stack.append(entry.path)
    dirs = [p for p, d in found.items() if d]
    return sorted((p, d) for p, d in found.items() if not any(p.startswith(q + "/") for q in dirs))


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/")


def _follow(target: str, layout: list[tuple[str, str | None]]) -> str:
    """``target`` with the default view's symlinks followed (/bin -> /usr/bin, /var/run -> /run)."""
    links = [("/" + name, link) for name, link in layout if link is not None]
    links += list(VIEW_LINKS)
    for _ in range(8):
        for src, dst in links:
            if _under(target, src):
                base = dst if dst.startswith("/") else posixpath.join(posixpath.dirname(src), dst)
                target = posixpath.normpath(base + target[len(src) :])
                break
        else:
            break
    return target


def place_volumes(
    texts: list[str], view: str, rootfs: str | None
) -> tuple[list[Volume], list[tuple[str, bool]]]:
    """Parse and place ``HOST:CONTAINER[:ro]`` volumes; (volumes, mount points to make in the root).

    A container path on a per-container tmpfs (/tmp, /run, /var/lib...) is made
    by the child; one elsewhere on the default root's tmpfs (/data, /srv/x,
    /root/x) is made in the root when it is built (returned as the second
    list; a batch's template makes every container's); one in the host's
    read-only trees (/etc/frr) or inside another volume must exist there.
    Volumes are ordered so that a volume inside another one is mounted after it.
    """
    from netlens_runtime.names import check_volume

    if not texts:
        return [], []
    layout = host_layout() if view == "tools" and rootfs is None else []
    bound = ["/" + name for name, link in layout if link is None]
    scratch = [p for p, _ in (SCRATCH if layout else SCRATCH_FULL)]
    parsed = []
    for text in texts:
        host, target, read_only = check_volume(text)
        target = _follow(target, layout) if layout else target
        parsed.append((text, host, target, read_only, os.path.isdir(host)))
    parsed.sort(key=lambda v: v[2].count("/"))
    volumes: list[Volume] = []
    skeleton: dict[str, bool] = {}
    placed: dict[str, str] = {}  # container path -> host path
    for text, host, target, read_only, is_dir in parsed:
        if target in placed:
            raise BadInput(f"volume {text!r}: {target} is given twice")
        outer = [t for t in placed if _under(target, t)]
        create = ""
        if outer:  # inside another volume: must be in that volume's host directory
            inner = placed[max(outer, key=len)] + target[len(max(outer, key=len)) :]
            _must_exist(text, inner, is_dir, f"{inner} (inside another volume)")
        elif any(_under(target, s) for s in scratch):
            create = "" if target in scratch else ("dir" if is_dir else "file")
            if target in scratch and not is_dir:
                raise BadInput(f"volume {text!r}: {target} is a directory, {host} is not")
        elif rootfs is not None:
            pass  # the child says so if DIR lacks it (it never creates anything in DIR)
        elif not layout:  # full view: the host's root as it is
            _must_exist(text, target, is_dir, f"{target} in the host's root (read-only)")
        elif any(_under(target, b) for b in bound):
            top = next(b for b in bound if _under(target, b))
            where = f"{target}: {top} is the host's, read-only (use a path outside it)"
            _must_exist(text, target, is_dir, where)
        else:
            made = {"/" + d for d, _ in ROOT_DIRS}
            if target in made and not is_dir:
                raise BadInput(f"volume {text!r}: {target} is a directory, {host} is not")
            _add_skeleton(skeleton, target, is_dir, text)
        placed[target] = host
        volumes.append((host, target, read_only, create))
    return volumes, sorted(skeleton.items())


def _must_exist(text: str, path: str, is_dir: bool, where: str) -> None:
    """A volume's mount point that nobody may create: it must be there, of the right kind."""
    if not os.path.exists(path):
        raise BadInput(f"volume {text!r}: no {where}")
    if os.path.isdir(path) != is_dir:
        kind = "a directory" if is_dir else "not a directory"
        raise BadInput(f"volume {text!r}: the host path is {kind}, {path} is not")


def _add_skeleton(skeleton: dict[str, bool], target: str, is_dir: bool, text: str) -> None:
    """Record ``target`` and its parents as mount points to make; BadInput on a clash."""
    parts = target.strip("/").split("/")
    for i in range(1, len(parts) + 1):
        path = "/" + "/".join(parts[:i])
        want = is_dir if i == len(parts) else True
        if skeleton.get(path, want) != want:
            raise BadInput(f"volume {text!r}: {path} is a file in one volume, a directory in other")
        skeleton[path] = want


def merge_skeletons(plans: list[Plan]) -> list[tuple[str, bool]]:
    """One template's mount points for a whole batch; BadInput if two containers disagree."""
    merged: dict[str, bool] = {}
    for plan in plans:
        for path, is_dir in plan.skeleton:
            if merged.get(path, is_dir) != is_dir:
                raise BadInput(
                    f"{plan.name}: volume mount point {path} is a file in one container of this"
                    " batch and a directory in another"
                )
            merged[path] = is_dir
    return sorted(merged.items())


# --- in a child, between clone and exec -------------------------------------------


def build_root(
    stage: str,
    skeleton: list[tuple[str, bool]],
    masks: list[tuple[str, bool]],
    layout: list[tuple[str, str | None]],
) -> None:  # pragma: no cover - child only
    """Assemble the default view on a tmpfs at ``stage`` and pivot_root into it.

    Ends with this mount namespace holding only the new root's mounts (the
    host's whole table is detached), so copying it per container is cheap.
    """
    os.umask(0)
    sysc.mount(None, "/", None, sysc.MS_REC | sysc.MS_PRIVATE, None)
    sysc.mount("tmpfs", stage, "tmpfs", sysc.MS_NOSUID | sysc.MS_NODEV, "mode=755")
    for name, link in layout:
        path = f"{stage}/{name}"
        if link is not None:
            os.symlink(link, path)
        else:
            os.mkdir(path, 0o755)
            sysc.mount("/" + name, path, None, sysc.MS_BIND | sysc.MS_REC, None)
    for name, mode in ROOT_DIRS:
        os.mkdir(f"{stage}/{name}", mode)
    for link, target in VIEW_LINKS:
        os.symlink(target, stage + link)
    empty_file, empty_dir = f"{stage}/.nl-mask", f"{stage}/.nl-maskdir"
    os.close(os.open(empty_file, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o400))
    os.mkdir(empty_dir, 0o700)
    for path, is_dir in masks:
        try:
            source = empty_dir if is_dir else empty_file
            sysc.mount(source, stage + path, None, sysc.MS_BIND, None)
        except OSError as err:
            if err.errno != errno.ENOENT:  # gone since etc_masks looked: nothing to hide
                raise
    os.unlink(empty_file)
    os.rmdir(empty_dir)
    for path, is_dir in skeleton:
        full = stage + path
        if is_dir:
            with contextlib.suppress(FileExistsError):
                os.mkdir(full, 0o755)
        else:
            os.close(os.open(full, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
    sysc.mount_setattr(
        stage, sysc.MOUNT_ATTR_RDONLY | sysc.MOUNT_ATTR_NOSUID | sysc.MOUNT_ATTR_NODEV
    )
    make_dev(stage + "/dev")
    os.chdir(stage)
    sysc.pivot_root(".", ".")
    sysc.umount2(".", sysc.MNT_DETACH)
    os.chdir("/")


VOLUME_ATTRS = sysc.MOUNT_ATTR_NODEV | sysc.MOUNT_ATTR_NOSUID
"""Set on every volume, read-only or not (spawn_helper.c's VOLUME_ATTRS_ is the same)."""


def open_volumes(volumes: list[Volume]) -> list[int]:  # pragma: no cover - child only
    """Detached copies of the volumes' host trees, taken while the host's paths are visible."""
    fds: list[int] = []
    try:
        for host, _, _, _ in volumes:
            fds.append(sysc.open_tree(host))
    except OSError:
        for fd in fds:
            os.close(fd)
        raise
    return fds


def setup_fs(plan: Plan, templated: bool, trees: list[int]) -> int:  # pragma: no cover
    """The container's whole filesystem; an fd of /proc/sys for its sysctls (or -1).

    ``templated``: our mount namespace is a copy of a batch's template, whose
    root is the default view already built (:func:`build_root`).
    """
    root = ""
    if templated:
        pass
    elif plan.rootfs or plan.layers:
        # Private first: a mount made here must never propagate to the host.
        sysc.mount(None, "/", None, sysc.MS_REC | sysc.MS_PRIVATE, None)
        if plan.layers:  # an image's layers: a read-only overlay, ours alone
            overlay.mount_layers(plan.layers, STAGE)
            root = STAGE
        else:
            assert plan.rootfs is not None
            sysc.mount(plan.rootfs, plan.rootfs, None, sysc.MS_BIND | sysc.MS_REC, None)
            # nodev as the volumes: an image's layer may hold device nodes, which a
            # read-only mount leaves writable (the container's /dev is mounted later).
            attrs = sysc.MOUNT_ATTR_RDONLY | VOLUME_ATTRS
            sysc.mount_setattr(plan.rootfs, attrs, sysc.MS_PRIVATE)
            root = plan.rootfs.rstrip("/")
            for sub in ("/proc", "/sys"):
                with contextlib.suppress(OSError):
                    sysc.umount2(root + sub, sysc.MNT_DETACH)
        make_dev(root + "/dev")
    elif plan.host_view == "full":
        sysc.mount_setattr_rdonly_private("/")
        # The host's own mounts there would stay, hidden, in this namespace's copy
        # (a host with many named netns has hundreds under /run): drop them.
        detach_under(("/proc", "/sys", "/dev", "/run", "/var/run", "/tmp", "/var/tmp"))
        make_dev("/dev")
    else:
        build_root(STAGE, plan.skeleton, etc_masks(), host_layout())
    sysfd = container_fs(root, plan, trees)
    if root:
        os.chdir(root)
        sysc.pivot_root(".", ".")
        sysc.umount2(".", sysc.MNT_DETACH)
        os.chdir("/")
    return sysfd


def container_fs(root: str, plan: Plan, trees: list[int]) -> int:  # pragma: no cover
    """Per container: /proc (confined), /sys, /dev/pts, /dev/shm, scratch tmpfs, volumes.

    Returns an O_PATH fd of /proc/sys taken before it was made read-only when
    the plan has sysctls (written after eth0 exists, through that fd), else -1.
    /sys is mounted after unshare(CLONE_NEWNET), so it shows our interfaces.
    """
    nosuid = sysc.MS_NOSUID | sysc.MS_NODEV
    sysc.mount("proc", root + "/proc", "proc", nosuid | sysc.MS_NOEXEC, None)
    sysfd = -1
    if plan.sysctls:
        sysfd = os.open(root + "/proc/sys", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    sysc.mount("sysfs", root + "/sys", "sysfs", nosuid | sysc.MS_NOEXEC | sysc.MS_RDONLY, None)
    if not plan.privileged:
        confine(root)
    sysc.mount(
        "devpts",
        f"{root}/dev/pts",
        "devpts",
        sysc.MS_NOSUID | sysc.MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=620",
    )
    sysc.mount("shm", f"{root}/dev/shm", "tmpfs", nosuid, "mode=1777,size=65536k")
    tools = not (plan.rootfs or plan.layers) and plan.host_view != "full"
    for sub, data in SCRATCH if tools else SCRATCH_FULL:
        if tools or os.path.isdir(root + sub):
            sysc.mount("tmpfs", root + sub, "tmpfs", nosuid, data)
    if tools:
        os.mkdir("/run/lock", 0o1777)
    for (_, target, read_only, create), fd in zip(plan.volumes, trees, strict=True):
        path = root + target
        try:
            if create:
                os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
            if create == "dir":
                os.makedirs(path, 0o755, exist_ok=True)
            elif create == "file":
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
            # nodev: a read-only bind of a device node (/dev/sda) still opens for
            # writing (a read-only mount stops only writes to files, directories
            # and links), and a bound directory may hold device nodes. nosuid too.
            attrs = VOLUME_ATTRS | (sysc.MOUNT_ATTR_RDONLY if read_only else 0)
            flags = sysc.AT_EMPTY_PATH | sysc.AT_RECURSIVE
            sysc.mount_setattr("", attrs, sysc.MS_PRIVATE, fd=fd, flags=flags)
            sysc.move_mount(fd, path)
        except OSError as err:  # the C twin's words: "volume /x: No such file or directory"
            raise OSError(f"volume {target}: {os.strerror(err.errno or 0)}") from None
        os.close(fd)
    return sysfd


def confine(root: str) -> None:  # pragma: no cover - child only
    """Docker's default /proc and /sys confinement (see the module docstring)."""
    flags = sysc.MS_NOSUID | sysc.MS_NODEV | sysc.MS_NOEXEC
    ro = sysc.MS_REMOUNT | sysc.MS_BIND | sysc.MS_RDONLY | flags
    procsys = root + "/proc/sys"
    sysc.mount(procsys, procsys, None, sysc.MS_BIND, None)
    sysc.mount(None, procsys, None, ro, None)
    # Bound from the read-only mount, so read-only too until remounted without it.
    sysc.mount(procsys + "/net", procsys + "/net", None, sysc.MS_BIND, None)
    sysc.mount(None, procsys + "/net", None, sysc.MS_REMOUNT | sysc.MS_BIND | flags, None)
    for path in PROC_READONLY:
        if _mount_if_there(root + path, root + path, None, sysc.MS_BIND, None):
            sysc.mount(None, root + path, None, ro, None)
    for path in PROC_MASK_FILES:
        _mount_if_there(root + "/dev/null", root + path, None, sysc.MS_BIND, None)
    for path in MASK_DIRS:
        _mount_if_there("tmpfs", root + path, "tmpfs", flags | sysc.MS_RDONLY, "mode=555")


def _mount_if_there(
    src: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> bool:  # pragma: no cover - child only
    """Mount; False when the path does not exist on this kernel (ENOENT), True when done."""
    try:
        sysc.mount(src, target, fstype, flags, data)
    except OSError as err:
        if err.errno == errno.ENOENT:
            return False
        raise
    return True


def detach_under(prefixes: tuple[str, ...]) -> None:  # pragma: no cover - child only
    """Lazily unmount every mount at or below ``prefixes`` in this mount namespace.

    Looks at the real mount table: /run is often not a mount of its own while
    /run/netns holds one nsfs mount per named network namespace (a thousand
    on a lab host), and every copied mount costs time and memory per container.
    """
    with open("/proc/self/mountinfo", "rb") as fh:
        points = {line.split(b" ", 5)[4].decode("unicode_escape", "replace") for line in fh}
    picked: list[str] = []
    for point in sorted(points, key=len):
        if any(point == p or point.startswith(p + "/") for p in prefixes) and not any(
            point == q or point.startswith(q + "/") for q in picked
        ):
            picked.append(point)
    for point in picked:
        with contextlib.suppress(OSError):
            sysc.umount2(point, sysc.MNT_DETACH)


def make_dev(dev: str) -> None:  # pragma: no cover - child only
    """A minimal read-only /dev: null, zero, full, random, urandom, tty; pts/ and shm/.

    No disk or other device node exists, so CAP_DAC_OVERRIDE cannot reach the
    host's disks through /dev. A template makes it once for a whole batch.
    """
    sysc.mount("tmpfs", dev, "tmpfs", sysc.MS_NOSUID | sysc.MS_NOEXEC, "mode=755,size=64k")
    old = os.umask(0)
    try:
        for node, minor in (("null", 3), ("zero", 5), ("full", 7), ("random", 8), ("urandom", 9)):
            sysc.mknod(f"{dev}/{node}", 0o20666, 1, minor)
        sysc.mknod(f"{dev}/tty", 0o20666, 5, 0)
        for link, target in (
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("ptmx", "pts/ptmx"),
        ):
            os.symlink(target, f"{dev}/{link}")
        os.mkdir(f"{dev}/pts", 0o755)
        os.mkdir(f"{dev}/shm", 0o1777)
    finally:
        os.umask(old)
    ro = sysc.MS_REMOUNT | sysc.MS_BIND | sysc.MS_RDONLY | sysc.MS_NOSUID | sysc.MS_NOEXEC
    sysc.mount(None, dev, None, ro, None)
