"""Start a container's PID 1: clone with new namespaces, set up, exec tini.

The Python code here runs only between clone and exec: the container's PID 1 is
``tini-static`` (reaps zombies, forwards signals) and then the user's command,
so a container costs no Python interpreter. The parent and the child talk over
two pipes: ``err`` (child -> parent, close-on-exec: a READY byte once the child
has its network namespace, then EOF when exec succeeded, or the text of the
setup step that failed) and ``go`` (parent -> child: eth0 is there, finish and
exec; EOF means the parent died, so the child exits).

Batches clone from a mount-namespace :class:`Template` (a small mount table to
copy) and, when big, from a small helper process (:mod:`netlens_runtime.spawner`):
the C program ``netlens-spawn`` (spawn_helper.c, the same steps as :func:`_child`)
or, without it, a fresh Python.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal
from typing import Any

from netlens_runtime import hostview, sysc

# Static first: it also runs inside a --rootfs that has no libc.
TINI_PATHS = ("/usr/bin/tini-static", "/usr/bin/tini", "/sbin/tini")
TINI = TINI_PATHS[0]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The network namespace is not made by clone: the child unshares it itself, so
# with many children the (costly) namespace setup runs on every core instead of
# serially in the parent's clone loop.
# Nor the mount namespace: the child unshares it after reporting READY, so
# copying the host's mount table overlaps with our creating its veth.
NS_FLAGS = sysc.CLONE_NEWUTS | sysc.CLONE_NEWIPC | sysc.CLONE_NEWPID
READY = b"\x01"
PR_SET_PDEATHSIG = 1
SYS_CLOSE_RANGE = 436
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


class Plan:
    """Everything the child needs, computed in the parent before clone."""

    def __init__(
        self,
        name: str,
        hostname: str,
        argv: list[str],
        env: dict[str, str],
        caps: int,
        rootfs: str | None = None,
        log_path: str | None = None,
        sysctls: list[tuple[str, str]] | None = None,
        addr: str | None = None,
        gateway: str | None = None,
        host_view: str = hostview.DEFAULT_VIEW,
        volumes: list[hostview.Volume] | None = None,
        skeleton: list[tuple[str, bool]] | None = None,
        privileged: bool = False,
        layers: list[str] | None = None,
    ) -> None:
        self.name, self.hostname, self.argv, self.env = name, hostname, argv, env
        self.caps, self.rootfs = caps, rootfs
        # An image's layer directories, topmost first: the root is their read-only
        # overlay (netlens_runtime.overlay); rootfs is None then.
        self.layers = layers or []
        self.host_view = host_view  # "tools" (default) or "full" (see hostview)
        self.volumes = volumes or []
        # Mount points of volumes to make in the default root (a template makes
        # every container's; see hostview.place_volumes).
        self.skeleton = skeleton or []
        # --privileged: every capability, no seccomp filter, no no_new_privs, no
        # /proc and /sys masks and a writable /proc/sys.
        self.privileged = privileged
        self.log_path = log_path  # None: inherit stdout/stderr (attached run)
        self.log_max = 0  # the most its logs take on disk (names.parse_log_size)
        self.sysctls = sysctls or []
        self.addr = addr  # CIDR for eth0 (index 2), set by the child after ``go``
        self.gateway = gateway
        self.nl_pre: Any = None  # netlink.Requests: lo up (built by prepare_netlink)
        self.nl_post: Any = None  # netlink.Requests: eth0 up, address, default route
        self.nofile: tuple[int, int] | None = None  # RLIMIT_NOFILE to restore before exec
        # Die with the parent before exec (not when a short-lived spawner is the
        # parent: the go pipe's EOF covers the creating process's death then).
        self.pdeathsig = True
        # The compiled classic-BPF seccomp program loaded right before exec
        # (netlens_runtime.seccomp); None: unconfined.
        self.seccomp: bytes | None = None
        # A held network namespace to join instead of making one (``lab start``:
        # netlens_runtime.nshold); the Python child only, never a spawner's batch.
        self.netns_path: str | None = None


def prepare_netlink(plan: Plan) -> None:
    """Build the child's netlink requests in the parent (see netlink.Requests)."""
    from netlens_runtime.netlink import Requests

    pre = Requests()
    pre.set_up(1)  # lo
    plan.nl_pre = pre
    if plan.addr is not None:
        post = Requests()
        post.no_ipv6_autoconf(2)
        post.set_up(2)  # eth0: the parent asks for index 2 (lo is 1)
        post.add_addr(2, plan.addr)
        if plan.gateway:
            post.add_default_route(plan.gateway, 2)
        plan.nl_post = post


class Child:
    """A cloned PID 1 waiting for ``go``, and our ends of its two pipes."""

    def __init__(self, pid: int, go_w: int, err_r: int) -> None:
        self.pid, self.go_w, self.err_r = pid, go_w, err_r

    def release(self) -> None:
        """Let the child exec (write on ``go``); a child that died already reports in result()."""
        with contextlib.suppress(BrokenPipeError):
            os.write(self.go_w, b"g")
        os.close(self.go_w)
        self.go_w = -1

    def wait_ready(self) -> str:
        """Wait until the child's network namespace exists; error text if it failed."""
        first = os.read(self.err_r, 1)
        if first == READY:
            return ""
        if not first:
            return "the container's setup process exited early"
        return (first + os.read(self.err_r, 4096)).decode(errors="replace")

    def result(self) -> str:
        """Empty string when exec succeeded, else the child's error text."""
        chunks = []
        while True:
            data = os.read(self.err_r, 4096)
            if not data:
                break
            chunks.append(data)
        os.close(self.err_r)
        self.err_r = -1
        return b"".join(chunks).decode(errors="replace")

    def abort(self) -> None:
        """Kill the child (before or after exec) and close our pipe ends."""
        for fd in (self.go_w, self.err_r):
            if fd >= 0:
                os.close(fd)
        self.go_w = self.err_r = -1
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


class Template:
    """A mount namespace to copy containers' mount namespaces from, for batches.

    A new mount namespace copies every mount of its creator; a host with a
    thousand mounts (named netns handles under /run/netns, Docker's) makes
    that copy cost milliseconds per container. The template is the default
    view's root (hostview.build_root: the host's tools, /etc's secrets masked,
    ``skeleton``'s volume mount points), pivoted into, so it holds a dozen
    mounts; it is made once per batch by a helper process that holds it until
    :meth:`close`. A child that joins it (setns) lands in its root.
    """

    def __init__(self, skeleton: list[tuple[str, bool]] | None = None) -> None:
        hold_r, self._hold_w = os.pipe2(os.O_CLOEXEC)
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        self.pid = sysc.clone3(sysc.CLONE_NEWNS)
        if self.pid == 0:  # pragma: no cover - helper child
            try:
                _close_others([0, 1, 2, hold_r, ready_w])
                sysc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
                masks = hostview.etc_masks()
                hostview.build_root(hostview.STAGE, skeleton or [], masks, hostview.host_layout())
                os.write(ready_w, b"k")
                os.read(hold_r, 1)
            except BaseException as err:
                with contextlib.suppress(BaseException):
                    os.write(ready_w, f"!{err}".encode())
            finally:
                os._exit(0)
        os.close(hold_r)
        os.close(ready_w)
        self._ready_r = ready_r
        self.fd = -1

    def wait(self) -> int:
        """Wait until the template is made (the caller works meanwhile); its fd."""
        if self.fd < 0:
            ok = os.read(self._ready_r, 4096)
            os.close(self._ready_r)
            self._ready_r = -1
            if ok != b"k":
                self.close()
                why = ok[1:].decode(errors="replace") if ok else "its process died"
                raise OSError(f"mount namespace template failed: {why}")
            self.fd = os.open(f"/proc/{self.pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        return self.fd

    def close(self) -> None:
        if getattr(self, "_ready_r", -1) >= 0:
            os.close(self._ready_r)
            self._ready_r = -1
        if self._hold_w >= 0:
            os.close(self._hold_w)
            self._hold_w = -1
        if getattr(self, "fd", -1) >= 0:
            os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def open_tini() -> int:
    """An fd of the init binary (executed with fexecve, so it need not be in --rootfs)."""
    for path in TINI_PATHS:
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
    from netlens_runtime.errors import RuntimeFailure

    raise RuntimeFailure("tini is not installed (Debian package tini): every container's PID 1")


def start(plan: Plan, tini_fd: int, cgroup_fd: int = -1, template_fd: int = -1) -> Child:
    """Clone the container's PID 1; it sets up its filesystem and waits for ``go``.

    ``cgroup_fd`` (a v2 cgroup directory) makes the child start inside it;
    ``template_fd`` (a :class:`Template`'s namespace) is copied instead of ours.
    """
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    log_fd = -1
    if plan.log_path is not None:
        from netlens_runtime import helper, logger

        try:
            log_fd = logger.start(plan.log_path, plan.log_max, helper.find())
        except OSError:
            for fd in (go_r, go_w, err_r, err_w):
                os.close(fd)
            raise
    try:
        pid = clone_child(plan, go_r, err_w, log_fd, tini_fd, cgroup_fd, template_fd)
    except OSError:
        for fd in (go_r, go_w, err_r, err_w, log_fd):
            if fd >= 0:
                os.close(fd)
        raise
    os.close(go_r)
    os.close(err_w)
    if log_fd >= 0:
        os.close(log_fd)
    return Child(pid, go_w, err_r)


def clone_child(
    plan: Plan, go_r: int, err_w: int, log_fd: int, tini_fd: int, cgroup_fd: int, template_fd: int
) -> int:
    """clone3 the PID 1 and run its setup; returns the pid (in the caller only)."""
    pid = sysc.clone3(NS_FLAGS, cgroup_fd)
    if pid == 0:  # pragma: no cover - runs in the child, between clone and exec
        gc.disable()  # a collection would touch (and so copy) every page of the parent
        step = "start"
        try:
            keep = {0, 1, 2, go_r, err_w, tini_fd, template_fd, log_fd} - {-1}
            _close_others(sorted(keep))
            # Passed through a spawner they lost close-on-exec; tini must not inherit them.
            for fd in (go_r, err_w, tini_fd):
                os.set_inheritable(fd, False)
            # Everything the child imports, imported while the host's root is ours
            # (the default view does not show this package or our interpreter's).
            from netlens_runtime import netlink  # noqa: F401

            if plan.nofile is not None:
                import resource  # noqa: F401
            step = "setup"
            trees = hostview.open_volumes(plan.volumes)  # host paths: before the template
            if plan.netns_path is not None:  # so is the held namespace's handle
                trees.append(os.open(plan.netns_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC))
            if template_fd >= 0:
                sysc.setns(template_fd, sysc.CLONE_NEWNS)
                os.close(template_fd)
                sysc.unshare(sysc.CLONE_NEWNS)
            _child(plan, go_r, err_w, log_fd, tini_fd, template_fd >= 0, trees)
        except BaseException as err:
            with contextlib.suppress(BaseException):
                os.write(err_w, f"{plan.name}: {step}: {err}".encode())
        os._exit(127)
    return pid


def _close_others(keep: list[int]) -> None:
    """Close every fd not in ``keep`` (sorted), so sibling children's pipes do not leak."""
    lo = 0
    for fd in [*keep, 1 << 30]:
        if fd > lo:
            _libc.syscall(SYS_CLOSE_RANGE, ctypes.c_uint(lo), ctypes.c_uint(fd - 1), 0)
        lo = fd + 1


def _child(
    plan: Plan, go_r: int, err_w: int, log_fd: int, tini_fd: int, templated: bool, trees: list[int]
) -> None:  # pragma: no cover
    from netlens_runtime.netlink import Netlink

    if plan.pdeathsig:
        sysc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    os.umask(0)
    sysc.sethostname(plan.hostname)
    if plan.netns_path is not None:  # a stopped node's namespace, links and all
        held = trees.pop()  # opened by clone_child, after the volumes' trees
        sysc.setns(held, sysc.CLONE_NEWNET)
        os.close(held)
    else:
        sysc.unshare(sysc.CLONE_NEWNET)
    if plan.nl_pre is not None:
        with Netlink() as nl:
            nl.send(plan.nl_pre)  # lo up
    os.write(err_w, READY)  # the parent may now put eth0 into our namespace
    if not templated:
        sysc.unshare(sysc.CLONE_NEWNS)
    sysfd = hostview.setup_fs(plan, templated, trees)  # after unshare: /sys shows our netns
    if os.read(go_r, 1) != b"g":
        os._exit(1)  # the parent died or gave up
    os.close(go_r)
    if plan.pdeathsig:
        sysc.prctl(PR_SET_PDEATHSIG, 0)
    if plan.nl_post is not None:
        with Netlink() as nl:
            nl.send(plan.nl_post)  # eth0 up, address, default route
    if plan.nofile is not None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, plan.nofile)
    for path, value in plan.sysctls:  # through the fd: /proc/sys is read-only now
        try:
            fd = os.open(path.removeprefix("/proc/sys/"), os.O_WRONLY | os.O_CLOEXEC, dir_fd=sysfd)
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
        except OSError as err:
            raise OSError(err.errno, err.strerror, path) from None
    if sysfd >= 0:
        os.close(sysfd)
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    if log_fd >= 0:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
    os.close(null)
    os.chdir("/")
    os.umask(0o022)
    # A session and process group of its own, so no controlling terminal: else the
    # container (even detached: /dev/tty) could push keystrokes into the terminal
    # that started it (TIOCSTI), for the caller's root shell to run; and killing the
    # caller's group (a CI runner, kill -- -PGID) leaves a detached container running.
    os.setsid()
    # exec keeps ignored signals and the blocked mask: Python ignores SIGPIPE and
    # SIGXFSZ (``yes | head`` would never end on EPIPE), make ignores 32 and 33.
    sysc.reset_signals()
    drop_privileges(plan.caps, not plan.privileged)
    if plan.seccomp is not None:
        sysc.set_seccomp(plan.seccomp)  # last: the filter may refuse what came before
    os.execve(tini_fd, ["tini", "--", *plan.argv], plan.env)


def drop_privileges(caps: int, no_new_privs: bool = True) -> None:
    """Bounding set and capability sets down to ``caps``; then no_new_privs.

    A privileged container keeps the ability to gain privileges by exec (setuid
    programs, file capabilities), as under Docker's --privileged: it has them all.
    """
    for cap in range(64):
        if not caps & (1 << cap):
            try:
                sysc.prctl(sysc.PR_CAPBSET_DROP, cap)
            except OSError:
                break  # EINVAL past the last capability this kernel knows
    with contextlib.suppress(OSError):
        sysc.prctl(sysc.PR_CAP_AMBIENT, sysc.PR_CAP_AMBIENT_CLEAR_ALL)
    sysc.capset(caps)
    if no_new_privs:
        sysc.prctl(sysc.PR_SET_NO_NEW_PRIVS, 1)
